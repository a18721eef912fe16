"""A fitted cluster model saved as JSON: centroids, labels, fit-time keys, embedder identity.

``run`` and ``cluster`` write one to ``<output>/cluster_model/`` whenever they cluster;
``assign`` (and ``run --cluster-model``) reads it back to put new mentions in the same clusters
with the same ids, without refitting. The folder holds two JSON files, never a pickle:

- ``keys.json``: ``{"mention_keys": [...], "cluster_ids": [...]}``, the mention keys the model
  was fitted on and their cluster ids (written first);
- ``model.json``: the format and its version, ``k``, ``n_features``, the centroids (``k`` lists
  of ``n_features`` floats, exact: float32 values round-trip through JSON), each cluster's
  label, how k was chosen, the embedder's identity, how mention keys are made, and the number
  and a checksum of the fit-time keys (written last, so a folder whose writing stopped half-way
  has no model.json or keys that do not match it).

Every function here is pure (strings and local files in, numpy out). The jobs write and read
the same texts through ``jobs/storage`` (:meth:`ClusterModel.to_texts`,
:meth:`ClusterModel.from_texts`), which reach HDFS, S3 and Spark Connect.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from group_appeal_spark.lib.errors import InputError

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "KEYS_FILE",
    "KEY_FORMAT_VERSION",
    "MODEL_FILE",
    "ClusterModel",
    "ClusterModelError",
    "check_same_embedder",
    "embedder_identity",
    "embedder_record",
    "key_normalisation",
    "load_cluster_model",
    "save_cluster_model",
]

FORMAT = "group-appeal-spark/cluster-model"
FORMAT_VERSION = 1
MODEL_FILE = "model.json"
KEYS_FILE = "keys.json"
KEY_FORMAT_VERSION = 1
KEY_METHOD = ("the embedder tokenizer's normalizer (normalize_str), then surrounding whitespace dropped and "
              "runs of whitespace collapsed to one space")
_DTYPES = ("float32", "float64")
# what identifies a model's files; the folder is left out: it differs between machines
_IDENTITY_FIELDS = ("source", "repo_id", "revision", "commit", "content_sha256")


class ClusterModelError(InputError):
    """A cluster model folder that cannot be used: missing, partial, corrupt, or made for other input."""


@dataclasses.dataclass(frozen=True, eq=False)
class ClusterModel:
    """Saved k-means centroids and what is needed to assign new mentions consistently.

    Parameters
    ----------
    centroids : numpy.ndarray of shape (k, n_features)
        Cluster centres, row ``i`` is cluster id ``i``.
    labels : tuple of (str or None), length k
        Each cluster's label (cluster_summary's ``label``).
    mention_keys : tuple of str, length n_keys
        The distinct mention keys the model was fitted on.
    key_cluster_ids : numpy.ndarray of shape (n_keys,)
        Cluster id of each of ``mention_keys`` at fit time (int32).
    selection : dict
        How k was chosen: ``{"metric", "k_min", "k_max"}`` of the search, or ``{"n_clusters"}``.
    embedder : dict or None
        ``{"embedder": identity, "embedder_config": identity or None}``, each identity as
        :func:`embedder_identity` gives it; None when unknown.
    key_normalisation : dict
        How mention keys are made (:func:`key_normalisation`).
    created_by : dict
        Free-form facts about the run that wrote it (package version, job).
    """

    centroids: np.ndarray
    labels: tuple
    mention_keys: tuple
    key_cluster_ids: np.ndarray
    selection: dict
    embedder: dict | None
    key_normalisation: dict
    created_by: dict = dataclasses.field(default_factory=dict)

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.centroids.shape[1])

    def predict_with_distance(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Nearest centroid of each row of ``X`` and the distance to it (ties: the lowest id).

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features)

        Returns
        -------
        labels : numpy.ndarray of shape (n_rows,)
        distances : numpy.ndarray of shape (n_rows,)
        """
        from group_appeal_spark.lib.clustering.kmeans import nearest_centroid

        labels, distances = nearest_centroid(X, self.centroids)
        return labels, distances[np.arange(labels.size), labels]

    def keys_checksum(self) -> str:
        """sha256 of the fit-time keys and ids, as written to ``model.json``."""
        return _keys_checksum(list(self.mention_keys), [int(i) for i in self.key_cluster_ids])

    def to_texts(self) -> dict[str, str]:
        """The folder's files as texts: ``{KEYS_FILE: ..., MODEL_FILE: ...}``, in writing order."""
        ids = [int(i) for i in self.key_cluster_ids]
        keys_text = json.dumps({"mention_keys": list(self.mention_keys), "cluster_ids": ids},
                               ensure_ascii=False, separators=(",", ":"))
        model = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "k": self.k,
            "n_features": self.n_features,
            "dtype": str(self.centroids.dtype),
            # float32 -> Python float -> repr is exact, and parses back to the same float32
            "centroids": [[float(v) for v in row] for row in self.centroids],
            "labels": [None if label is None else str(label) for label in self.labels],
            "selection": self.selection,
            "embedder": self.embedder,
            "key_normalisation": self.key_normalisation,
            "n_keys": len(self.mention_keys),
            "keys_sha256": self.keys_checksum(),
            "created_by": self.created_by,
        }
        # one top-level field a line: readable, and a centroid is one line, not 128
        model_text = "{\n" + ",\n".join(f" {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}"
                                         for key, value in model.items()) + "\n}\n"
        return {KEYS_FILE: keys_text, MODEL_FILE: model_text}

    @classmethod
    def from_texts(cls, texts: Mapping[str, str | None], where: str = "cluster model") -> ClusterModel:
        """Parse and validate the folder's files (None for a missing file).

        Parameters
        ----------
        texts : mapping
            ``{MODEL_FILE: text or None, KEYS_FILE: text or None}``.
        where : str
            The folder, for the messages.

        Raises
        ------
        ClusterModelError
            One line naming the folder and what is wrong: a missing file, a file that is not
            JSON (partial or corrupt), another format or format version, a bad or inconsistent
            field (shapes, non-finite centroids, ids out of range, keys that do not match
            their checksum).
        """
        meta = _parse(texts.get(MODEL_FILE), MODEL_FILE, where)
        if meta.get("format") != FORMAT:
            raise ClusterModelError(f"{where}/{MODEL_FILE}: not a group-appeal-spark cluster model "
                                    f"(format {meta.get('format')!r}, expected {FORMAT!r})")
        version = meta.get("format_version")
        if version != FORMAT_VERSION:
            raise ClusterModelError(f"{where}/{MODEL_FILE}: format_version {version!r}; this version of "
                                    f"group-appeal-spark reads format_version {FORMAT_VERSION}: re-run `cluster` "
                                    f"to write the model again")
        k = _int_field(meta, "k", where, low=1)
        dim = _int_field(meta, "n_features", where, low=1)
        dtype = meta.get("dtype")
        if dtype not in _DTYPES:
            raise ClusterModelError(f"{where}/{MODEL_FILE}: dtype {dtype!r}, expected one of {list(_DTYPES)}")
        centroids = _centroids(meta.get("centroids"), k, dim, dtype, where)
        labels = meta.get("labels")
        if not isinstance(labels, list) or len(labels) != k or not all(v is None or isinstance(v, str)
                                                                          for v in labels):
            raise ClusterModelError(f"{where}/{MODEL_FILE}: labels must be a list of {k} strings (or nulls); "
                                    f"got {_short(labels)}")
        for name in ("selection", "key_normalisation"):
            if not isinstance(meta.get(name), dict):
                raise ClusterModelError(f"{where}/{MODEL_FILE}: {name} must be an object; got {_short(meta.get(name))}")
        norm_version = meta["key_normalisation"].get("format_version")
        if norm_version != KEY_FORMAT_VERSION:
            raise ClusterModelError(f"{where}/{MODEL_FILE}: key_normalisation.format_version {norm_version!r}; "
                                    f"this version makes mention keys as format_version {KEY_FORMAT_VERSION}")
        embedder = meta.get("embedder")
        if embedder is not None and not (isinstance(embedder, dict) and isinstance(embedder.get("embedder"), dict)):
            raise ClusterModelError(f"{where}/{MODEL_FILE}: embedder must be null or an object with an "
                                    f"'embedder' identity; got {_short(embedder)}")
        n_keys = _int_field(meta, "n_keys", where, low=0)
        keys, ids = _keys(_parse(texts.get(KEYS_FILE), KEYS_FILE, where), k, where)
        if len(keys) != n_keys or _keys_checksum(keys, ids) != meta.get("keys_sha256"):
            raise ClusterModelError(f"{where}/{KEYS_FILE} does not match {MODEL_FILE} ({len(keys)} keys, "
                                    f"{MODEL_FILE} says {n_keys}, or another checksum): a partial copy or "
                                    f"files of two different models; write the model again")
        created_by = meta.get("created_by") if isinstance(meta.get("created_by"), dict) else {}
        return cls(centroids=centroids, labels=tuple(labels), mention_keys=tuple(keys),
                   key_cluster_ids=np.asarray(ids, dtype=np.int32), selection=meta["selection"],
                   embedder=embedder, key_normalisation=meta["key_normalisation"], created_by=created_by)

    def check_dimension(self, n_features: int, what: str = "the embeddings") -> None:
        """Raise ClusterModelError unless ``n_features`` is the centroids' dimension."""
        if int(n_features) != self.n_features:
            raise ClusterModelError(f"dimension mismatch: the cluster model's centroids have {self.n_features} "
                                    f"features, {what} have {n_features}")


