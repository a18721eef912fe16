"""Hostile input, reconciliation, retries, resume, early failures: no row lost, nothing duplicated."""

import json
import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from group_appeal_spark.jobs.pipeline import detect as detect_job  # where the job half looks its transforms up
from group_appeal_spark.jobs import run as run_job
from group_appeal_spark.jobs import transforms
from group_appeal_spark.lib.config import load_config
from group_appeal_spark.lib.errors import ConfigError
from group_appeal_spark.lib.models.bundle import ModelBundle
from group_appeal_spark.udfs.hooks import UdfHooks

pytestmark = pytest.mark.spark


GOOD = {
    "g1": "We support farmers and young people.",
    "g2": "Мы поддерживаем фермеров 🙂. 我们支持农民。Nurses deserve better!",
    "g3": "Nurses\u0007 deserve\u200b better than \x1b bankers.",
    "g4": "working families " * 7000,                      # 119,000 characters, no punctuation
}
# doc_id (None where the line cannot give one) -> the error reason expected in errors/
BAD = {
    "b1": "missing text (null)",
    "b2": "missing text field 'text'",
    "b3": "empty text",
    "b4": "whitespace-only text",
    "b5": "whitespace-only text",
    "b6": "not a string: int",
    "b7": "not a string: dict",
    "b8": "not a string: list",
    "b9": "contains lone surrogate characters",
}


def _hostile_lines() -> bytes:
    lines = [json.dumps({"id": k, "party": "P", "text": v}).encode() for k, v in GOOD.items()]
    lines += [
        b'{"id": "b1", "party": "P", "text": null}',
        b'{"id": "b2", "party": "P"}',
        b'{"id": "b3", "party": "P", "text": ""}',
        b'{"id": "b4", "party": "P", "text": "   \\t\\n "}',
        b'{"id": "b5", "party": "P", "text": "\\u200b\\ufeff"}',
        b'{"id": "b6", "party": "P", "text": 12345}',
        b'{"id": "b7", "party": "P", "text": {"a": [1, 2]}}',
        b'{"id": "b8", "party": "P", "text": ["x"]}',
        b'{"id": "b9", "party": "P", "text": "bad \\ud800 surrogate"}',
        b'{"id": "b10", "party": "P", "text": "bad \xff\xfe bytes"}',      # invalid UTF-8
        b'{"id": "b11", "party": "P", "text": "unterminated',               # malformed JSON
        b'[1, 2, 3]',                                                        # not an object
        b'{"party": "P", "text": "We support nurses."}',                    # missing id
        b'{"id": "g1", "party": "Q", "text": "Pensioners matter."}',        # duplicate id: processed
        b'',                                                                 # blank line: not a document
    ]
    return b"\n".join(lines) + b"\n"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, hub_cache):
    folder = tmp_path_factory.mktemp("hostile")
    path = folder / "corpus.jsonl"
    path.write_bytes(_hostile_lines())
    return path


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory, hostile, spark):
    out = tmp_path_factory.mktemp("hostile-run") / "out"
    assert run_job.main(["--input", str(hostile), "--input-format", "json", "--carry-cols", "party",
                         "--output", str(out), "--k-max", "3", "--master", "local[2]"]) == 0
    return out


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in frame.columns if c != "embedding"]
    return frame[cols].astype(str).sort_values(cols).reset_index(drop=True)


def _same_rows(got: pd.DataFrame, want: pd.DataFrame, table: str) -> None:
    """Equal tables: every column exactly, except floats computed from embeddings, to 1e-5.

    An embedding is the same up to its last bit whatever batch it was in, except that a batch of
    a few rows takes another matrix kernel (1 ulp apart), so a run with other chunks can differ
    there; k-means distances follow.
    """
    floats = [c for c in want.columns if c in ("distance_to_centroid",)]
    keys = [c for c in want.columns if c not in floats and c != "embedding"]
    got = got.assign(_k=got[keys].astype(str).agg("|".join, axis=1)).sort_values("_k").reset_index(drop=True)
    want = want.assign(_k=want[keys].astype(str).agg("|".join, axis=1)).sort_values("_k").reset_index(drop=True)
    pd.testing.assert_frame_equal(got[keys].astype(str), want[keys].astype(str), obj=table)
    for col in floats:
        np.testing.assert_allclose(got[col].to_numpy(float), want[col].to_numpy(float), rtol=1e-5, err_msg=table)
    if "embedding" in want.columns:
        np.testing.assert_allclose(np.stack(got["embedding"]), np.stack(want["embedding"]), atol=1e-6, err_msg=table)


def test_hostile_corpus_every_row_accounted_for(hostile_run):
    summary = json.loads((hostile_run / "summary.json").read_text())
    assert summary["input_rows"] == 18
    assert summary["documents_ok"] == 5 and summary["documents_with_errors"] == 13
    errors = pd.read_parquet(hostile_run / "errors")
    assert set(errors["stage"]) == {"input"}
    by_id = dict(zip(errors["doc_id"].dropna(), errors["error"][errors["doc_id"].notna()]))
    assert by_id == BAD
    anonymous = sorted(errors.loc[errors["doc_id"].isna(), "error"])
    assert len(anonymous) == 4
    assert anonymous[0] == "JSON line is not an object: list"
    assert anonymous[1] == "invalid UTF-8 in line"
    assert anonymous[2].startswith("malformed JSON line")
    assert anonymous[3] == "missing document id (id)"
    mentions = pd.read_parquet(hostile_run / "mentions")
    assert set(mentions["doc_id"]) <= set(GOOD)
    long_doc = mentions[mentions["doc_id"] == "g4"]
    assert len(long_doc) > 100 and long_doc["end"].max() > 100_000
    assert (mentions.groupby("doc_id")["party"].agg(set)["g1"]) == {"P", "Q"}, "both rows with id g1 processed"


