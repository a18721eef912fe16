"""MLflow tracking of a finished job (``tracking.mlflow: true`` or ``--mlflow``; the ``mlflow`` extra).

``run``, ``detect``, ``cluster`` and ``assign`` call :func:`track_job` once their summary is
written, ``train-embedder`` calls :func:`track_training`. Each logs to the active MLflow run of
the calling thread, else to a new run in ``tracking.experiment`` (null: MLflow's own choice,
``MLFLOW_EXPERIMENT_NAME`` or the notebook's experiment on Databricks, else ``Default``) of the
tracking server ``MLFLOW_TRACKING_URI`` names (the workspace's on Databricks):

- params: the effective config, flattened (``clustering.k_max``; Spark settings by their own keys);
- metrics: the summary's counts (``input_rows``, ``mentions``, ``chosen_k`` ...), ``seconds.<stage>``,
  throughput (``documents_per_second``, ``unique_mentions_per_second``), and each k of the
  k search as ``k_search.<metric>`` at step k;
- tags: ``group_appeal_spark.job``, ``.output``, ``.version``, ``.smoke_test``, and per model role
  ``model.<role>.repo_id`` / ``.commit`` / ``.content_sha256``;
- artifacts: the summary JSON, ``report.html``, ``plots/`` and ``cluster_model/``, and
  ``cluster_model/`` again as an MLflow pyfunc model (``group_appeal_spark.ml.pyfunc``),
  registered as ``tracking.register_model`` where that is set.

The output folder stays the source of truth: a tracking failure (no mlflow, server down, no
permission) is one warning and the job goes on. MLflow's HTTP retries are cut
(:data:`HTTP_ENV`, where the environment does not set them) and the job stops waiting for the
logging thread after :data:`DEADLINE_S` seconds (the thread, a daemon, is left to end on its own).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import threading
from pathlib import Path

from group_appeal_spark.jobs.storage.files import first_line

log = logging.getLogger("group_appeal_spark")

# one retry, 1 s back-off and a 8 s timeout per request: a server that is down or hangs costs
# at most ~17 s per call; DEADLINE_S bounds all the calls together
HTTP_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "8"}
DEADLINE_S = 25.0
MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value
MAX_BATCH = 100  # params per log_batch call (MLflow's limit)
ARTIFACTS = ("report.html", "plots", "cluster_model")
CLUSTERING_JOBS = ("run", "cluster")  # the jobs that write ARTIFACTS and k_search/


def flat_params(tree: dict, prefix: str = "") -> dict[str, str]:
    """A config dict as MLflow params: dotted keys, values as text (JSON for non-strings)."""
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if name == "spark" and isinstance(value, dict):
            out.update({k: str(v) for k, v in value.items()})  # Spark's own keys: spark.task.cpus
        elif isinstance(value, dict) and key != "options":
            out.update(flat_params(value, name + "."))
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            out[name] = text[:MAX_PARAM_CHARS]
    return out


def job_metrics(summary: dict, k_search=None) -> list[tuple[str, float, int]]:
    """(name, value, step) of a job summary's counts, stage seconds and throughput, and the k search."""
    out = [(k, float(v), 0) for k, v in summary.items()
           if isinstance(v, (int, float)) and not isinstance(v, bool)]
    seconds = summary.get("stage_seconds") or {}
    out += [(f"seconds.{stage}", float(s), 0) for stage, s in seconds.items()]
    for name, count, stage in (("documents_per_second", "input_rows", "detect"),
                               ("unique_mentions_per_second", "unique_mentions", "embed")):
        if summary.get(count) and seconds.get(stage):
            out.append((name, summary[count] / seconds[stage], 0))
    for row in [] if k_search is None else k_search.itertuples(index=False):
        if _finite(row.score):  # an estimated k may have no score
            out.append((f"k_search.{row.metric}", float(row.score), int(row.k)))
    return out


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def job_tags(job: str, summary: dict, output: str) -> dict[str, str]:
    import group_appeal_spark

    tags = {"group_appeal_spark.job": job, "group_appeal_spark.output": output,
            "group_appeal_spark.version": group_appeal_spark.__version__}
    if "smoke_test" in summary:
        tags["group_appeal_spark.smoke_test"] = str(summary["smoke_test"]).lower()
    if summary.get("source"):
        tags["group_appeal_spark.source"] = str(summary["source"])
    for role, facts in (summary.get("models") or {}).items():
        for field in ("repo_id", "revision", "commit", "content_sha256"):
            if isinstance(facts, dict) and facts.get(field):
                tags[f"model.{role}.{field}"] = str(facts[field])
    return tags


