"""MLflow tracking of the jobs (jobs/tracking.py) against a local file store, read back through
MlflowClient; the registry round trip of the cluster model; a tracking server that is down."""

import json
import logging
import socket
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from group_appeal_spark.jobs import tracking

# --- pure helpers (no mlflow, no Spark) -------------------------------------------------------

def test_config_becomes_flat_params():
    from group_appeal_spark.lib.config import load_config

    config = load_config(overrides={"clustering.k_max": 7, "input.carry_cols": ["party"],
                                    "spark.task.cpus": 2, "input.options": {"header": "true"}})
    params = tracking.flat_params(config.to_dict())
    assert params["clustering.k_max"] == "7" and params["clustering.n_clusters"] == "null"
    assert params["input.carry_cols"] == '["party"]' and params["input.options"] == '{"header": "true"}'
    assert params["models.embedder.repo_id"] == "maxwlnd/cl_mention_embedding"
    assert params["spark.task.cpus"] == "2" and params["tracking.mlflow"] == "false"
    assert all(len(v) <= tracking.MAX_PARAM_CHARS for v in params.values())


def test_summary_becomes_metrics_with_throughput_and_k_steps():
    summary = {"input_rows": 40, "mentions": 90, "unique_mentions": 30, "chosen_k": 3, "smoke_test": True,
               "clustering_skipped": None, "stage_seconds": {"detect": 4.0, "embed": 2.0}}
    k_search = pd.DataFrame({"k": [2, 3, 4], "metric": ["silhouette"] * 3, "score": [0.1, 0.3, float("nan")]})
    got = {(name, step): value for name, value, step in tracking.job_metrics(summary, k_search)}
    assert got == {("input_rows", 0): 40.0, ("mentions", 0): 90.0, ("unique_mentions", 0): 30.0,
                   ("chosen_k", 0): 3.0, ("seconds.detect", 0): 4.0, ("seconds.embed", 0): 2.0,
                   ("documents_per_second", 0): 10.0, ("unique_mentions_per_second", 0): 15.0,
                   ("k_search.silhouette", 2): 0.1, ("k_search.silhouette", 3): 0.3}


def test_without_mlflow_tracking_is_one_warning(monkeypatch, caplog):
    import sys
    from types import SimpleNamespace

    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow raises ImportError
    payload = {"job": "cluster", "params": {}, "metrics": [], "tags": {}, "files": [], "model_dir": None,
               "run_name": "x"}
    with caplog.at_level(logging.WARNING, "group_appeal_spark"):
        assert tracking._guarded(SimpleNamespace(experiment=None, register_model=None), payload, None) is None
    assert [r.getMessage() for r in caplog.records] == [
        ("MLflow tracking: cluster not logged: tracking.mlflow is on but mlflow is not installed "
         "(pip install 'group-appeal-spark[mlflow]')")]


# --- against a local MLflow store -------------------------------------------------------------

@pytest.fixture(scope="module")
def store(tmp_path_factory):
    pytest.importorskip("mlflow")
    mp = pytest.MonkeyPatch()
    uri = (tmp_path_factory.mktemp("mlflow") / "mlruns").as_uri()
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    mp.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps the file store behind this switch
    mp.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    yield uri
    mp.undo()


@pytest.fixture(scope="module")
def tracked_run(store, tmp_path_factory, spark, hub_cache):
    from group_appeal_spark.jobs import run as run_job
    from sentences import sentences

    folder = tmp_path_factory.mktemp("tracked")
    docs = pd.DataFrame({"id": [f"d{i}" for i in range(24)], "text": sentences(24, seed=5), "party": "AB" * 12})
    spark.createDataFrame(docs).write.parquet(str(folder / "docs"))
    out = folder / "out"
    assert run_job.main(["--input", str(folder / "docs"), "--output", str(out), "--carry-cols", "party",
                         "--k-min", "2", "--k-max", "4", "--mlflow", "--set", "tracking.experiment=gas-tests",
                         "--set", "tracking.register_model=gas_clusters", "--master", "local[2]"]) == 0
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    experiment = client.get_experiment_by_name("gas-tests")
    (run,) = client.search_runs([experiment.experiment_id])
    return out, client, run


