"""Resume end to end (detect chunks, embed chunks, gather phases) and outputs that appear whole or not at all."""

import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from group_appeal_spark.jobs import cluster as cluster_job
from group_appeal_spark.jobs.pipeline import detect as detect_job  # where the job half looks its transforms up
from group_appeal_spark.jobs import run as run_job
from group_appeal_spark.jobs.storage import run_state, tables
from group_appeal_spark.lib.errors import InputError
from group_appeal_spark.udfs.hooks import UdfHooks

pytestmark = pytest.mark.spark

CHUNKS = 3
INCOMPLETE = r"is not a complete output of detect/run \(interrupted or still running\?\).*rerun it with --resume"


def _log_batches(path: Path):
    """A ``before_batch`` hook appending each batch's stage to ``path`` (nested: cloudpickle ships it)."""
    path = str(path)

    def before_batch(stage: str) -> None:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(stage + "\n")

    return before_batch


def _always_fail():
    def before_batch(stage: str) -> None:
        raise RuntimeError(f"injected failure in the {stage} UDF")

    return before_batch


def _batches(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, hub_cache):
    from sentences import sentences

    texts = sentences(30, seed=3)
    path = tmp_path_factory.mktemp("resume-corpus") / "docs.jsonl"
    path.write_text("".join(json.dumps({"id": f"d{i:02d}", "text": t}) + "\n" for i, t in enumerate(texts)))
    return path


def _args(corpus, out) -> list[str]:
    return ["--input", str(corpus), "--input-format", "json", "--output", str(out), "--chunks", str(CHUNKS),
            "--k-min", "2", "--k-max", "3", "--master", "local[2]"]


@pytest.fixture(scope="module")
def clean(tmp_path_factory, corpus, spark):
    out = tmp_path_factory.mktemp("resume-clean") / "out"
    assert run_job.main(_args(corpus, out)) == 0
    return out


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in frame.columns if c != "embedding"]
    return frame[cols].astype(str).sort_values(cols).reset_index(drop=True)


