"""docs/notebooks.md: every example runs, in order, section by section, with its paths under a
temporary folder (Spark resolves relative paths against the JVM's folder, not Python's)."""

import re
import shlex

import pandas as pd
import pytest
from paths import ROOT

PAGE = ROOT / "docs" / "notebooks.md"
BLOCK = re.compile(r"^```(python|bash)\n(.*?)^```$", re.M | re.S)
# the page's relative paths, each rebased under the test's folder
PATHS = ("corpus/", "out", "appeals_pipeline", "clusters_v1")


def sections() -> dict:
    """{heading: [(language, code), ...]} of the page; the blocks before the first ## heading under ''."""
    parts = re.split(r"^## (.+)$", PAGE.read_text(encoding="utf-8"), flags=re.M)
    out = {"": BLOCK.findall(parts[0])}
    out.update({heading: BLOCK.findall(body) for heading, body in zip(parts[1::2], parts[2::2])})
    return out


def _rebase_code(code: str, root) -> str:
    for name in PATHS:
        code = code.replace(f'"{name}', f'"{root}/{name}')
    return code


def _run_bash(code: str, root) -> None:
    from group_appeal_spark.jobs import cli

    for line in code.strip().splitlines():
        args = shlex.split(line)
        assert args[0] == "group-appeal-spark", line
        args = [f"{root}/{a}" if a.startswith(PATHS) else a for a in args[1:]]
        assert cli.main(args) == 0, line


@pytest.fixture(scope="module")
def root(tmp_path_factory, spark, hub_cache):
    from sentences import sentences

    folder = tmp_path_factory.mktemp("notebooks")
    texts = sentences(24, seed=11)
    docs = pd.DataFrame({"id": [f"d{i:02d}" for i in range(24)], "text": texts, "party": ["A", "B"] * 12})
    spark.createDataFrame(docs).write.parquet(str(folder / "corpus"))
    return folder


def _run_section(heading: str, root, spark) -> int:
    found = sections()
    namespace = {"spark": spark}
    blocks = found[""] + found[heading]
    for language, code in blocks:
        if language == "python":
            exec(compile(_rebase_code(code, root), f"{PAGE.name}: {heading}", "exec"), namespace)  # noqa: S102
        else:
            _run_bash(code, root)
    return len(found[heading])


def test_the_page_has_the_sections_this_test_runs():
    assert set(sections()) == {"", "The function API", "Pipeline stages", "MLflow"}
    assert all(blocks for blocks in sections().values())


@pytest.mark.spark
@pytest.mark.parametrize("heading", ["The function API", "Pipeline stages"])
def test_the_examples_run(heading, root, spark, capsys):
    assert _run_section(heading, root, spark) >= 1
    if heading == "Pipeline stages":
        assert "clustering.k_min: 1 must be at least 2" in capsys.readouterr().out


@pytest.mark.spark
def test_the_mlflow_examples_run(root, spark, tmp_path, monkeypatch, capsys):
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    assert _run_section("MLflow", root, spark) == 2
    from mlflow.tracking import MlflowClient

    versions = MlflowClient().search_model_versions("name='group_appeals_clusters'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    assert "cluster_id" in capsys.readouterr().out
    assert (root / "out-assigned" / "clusters").is_dir()
