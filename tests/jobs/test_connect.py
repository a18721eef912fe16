"""Spark Connect: the notebook API and the run job on a real local Connect server, against classic.

pyspark refuses a Connect session in a process that runs a classic one (SESSION_ALREADY_EXIST),
and ``is_remote()``, which every ``pyspark.sql.functions`` call consults, is process-wide; so
the Connect half runs in a child process: this file run as a script (see ``_connect_side``).
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from paths import TESTS

pytestmark = pytest.mark.spark

MENTION_KEYS = ["doc_id", "seg_idx", "start"]
PROBS = ["prob_positive", "prob_negative", "prob_neutral"]


def _documents() -> pd.DataFrame:
    from sentences import sentences

    texts = sentences(24, seed=5)
    texts[2] = " ".join(texts[:5])  # several sentences in one document
    return pd.DataFrame({"id": [f"c{i:02d}" for i in range(len(texts))], "text": texts})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, spark):
    folder = tmp_path_factory.mktemp("connect-corpus")
    spark.createDataFrame(_documents()).repartition(2).write.parquet(str(folder / "docs"))
    return folder / "docs"


@pytest.fixture(scope="module")
def sides(tmp_path_factory, connect_server, corpus, spark, hub_cache):
    """The same work on both sessions: (Connect child's folder, its log, the classic run's output).

    The child runs while this process makes the classic run. The classic side of the API tests
    is that run's tables: they are detect_appeals' and embed_mentions' results on the same
    documents (ids from the ``id`` column, no carried columns).
    """
    from group_appeal_spark.jobs import run as run_job

    url, server, server_log = connect_server
    work = tmp_path_factory.mktemp("connect-side")
    env = {k: v for k, v in os.environ.items() if k not in ("SPARK_REMOTE", "PYSPARK_GATEWAY_PORT")}
    # the child is this file run as a script: it needs tests/ on its path for the shared helpers
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    child = subprocess.Popen([sys.executable, __file__, url, str(work), str(corpus)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=Path(__file__).parent)
    try:
        classic = tmp_path_factory.mktemp("classic-run") / "out"
        assert run_job.main(_run_args(corpus, classic) + ["--master", "local[2]"]) == 0
        _, stderr = child.communicate(timeout=300)
    finally:
        if child.poll() is None:
            child.kill()
    if child.returncode != 0:
        server_state = "running" if server.poll() is None else f"exited with {server.returncode}"
        pytest.fail(f"the Connect side failed:\n{stderr[-5000:]}\n--- server ({server_state}) log:\n"
                    f"{server_log.read_text(errors='replace')[-3000:]}")
    return work, stderr, classic


def _run_args(corpus, out) -> list[str]:
    return ["--input", str(corpus), "--output", str(out), "--k-min", "2", "--k-max", "4"]


def _sorted(df: pd.DataFrame, keys) -> pd.DataFrame:
    return df.sort_values(keys, kind="stable").reset_index(drop=True)


def _assert_mentions_equal(connect: pd.DataFrame, classic: pd.DataFrame) -> None:
    assert len(classic) > 0
    connect, classic = _sorted(connect, MENTION_KEYS), _sorted(classic, MENTION_KEYS)
    same = [c for c in classic.columns if c not in PROBS]
    pd.testing.assert_frame_equal(connect[same], classic[same], check_dtype=False)
    np.testing.assert_allclose(connect[PROBS].to_numpy(), classic[PROBS].to_numpy(), atol=1e-6, rtol=0)


def test_detect_appeals_on_connect_matches_classic(sides):
    work, _, classic = sides
    _assert_mentions_equal(pd.read_parquet(work / "api_mentions.parquet"), pd.read_parquet(classic / "mentions"))


def test_embed_mentions_on_connect_matches_classic(sides):
    work, _, classic = sides
    classic = _sorted(pd.read_parquet(classic / "mention_embeddings"), ["mention_key"])
    connect = _sorted(pd.read_parquet(work / "api_embeddings.parquet"), ["mention_key"])
    assert len(classic) > 0
    assert connect[["mention_key", "mention", "count"]].equals(classic[["mention_key", "mention", "count"]])
    np.testing.assert_allclose(np.stack(connect["embedding"]), np.stack(classic["embedding"]), atol=1e-6, rtol=0)


def test_models_shipped_as_artifacts_reach_the_executors(sides):
    """models.ship=files on Connect: addArtifacts(file=True), found by SparkFiles.get, laid out by role."""
    work = sides[0]
    seen = json.loads((work / "shipped.json").read_text())
    assert seen["expected"] and sorted(seen["listed"]) == sorted(seen["expected"])
    assert seen["root"].startswith(seen["files_root"])  # the session's artifact folder, not the driver's


def test_run_job_through_connect_matches_classic(sides):
    work, log, classic_run = sides
    assert "not applied: the Spark Connect server was started without it" in log  # static settings
    out = work / "run-out"
    for name in ("mentions", "errors", "mention_embeddings", "clusters", "k_search", "summary.json"):
        assert (out / name).exists(), name
    assert not (out / "_work").exists()
    _assert_mentions_equal(pd.read_parquet(out / "mentions"), pd.read_parquet(classic_run / "mentions"))
    keys = ["mention_key"]
    connect, classic = _sorted(pd.read_parquet(out / "clusters"), keys), _sorted(pd.read_parquet(classic_run / "clusters"), keys)
    # The two sessions batch differently (Arrow batch 16 here, 256 on the server), and a batch of
    # a few rows takes another matrix kernel: embeddings 1 ulp apart. k-means then finds the same
    # clusters but may number them differently, so ids are compared up to a renumbering.
    exact = [c for c in classic.columns if c not in ("distance_to_centroid", "cluster_id")]
    pd.testing.assert_frame_equal(connect[exact], classic[exact], check_dtype=False)
    pairs = set(zip(connect["cluster_id"], classic["cluster_id"]))
    assert len(pairs) == connect["cluster_id"].nunique() == classic["cluster_id"].nunique(), "the same clusters"
    np.testing.assert_allclose(connect["distance_to_centroid"], classic["distance_to_centroid"], atol=1e-5)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mentions"] == len(pd.read_parquet(classic_run / "mentions"))


def test_stream_job_through_connect_matches_the_run(sides):
    work, _, classic_run = sides
    out = work / "stream-out"
    _assert_mentions_equal(pd.read_parquet(out / "mentions"), pd.read_parquet(classic_run / "mentions"))
    # every key into the run's own clusters: the ids the run gave them
    mine = _sorted(pd.read_parquet(out / "clusters"), ["mention_key"])
    run = _sorted(pd.read_parquet(work / "run-out" / "clusters"), ["mention_key"])
    assert list(mine["mention_key"]) == list(run["mention_key"]) and list(mine["cluster_id"]) == list(run["cluster_id"])
    state = json.loads((out / "summary.json").read_text())
    assert state["job"] == "stream" and state["input_rows"] == len(_documents()) and state["reconciled"] is True


def test_storage_through_spark_alone(sides):
    """The Connect route for paths only Spark reaches (forced here on local paths)."""
    work = sides[0]
    found = json.loads((work / "storage.json").read_text())
    assert found == {
        "exists_missing": False, "exists_table": True, "exists_empty_dir": True,
        "free_missing": "ok", "free_empty_dir": "ok", "free_table": "already exists",
        "text_round_trip": True, "probe_hidden_left": True, "put_file": "ConnectUnsupported",
    }


def test_output_checks_fail_early_on_connect(sides):
    work = sides[0]
    errors = json.loads((work / "errors.json").read_text())
    assert "does not exist" in errors["missing_input"]
    assert "already exists" in errors["used_output"]
    assert "expected a Spark Connect URL" in errors["bad_url"]


def test_catalog_tables_on_connect(sides):
    found = json.loads((sides[0] / "tables.json").read_text())
    assert found["input_rows"] == len(_documents())
    assert found["missing"].startswith("input: table gas_connect.nothing does not exist")
    assert sorted(found["published"]) == ["aggregates", "cluster_summary", "clusters", "k_search"]
    assert all(table == folder for table, folder in found["published"].values()), found["published"]
    assert found["published"]["clusters"][0] > 0 and found["published"]["k_search"] == [0, 0]  # a fixed k: no search


# ----------------------------------------------------------------------------------------------
# The child process: everything on the Connect session.

def _connect_side(url: str, work: Path, corpus: str) -> None:
    import contextlib
    import io

    from group_appeal_spark import detect_appeals, embed_mentions
    from group_appeal_spark.jobs import run as run_job
    from group_appeal_spark.jobs.executors import ship_models
    from group_appeal_spark.jobs.storage import connect_files, readers, run_state
    from group_appeal_spark.jobs.storage.filesystem import ConnectUnsupported, filesystem
    from group_appeal_spark.lib.config import load_config
    from group_appeal_spark.lib.models.bundle import ModelBundle
    from group_appeal_spark.udfs.shipping import shipped_root
    from pyspark.sql import SparkSession
    from pyspark.sql.functions import pandas_udf

    host, port = url[len("sc://"):].split(":")
    deadline = time.monotonic() + 150
    while True:  # the server starts in parallel with the parent's classic run
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no Spark Connect server at {url} after 150 s") from None
            time.sleep(0.5)

    # (b) the job, with the session built from --remote
    assert run_job.main(_run_args(corpus, work / "run-out") + ["--remote", url]) == 0
    spark = SparkSession.getActiveSession()
    assert type(spark).__module__.startswith("pyspark.sql.connect"), type(spark)
    # (b') the stream job: foreachBatch runs in the server's Python process, with the config, the
    # models and the cluster model pickled to it
    from group_appeal_spark.jobs import stream as stream_job

    assert stream_job.main(["--input", corpus, "--input-format", "parquet", "--output", str(work / "stream-out"),
                            "--cluster-model", str(work / "run-out" / "cluster_model"), "--remote", url]) == 0

    errors = {}
    for name, argv in (("missing_input", ["--input", str(work / "nothing"), "--output", str(work / "o1")]),
                       ("used_output", ["--input", corpus, "--output", str(work / "run-out")]),
                       ("bad_url", ["--input", corpus, "--output", str(work / "o2"), "--remote", "localhost:1"])):
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            try:
                run_job.main(argv)
            except SystemExit:
                pass
        errors[name] = stderr.getvalue()
    (work / "errors.json").write_text(json.dumps(errors))

    # (c) catalog tables: documents from a table, and a job's tables published under a prefix
    from group_appeal_spark.jobs import catalog
    from group_appeal_spark.jobs import cluster as cluster_job
    from group_appeal_spark.lib.config import InputConfig
    from group_appeal_spark.lib.errors import InputError

    spark.sql(f"CREATE DATABASE IF NOT EXISTS gas_connect LOCATION '{work / 'warehouse'}'")
    spark.read.parquet(corpus).write.saveAsTable("gas_connect.docs")
    found_tables = {"input_rows": readers.read_documents(spark, InputConfig(table="gas_connect.docs")).count()}
    try:
        catalog.check_input_table(spark, InputConfig(table="gas_connect.nothing"))
    except InputError as exc:
        found_tables["missing"] = str(exc)
    clustered = work / "cluster-out"
    assert cluster_job.main(["--input", str(work / "run-out"), "--output", str(clustered), "--n-clusters", "2",
                             "--set", "output.plots=false", "--output-table-prefix", "gas_connect.c_"]) == 0
    published = json.loads((clustered / "summary.json").read_text())["catalog_tables"]
    found_tables["published"] = {name: [spark.table(table).count(), spark.read.parquet(str(clustered / name)).count()]
                           for name, table in published.items()}
    spark.sql("DROP DATABASE gas_connect CASCADE")
    (work / "tables.json").write_text(json.dumps(found_tables))

    # (a) the notebook API, models shipped as artifacts
    config = load_config(overrides={"models.ship": "files"})
    docs = spark.createDataFrame(_documents())
    mentions = detect_appeals(docs, config).mentions
    for name, table in (("api_mentions", mentions), ("api_embeddings", embed_mentions(mentions, config))):
        pdf = table.toPandas()
        pdf.attrs = {}  # Connect puts its plan metrics there, which parquet cannot keep
        pdf.to_parquet(work / f"{name}.parquet")

    bundle = ship_models(spark, ModelBundle.resolve(config), "files")

    @pandas_udf("string")
    def listing(ids: pd.Series) -> pd.Series:
        from pyspark import SparkFiles

        root = Path(shipped_root(bundle))
        files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != "_COMPLETE")
        seen = {"root": str(root), "files_root": SparkFiles.getRootDirectory(), "listed": files}
        return ids.map(lambda _: json.dumps(seen))

    seen = json.loads(spark.range(1).select(listing("id")).first()[0])
    seen["expected"] = [f"{role}/{rel}" for role, rel, _ in bundle.shipped_files]
    (work / "shipped.json").write_text(json.dumps(seen))

    # storage on the Spark-only route, forced onto local paths
    connect_files.client_path = lambda spark, path: None
    fs = filesystem(spark)
    table, empty = str(work / "run-out" / "mentions"), work / "empty"
    empty.mkdir()

    def free(path):
        try:
            run_state.check_output_free(spark, path, "error")
            return "ok"
        except Exception as exc:
            return "already exists" if "already exists" in str(exc) else str(exc)

    found = {"exists_missing": fs.exists(str(work / "missing")),
             "exists_table": fs.exists(table),
             "exists_empty_dir": fs.exists(str(empty)),
             "free_missing": free(str(work / "fresh")), "free_empty_dir": free(str(empty)), "free_table": free(table)}
    text = json.dumps({"a": 1, "b": "ü\nx"}, indent=2)
    fs.write_text(text, str(work / "fresh" / "note.json"))
    found["text_round_trip"] = json.loads(fs.read_text(str(work / "fresh" / "note.json"))) == json.loads(text)
    fs.delete(str(work / "fresh"))
    found["probe_hidden_left"] = (work / "fresh" / "_write_probe").is_dir()
    try:
        fs.put_file(work / "errors.json", str(work / "fresh" / "copy.json"))
        found["put_file"] = "copied"
    except ConnectUnsupported:
        found["put_file"] = "ConnectUnsupported"
    (work / "storage.json").write_text(json.dumps(found))


if __name__ == "__main__":
    _connect_side(sys.argv[1], Path(sys.argv[2]), sys.argv[3])