def test_hostile_csv_malformed_lines_are_reported(tmp_path, spark):
    path = tmp_path / "docs.csv"
    path.write_text('id,party,text\n1,Lab,"We support farmers."\n2,Con,"Too, many",fields,here\n3,LD\n'
                    '4,Lab,"Multi\nline, with a comma"\n', encoding="utf-8")
    config = load_config(overrides={"input.path": str(path), "input.format": "csv", "input.carry_cols": ["party"]})
    from group_appeal_spark.jobs.storage import readers

    result = transforms.detect_appeals(readers.read_documents(spark, config.input), config)
    errors = result.errors.toPandas().sort_values("doc_id")
    assert errors[["doc_id", "error"]].values.tolist() == [["2", "malformed CSV line"], ["3", "malformed CSV line"]]
    assert sorted(result.documents.where("error is null").toPandas()["doc_id"]) == ["1", "4"]


def _fail_once(marker: Path):
    """A ``before_batch`` hook: the first batch to create ``marker`` raises, once per marker."""
    marker = str(marker)

    # Nested, so cloudpickle ships it to the executors by value: they cannot import test modules.
    def before_batch(stage: str) -> None:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
        raise RuntimeError(f"injected one-time task failure in the {stage} UDF (marker {marker})")

    return before_batch


def test_injected_task_failure_is_retried_to_the_same_result(spark, hostile, tmp_path):
    from group_appeal_spark.jobs.storage import readers

    config = load_config(overrides={"input.path": str(hostile), "input.format": "json",
                                    "input.carry_cols": ["party"]})
    bundle = ModelBundle.resolve(config)
    docs = readers.read_documents(spark, config.input).repartition(3)
    clean = transforms.detect_appeals(docs, config, bundle=bundle)
    marker = tmp_path / "failed-once"
    flaky = transforms.detect_appeals(docs, config, bundle=bundle, hooks=UdfHooks(before_batch=_fail_once(marker)))
    got_mentions, got_errors = flaky.mentions.toPandas(), flaky.errors.toPandas()
    assert marker.exists(), "the injected failure happened (and Spark retried the task)"
    pd.testing.assert_frame_equal(_sorted(got_mentions), _sorted(clean.mentions.toPandas()))
    pd.testing.assert_frame_equal(_sorted(got_errors), _sorted(clean.errors.toPandas()))


def test_interrupted_run_resumes_without_duplicates(hostile, hostile_run, tmp_path, monkeypatch):
    out = tmp_path / "out"
    args = ["--input", str(hostile), "--input-format", "json", "--carry-cols", "party", "--output", str(out),
            "--k-max", "3", "--chunks", "4", "--master", "local[2]"]
    real = detect_job.detect_appeals
    calls = []

    def crash_after_two(*a, **kw):
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated interruption")
        calls.append(kw["chunk"])
        return real(*a, **kw)

    monkeypatch.setattr(detect_job, "detect_appeals", crash_after_two)
    assert run_job.main(args) == 130  # interrupted: one line, exit 130
    assert len(list((out / "_work").glob("chunk-*/_DONE.json"))) == 2

    calls.clear()
    monkeypatch.setattr(detect_job, "detect_appeals", lambda *a, **kw: calls.append(kw["chunk"]) or real(*a, **kw))
    assert run_job.main([*args, "--resume"]) == 0
    assert len(calls) == 2, "only the two unfinished chunks ran again"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["chunks_resumed"] == 2 and summary["input_rows"] == 18
    for table in ("mentions", "errors", "mention_embeddings", "clusters"):
        _same_rows(pd.read_parquet(out / table), pd.read_parquet(hostile_run / table), table)
    assert not (out / "_work").exists()


def test_resume_refuses_other_settings(hostile, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    base = ["--input", str(hostile), "--input-format", "json", "--output", str(out), "--master", "local[2]"]
    real = detect_job.detect_appeals

    def crash(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(detect_job, "detect_appeals", crash)
    assert run_job.main([*base, "--chunks", "2"]) == 130  # interrupted: one line, exit 130
    monkeypatch.setattr(detect_job, "detect_appeals", real)
    assert run_job.main([*base, "--chunks", "3", "--resume"]) == 2
    assert "chunks differ" in capsys.readouterr().err


def test_unwritable_output_fails_before_any_work(hostile, tmp_path, capsys):
    if os.geteuid() == 0:
        target = "/proc/group-appeal-spark-out"   # not writable even for root
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
        target = str(locked / "out")
    code = run_job.main(["--input", str(hostile), "--input-format", "json", "--output", target,
                         "--master", "local[2]"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("run: error: output:") and "not writable" in err[-1]


def test_unreadable_input_fails_clearly(tmp_path, capsys):
    code = run_job.main(["--input", str(tmp_path / "nope.jsonl"), "--output", str(tmp_path / "o"),
                         "--master", "local[2]"])
    assert code == 2 and "does not exist" in capsys.readouterr().err


def test_config_never_executes_yaml_tags(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("clustering:\n  k_max: !!python/object/apply:os.system ['echo pwned > /tmp/gas-pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(evil)
    assert not Path("/tmp/gas-pwned").exists()
