"""Cluster deploy mode: a job file alone on disk, the package only from the wheel on --py-files.

YARN and Kubernetes in cluster mode ship the job file by itself; nothing of the checkout is
there. The driver and the executors here run an interpreter that has the dependencies but
cannot see the project (tests/support/sitecustomize.py hides every copy that is not an
archive on sys.path), so only the wheel given to --py-files can serve the package.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from paths import ROOT, SUPPORT

pytestmark = pytest.mark.spark

SPARK_SUBMIT = Path(sys.executable).parent / "spark-submit"
JOB_FILES = ["run.py", "detect.py", "cluster.py", "fetch_models.py", "train_embedder.py", "cli.py"]


def _env():
    return {**os.environ, "PYTHONPATH": str(SUPPORT), "PYSPARK_PYTHON": sys.executable,
            "PYSPARK_DRIVER_PYTHON": sys.executable}


def test_the_interpreter_cannot_see_the_project_without_the_wheel(tmp_path):
    proc = subprocess.run([sys.executable, "-c", "import group_appeal_spark"], capture_output=True, text=True,
                          env=_env(), cwd=tmp_path)
    assert proc.returncode != 0 and "only --py-files archives are visible" in proc.stderr


@pytest.mark.parametrize("job", JOB_FILES)
def test_job_file_alone_starts_from_the_wheel(wheel, tmp_path, job):
    shutil.copy(ROOT / "jobs" / job, tmp_path / job)
    proc = subprocess.run([str(SPARK_SUBMIT), "--master", "local[1]", "--py-files", str(wheel), job, "--help"],
                          capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "usage:" in proc.stdout


def test_run_job_file_alone_processes_the_corpus(wheel, tmp_path):
    shutil.copy(ROOT / "jobs" / "run.py", tmp_path / "run.py")
    shutil.copy(ROOT / "examples" / "sample_corpus.jsonl", tmp_path / "docs.jsonl")
    proc = subprocess.run(
        [str(SPARK_SUBMIT), "--master", "local[2]", "--py-files", str(wheel),
         "--conf", "spark.executorEnv.PYTHONPATH=" + str(SUPPORT), "run.py",
         "--input", "docs.jsonl", "--input-format", "json", "--carry-cols", "party",
         "--output", "out", "--tiny-models", "--k-min", "2", "--k-max", "3", "--set", "models.ship=files"],
        capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=400)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["input_rows"] == 40 and summary["documents_ok"] == 40 and summary["mentions"] > 0


@pytest.mark.parametrize("folder, shared", [
    ("/Volumes/main/models/group-appeal/roberta", True), ("/dbfs/models/x", True), ("dbfs:/models/x", True),
    ("/home/me/models/x", False), ("/tmp/Volumes/x", False), ("hdfs:///models/x", False)])
def test_ship_auto_reads_databricks_shared_storage_in_place(folder, shared):
    from group_appeal_spark.jobs.executors import on_shared_storage

    assert on_shared_storage(folder) is shared


def test_ship_auto_does_not_copy_models_from_volumes(spark, monkeypatch, tmp_path):
    """On a cluster, models under /Volumes are read in place; others are shipped as files."""
    from group_appeal_spark.lib.models.bundle import ModelBundle
    from group_appeal_spark.jobs import executors as shipping

    monkeypatch.setattr(spark.sparkContext, "master", "spark://cluster:7077")
    added = []
    monkeypatch.setattr(type(spark.sparkContext), "addFile", lambda self, path, recursive=False: added.append(path))
    volumes = ModelBundle(folders={"detector": "/Volumes/main/models/det", "stance": "/dbfs/models/st"},
                          ids={"detector": "a", "stance": "b"})
    assert shipping.ship_models(spark, volumes, "auto") is volumes
    assert added == []
    # the same on a folder of the driver's own disk: shipped, file by file
    (tmp_path / "det").mkdir()
    (tmp_path / "det" / "config.json").write_text("{}")
    local = ModelBundle(folders={"detector": str(tmp_path / "det")}, ids={"detector": "volumes-test"})
    shipped = shipping.ship_models(spark, local, "auto")
    assert shipped.shipped_files and len(added) == 1 and added[0].endswith("--detector--config.json")
