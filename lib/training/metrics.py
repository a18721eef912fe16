"""How a training run is scored on held-out terms: fixed triplets, triplet accuracy, k-means NMI.

Numpy and scikit-learn only: the scores are computed on embeddings, not on a model.
"""

from __future__ import annotations

import numpy as np
from group_appeal_spark.lib.training.terms import TrainingTerms

__all__ = ["VALIDATION_TRIPLETS_PER_ANCHOR", "validation_triplets", "triplet_accuracy", "clustering_nmi"]

# Validation triplets drawn per held-out anchor: enough that one unlucky draw moves the accuracy
# of a 40-category dictionary by well under a percent.
VALIDATION_TRIPLETS_PER_ANCHOR = 10


def validation_triplets(terms: TrainingTerms, seed: int, per_anchor: int = VALIDATION_TRIPLETS_PER_ANCHOR):
    """Fixed evaluation triplets over ``all terms = validation terms + training terms``.

    Returns
    -------
    all_terms : list of str, shape (n,)
    triplets : ndarray, shape (m, 3), int
        Rows ``(anchor, positive, negative)`` of indices into ``all_terms``; anchors are
        held-out terms, positives other terms of their category, negatives terms of others.
    """
    val_terms, val_labels = terms.flat("validation")
    train_terms, train_labels = terms.flat("train")
    all_terms = val_terms + train_terms
    labels = np.concatenate([val_labels, train_labels])
    rng = np.random.default_rng([seed, 1])
    rows = []
    for anchor in range(len(val_terms)):
        same = np.flatnonzero((labels == labels[anchor]) & (np.arange(len(labels)) != anchor))
        other = np.flatnonzero(labels != labels[anchor])
        positives = rng.choice(same, size=per_anchor, replace=True)
        negatives = rng.choice(other, size=per_anchor, replace=True)
        rows += [(anchor, int(p), int(n)) for p, n in zip(positives, negatives)]
    return all_terms, np.asarray(rows, dtype=np.int64).reshape(-1, 3)


def triplet_accuracy(embeddings: np.ndarray, triplets: np.ndarray, margin: float) -> tuple[float, float]:
    """Share of triplets with ``d(a, p) < d(a, n)``, and their mean triplet loss.

    Parameters
    ----------
    embeddings : ndarray, shape (n, d)
    triplets : ndarray, shape (m, 3)
        ``(anchor, positive, negative)`` row indices.
    margin : float

    Returns
    -------
    accuracy, loss : float
    """
    if len(triplets) == 0:
        return float("nan"), float("nan")
    a, p, n = (embeddings[triplets[:, i]] for i in range(3))
    d_ap = np.linalg.norm(a - p, axis=1)
    d_an = np.linalg.norm(a - n, axis=1)
    return float(np.mean(d_ap < d_an)), float(np.mean(np.maximum(d_ap - d_an + margin, 0.0)))


def clustering_nmi(embeddings: np.ndarray, labels: np.ndarray) -> float | None:
    """NMI of ``KMeans(k = number of labels, random_state=42, n_init="auto")`` against ``labels``.

    Parameters
    ----------
    embeddings : ndarray, shape (n, d)
    labels : ndarray, shape (n,)

    Returns
    -------
    float or None
        None when there are fewer than two categories or fewer points than categories.
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score

    k = len(np.unique(labels))
    if k < 2 or len(labels) <= k:
        return None
    clusters = KMeans(n_clusters=k, random_state=42, n_init="auto").fit_predict(embeddings)
    return float(normalized_mutual_info_score(labels, clusters))