def save_cluster_model(model: ClusterModel, folder: str | Path) -> Path:
    """Write ``model`` to a local ``folder`` (keys.json first, model.json last); returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in model.to_texts().items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def load_cluster_model(folder: str | Path) -> ClusterModel:
    """Read and validate a local cluster model folder.

    Raises
    ------
    ClusterModelError
        If the folder is missing, or as :meth:`ClusterModel.from_texts`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ClusterModelError(f"cluster model {folder} does not exist (or is not a folder); give the "
                                f"cluster_model/ folder written by `run` or `cluster`")
    texts = {name: (folder / name).read_text(encoding="utf-8") if (folder / name).is_file() else None
             for name in (MODEL_FILE, KEYS_FILE)}
    return ClusterModel.from_texts(texts, str(folder))


def embedder_identity(provenance: Any) -> dict | None:
    """The fields of one model's provenance (summary.json ``models.<role>``) that identify its files.

    ``source``, ``repo_id``, ``revision``, ``commit``, ``content_sha256`` where present; the
    local ``folder`` is left out (it differs between machines). None for no provenance.
    """
    if not isinstance(provenance, dict):
        return None
    out = {key: provenance[key] for key in _IDENTITY_FIELDS if provenance.get(key) is not None}
    return out or None


def embedder_record(models: Any) -> dict | None:
    """``{"embedder", "embedder_config"}`` identities from summary.json's ``models`` block, or None."""
    if not isinstance(models, dict) or embedder_identity(models.get("embedder")) is None:
        return None
    return {"embedder": embedder_identity(models.get("embedder")),
            "embedder_config": embedder_identity(models.get("embedder_config"))}