@pytest.mark.spark
def test_run_logs_params_metrics_tags_and_artifacts(tracked_run):
    out, client, run = tracked_run
    summary = json.loads((out / "summary.json").read_text())
    assert run.info.status == "FINISHED" and run.info.run_name == "run out"
    params = run.data.params
    assert params["clustering.k_max"] == "4" and params["input.carry_cols"] == '["party"]'
    assert params["tracking.register_model"] == "gas_clusters"
    metrics = run.data.metrics
    for key in ("input_rows", "mentions", "unique_mentions", "chosen_k"):
        assert metrics[key] == summary[key]
    assert metrics["seconds.detect"] == summary["stage_seconds"]["detect"] and metrics["documents_per_second"] > 0
    k_search = pd.read_parquet(out / "k_search").sort_values("k")
    history = client.get_metric_history(run.info.run_id, "k_search.silhouette")
    assert sorted((m.step, m.value) for m in history) == list(zip(k_search["k"], k_search["score"]))
    tags = run.data.tags
    assert tags["group_appeal_spark.job"] == "run" and tags["group_appeal_spark.output"] == str(out)
    assert tags["model.embedder.commit"] == summary["models"]["embedder"]["commit"]
    assert tags["group_appeal_spark.smoke_test"] == "false"

    def listed(path=None):
        found = []
        for item in client.list_artifacts(run.info.run_id, path):
            found += listed(item.path) if item.is_dir else [item.path]
        return found

    files = set(listed())
    assert {"summary.json", "report.html", "plots/k_scores.png", "plots/clusters.html", "cluster_model/model.json",
            "cluster_model/keys.json", "cluster_model_pyfunc/MLmodel"} <= files
    assert not [f for f in files if f.endswith((".pkl", ".pickle"))]
    local = Path(client.download_artifacts(run.info.run_id, "cluster_model/model.json"))
    assert local.read_text() == (out / "cluster_model" / "model.json").read_text()


@pytest.mark.spark
def test_artifacts_of_another_filesystem_come_through_spark(tracked_run, tmp_path, spark):
    out, _, _ = tracked_run
    for name in ("plots", "cluster_model", "report.html"):
        got = tracking.fetch_through_spark(spark, (out / name).as_uri(), tmp_path / name)
        want = sorted(p.relative_to(out) for p in [out / name, *(out / name).rglob("*")] if p.is_file())
        assert sorted(p.relative_to(tmp_path) for p in [tmp_path / name, *(tmp_path / name).rglob("*")]
                      if p.is_file()) == want
        for relative in want:
            assert (tmp_path / relative).read_bytes() == (out / relative).read_bytes()
        assert got == str(tmp_path / name)


@pytest.mark.spark
def test_registered_cluster_model_round_trips_into_assign(tracked_run, tmp_path, spark):
    import mlflow
    from group_appeal_spark.jobs import cli
    from group_appeal_spark.lib.clustering.model import load_cluster_model

    from group_appeal_spark.ml.pyfunc import load_logged_cluster_model

    out, client, run = tracked_run
    (version,) = client.search_model_versions("name='gas_clusters'")
    assert version.run_id == run.info.run_id
    saved = load_cluster_model(out / "cluster_model")
    loaded = load_logged_cluster_model("models:/gas_clusters/1")
    assert np.array_equal(loaded.centroids, saved.centroids) and loaded.labels == saved.labels
    assert loaded.mention_keys == saved.mention_keys and loaded.embedder == saved.embedder
    # the pyfunc predicts what assign writes
    embeddings = pd.read_parquet(out / "mention_embeddings").sort_values("mention_key").reset_index(drop=True)
    predicted = mlflow.pyfunc.load_model("models:/gas_clusters/1").predict(embeddings[["mention_key", "embedding"]])
    results = {}
    for name, model in (("folder", str(out / "cluster_model")), ("registry", "models:/gas_clusters/1")):
        assert cli.main(["assign", "--input", str(out), "--cluster-model", model, "--output", str(tmp_path / name),
                         "--mlflow", "--set", f"tracking.experiment=gas-assign-{name}", "--master", "local[2]"]) == 0
        results[name] = pd.read_parquet(tmp_path / name / "clusters").sort_values("mention_key") \
            .reset_index(drop=True)
    pd.testing.assert_frame_equal(results["registry"], results["folder"])
    want = results["folder"]
    assert predicted["cluster_id"].tolist() == want["cluster_id"].tolist()
    assert predicted["label"].tolist() == want["label"].tolist()
    assert np.array_equal(predicted["distance_to_centroid"].to_numpy(), want["distance_to_centroid"].to_numpy())
    (assigned,) = client.search_runs([client.get_experiment_by_name("gas-assign-registry").experiment_id])
    assert assigned.data.tags["group_appeal_spark.job"] == "assign"
    assert assigned.data.params["input.path"] == str(out)
    assert assigned.data.metrics["assigned_unique_mentions"] == len(want)
    assert [a.path for a in client.list_artifacts(assigned.info.run_id)] == ["summary.json"]
    summary = Path(client.download_artifacts(assigned.info.run_id, "summary.json"))
    assert json.loads(summary.read_text())["cluster_model"] == "models:/gas_clusters/1"


