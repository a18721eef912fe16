"""jobs/executors.py: the package zipped in the wheel's layout, and the start-up probe of the executors."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from paths import SUPPORT



def _names(archive: Path) -> set[str]:
    with zipfile.ZipFile(archive) as z:
        return {n for n in z.namelist() if not n.endswith("/")}


def test_the_zipped_checkout_holds_exactly_what_the_wheel_holds(wheel, tmp_path):
    from group_appeal_spark.jobs.executors import zip_package

    zipped = Path(zip_package(str(tmp_path)))
    in_wheel = {n for n in _names(wheel) if ".dist-info/" not in n}
    assert _names(zipped) == in_wheel
    assert "group_appeal_spark/conf/defaults.yaml" in in_wheel and "group_appeal_spark/jobs/run.py" in in_wheel


def test_the_zip_is_the_same_bytes_for_the_same_tree_and_named_by_its_contents(tmp_path):
    from group_appeal_spark import __version__
    from group_appeal_spark.jobs.executors import zip_package

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = Path(zip_package(str(tmp_path / "a"))), Path(zip_package(str(tmp_path / "b")))
    assert first.name == second.name and first.read_bytes() == second.read_bytes()
    assert first.name.startswith(f"group_appeal_spark-{__version__}-") and first.suffix == ".zip"


def test_an_interpreter_that_cannot_see_the_project_runs_it_from_the_zip(tmp_path):
    """What an executor gets: the zip on sys.path, nothing else of the project."""
    from group_appeal_spark.jobs.executors import zip_package

    zipped = zip_package(str(tmp_path))
    code = ("import sys; sys.path.insert(1, sys.argv[1]); import group_appeal_spark as g; "
            "from group_appeal_spark.jobs import run; from group_appeal_spark.lib.config import load_config; "
            "load_config(None, {}); print(g.__file__)")
    env = {**os.environ, "PYTHONPATH": str(SUPPORT)}
    proc = subprocess.run([sys.executable, "-c", code, zipped], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == os.path.join(zipped, "group_appeal_spark", "__init__.py")


@pytest.mark.spark
def test_the_probe_reports_each_executor_python_and_the_package_version(spark):
    from group_appeal_spark import __version__
    from group_appeal_spark.jobs.executors import probe_executors

    found = probe_executors(spark, __version__, tasks=2)
    assert found and {row["version"] for row in found} == {__version__}
    assert {row["python"] for row in found} == {sys.executable}
    assert all(not row["problem"] and not row["missing"] for row in found)


@pytest.mark.spark
def test_the_probe_refuses_executors_that_run_another_version(spark):
    from group_appeal_spark import __version__
    from group_appeal_spark.jobs.executors import ExecutorSetupError, probe_executors

    with pytest.raises(ExecutorSetupError, match=rf"the executors run group_appeal_spark {__version__} from .*"
                                                 r"the driver 9\.9\.9: remove or upgrade that copy"):
        probe_executors(spark, "9.9.9", tasks=1)


@pytest.mark.parametrize("text, want", [
    ("An error occurred while calling o1.collect.\n  File \"x.py\", line 3\nModuleNotFoundError: No module named "
     "'pandas'\n\tat org.apache.spark.X", "ModuleNotFoundError: No module named 'pandas'"),
    ("org.apache.spark.SparkException: Job aborted\nno python here", "no python here"),
])
def test_a_failed_probe_job_is_told_by_its_last_python_error(text, want):
    from group_appeal_spark.jobs.executors import _python_error

    assert _python_error(RuntimeError(text)) == want


def test_local_executors_get_the_package_only_when_they_cannot_see_it(monkeypatch):
    """Local mode from an installed or editable copy: nothing shipped, no probe; a cluster: both."""
    from group_appeal_spark.jobs import executors

    calls = []
    monkeypatch.setattr(executors, "ship_own_package", lambda spark, archive: calls.append("ship") or "x.zip")
    monkeypatch.setattr(executors, "probe_executors", lambda spark, version: calls.append("probe"))
    monkeypatch.delitem(sys.modules, "_bootstrap", raising=False)

    class Context:
        master = "local[2]"

    class Session:
        sparkContext = Context()

    assert executors.prepare_executors(Session()) is None and calls == []
    monkeypatch.setitem(sys.modules, "_bootstrap", object())  # a job file that put its checkout on the path
    assert executors.prepare_executors(Session()) == "x.zip" and calls == ["ship"]
    Context.master = "spark://cluster:7077"
    calls.clear()
    monkeypatch.delitem(sys.modules, "_bootstrap")
    assert executors.prepare_executors(Session()) == "x.zip" and calls == ["ship", "probe"]
