"""End to end on local[2] with the tiny offline models: the jobs, the UDFs and the outputs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from group_appeal_spark.jobs import cluster as cluster_job
from group_appeal_spark.jobs import run as run_job
from group_appeal_spark.lib.config import load_config
from group_appeal_spark.lib.models.bundle import ModelBundle
from group_appeal_spark.udfs.hooks import UdfHooks
from sentences import sentences
from paths import ROOT

pytestmark = pytest.mark.spark

LONG = "We support farmers and young people, and the Government has failed pensioners. " * 50


def _documents():
    texts = sentences(60, seed=11)
    rows = [{"id": f"d{i:03d}", "party": ["Lab", "Con", "LD"][i % 3], "text": t} for i, t in enumerate(texts)]
    rows[3]["text"] = " ".join(texts[:8])            # several sentences
    rows[5]["text"] = LONG                            # longer than the detector's window
    rows += [{"id": "bad-null", "party": "Lab", "text": None},
             {"id": "bad-empty", "party": "Con", "text": ""},
             {"id": "bad-blank", "party": "LD", "text": "  \n\t "}]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, spark, hub_cache):
    folder = tmp_path_factory.mktemp("corpus")
    docs = _documents()
    spark.createDataFrame(docs).repartition(3).write.parquet(str(folder / "docs"))
    return folder / "docs", docs


def _log_loads(folder: Path):
    """An ``on_load`` hook appending "<pid> <key>" to ``<folder>/loads-<pid>.txt``."""
    folder = str(folder)

    # Nested, so cloudpickle ships it to the executors by value: they cannot import test modules.
    def on_load(key: str) -> None:
        with open(os.path.join(folder, f"loads-{os.getpid()}.txt"), "a", encoding="utf-8") as fh:
            fh.write(f"{os.getpid()} {key}\n")

    return on_load


@pytest.fixture(scope="module")
def run_output(tmp_path_factory, corpus, load_log_dir):
    out = tmp_path_factory.mktemp("run") / "out"
    # torch_threads=1 is what local[2]'s one-core tasks use anyway; set explicitly, it gives this
    # run's models cache keys of their own, so the run loads them (and logs the loads) even when
    # earlier tests left the default models in the reused Python workers.
    code = run_job.main(["--input", str(corpus[0]), "--output", str(out), "--carry-cols", "party",
                         "--k-min", "2", "--k-max", "5", "--master", "local[2]",
                         "--set", "inference.torch_threads=1"],
                        hooks=UdfHooks(on_load=_log_loads(load_log_dir)))
    assert code == 0
    return out


def _table(out, name):
    return pd.read_parquet(out / name)


def test_run_writes_every_documented_output(run_output):
    for name in ("mentions", "errors", "documents", "segments", "mention_embeddings", "clusters", "k_search",
                 "cluster_summary"):
        assert (run_output / name).is_dir(), name
    # cluster_model/ (for `assign`) was added in 0.1.x: a deliberate contract addition
    assert (run_output / "cluster_model" / "model.json").is_file() and (run_output / "cluster_model" / "keys.json").is_file()
    assert list(_table(run_output, "mentions").columns) == [
        "doc_id", "party", "seg_idx", "span", "start", "end", "stance", "prob_positive", "prob_negative",
        "prob_neutral", "mention_key", "score", "seg_start", "seg_end"]
    assert list(_table(run_output, "errors").columns) == ["doc_id", "party", "stage", "error"]
    assert list(_table(run_output, "documents").columns) == [
        "doc_id", "party", "n_segments", "n_mentions", "n_positive", "n_negative", "n_neutral", "error",
        "n_segments_with_mentions"]  # added in 0.1.x, at the end: a deliberate contract change
    assert list(_table(run_output, "segments").columns) == [
        "doc_id", "party", "seg_idx", "seg_start", "seg_end", "n_tokens", "n_mentions", "n_positive", "n_negative",
        "n_neutral"]
    assert list(_table(run_output, "mention_embeddings").columns) == ["mention_key", "mention", "count", "embedding"]
    assert list(_table(run_output, "clusters").columns) == [
        "mention_key", "mention", "count", "cluster_id", "distance_to_centroid", "category"]
    assert list(_table(run_output, "k_search").columns) == ["k", "metric", "score", "estimated", "n_points", "chosen"]
    assert (run_output / "plots" / "k_scores.png").stat().st_size > 0
    assert (run_output / "plots" / "clusters.html").stat().st_size > 0
    summary = json.loads((run_output / "summary.json").read_text())
    assert summary["chosen_k"] in range(2, 6)
    assert set(summary["stage_seconds"]) >= {"detect", "embed", "cluster"}


def test_every_document_accounted_for(run_output, corpus):
    docs = corpus[1]
    summary = json.loads((run_output / "summary.json").read_text())
    errors = _table(run_output, "errors")
    assert summary["input_rows"] == len(docs)
    assert summary["documents_ok"] + summary["documents_with_errors"] == len(docs)
    assert sorted(errors["doc_id"]) == ["bad-blank", "bad-empty", "bad-null"]
    assert set(errors["stage"]) == {"input"}
    assert dict(zip(errors["doc_id"], errors["party"])) == {"bad-null": "Lab", "bad-empty": "Con", "bad-blank": "LD"}
    mentions = _table(run_output, "mentions")
    assert summary["mentions"] == len(mentions)
    embeddings = _table(run_output, "mention_embeddings")
    assert embeddings["count"].sum() == len(mentions)
    assert set(embeddings["mention_key"]) == set(mentions["mention_key"])


def test_job_mentions_equal_core_library(run_output, corpus):
    docs = corpus[1]
    bundle = ModelBundle.resolve(load_config())
    finder = bundle.appeal_finder()
    results = finder.process(docs["text"].tolist())
    expected = sorted(
        (doc_id, a.seg_idx, a.span, a.start, a.end, a.stance, a.mention_key)
        for doc_id, r in zip(docs["id"], results) for a in r.appeals)
    mentions = _table(run_output, "mentions")
    got = sorted(mentions[["doc_id", "seg_idx", "span", "start", "end", "stance", "mention_key"]]
                 .itertuples(index=False, name=None))
    assert got == expected
    long_doc = mentions[mentions["doc_id"] == "d005"]
    assert long_doc["end"].max() > 2000, "offsets of a windowed long text index into the whole document"
    for row in long_doc.itertuples():
        assert LONG[row.start:row.end].strip() == row.span.strip()


def test_cluster_rerun_gives_the_same_clusters(run_output, tmp_path):
    out = tmp_path / "recluster"
    assert cluster_job.main(["--input", str(run_output), "--output", str(out), "--k-min", "2", "--k-max", "5",
                             "--master", "local[2]"]) == 0
    a = _table(run_output, "clusters").sort_values("mention_key").reset_index(drop=True)
    b = _table(out, "clusters").sort_values("mention_key").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(_table(run_output, "k_search").sort_values("k").reset_index(drop=True),
                                  _table(out, "k_search").sort_values("k").reset_index(drop=True))


def test_each_worker_loads_each_model_once(run_output, load_log_dir):
    lines = [line.split() for f in load_log_dir.glob("loads-*.txt") for line in f.read_text().splitlines()]
    assert lines, "the UDFs loaded models on the workers"
    pairs = [(pid, key) for pid, key in lines]
    assert len(pairs) == len(set(pairs)), f"a worker loaded the same model twice: {pairs}"
    assert all(int(pid) != os.getpid() for pid, _ in pairs), "models are loaded on executors, not the driver"


def test_shipping_with_spark_files_gives_the_same_result(spark, corpus, run_output):
    from group_appeal_spark.jobs.transforms import detect_appeals

    docs = spark.read.parquet(str(corpus[0])).where("id < 'd010'")
    config = load_config(overrides={"models.ship": "files", "input.carry_cols": ["party"]})
    shipped = detect_appeals(docs, config).mentions.toPandas()
    expected = _table(run_output, "mentions")
    expected = expected[expected["doc_id"] < "d010"]
    key = ["doc_id", "seg_idx", "start", "end", "span", "stance", "mention_key"]
    assert sorted(shipped[key].itertuples(index=False)) == sorted(expected[key].itertuples(index=False))


def test_generated_ids_do_not_depend_on_partitioning(spark):
    from group_appeal_spark.jobs.transforms import prepare_documents

    config = load_config(overrides={"input.id_col": "no_such_column"})
    df = spark.createDataFrame(pd.DataFrame({"text": ["a", "b", "a", "c", None, "a"], "n": [1, 2, 3, 4, 5, 6]}))
    one = prepare_documents(df.repartition(1), config).select("doc_id", "__text").toPandas()
    three = prepare_documents(df.repartition(3, "n"), config).select("doc_id", "__text").toPandas()
    assert sorted(one.itertuples(index=False)) == sorted(three.itertuples(index=False))
    assert one["doc_id"].is_unique


@pytest.mark.parametrize("args, message", [
    (["--text-col", "body"], "column(s) 'body' not found"),
    (["--set", "models.detector.repo_id=nobody/missing-model"], "cannot find 'nobody/missing-model'"),
    (["--set", "clustering.k_mx=3"], "clustering.k_mx: unknown key"),
    (["--metric", "nmi"], "needs a dictionary"),
])
def test_early_failures_write_nothing(corpus, tmp_path, capsys, args, message):
    out = tmp_path / "out"
    code = run_job.main(["--input", str(corpus[0]), "--output", str(out), "--master", "local[2]", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert message in err[-1] and err[-1].startswith("run: error:")
    assert not (out / "mentions").exists()


def test_existing_output_is_refused(run_output, corpus, capsys):
    code = run_job.main(["--input", str(corpus[0]), "--output", str(run_output), "--master", "local[2]"])
    assert code == 2 and "already exists" in capsys.readouterr().err


def test_spark_submit_from_checkout_with_tiny_models(tmp_path):
    """The README's smoke command, through spark-submit on the job file of the checkout."""
    spark_submit = Path(sys.executable).parent / "spark-submit"
    if not spark_submit.exists():
        pytest.skip("spark-submit is not installed beside this interpreter")
    out = tmp_path / "out"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    proc = subprocess.run(
        [str(spark_submit), "--master", "local[2]", str(ROOT / "jobs" / "run.py"),
         "--input", str(ROOT / "examples" / "sample_corpus.jsonl"), "--input-format", "json",
         "--carry-cols", "party,speaker,date", "--output", str(out), "--tiny-models", "--k-max", "4"],
        capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # spark-submit relays the Python driver's stderr on its own stdout
    assert "OFFLINE SMOKE TEST" in proc.stdout + proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["input_rows"] == 40 and summary["documents_ok"] == 40
    assert set(pd.read_parquet(out / "mentions").columns) >= {"party", "speaker", "date"}


def test_fetch_models_snapshot_serves_models_dir(spark, corpus, run_output, tmp_path):
    from group_appeal_spark.jobs import fetch_models
    from group_appeal_spark.jobs.transforms import detect_appeals

    snapshot = tmp_path / "models"
    assert fetch_models.main(["--output", str(snapshot)]) == 0
    manifest = json.loads((snapshot / "manifest.json").read_text())
    assert set(manifest) == {"detector", "detector_tokenizer", "stance", "embedder", "embedder_config"}
    assert (snapshot / "maxwlnd--socialgroup_stance_classification_nli" / "spm.model").is_file()
    assert not list(snapshot.rglob("*.bin"))
    assert fetch_models.main(["--out", str(snapshot)]) == 2, "a non-empty snapshot is not overwritten silently"

    config = load_config(overrides={"models.models_dir": str(snapshot), "input.carry_cols": ["party"]})
    bundle = ModelBundle.resolve(config)
    assert all(str(snapshot) in folder for folder in bundle.folders.values())
    docs = spark.read.parquet(str(corpus[0])).where("id < 'd006'")
    got = detect_appeals(docs, config, bundle=bundle).mentions.toPandas()
    expected = _table(run_output, "mentions")
    expected = expected[expected["doc_id"] < "d006"]
    key = ["doc_id", "start", "end", "span", "stance"]
    assert sorted(got[key].itertuples(index=False)) == sorted(expected[key].itertuples(index=False))


@pytest.mark.parametrize("metric", ["silhouette", "nmi"])
def test_spark_ml_backend_clusters_every_mention(spark, run_output, tmp_path, metric):
    from group_appeal_spark.jobs.transforms import cluster_mentions
    from group_appeal_spark.jobs.transforms.spark_kmeans import SPARK_SILHOUETTE

    dictionary = tmp_path / "dict.csv"
    dictionary.write_text("farming,age,health\nfarm*,young people,nurs*\nfarmers,pensioners,doctors\n")
    overrides = {"clustering.backend": "spark", "clustering.k_min": 2, "clustering.k_max": 4,
                 "clustering.metric": metric, "clustering.dictionary": str(dictionary)}
    embeddings = spark.read.parquet(str(run_output / "mention_embeddings"))
    result = cluster_mentions(embeddings, load_config(overrides=overrides))
    clusters = result.clusters.toPandas()
    scores = result.k_search.toPandas().sort_values("k")
    emb = embeddings.toPandas().set_index("mention_key")
    assert sorted(clusters["mention_key"]) == sorted(emb.index)
    assert scores["k"].tolist() == [2, 3, 4] and scores["chosen"].sum() == 1
    assert set(scores["metric"]) == {SPARK_SILHOUETTE if metric == "silhouette" else "nmi"}
    assert result.best_k == int(scores.loc[scores["score"].idxmax(), "k"])
    assert clusters["cluster_id"].between(0, result.best_k - 1).all()
    # distances are to the cluster's own weighted centroid
    X = np.stack(emb.loc[clusters["mention_key"], "embedding"].map(np.asarray).to_list())
    w = clusters["count"].to_numpy()[:, None]
    for cid, group in clusters.groupby("cluster_id"):
        idx = group.index.to_numpy()
        center = (X[idx] * w[idx]).sum(axis=0) / w[idx].sum()
        assert np.allclose(np.linalg.norm(X[idx] - center, axis=1), group["distance_to_centroid"], atol=1e-4)


def test_run_with_shipped_files_and_chunks(corpus, run_output, tmp_path):
    """Shipping with addFile serves every chunk and the embedding stage (one addFile per app)."""
    out = tmp_path / "out"
    assert run_job.main(["--input", str(corpus[0]), "--output", str(out), "--carry-cols", "party",
                         "--k-min", "2", "--k-max", "5", "--chunks", "2", "--set", "models.ship=files",
                         "--master", "local[2]"]) == 0
    for table in ("mentions", "errors", "mention_embeddings", "clusters"):
        a = _table(out, table).drop(columns=["embedding"], errors="ignore")
        b = _table(run_output, table).drop(columns=["embedding"], errors="ignore")
        key = list(a.columns)
        pd.testing.assert_frame_equal(a.sort_values(key).reset_index(drop=True),
                                      b.sort_values(key).reset_index(drop=True), obj=table)


def test_the_offline_notebook_snippet_of_the_docs_runs_as_written(spark):
    """docs/deploying.md's offline notebook block, executed with the notebook's ``spark``."""
    import re

    text = (ROOT / "docs" / "deploying.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "tiny_model_overrides" in b]
    assert len(blocks) == 1
    scope = {"spark": spark}
    exec(compile(blocks[0], "docs/deploying.md", "exec"), scope)  # noqa: S102 - the project's own docs
    assert scope["appeals"].documents.count() == 2 and scope["appeals"].mentions.count() >= 1
    # one clusters row per distinct mention key
    assert scope["result"].clusters.count() == scope["appeals"].mentions.select("mention_key").distinct().count()
