"""The stream job with a real stream: files dropped between triggers, a driver killed with SIGKILL
in the middle of a batch and restarted, bad files, documents that arrive again; the final tables
equal `run --cluster-model` over all the files at once (issue 19)."""

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from group_appeal_spark.lib import models
from sentences import sentences

pytestmark = pytest.mark.spark

N_FILES, PER_FILE = 4, 10


def _files() -> dict:
    """Four JSON-lines files of ten speeches; f1 adds a malformed line, f2 an empty text."""
    pool = sentences(2 * N_FILES * PER_FILE, seed=21)
    files = {}
    for k in range(N_FILES):
        rows = [{"id": f"d{k}{i:02d}", "party": "AB"[i % 2], "text": " ".join(pool[2 * (k * PER_FILE + i):][:2])}
                for i in range(PER_FILE)]
        lines = [json.dumps(r) for r in rows]
        if k == 1:
            lines.append('{"id": "bad1", "party": "A", "text": "unterminated')
        if k == 2:
            lines.append('{"id": "e1", "party": "B", "text": ""}')
        files[f"f{k}.jsonl"] = "\n".join(lines) + "\n"
    return files


def _drop(folder, files: dict, names) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / f".{name}.tmp").write_text(files[name], encoding="utf-8")  # hidden until whole
        os.replace(folder / f".{name}.tmp", folder / name)


@pytest.fixture(scope="module")
def world(tmp_path_factory, sparse_repos, spark):
    """The files, the model flags, a cluster model (a run over f0) and the expected tables (a run
    over every file at once, assigned to that model)."""
    from group_appeal_spark.jobs import run as run_job

    root = tmp_path_factory.mktemp("stream")
    files = _files()
    sets = [f"--set=models.{role}.local_dir={sparse_repos[repo]}" for role, repo in models.MODEL_ROLES.items()]
    common = ["--input-format", "json", "--carry-cols", "party", *sets, "--master", "local[2]"]
    _drop(root / "first", files, ["f0.jsonl"])
    assert run_job.main(["--input", str(root / "first"), "--output", str(root / "base"), "--n-clusters", "2",
                         "--set", "output.plots=false", *common]) == 0
    _drop(root / "all", files, list(files))
    assert run_job.main(["--input", str(root / "all"), "--output", str(root / "expected"), "--cluster-model",
                         str(root / "base" / "cluster_model"), *common]) == 0
    return {"root": root, "files": files, "common": common, "model": str(root / "base" / "cluster_model"),
            "expected": root / "expected"}


def _stream(world, feed, out, *extra):
    from group_appeal_spark.jobs import stream

    return stream.main(["--input", str(feed), "--output", str(out), "--cluster-model", world["model"],
                        *world["common"], *extra])


def _sorted(frame, keys):
    return frame.sort_values(keys, na_position="first", kind="mergesort").reset_index(drop=True)


def assert_same_tables(out, expected):
    """Every document once, the same mentions, stances, keys, embeddings and cluster ids."""
    for table, keys in (("documents", ["doc_id", "error"]), ("segments", ["doc_id", "seg_idx"]),
                        ("errors", ["doc_id", "error"])):
        mine, theirs = (_sorted(pd.read_parquet(f / table), keys) for f in (out, expected))
        pd.testing.assert_frame_equal(mine[theirs.columns], theirs, check_dtype=False)
    mine, theirs = (_sorted(pd.read_parquet(f / "mentions"), ["doc_id", "seg_idx", "start"]) for f in (out, expected))
    close = ["prob_positive", "prob_negative", "prob_neutral", "score"]
    exact = [c for c in theirs.columns if c not in close]
    pd.testing.assert_frame_equal(mine[exact], theirs[exact], check_dtype=False)
    np.testing.assert_allclose(mine[close].to_numpy(float), theirs[close].to_numpy(float), atol=1e-5)
    mine, theirs = (_sorted(pd.read_parquet(f / "mention_embeddings"), ["mention_key"]) for f in (out, expected))
    pd.testing.assert_frame_equal(mine[["mention_key", "mention", "count"]], theirs[["mention_key", "mention", "count"]],
                                  check_dtype=False)
    np.testing.assert_allclose(np.stack(mine["embedding"]), np.stack(theirs["embedding"]), atol=1e-5)
    mine, theirs = (_sorted(pd.read_parquet(f / "clusters"), ["mention_key"]) for f in (out, expected))
    pd.testing.assert_frame_equal(mine[["mention_key", "mention", "count", "cluster_id", "label"]],
                                  theirs[["mention_key", "mention", "count", "cluster_id", "label"]], check_dtype=False)
    np.testing.assert_allclose(mine["distance_to_centroid"], theirs["distance_to_centroid"], atol=1e-5)
    summary = json.loads((out / "summary.json").read_text())
    documents = pd.read_parquet(out / "documents")
    assert summary["job"] == "stream" and summary["input_rows"] == len(documents) and summary["reconciled"] is True
    assert summary["mentions"] == len(pd.read_parquet(out / "mentions"))


