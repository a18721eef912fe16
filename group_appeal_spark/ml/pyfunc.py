"""The cluster model as an MLflow ``pyfunc`` model: the ``cluster_model/`` JSON files, never a pickle.

The model is logged "from code": MLflow keeps ``pyfunc_model.py`` (three lines that name
:class:`ClusterModelPyfunc`) and ``cluster_model/`` as an artifact, and loading runs that code,
which reads the two JSON files with lib's :func:`load_cluster_model`. So a registered version
(``models:/group_appeals_clusters/3``, or a Unity Catalog name on Databricks) is the same model
``assign --cluster-model`` reads from a folder, and ``assign --cluster-model models:/...`` reads
it back from the registry.

``predict`` takes a pandas DataFrame with ``embedding`` (a list of floats per row, from the
model's embedder: ``mention_embeddings``) and, optionally, ``mention_key``; it returns
``cluster_id``, ``label`` and ``distance_to_centroid`` per row, as ``assign`` does (a key the
model was fitted on keeps its fit-time id). Needs mlflow and numpy/pandas only, not pyspark.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd

from group_appeal_spark.lib.clustering.model import ClusterModel, load_cluster_model
from group_appeal_spark.lib.errors import InputError

ARTIFACT = "cluster_model"
MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")
ARTIFACT_PATH = "cluster_model_pyfunc"  # where a job logs the pyfunc model in its run


def assign_frame(model: ClusterModel, frame: pd.DataFrame) -> pd.DataFrame:
    """``cluster_id``, ``label``, ``distance_to_centroid`` of each row of ``frame`` (n_rows rows, in order).

    Parameters
    ----------
    model : ClusterModel
    frame : pandas.DataFrame
        ``embedding``: n_rows vectors of ``model.n_features`` floats; ``mention_key`` optional.
    """
    from group_appeal_spark.lib.clustering.kmeans import nearest_centroid

    if "embedding" not in frame.columns:
        raise InputError(f"cluster model input: expected an 'embedding' column (and optionally 'mention_key'); "
                         f"got {list(frame.columns)}")
    if len(frame) == 0:
        return pd.DataFrame({"cluster_id": pd.Series([], dtype="int32"), "label": pd.Series([], dtype=object),
                             "distance_to_centroid": pd.Series([], dtype="float64")})
    # float32, as the fit and assign see them: the same distances to the last bit
    X = np.stack([np.asarray(v, dtype=np.float32) for v in frame["embedding"]])
    model.check_dimension(X.shape[1], "the input's embeddings")
    nearest, distances = nearest_centroid(X, model.centroids)
    chosen = nearest.astype(np.int64)
    if "mention_key" in frame.columns:
        fit_ids = pd.Series(model.key_cluster_ids, index=list(model.mention_keys))
        known = frame["mention_key"].map(fit_ids)
        chosen = np.where(known.isna().to_numpy(), chosen, known.fillna(-1).to_numpy(dtype=np.int64))
    if len(chosen) != len(frame):
        raise RuntimeError(f"cluster assignment gave {len(chosen)} results for {len(frame)} rows")
    return pd.DataFrame({"cluster_id": chosen.astype(np.int32), "label": [model.labels[i] for i in chosen],
                         "distance_to_centroid": distances[np.arange(len(chosen)), chosen].astype(np.float64)})


class ClusterModelPyfunc(mlflow.pyfunc.PythonModel):
    """The pyfunc wrapper: ``load_context`` reads the ``cluster_model`` artifact's JSON files."""

    model: ClusterModel | None = None

    def load_context(self, context):
        self.model = load_cluster_model(context.artifacts[ARTIFACT])

    # a DataFrame hint: MLflow checks the input against the signature saved with the model
    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return assign_frame(self.model, pd.DataFrame(model_input))


def _signature(model: ClusterModel):
    """The input and output columns (mention_key optional; a cluster's label may be null), and an example."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, Schema
    from mlflow.types.schema import Array

    inputs = Schema([ColSpec(DataType.string, "mention_key", required=False),
                     ColSpec(Array(DataType.double), "embedding")])
    outputs = Schema([ColSpec(DataType.integer, "cluster_id"), ColSpec(DataType.string, "label", required=False),
                      ColSpec(DataType.double, "distance_to_centroid")])
    example = pd.DataFrame({"mention_key": [model.mention_keys[0] if model.mention_keys else "farmers"],
                            "embedding": [[float(v) for v in model.centroids[0]]]})
    return ModelSignature(inputs=inputs, outputs=outputs), example


def save_cluster_pyfunc(folder: str | Path, path: str | Path) -> Path:
    """Write the pyfunc model of the local ``cluster_model/`` ``folder`` to ``path`` (checked first)."""
    import group_appeal_spark

    model = load_cluster_model(folder)  # a bad folder fails here, not when someone loads it
    signature, example = _signature(model)
    mlflow.pyfunc.save_model(str(path), python_model=str(MODEL_CODE), artifacts={ARTIFACT: str(folder)},
                             signature=signature, input_example=example,
                             # the package itself (from a wheel or a checkout) brings everything else
                             pip_requirements=[f"group-appeal-spark=={group_appeal_spark.__version__}"],
                             metadata={"format": "group-appeal-spark/cluster-model", "k": model.k})
    return Path(path)


def log_cluster_model(folder: str | Path, run_id: str, *, register_as: str | None = None):
    """Log ``folder`` as a pyfunc model under the run's ``cluster_model_pyfunc/``; register it as
    ``register_as`` where given. Returns the model version registered, or None."""
    from mlflow.tracking import MlflowClient

    with tempfile.TemporaryDirectory(prefix="gas-pyfunc-") as tmp:
        saved = save_cluster_pyfunc(folder, Path(tmp) / ARTIFACT_PATH)
        MlflowClient().log_artifacts(run_id, str(saved), ARTIFACT_PATH)
    if register_as:
        return mlflow.register_model(f"runs:/{run_id}/{ARTIFACT_PATH}", register_as)
    return None


def load_logged_cluster_model(uri: str) -> ClusterModel:
    """lib's ClusterModel of a logged or registered pyfunc model (``models:/name/3``, ``runs:/id/...``)."""
    loaded = mlflow.pyfunc.load_model(uri)
    wrapped = loaded.unwrap_python_model()
    if not isinstance(wrapped, ClusterModelPyfunc) or wrapped.model is None:
        raise InputError(f"{uri} is not a group-appeal-spark cluster model (its python model is "
                         f"{type(wrapped).__name__})")
    return wrapped.model