def test_interrupted_embedding_resumes_where_it_stopped(corpus, clean, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    real_embed, real_detect = detect_job.embed_mentions, detect_job.detect_appeals
    embed_calls, detect_calls = [], []

    def embed_failing_after_one(keys, *a, **kw):
        embed_calls.append(1)
        # the first embed chunk after a finished one that has any mention fails on the executors
        if len(embed_calls) > 1 and keys.limit(1).count():
            kw["hooks"] = UdfHooks(before_batch=_always_fail())
        return real_embed(keys, *a, **kw)

    monkeypatch.setattr(detect_job, "embed_mentions", embed_failing_after_one)
    first_log = tmp_path / "first.log"
    with pytest.raises(Exception, match="injected failure in the embed UDF"):
        run_job.main(_args(corpus, out), hooks=UdfHooks(before_batch=_log_batches(first_log)))
    done = sorted(p.parent.name for p in (out / "_work").glob("embed-*/_DONE.json"))
    assert len(done) == len(embed_calls) - 1 >= 1
    assert len(list((out / "_work").glob("chunk-*/_DONE.json"))) == CHUNKS
    assert not (out / "mention_embeddings").exists() and not (out / "_SUCCESS.json").exists()
    assert "appeals" in _batches(first_log) and "embed" in _batches(first_log)

    # cluster refuses the interrupted output with one line
    capsys.readouterr()
    assert cluster_job.main(["--input", str(out), "--output", str(tmp_path / "c"), "--master", "local[2]"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cluster: error: ")
    assert f"{out} is not a complete output of detect/run (interrupted or still running?)" in err[0]
    assert err[0].endswith("rerun it with --resume")

    embed_calls.clear()
    monkeypatch.setattr(detect_job, "embed_mentions", lambda *a, **kw: embed_calls.append(1) or real_embed(*a, **kw))
    monkeypatch.setattr(detect_job, "detect_appeals", lambda *a, **kw: detect_calls.append(1) or real_detect(*a, **kw))
    resume_log = tmp_path / "resume.log"
    assert run_job.main([*_args(corpus, out), "--resume"], hooks=UdfHooks(before_batch=_log_batches(resume_log))) == 0
    assert detect_calls == [] and "appeals" not in _batches(resume_log), "no detect chunk recomputed"
    assert len(embed_calls) == CHUNKS - len(done), "only the unfinished embed chunks ran"
    assert "embed" in _batches(resume_log)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["chunks_resumed"] == CHUNKS and summary["embed_chunks_resumed"] == len(done)
    expected = json.loads((clean / "summary.json").read_text())
    for key in ("input_rows", "mentions", "unique_mentions", "chosen_k"):
        assert summary[key] == expected[key], key
    for table in ("mentions", "errors", "documents", "mention_embeddings", "clusters", "cluster_summary"):
        if (clean / table).exists():
            pd.testing.assert_frame_equal(_sorted(pd.read_parquet(out / table)),
                                          _sorted(pd.read_parquet(clean / table)), obj=table)
    got = pd.read_parquet(out / "mention_embeddings").sort_values("mention_key")
    want = pd.read_parquet(clean / "mention_embeddings").sort_values("mention_key")
    np.testing.assert_allclose(np.stack(got["embedding"]), np.stack(want["embedding"]), atol=1e-6, rtol=0)
    marker = json.loads((out / "_SUCCESS.json").read_text())
    assert marker["complete"] is True and marker["job"] == "run" and "mention_embeddings" in marker["tables"]
    assert not (out / "_work").exists()
    assert not list(out.glob("_writing-*")), "no staging folder left"


def _files(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


def test_resume_of_a_finished_output_does_nothing(corpus, clean, tmp_path, caplog):
    before = _files(clean)
    batches = tmp_path / "batches.log"
    with caplog.at_level(logging.INFO, logger="group_appeal_spark"):
        assert run_job.main([*_args(corpus, clean), "--resume"], hooks=UdfHooks(before_batch=_log_batches(batches))) == 0
    assert f"run: {clean}: output complete" in caplog.text and "nothing to do" in caplog.text
    assert _files(clean) == before, "no file written, replaced or removed"
    assert _batches(batches) == []


def test_resume_of_a_finished_output_refuses_other_settings(corpus, clean, capsys):
    args = _args(corpus, clean)
    args[args.index("--chunks") + 1] = "2"
    assert run_job.main([*args, "--resume"]) == 2
    assert "complete output made with other settings (chunks differ)" in capsys.readouterr().err


def test_a_finished_output_passes_check_complete(clean, spark):
    info = run_state.check_complete(spark, str(clean), needs=("mention_embeddings", "mentions"))
    assert info["complete"] is True and info["job"] == "run"
    with pytest.raises(InputError, match="has no nothing_here table"):
        run_state.check_complete(spark, str(clean), needs=("nothing_here",))


def test_a_table_killed_mid_write_never_looks_complete(spark, tmp_path):
    out = tmp_path / "out"
    table = str(out / "t")
    tables.write_table(spark.range(10).toDF("x"), table, "parquet", "error")
    run_state.mark_complete(spark, str(out), "detect", ["t"])
    assert run_state.check_complete(spark, str(out), needs=("t",))["complete"] is True

    # a new run over it: the marker goes first, then the overwrite dies half-way
    run_state.mark_started(spark, str(out))
    from pyspark.sql import functions as F

    @F.udf("long")
    def dies(x):
        if x >= 50:
            raise RuntimeError("simulated kill mid-write")
        return x

    with pytest.raises(Exception, match="simulated kill mid-write"):
        tables.write_table(spark.range(100).repartition(4).select(dies("id").alias("x")), table, "parquet", "overwrite")
    # the old table is whole (the new one never replaced it); the partial one is hidden in staging
    assert sorted(pd.read_parquet(table)["x"]) == list(range(10))
    assert (out / "_writing-t").exists()
    with pytest.raises(InputError, match=INCOMPLETE):
        run_state.check_complete(spark, str(out), needs=("t",))

    # the next attempt replaces the leftover staging folder and moves a whole table into place
    tables.write_table(spark.range(20).toDF("x"), table, "parquet", "overwrite")
    assert sorted(pd.read_parquet(table)["x"]) == list(range(20)) and not (out / "_writing-t").exists()


def test_a_fresh_table_killed_mid_write_is_not_there(spark, tmp_path):
    table = tmp_path / "out" / "t"
    from pyspark.sql import functions as F

    @F.udf("long")
    def dies(x):
        raise RuntimeError("simulated kill mid-write")

    with pytest.raises(Exception, match="simulated kill mid-write"):
        tables.write_table(spark.range(8).select(dies("id").alias("x")), str(table), "parquet", "error")
    assert not table.exists()
    with pytest.raises(InputError, match=INCOMPLETE):
        run_state.check_complete(spark, str(tmp_path / "out"))


@pytest.mark.parametrize("files, outcome", [
    ({"mentions/part-0.parquet": b"x"}, "refused"),                              # interrupted, no marker
    ({"mentions/part-0.parquet": b"x", "summary.json": b"{}"}, "old output"),   # an older version's output
    ({"summary.json": b"{}", "_SUCCESS.json": b'{"complete": false}'}, "refused"),
    ({"_SUCCESS.json": b'{"complete": tr'}, "refused"),                          # marker cut short
    ({"_SUCCESS.json": b'{"complete": true, "job": "detect", "tables": []}'}, "complete"),
])
def test_check_complete_decides_on_the_marker(spark, tmp_path, caplog, files, outcome):
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    if outcome == "refused":
        with pytest.raises(InputError, match=INCOMPLETE):
            run_state.check_complete(spark, str(tmp_path))
        return
    with caplog.at_level(logging.WARNING, logger="group_appeal_spark"):
        info = run_state.check_complete(spark, str(tmp_path))
    if outcome == "old output":
        assert info is None and "has no _SUCCESS.json" in caplog.text
    else:
        assert info["complete"] is True and not caplog.text


def test_check_complete_names_a_missing_folder(spark, tmp_path):
    with pytest.raises(InputError, match="does not exist; run `group-appeal-spark detect` first"):
        run_state.check_complete(spark, str(tmp_path / "nope"))


def test_mark_started_removes_what_looked_complete(spark, tmp_path):
    (tmp_path / "summary.json").write_text("{}")
    run_state.mark_complete(spark, str(tmp_path), "detect", [])
    run_state.mark_started(spark, str(tmp_path))
    assert not (tmp_path / "_SUCCESS.json").exists() and not (tmp_path / "summary.json").exists()
    assert os.listdir(tmp_path) == [] or all(n.startswith(".") for n in os.listdir(tmp_path))


def test_resume_records_duplicate_ids_as_asked(corpus, tmp_path, monkeypatch, capsys):
    """``duplicate_ids: error`` is checked once for every chunk, and the fingerprint still records
    ``error`` (it once recorded the ``keep`` the check was rewritten to): a resume with ``keep`` is refused."""
    out = tmp_path / "out"

    def crash(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(detect_job, "detect_appeals", crash)
    assert run_job.main([*_args(corpus, out), "--set", "input.duplicate_ids=error"]) == 130  # interrupted: one line, exit 130
    assert json.loads((out / "_work" / "fingerprint.json").read_text())["duplicate_ids"] == "error"
    assert run_job.main([*_args(corpus, out), "--resume"]) == 2  # input.duplicate_ids: keep, the default
    assert "duplicate_ids differ" in capsys.readouterr().err