def track_job(spark, config, summary: dict, *, job: str, summary_name: str = "summary.json") -> str | None:
    """Log a job whose ``summary`` was just written to ``<output>/<summary_name>``; the run id, or None.

    Never raises: a failure is one warning (see the module docstring).
    """
    if not config.tracking.mlflow:
        return None
    out = config.output.path
    staging = tempfile.mkdtemp(prefix="gas-mlflow-")
    try:
        (Path(staging) / summary_name).write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
        files = [(str(Path(staging) / summary_name), None)]
        # only the jobs that cluster write these: `assign` into its input folder finds an earlier run's
        clustered = job in CLUSTERING_JOBS and summary.get("chosen_k") and "assigned_unique_mentions" not in summary
        if clustered:
            files += list(_output_artifacts(spark, out, staging))
        k_search = _k_search(spark, config) if clustered else None
        model_dir = next((p for p, d in files if Path(p).name == "cluster_model" and d is None), None)
        payload = {"params": flat_params(config.to_dict()), "metrics": job_metrics(summary, k_search),
                   "tags": job_tags(job, summary, out), "files": files, "model_dir": model_dir,
                   "run_name": f"{job} {Path(out.rstrip('/')).name}", "job": job}
    except Exception as exc:  # reading the output back for the artifacts
        log.warning("MLflow tracking: %s not logged: %s", job, first_line(exc))
        shutil.rmtree(staging, ignore_errors=True)
        return None
    return _guarded(config.tracking, payload, staging)


def track_training(report: dict, output: str, *, experiment: str | None = None,
                   register_model: str | None = None) -> str | None:
    """Log a ``train-embedder`` run: its TrainConfig as params, before/after and per-epoch metrics,
    ``training_report.json`` as an artifact, the base model as tags. Never raises."""
    from types import SimpleNamespace

    metrics = [(f"{when}.{name}", float(v), 0) for when in ("before", "after")
               for name, v in (report.get(when) or {}).items() if _finite(v)]
    for row in report.get("history") or []:
        metrics += [(name, float(v), int(row["epoch"])) for name, v in row.items()
                    if name != "epoch" and _finite(v)]
    metrics += [(k, float(report[k]), 0) for k in ("best_epoch", "epochs_run", "seconds") if report.get(k) is not None]
    tags = {"group_appeal_spark.job": "train-embedder", "group_appeal_spark.output": output}
    for key in ("base_model", "revision", "init_embedder"):
        if report.get(key):
            tags[f"model.base.{key}"] = str(report[key])
    files = [(str(p), None) for p in sorted(Path(output).glob("training_report.*"))]
    payload = {"params": flat_params({"train": report.get("config") or {}}), "metrics": metrics, "tags": tags,
               "files": files, "model_dir": None, "run_name": f"train-embedder {Path(output).name}",
               "job": "train-embedder"}
    return _guarded(SimpleNamespace(experiment=experiment, register_model=register_model), payload, None)


def _output_artifacts(spark, out: str, staging: str):
    """(local path, artifact folder) of report.html, plots/ and cluster_model/ where the job wrote them."""
    local = out.removeprefix("file:")
    if "://" not in out and Path(local).is_dir():
        for name in ARTIFACTS:
            if (Path(local) / name).exists():
                yield str(Path(local) / name), None
        return
    # another filesystem (HDFS, S3, DBFS...): the files come through Spark's binaryFile source
    from group_appeal_spark.jobs.storage.filesystem import filesystem, join_path

    fs = filesystem(spark)
    for name in ARTIFACTS:
        path = join_path(out, name)
        if fs.exists(path):
            yield fetch_through_spark(spark, path, Path(staging) / name), None


def fetch_through_spark(spark, path: str, dest: Path) -> str:
    """Copy the file or folder ``path`` (any filesystem Spark reads) to the local ``dest``; returns ``dest``.

    Spark's binaryFile source reads the bytes (a few small files: report, plots, model JSON).
    """
    rows = spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(path) \
        .select("path", "content").collect()
    root = path.rstrip("/").rsplit("/", 1)[-1]
    for row in rows:
        found = row["path"]
        # the part below the folder `root` (a file given itself has none)
        relative = "" if found.endswith(f"/{root}") else found[found.rindex(f"/{root}/") + len(root) + 2:]
        target = dest / relative if relative else dest
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(bytes(row["content"]))
    return str(dest)


