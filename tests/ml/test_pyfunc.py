"""The cluster model as an MLflow pyfunc model: saved from the JSON files (no pickle), loaded back,
predicting what `assign` computes."""

import numpy as np
import pandas as pd
import pytest
from group_appeal_spark.lib.clustering.model import (
    ClusterModel,
    ClusterModelError,
    key_normalisation,
    save_cluster_model,
)
from group_appeal_spark.lib.errors import InputError

pytest.importorskip("mlflow")


def _model(k=3, dim=4) -> ClusterModel:
    centroids = np.random.default_rng(0).normal(size=(k, dim)).astype(np.float32)
    return ClusterModel(centroids=centroids, labels=("farmers", None, "nurses"), mention_keys=("farmers", "nurses"),
                        key_cluster_ids=np.asarray([0, 2], dtype=np.int32), selection={"n_clusters": k},
                        embedder=None, key_normalisation=key_normalisation(None))


def _frame(n=12, dim=4):
    rng = np.random.default_rng(1)
    keys = ["farmers", "nurses", *[f"k{i}" for i in range(n - 2)]]
    return pd.DataFrame({"mention_key": keys, "mention": keys, "count": np.arange(n, dtype=np.int64) + 1,
                         "embedding": [rng.normal(size=dim).astype(np.float32).tolist() for _ in range(n)]})


@pytest.fixture()
def saved(tmp_path):
    from group_appeal_spark.ml.pyfunc import save_cluster_pyfunc

    folder = save_cluster_model(_model(), tmp_path / "cluster_model")
    return save_cluster_pyfunc(folder, tmp_path / "pyfunc")


def test_the_pyfunc_model_is_json_and_code_not_a_pickle(saved):
    files = sorted(str(p.relative_to(saved)) for p in saved.rglob("*") if p.is_file())
    assert "artifacts/cluster_model/model.json" in files and "artifacts/cluster_model/keys.json" in files
    assert "MLmodel" in files and any(f.endswith("pyfunc_model.py") for f in files)
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".cloudpickle"))], files


def test_the_loaded_model_predicts_as_assign_does(saved):
    import mlflow
    from group_appeal_spark.udfs.clusters import make_assign_batches

    frame = _frame()
    got = mlflow.pyfunc.load_model(str(saved)).predict(frame[["mention_key", "embedding"]])
    model = _model()
    fit_ids = pd.Series(dict(zip(model.mention_keys, model.key_cluster_ids)))
    batch = frame.assign(__fit_id=frame["mention_key"].map(fit_ids))
    (want,) = list(make_assign_batches(model.centroids, list(model.labels))([batch]))
    assert got["cluster_id"].tolist() == want["cluster_id"].tolist()
    assert got["cluster_id"].iloc[:2].tolist() == [0, 2]  # fit-time keys keep their ids
    assert got["label"].tolist() == want["label"].tolist()
    assert np.array_equal(got["distance_to_centroid"].to_numpy(), want["distance_to_centroid"].to_numpy())


def test_without_keys_every_row_takes_its_nearest_centroid(saved):
    import mlflow
    from group_appeal_spark.lib.clustering.kmeans import nearest_centroid

    frame = _frame()
    got = mlflow.pyfunc.load_model(str(saved)).predict(frame[["embedding"]])
    X = np.stack([np.asarray(v, dtype=np.float32) for v in frame["embedding"]])
    nearest, _ = nearest_centroid(X, _model().centroids)
    assert got["cluster_id"].tolist() == nearest.tolist()


@pytest.mark.parametrize("frame, error, match", [
    (pd.DataFrame({"text": ["farmers"]}), InputError, "expected an 'embedding' column"),
    (pd.DataFrame({"embedding": [[0.0, 1.0]]}), ClusterModelError, "centroids have 4 features, the input's"),
])
def test_bad_input_is_refused(frame, error, match):
    from group_appeal_spark.ml.pyfunc import assign_frame

    with pytest.raises(error, match=match):
        assign_frame(_model(), frame)


def test_an_empty_frame_gives_an_empty_result():
    from group_appeal_spark.ml.pyfunc import assign_frame

    got = assign_frame(_model(), pd.DataFrame({"embedding": []}))
    assert list(got.columns) == ["cluster_id", "label", "distance_to_centroid"] and len(got) == 0


def test_a_bad_cluster_model_folder_is_refused_before_saving(tmp_path):
    from group_appeal_spark.ml.pyfunc import save_cluster_pyfunc

    with pytest.raises(ClusterModelError, match="does not exist"):
        save_cluster_pyfunc(tmp_path / "missing", tmp_path / "pyfunc")