@pytest.mark.spark
def test_detect_is_logged_as_detect(tracked_run, tmp_path, spark):
    from group_appeal_spark.jobs import detect as detect_job

    _, client, _ = tracked_run
    docs = tmp_path / "docs"
    spark.createDataFrame(pd.DataFrame({"id": ["a", "b"], "text": ["Farmers deserve better.", "Nurses are heroes."]})) \
        .write.parquet(str(docs))
    assert detect_job.main(["--input", str(docs), "--output", str(tmp_path / "out"), "--mlflow",
                            "--set", "tracking.experiment=gas-detect", "--master", "local[2]"]) == 0
    (run,) = client.search_runs([client.get_experiment_by_name("gas-detect").experiment_id])
    assert run.data.tags["group_appeal_spark.job"] == "detect" and run.data.metrics["input_rows"] == 2
    assert "seconds.detect" in run.data.metrics and not any(m.startswith("k_search") for m in run.data.metrics)
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["summary.json"]


@pytest.mark.spark
def test_a_missing_registered_model_is_one_line(tracked_run, tmp_path, capsys):
    from group_appeal_spark.jobs import cli

    out, _, _ = tracked_run
    code = cli.main(["assign", "--input", str(out), "--cluster-model", "models:/gas_clusters/99",
                     "--output", str(tmp_path / "x"), "--master", "local[2]"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "assign: error: --cluster-model models:/gas_clusters/99:" in err


@pytest.mark.spark
def test_a_job_inside_an_active_run_logs_into_it(tracked_run, tmp_path):
    import mlflow
    from group_appeal_spark.jobs import cli

    out, client, _ = tracked_run
    # not mlflow.set_experiment: that choice would outlive this test, in MLflow's global state
    with mlflow.start_run(experiment_id=client.create_experiment("gas-notebook")) as active:
        mlflow.log_param("clustering.k_max", "12")  # the notebook's own value is kept
        assert cli.main(["cluster", "--input", str(out), "--output", str(tmp_path / "k3"), "--n-clusters", "3",
                         "--mlflow", "--set", "output.plots=false", "--master", "local[2]"]) == 0
    run = client.get_run(active.info.run_id)
    assert run.data.params["clustering.k_max"] == "12" and run.data.params["clustering.n_clusters"] == "3"
    assert run.data.metrics["chosen_k"] == 3 and run.data.tags["group_appeal_spark.job"] == "cluster"
    assert {a.path for a in client.list_artifacts(run.info.run_id, "cluster")} >= {
        "cluster/summary.json", "cluster/report.html", "cluster/cluster_model"}
    assert len(client.search_runs([run.info.experiment_id])) == 1, "no second run was made"


@pytest.mark.spark
def test_a_tracking_server_that_is_down_is_one_warning_and_the_job_goes_on(tracked_run, tmp_path, monkeypatch,
                                                                          caplog):
    from group_appeal_spark.jobs import cli

    out, _, _ = tracked_run
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    for key in tracking.HTTP_ENV:
        monkeypatch.delenv(key, raising=False)
    calls = []
    real = tracking._guarded
    monkeypatch.setattr(tracking, "_guarded", lambda *a: calls.append(time.perf_counter()) or real(*a))
    with caplog.at_level(logging.WARNING, "group_appeal_spark"):
        start = time.perf_counter()
        assert cli.main(["cluster", "--input", str(out), "--output", str(tmp_path / "k2"), "--n-clusters", "2",
                         "--mlflow", "--set", "output.plots=false", "--master", "local[2]"]) == 0
        finished = time.perf_counter()
    assert (tmp_path / "k2" / "summary.json").is_file() and (tmp_path / "k2" / "_SUCCESS.json").is_file()
    warnings = [r.getMessage() for r in caplog.records
                if r.name == "group_appeal_spark" and "MLflow" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("MLflow tracking: cluster not logged to http://127.0.0.1")
    assert len(calls) == 1 and finished - calls[0] < 30, f"tracking cost {finished - calls[0]:.1f} s"
    assert finished - start < 120


def test_a_server_that_never_answers_costs_the_deadline_only(store, monkeypatch, caplog):
    """A port that takes connections and never replies: the logging gives up at DEADLINE_S."""
    retries, timeout = (int(tracking.HTTP_ENV[k]) for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES",
                                                             "MLFLOW_HTTP_REQUEST_TIMEOUT"))
    assert tracking.DEADLINE_S < 30 and (retries + 1) * timeout < 30
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)  # the kernel accepts; nothing ever answers
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{server.getsockname()[1]}")
        monkeypatch.setattr(tracking, "DEADLINE_S", 3.0)  # the mechanism, without waiting 25 s
        with caplog.at_level(logging.WARNING, "group_appeal_spark"):
            start = time.perf_counter()
            assert tracking.track_training(REPORT, "/nonexistent", experiment="never") is None
            took = time.perf_counter() - start
    assert 2.5 < took < 6, took
    ours = [r.getMessage() for r in caplog.records if r.name == "group_appeal_spark"]
    assert len(ours) == 1 and ours[0].startswith("MLflow tracking: train-embedder not logged: no answer from "
                                                 "http://127.0.0.1"), ours


REPORT = {"base_model": "bert-base-uncased", "revision": None, "config": {"epochs": 2, "margin": 0.5},
          "history": [{"epoch": 1, "train_loss": 0.9, "validation_nmi": None},
                      {"epoch": 2, "train_loss": 0.5, "validation_nmi": 0.4}],
          "before": {"triplet_accuracy": 0.5, "nmi": 0.1}, "after": {"triplet_accuracy": 0.8, "nmi": 0.3},
          "best_epoch": 2, "epochs_run": 2, "seconds": 3.5}


def test_train_embedder_report_is_logged(store, tmp_path):
    from mlflow.tracking import MlflowClient

    (tmp_path / "training_report.json").write_text('{"epochs_run": 2}')
    run_id = tracking.track_training(REPORT, str(tmp_path), experiment="gas-training")
    client = MlflowClient()
    run = client.get_run(run_id)
    assert run.data.params == {"train.epochs": "2", "train.margin": "0.5"}
    assert run.data.metrics["after.triplet_accuracy"] == 0.8 and run.data.metrics["epochs_run"] == 2
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "train_loss")] == [(1, 0.9), (2, 0.5)]
    assert run.data.tags["model.base.base_model"] == "bert-base-uncased"
    assert [a.path for a in client.list_artifacts(run_id)] == ["training_report.json"]


def test_train_embedder_mlflow_flags_reach_the_tracking(store, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from group_appeal_spark.jobs.train_embedder import main
    from group_appeal_spark.lib import training
    from mlflow.tracking import MlflowClient

    # the training itself is tested in tests/lib/training: here only what the flags do with its report
    monkeypatch.setattr(training, "train_embedder", lambda *args, **kwargs: SimpleNamespace(report_=REPORT))
    assert main(["--dictionary", "d.csv", "--output", str(tmp_path), "--mlflow",
                 "--mlflow-experiment", "gas-training-cli", "--quiet"]) == 0
    client = MlflowClient()
    (run,) = client.search_runs([client.get_experiment_by_name("gas-training-cli").experiment_id])
    assert run.data.tags["group_appeal_spark.job"] == "train-embedder" and run.data.metrics["best_epoch"] == 2