def _k_search(spark, config):
    """The k_search table the job wrote (pandas), or None."""
    from group_appeal_spark.jobs.storage.filesystem import filesystem, join_path
    from group_appeal_spark.jobs.storage.tables import read_table

    path = join_path(config.output.path, "k_search")
    if not filesystem(spark).exists(path):
        return None
    return read_table(spark, path, config.output.format).select("k", "metric", "score").toPandas()


def _guarded(tracking, payload: dict, staging: str | None) -> str | None:
    """Log ``payload`` within DEADLINE_S on a worker thread; a failure is one warning."""
    job = payload["job"]
    for key, value in HTTP_ENV.items():
        os.environ.setdefault(key, value)
    try:
        import mlflow
    except ImportError:
        log.warning("MLflow tracking: %s not logged: tracking.mlflow is on but mlflow is not installed "
                    "(pip install 'group-appeal-spark[mlflow]')", job)
        return None
    active = mlflow.active_run()  # the caller's (thread-local in MLflow)
    done: dict = {}

    def work():
        try:
            done["run_id"] = _log(mlflow, tracking, payload, active.info.run_id if active else None)
        except BaseException as exc:  # reported by the caller
            done["error"] = exc

    worker = threading.Thread(target=work, name="gas-mlflow", daemon=True)
    worker.start()
    worker.join(DEADLINE_S)
    if worker.is_alive():
        log.warning("MLflow tracking: %s not logged: no answer from %s within %.0f s; the output folder has "
                    "everything", job, mlflow.get_tracking_uri(), DEADLINE_S)
        return None
    if staging:
        shutil.rmtree(staging, ignore_errors=True)
    if "error" in done:
        log.warning("MLflow tracking: %s not logged to %s: %s; the output folder has everything", job,
                    mlflow.get_tracking_uri(), first_line(done["error"]))
        return None
    log.info("MLflow tracking: %s logged to run %s (%s)", job, done["run_id"], mlflow.get_tracking_uri())
    return done["run_id"]


def _log(mlflow, tracking, payload: dict, active_run_id: str | None) -> str:
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    run_id, owned = active_run_id, active_run_id is None
    params = payload["params"]
    if owned:
        experiment = tracking.experiment
        if experiment:
            found = client.get_experiment_by_name(experiment)
            experiment_id = found.experiment_id if found else client.create_experiment(experiment)
        else:
            from mlflow.tracking.fluent import _get_experiment_id

            experiment_id = _get_experiment_id() or "0"
        run_id = client.create_run(experiment_id, tags=payload["tags"], run_name=payload["run_name"]).info.run_id
    else:
        # an earlier job of the same run logged its own settings: params cannot change, keep those
        logged = client.get_run(run_id).data.params
        params = {k: v for k, v in params.items() if k not in logged}
    status = "FAILED"
    try:
        import time

        now = int(time.time() * 1000)
        metrics = [Metric(name, value, now, step) for name, value, step in payload["metrics"]]
        items = [Param(k, v) for k, v in params.items()]
        tags = [RunTag(k, v) for k, v in payload["tags"].items()] if not owned else []
        for i in range(0, max(len(items), len(metrics), len(tags), 1), MAX_BATCH):
            client.log_batch(run_id, metrics=metrics[i:i + MAX_BATCH], params=items[i:i + MAX_BATCH],
                             tags=tags[i:i + MAX_BATCH])
        prefix = None if owned else payload["job"]  # a shared run: each job's files in a folder of its own
        for path, folder in payload["files"]:
            target = "/".join(p for p in (prefix, folder) if p) or None
            if Path(path).is_dir():
                client.log_artifacts(run_id, path, "/".join(p for p in (target, Path(path).name) if p))
            else:
                client.log_artifact(run_id, path, target)
        if payload["model_dir"]:
            from group_appeal_spark.ml.pyfunc import log_cluster_model

            log_cluster_model(payload["model_dir"], run_id, register_as=tracking.register_model)
        status = "FINISHED"
    finally:
        if owned:
            client.set_terminated(run_id, status)
    return run_id