def test_files_dropped_between_triggers_give_what_one_run_gives(world):
    root, files = world["root"], world["files"]
    feed, out = root / "feed", root / "dropped"
    _drop(feed, files, ["f0.jsonl", "f1.jsonl"])
    assert _stream(world, feed, out) == 0
    first = json.loads((out / "summary.json").read_text())
    assert first["input_rows"] == 2 * PER_FILE + 1 and first["documents_with_errors"] == 1
    _drop(feed, files, ["f2.jsonl", "f3.jsonl"])
    assert _stream(world, feed, out, "--max-files-per-batch", "1") == 0
    state = json.loads((out / "_stream" / "state.json").read_text())
    assert state["batches"] == 3 and sorted(os.listdir(out / "_stream" / "batches")) == [
        "00000000.json", "00000001.json", "00000002.json"]
    assert_same_tables(out, world["expected"])
    # the summary tables follow all batches: aggregates' mentions are every mention
    assert pd.read_parquet(out / "aggregates")["mentions"].sum() == len(pd.read_parquet(out / "mentions"))
    assert json.loads((out / "_SUCCESS.json").read_text())["job"] == "stream" and (out / "report.html").is_file()
    # nothing new: a run that finds no file writes nothing twice
    assert _stream(world, feed, out) == 0
    assert json.loads((out / "_stream" / "state.json").read_text())["batches"] == 3
    assert_same_tables(out, world["expected"])


def test_a_driver_killed_mid_batch_restarts_with_every_document_once(world, tmp_path):
    files = world["files"]
    feed, out = tmp_path / "feed", tmp_path / "killed"
    _drop(feed, files, list(files))
    argv = [sys.executable, "-m", "group_appeal_spark.jobs.cli", "stream", "--input", str(feed), "--output", str(out),
            "--cluster-model", world["model"], *world["common"], "--max-files-per-batch", "1", "--refresh-every", "0"]
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    staging = out / "_stream" / "staging" / "00000001"
    deadline = time.monotonic() + 240
    try:
        while not staging.exists():  # batch 0 committed, batch 1 writing its tables
            assert child.poll() is None, child.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "batch 1 never started"
            time.sleep(0.05)
    finally:
        os.killpg(child.pid, signal.SIGKILL)  # the driver and its JVM, mid-batch
        child.wait()
    assert (out / "_stream" / "batches" / "00000000.json").exists()
    assert not (out / "_stream" / "batches" / "00000001.json").exists()
    assert _stream(world, feed, out, "--max-files-per-batch", "1") == 0
    assert_same_tables(out, world["expected"])