def key_normalisation(normalizer: Any = None) -> dict:
    """How mention keys are made: the method, its version and the tokenizer's normalizer (a dict, or None)."""
    return {"format_version": KEY_FORMAT_VERSION, "method": KEY_METHOD, "normalizer": normalizer}


def check_same_embedder(model_embedder: dict | None, input_embedder: dict | None, *, model_where: str,
                        input_where: str) -> None:
    """Raise ClusterModelError unless both records name the same embedder files.

    Two identities are the same when every pair both sides have agrees (``repo_id`` and
    ``commit``; ``content_sha256``) and at least one pair is there to compare. The
    ``embedder_config`` role is compared too where both sides record it.
    """
    if model_embedder is None:
        raise ClusterModelError(f"{model_where} does not record its embedder, so it cannot be checked against "
                                f"{input_where}; write the model again with `run`, or `cluster` on an output "
                                f"whose summary.json has models.embedder")
    if input_embedder is None:
        raise ClusterModelError(f"{input_where} does not record its embedder (no models.embedder in its "
                                f"summary.json), so it cannot be checked against the cluster model; give the "
                                f"output of `detect` or `run`")
    for role in ("embedder", "embedder_config"):
        a, b = model_embedder.get(role), input_embedder.get(role)
        if role == "embedder_config" and (a is None or b is None):
            continue
        same = _same_identity(a or {}, b or {})
        if same is not True:
            why = "another" if same is False else "an embedder that cannot be compared with"
            raise ClusterModelError(f"the cluster model was made with {why} {role.replace('_', ' ')} than "
                                    f"{input_where}: model {_describe(a)}, input {_describe(b)}; mention keys "
                                    f"and embeddings of different embedders cannot share clusters")


