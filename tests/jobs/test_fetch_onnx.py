"""fetch-models --onnx --measure: exports beside the fetched models, found again by a job."""

import json

import pytest

pytest.importorskip("onnxruntime")

from group_appeal_spark.jobs import fetch_models  # noqa: E402
from group_appeal_spark.lib.config import load_config  # noqa: E402
from group_appeal_spark.lib.models.bundle import ModelBundle  # noqa: E402
from group_appeal_spark.lib.models.onnx import MEASUREMENTS, ONNX_ROLES, cpu_id  # noqa: E402


def test_fetch_models_exports_and_measures_and_auto_finds_them(hub_cache, tmp_path):
    out = tmp_path / "models"
    assert fetch_models.main(["--output", str(out), "--onnx", "--measure"]) == 0
    exports = sorted((out / "gas-onnx").iterdir())
    assert [p.name.split("-")[0] for p in exports] == ["detector", "embedder", "stance"]
    for folder in exports:
        rates = json.loads((folder / MEASUREMENTS).read_text())[cpu_id()]
        assert {"torch_fp32", "onnx"} <= set(rates) and all(v > 0 for v in rates.values())
    # a job on --models-dir with backend auto carries the exports; each stage follows its measurement
    bundle = ModelBundle.resolve(load_config(overrides={"models.models_dir": str(out), "inference.backend": "auto"}))
    assert {bundle.folders[role] for role in ONNX_ROLES.values()} == {str(p) for p in exports}
    chosen = bundle.backend("cpu")
    for stage, role in ONNX_ROLES.items():
        rates = json.loads((out / "gas-onnx" / bundle.folders[role].rsplit("/", 1)[-1] / MEASUREMENTS).read_text())
        here = rates[cpu_id()]
        assert (stage in chosen) == (here["onnx"] > here[f"torch_{bundle.precision('cpu')}"])