def test_the_commit_protocol_undoes_a_half_moved_batch(spark, tmp_path):
    from group_appeal_spark.jobs.storage.stream_state import BatchCommitter

    out = str(tmp_path / "out")
    committer = BatchCommitter(spark, out, "parquet", "test")
    df = spark.range(10).repartition(3)
    committer.stage(3, "documents", df)
    committer.commit(3, ["documents"], {"input_rows": 10})
    names = sorted(n for n in os.listdir(tmp_path / "out" / "documents") if not n.startswith("."))  # .crc aside
    assert names and all(n.startswith("part-b00000003-") for n in names)
    assert committer.committed(3)["input_rows"] == 10 and committer.committed(4) is None
    # batch 4 killed while moving: one part file moved, no marker
    committer.stage(4, "documents", spark.range(100, 104).repartition(2))
    staged = tmp_path / "out" / "_stream" / "staging" / "00000004" / "documents"
    part = next(p for p in sorted(os.listdir(staged)) if p.startswith("part-"))
    os.rename(staged / part, tmp_path / "out" / "documents" / f"part-b00000004-00000{part[part.index('.'):]}")
    assert spark.read.parquet(out + "/documents").count() > 10  # the half batch shows
    assert committer.undo(4, ["documents"]) == 1
    assert spark.read.parquet(out + "/documents").count() == 10 and not staged.exists()


def test_a_refresh_stopped_mid_replace_is_put_back(spark, tmp_path):
    from group_appeal_spark.jobs.storage.stream_state import recover_tables

    out = tmp_path / "out"
    spark.range(5).write.parquet(str(out / "_writing-clusters"))  # whole: Spark's _SUCCESS is there
    spark.range(3).write.parquet(str(out / "aggregates"))
    spark.range(7).write.parquet(str(out / "_writing-aggregates"))  # the old table is still in place
    assert recover_tables(spark, str(out), ["clusters", "aggregates"]) == ["clusters"]
    assert spark.read.parquet(str(out / "clusters")).count() == 5
    assert spark.read.parquet(str(out / "aggregates")).count() == 3


def test_bad_files_documents_again_and_a_changed_schema(world, tmp_path, capsys):
    files = world["files"]
    feed, out = tmp_path / "feed", tmp_path / "out"
    _drop(feed, files, ["f0.jsonl"])
    assert _stream(world, feed, out, "--set", "input.duplicate_ids=first") == 0
    # a file that cannot be read at all, and f0's documents again under another name
    (feed / "broken.jsonl.gz").write_bytes(gzip.compress(files["f1.jsonl"].encode())[:40])
    (feed / "again.jsonl").write_text(files["f0.jsonl"])
    assert _stream(world, feed, out, "--set", "input.duplicate_ids=first") == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["unreadable_files"] == 1 and summary["skipped_known_ids"] == PER_FILE
    errors = pd.read_parquet(out / "errors")
    broken = errors[errors["error"].str.contains("broken.jsonl.gz", na=False)]
    assert len(broken) == 1 and broken["doc_id"].isna().all() and broken["stage"].eq("input").all()
    documents = pd.read_parquet(out / "documents")
    assert documents["doc_id"].dropna().is_unique and len(documents) == PER_FILE + 1 == summary["input_rows"]
    # error: a known id arriving again stops the stream with one line
    strict = tmp_path / "strict-feed"
    _drop(strict, files, ["f0.jsonl"])
    assert _stream(world, strict, tmp_path / "strict", "--set", "input.duplicate_ids=error") == 0
    (strict / "again.jsonl").write_text(files["f0.jsonl"])
    capsys.readouterr()
    assert _stream(world, strict, tmp_path / "strict", "--set", "input.duplicate_ids=error") == 2
    err = capsys.readouterr().err
    assert "ids already processed by an earlier batch arrived again, e.g. d000" in err and "Traceback" not in err
    # a file without the carried column: the schema changed
    (feed / "other.jsonl").write_text(json.dumps({"id": "z1", "text": "Farmers deserve better."}) + "\n")
    assert _stream(world, feed, out, "--set", "input.duplicate_ids=first") == 2
    err = capsys.readouterr().err
    assert "column 'party' is missing from the new files" in err and "Traceback" not in err