def _same_identity(a: dict, b: dict) -> bool | None:
    """True/False where comparable pairs agree/differ; None where nothing can be compared."""
    verdicts = []
    if a.get("commit") and b.get("commit"):
        verdicts.append(a.get("commit") == b.get("commit") and a.get("repo_id") == b.get("repo_id"))
    if a.get("content_sha256") and b.get("content_sha256"):
        verdicts.append(a["content_sha256"] == b["content_sha256"])
    return None if not verdicts else all(verdicts)


def _describe(identity: dict | None) -> str:
    if not identity:
        return "(unknown)"
    if identity.get("commit"):
        return f"{identity.get('repo_id')}@{str(identity['commit'])[:12]}"
    if identity.get("content_sha256"):
        return f"local folder sha256 {str(identity['content_sha256'])[:12]}"
    return json.dumps(identity, sort_keys=True)


def _keys_checksum(keys: list, ids: list) -> str:
    text = json.dumps([keys, ids], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _parse(text: str | None, name: str, where: str) -> dict:
    """One JSON object file of the folder, or ClusterModelError."""
    if text is None:
        raise ClusterModelError(f"cluster model {where} is partial: {name} is missing; write the model again "
                                f"(`run` or `cluster`)")
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ClusterModelError(f"cluster model {where}: {name} is not valid JSON (a partial or corrupt file: "
                                f"{exc}); write the model again") from None
    if not isinstance(value, dict):
        raise ClusterModelError(f"cluster model {where}: {name} must hold a JSON object; got "
                                f"{type(value).__name__}")
    return value


def _int_field(meta: dict, name: str, where: str, *, low: int) -> int:
    value = meta.get(name)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ClusterModelError(f"{where}/{MODEL_FILE}: {name} must be an integer >= {low}; got {_short(value)}")
    return int(value)


def _centroids(value: Any, k: int, dim: int, dtype: str, where: str) -> np.ndarray:
    ok = isinstance(value, list) and len(value) == k and all(
        isinstance(row, list) and len(row) == dim for row in value)
    if not ok:
        rows = len(value) if isinstance(value, list) else None
        raise ClusterModelError(f"{where}/{MODEL_FILE}: dimension mismatch: centroids must be {k} lists of "
                                f"{dim} numbers (k x n_features); got {rows} rows"
                                + (f" of lengths {sorted({len(r) for r in value if isinstance(r, list)})}"
                                   if rows else ""))
    flat = [v for row in value for v in row]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in flat):
        raise ClusterModelError(f"{where}/{MODEL_FILE}: centroids must hold finite numbers only")
    return np.asarray(value, dtype=np.float64).astype(dtype)


def _keys(data: dict, k: int, where: str) -> tuple[list, list]:
    keys, ids = data.get("mention_keys"), data.get("cluster_ids")
    if not isinstance(keys, list) or not isinstance(ids, list) or len(keys) != len(ids):
        raise ClusterModelError(f"{where}/{KEYS_FILE}: mention_keys and cluster_ids must be lists of equal length")
    if not all(isinstance(key, str) for key in keys) or len(set(keys)) != len(keys):
        raise ClusterModelError(f"{where}/{KEYS_FILE}: mention_keys must be distinct strings")
    bad = [i for i in ids if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < k]
    if bad:
        raise ClusterModelError(f"{where}/{KEYS_FILE}: cluster_ids must be in [0, {k - 1}]; got {bad[0]!r}")
    return keys, ids


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
