"""Error of the sampled silhouette estimate against the exact one, on 10,000 unique mentions.

    python bench/silhouette_error.py

Unit vectors in 128-d around 40 centres, occurrence counts drawn from a Zipf-like law (as
mention counts are), k-means fitted as in the k search; the exact count-weighted silhouette
against the estimate on the default sample of 10,000 occurrences drawn in proportion to counts.
"""

import time

import numpy as np
from group_appeal_spark.lib.clustering.kmeans import MentionKMeans
from group_appeal_spark.lib.clustering.search import search_k, weighted_silhouette_score


def main():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(40, 128))
    X = centres[rng.integers(0, 40, 10_000)] + rng.normal(scale=0.8, size=(10_000, 128))
    X = (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)
    counts = np.minimum(rng.zipf(1.8, 10_000), 500).astype(float)
    print(f"{len(X):,} unique mentions, {int(counts.sum()):,} occurrences")
    for k in (5, 10, 20, 30):
        labels = MentionKMeans(k).fit(X, sample_weight=counts).labels_
        t0 = time.perf_counter()
        exact = weighted_silhouette_score(X, labels, counts)
        t_exact = time.perf_counter() - t0
        t0 = time.perf_counter()
        est = search_k(X, k_min=k, k_max=k, sample_weight=counts, silhouette_exact_max=1)
        t_est = time.perf_counter() - t0
        score = float(est.scores["score"].iloc[0])
        print(f"k={k:2d}: exact {exact:.4f} ({t_exact:.1f} s)  estimated {score:.4f} "
              f"(fit + estimate {t_est:.1f} s)  |error| {abs(score - exact):.4f}")


if __name__ == "__main__":
    main()