def test_stream_appeals_from_a_notebook(world, spark, sparse_repos, tmp_path):
    from group_appeal_spark import detect_appeals, stream_appeals
    from group_appeal_spark.lib.errors import InputError

    overrides = {f"models.{role}.local_dir": str(sparse_repos[repo]) for role, repo in models.MODEL_ROLES.items()}
    overrides["input.carry_cols"] = ["party"]
    feed = tmp_path / "feed"
    _drop(feed, world["files"], ["f0.jsonl", "f3.jsonl"])
    stream_df = spark.readStream.schema("id STRING, party STRING, text STRING").json(str(feed))
    lazy = detect_appeals(stream_df, overrides)  # no eager action on a streaming DataFrame
    assert lazy.mentions.isStreaming and lazy.documents.isStreaming and lazy.cached is None
    with pytest.raises(InputError, match="duplicate_ids: first needs all the ids at once"):
        detect_appeals(stream_df, {**overrides, "input.duplicate_ids": "first"})
    query = stream_appeals(stream_df, overrides, output=str(tmp_path / "out"), cluster_model=world["model"],
                           checkpoint=str(tmp_path / "ck"))
    query.awaitTermination()
    documents = pd.read_parquet(tmp_path / "out" / "documents")
    expected = pd.read_parquet(world["expected"] / "documents")
    mine = _sorted(documents, ["doc_id"])
    theirs = _sorted(expected[expected["doc_id"].str.match(r"d[03]", na=False)], ["doc_id"])
    pd.testing.assert_frame_equal(mine[theirs.columns], theirs, check_dtype=False)


def test_a_runs_output_is_continued_and_auto_loader_is_refused_off_databricks(world, tmp_path, capsys):
    root, files = world["root"], world["files"]
    base = tmp_path / "base"
    shutil.copytree(root / "base", base)
    feed = tmp_path / "feed"
    _drop(feed, files, ["f1.jsonl"])
    from group_appeal_spark.jobs import stream

    assert stream.main(["--input", str(feed), "--output", str(base), *world["common"]]) == 0  # its own cluster model
    documents = pd.read_parquet(base / "documents")
    assert len(documents) == 2 * PER_FILE + 1 and documents["doc_id"].dropna().is_unique
    summary = json.loads((base / "summary.json").read_text())  # the folder's accounts: the run's and the stream's
    assert summary["input_rows"] == len(documents) and summary["reconciled"] is True
    assert summary["mentions"] == len(pd.read_parquet(base / "mentions"))
    assert _stream(world, feed, tmp_path / "auto", "--input-format", "cloudfiles",
                   "--set", "input.options.cloudFiles.format=json") == 2
    assert "Databricks Auto Loader is not available on this Spark" in capsys.readouterr().err


def test_a_tables_new_rows(world, spark, tmp_path):
    """--input-table: readStream.table over a catalog table, rows appended between triggers."""
    from group_appeal_spark.jobs import stream

    spark.sql(f"CREATE DATABASE IF NOT EXISTS gas_stream LOCATION '{tmp_path / 'warehouse'}'")
    try:
        rows = [json.loads(line) for line in world["files"]["f0.jsonl"].splitlines()]
        schema = "id string, party string, text string"
        spark.createDataFrame(rows[:6], schema).write.saveAsTable("gas_stream.docs")
        argv = ["--input-table", "gas_stream.docs", "--output", str(tmp_path / "out"), "--cluster-model",
                world["model"], *[a for a in world["common"] if a not in ("--input-format", "json")]]
        assert stream.main(argv) == 0
        spark.createDataFrame(rows[6:], schema).write.mode("append").saveAsTable("gas_stream.docs")
        assert stream.main(argv) == 0
    finally:
        spark.sql("DROP DATABASE IF EXISTS gas_stream CASCADE")
    documents = _sorted(pd.read_parquet(tmp_path / "out" / "documents"), ["doc_id"])
    expected = pd.read_parquet(world["expected"] / "documents")
    theirs = _sorted(expected[expected["doc_id"].str.startswith("d0", na=False)], ["doc_id"])
    pd.testing.assert_frame_equal(documents[theirs.columns], theirs, check_dtype=False)
    assert json.loads((tmp_path / "out" / "_stream" / "state.json").read_text())["batches"] == 2
