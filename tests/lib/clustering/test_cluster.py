"""Weighted k-means over unique mentions and the k search, against scikit-learn and reference."""

import numpy as np
import pandas as pd
import pytest
from group_appeal_spark.lib.clustering import search as cluster_module
from group_appeal_spark.lib.clustering.dictionary import CategoryMatcher
from group_appeal_spark.lib.clustering.kmeans import DegenerateClusteringWarning, MentionKMeans
from group_appeal_spark.lib.clustering.search import (
    KSearchResult,
    search_k,
    weighted_silhouette_score,
)
from scipy.spatial.distance import cdist
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score, silhouette_score

CATEGORIES = ["women", "workers", "pensioners", "farmers", "students"]


def sphere_blobs(n_unique, n_blobs=5, *, dim=128, spread=0.35, max_count=4, seed=0):
    """Well separated Gaussian blobs on the unit sphere, like L2-normalised embeddings.

    Returns float32 unique rows (n_unique, dim), their occurrence counts (n_unique,) with
    duplicates (counts > 1) and the blob of each row (n_unique,).
    """
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_blobs, dim))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    blob = rng.integers(0, n_blobs, n_unique)
    X = centers[blob] + spread * rng.normal(size=(n_unique, dim)) / np.sqrt(dim)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    counts = rng.integers(1, max_count + 1, n_unique)
    return X.astype(np.float32), counts, blob


def mentions_for(blob, seed=0):
    """One distinct mention per row; most match the blob's category, some none, some another."""
    rng = np.random.default_rng(seed)
    out = []
    for i, b in enumerate(blob):
        roll = rng.random()
        if roll < 0.15:
            out.append(f"group number {i}")
        elif roll < 0.25:
            out.append(f"{CATEGORIES[(b + 1) % len(CATEGORIES)]} {i}")
        else:
            out.append(f"{CATEGORIES[b]} {i}")
    return out


DICTIONARY = pd.DataFrame({name: [name] for name in CATEGORIES})


def canonical(X):
    """Rows sorted by their bytes: the order MentionKMeans fits in by default."""
    keys = np.ascontiguousarray(X).view(np.dtype((np.void, X.dtype.itemsize * X.shape[1])))
    return X[np.argsort(keys.ravel(), kind="stable")]


def same_partition(a, b):
    """Whether two label arrays describe the same partition (label names may differ)."""
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


# --- the reference ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference_clusterer():
    """A GroupMentionClusterer made without its model, whose embed() returns given vectors."""
    torch = pytest.importorskip("torch")
    clustering = pytest.importorskip("group_appeal_detector.clustering")

    def make(X, mentions):
        clusterer = object.__new__(clustering.GroupMentionClusterer)
        clusterer.mentions = list(mentions)
        tensor = torch.from_numpy(np.ascontiguousarray(X))
        clusterer.embed = lambda *args, **kwargs: tensor
        return clusterer

    return make


@pytest.fixture(scope="module")
def points():
    X, counts, blob = sphere_blobs(300, seed=1)
    return X, counts, blob, mentions_for(blob, seed=1)


@pytest.mark.reference
@pytest.mark.parametrize("k", [1, 3, 5, 8])
def test_mention_kmeans_is_the_reference_cluster_call(reference_clusterer, points, k):
    X, _, _, mentions = points
    expected = reference_clusterer(X, mentions).cluster(k, as_df=True)

    ours = MentionKMeans(k, canonical_order=False).fit(X)
    assert np.array_equal(ours.labels_, expected["cluster_id"].to_numpy())
    assert np.array_equal(ours.distances_.astype(np.float64), expected["distance_to_centroid"])

    # In canonical row order (the default), the same bits as the reference on that order,
    # and all-ones weights are the unweighted call.
    X_sorted = canonical(X)
    expected = reference_clusterer(X_sorted, mentions).cluster(k, as_df=True)
    ours = MentionKMeans(k).fit(X_sorted[::-1], sample_weight=np.ones(len(X)))
    assert np.array_equal(ours.labels_[::-1], expected["cluster_id"].to_numpy())
    assert np.array_equal(ours.distances_[::-1].astype(np.float64),
                          expected["distance_to_centroid"])


@pytest.mark.reference
@pytest.mark.parametrize("dtype, tolerance", [(np.float32, 1e-6), (np.float64, 1e-12)])
def test_silhouette_search_is_the_reference_find_optimal_k(
    reference_clusterer, points, dtype, tolerance
):
    X, _, _, mentions = points
    X = X.astype(dtype)
    best_k, scores = reference_clusterer(X, mentions).find_optimal_k(
        k_range=(2, 8), metric="silhouette", visualize=False
    )

    result = search_k(X, k_min=2, k_max=8, canonical_order=False)
    assert result.best_k == best_k
    assert result.scores["k"].tolist() == list(range(2, 9))
    # The reference's scikit-learn silhouette keeps float32 distances for float32 input; ours
    # is float64 throughout, so float32 agrees to float32 rounding and float64 to ~1e-15.
    np.testing.assert_allclose(result.scores["score"], scores, rtol=0, atol=tolerance)
    assert not result.scores["estimated"].any()
    assert (result.scores["n_points"] == len(X)).all()


@pytest.mark.reference
def test_nmi_search_is_the_reference_find_optimal_k(reference_clusterer, points):
    X, _, _, mentions = points
    best_k, scores = reference_clusterer(X, mentions).find_optimal_k(
        k_range=(2, 8), metric="nmi", dictionary_df=DICTIONARY, visualize=False
    )
    categories = CategoryMatcher(DICTIONARY).match_many(mentions)

    result = search_k(X, k_min=2, k_max=8, metric="nmi", categories=categories,
                      canonical_order=False)
    assert result.best_k == best_k
    assert result.scores["score"].tolist() == scores
    assert (result.scores["n_points"] == sum(c is not None for c in categories)).all()


# --- weighted equals expanded ----------------------------------------------------------------


@pytest.fixture(scope="module")
def weighted():
    X, counts, blob = sphere_blobs(600, n_blobs=6, seed=2)
    return X, counts, blob


@pytest.mark.parametrize("k", [3, 6, 9])
def test_weighted_fit_has_the_objective_of_the_expanded_fit(weighted, k):
    X, counts, _ = weighted
    model = MentionKMeans(k).fit(X, sample_weight=counts)
    expanded = np.repeat(X, counts, axis=0).astype(np.float64)
    expanded_labels = np.repeat(model.labels_, counts)

    centers = model.cluster_centers_.astype(np.float64)
    expanded_inertia = ((expanded - centers[expanded_labels]) ** 2).sum()
    assert model.inertia_ == pytest.approx(expanded_inertia, rel=1e-5)
    assert (model.distances_.astype(np.float64) ** 2 @ counts) == pytest.approx(
        expanded_inertia, rel=1e-5)

    # The weighted solution is a fixed point of Lloyd's algorithm on every occurrence.
    lloyd = KMeans(n_clusters=k, init=model.cluster_centers_, n_init=1).fit(
        np.repeat(X, counts, axis=0))
    assert np.array_equal(lloyd.labels_, expanded_labels)
    np.testing.assert_allclose(lloyd.cluster_centers_, model.cluster_centers_, atol=1e-6)


def test_distances_are_to_the_own_centroid(weighted):
    X, counts, _ = weighted
    model = MentionKMeans(6).fit(X, sample_weight=counts)
    own = np.linalg.norm(X - model.cluster_centers_[model.labels_], axis=1)
    np.testing.assert_allclose(model.distances_, own, atol=1e-5)
    assert model.labels_.shape == model.distances_.shape == (len(X),)
    assert model.cluster_centers_.shape == (6, X.shape[1])
    assert model.n_features_in_ == X.shape[1]


@pytest.mark.parametrize("k", [2, 4, 6, 11])
def test_weighted_silhouette_is_the_silhouette_of_every_occurrence(weighted, k):
    X, counts, _ = weighted
    labels = MentionKMeans(k).fit(X, sample_weight=counts).labels_
    expanded = np.repeat(X.astype(np.float64), counts, axis=0)
    expanded_labels = np.repeat(labels, counts)

    ours = weighted_silhouette_score(X, labels, counts)
    assert abs(ours - silhouette_score(expanded, expanded_labels)) <= 1e-9
    # scikit-learn's dot-product distances put ~1e-8 instead of 0 between duplicate
    # occurrences, which is why the line above cannot be tighter; with exact distances the
    # two agree to rounding.
    exact = silhouette_score(cdist(expanded, expanded), expanded_labels, metric="precomputed")
    assert abs(ours - exact) <= 1e-12


def test_weighted_silhouette_edge_clusters():
    X, _, blob = sphere_blobs(40, n_blobs=3, seed=3)
    X = X.astype(np.float64)
    labels = blob.copy()
    counts = np.ones(len(X), dtype=np.int64)
    # A singleton occurrence alone in its cluster scores 0 (as in scikit-learn); a unique
    # row seen three times alone in its cluster has a = 0, hence s = 1 for each occurrence.
    labels[0], labels[1] = 10, 11
    counts[1] = 3
    expected = silhouette_score(np.repeat(X, counts, axis=0), np.repeat(labels, counts))
    assert weighted_silhouette_score(X, labels, counts) == pytest.approx(expected, abs=1e-12)


def test_weighted_silhouette_blocks_do_not_change_the_result(weighted, monkeypatch):
    X, counts, blob = weighted
    whole = weighted_silhouette_score(X, blob, counts)
    # 7 rows per block, with a last block of another size.
    monkeypatch.setattr(cluster_module, "_BLOCK_BYTES", 8 * len(X) * 7)
    assert weighted_silhouette_score(X, blob, counts) == pytest.approx(whole, abs=1e-13)


def test_search_k_scores_every_occurrence(weighted):
    X, counts, blob = weighted
    result = search_k(X, k_min=2, k_max=7, sample_weight=counts)
    expanded = np.repeat(X.astype(np.float64), counts, axis=0)
    for row in result.scores.itertuples():
        labels = MentionKMeans(row.k).fit(X, sample_weight=counts).labels_
        expected = silhouette_score(expanded, np.repeat(labels, counts))
        assert abs(row.score - expected) <= 1e-9
    assert result.best_k == 6
    assert (result.scores["n_points"] == counts.sum()).all()


def test_nmi_counts_every_matching_occurrence(weighted):
    X, counts, blob = weighted
    categories = [None if i % 7 == 0 else f"category {b}" for i, b in enumerate(blob)]
    result = search_k(X, k_min=2, k_max=8, metric="nmi", sample_weight=counts,
                      categories=categories)
    matched = np.array([c is not None for c in categories])
    for row in result.scores.itertuples():
        labels = MentionKMeans(row.k).fit(X, sample_weight=counts).labels_
        expected = normalized_mutual_info_score(
            np.repeat(np.array(categories, dtype=object)[matched], counts[matched]).astype(str),
            np.repeat(labels[matched], counts[matched]),
        )
        assert row.score == pytest.approx(expected, abs=1e-12)
    assert result.best_k == 6
    assert (result.scores["n_points"] == counts[matched].sum()).all()


# --- order, determinism, estimation ----------------------------------------------------------


def test_row_order_does_not_change_fits_or_scores(weighted):
    X, counts, blob = weighted
    categories = [f"category {b}" if b % 3 else None for b in blob]
    perm = np.random.default_rng(4).permutation(len(X))

    for k in (3, 9):
        a = MentionKMeans(k).fit(X, sample_weight=counts)
        b = MentionKMeans(k).fit(X[perm], sample_weight=counts[perm])
        assert same_partition(a.labels_[perm], b.labels_)
        np.testing.assert_allclose(a.distances_[perm], b.distances_, atol=1e-6)

    for metric, kwargs in [
        ("silhouette", {}),
        ("silhouette", {"silhouette_exact_max": 100, "silhouette_sample_size": 500}),
        ("nmi", {}),
    ]:
        first = search_k(X, k_min=2, k_max=7, metric=metric, sample_weight=counts,
                         categories=categories, **kwargs)
        second = search_k(X[perm], k_min=2, k_max=7, metric=metric,
                          sample_weight=counts[perm],
                          categories=[categories[i] for i in perm], **kwargs)
        np.testing.assert_allclose(first.scores["score"], second.scores["score"],
                                   rtol=0, atol=1e-9)
        assert first.best_k == second.best_k


def test_fits_and_searches_are_deterministic(weighted):
    X, counts, _ = weighted
    a = MentionKMeans(5).fit(X, sample_weight=counts)
    b = MentionKMeans(5).fit(X.copy(), sample_weight=counts.copy())
    assert np.array_equal(a.labels_, b.labels_)
    assert np.array_equal(a.distances_, b.distances_)
    assert np.array_equal(a.cluster_centers_, b.cluster_centers_)
    kwargs = dict(k_min=2, k_max=6, sample_weight=counts, silhouette_exact_max=200,
                  silhouette_sample_size=400)
    pd.testing.assert_frame_equal(search_k(X, **kwargs).scores, search_k(X, **kwargs).scores)


def test_estimated_silhouette_is_close_to_the_exact_one(capsys):
    X, counts, _ = sphere_blobs(5000, n_blobs=8, spread=0.6, seed=5)
    kwargs = dict(k_min=5, k_max=10, sample_weight=counts)
    exact = search_k(X, **kwargs)
    estimate = search_k(X, silhouette_exact_max=1000, silhouette_sample_size=2000, **kwargs)

    assert not exact.scores["estimated"].any()
    assert (exact.scores["n_points"] == counts.sum()).all()
    assert estimate.scores["estimated"].all()
    assert (estimate.scores["n_points"] == 2000).all()
    error = np.abs(estimate.scores["score"] - exact.scores["score"]).max()
    with capsys.disabled():
        print(f"\nsilhouette estimated on 2000 of {counts.sum()} occurrences "
              f"(5000 unique rows): max |error| over k=5..10 = {error:.4f}")
    assert error < 0.02
    assert estimate.best_k == exact.best_k == 8


# --- the score table and its callbacks -------------------------------------------------------


def test_score_table_types_and_progress(weighted):
    X, counts, _ = weighted
    seen = []
    result = search_k(X, k_min=3, k_max=5, sample_weight=counts,
                      progress=lambda k, score, seconds: seen.append((k, score, seconds)))
    assert isinstance(result, KSearchResult)
    assert list(result.scores.columns) == ["k", "metric", "score", "estimated", "n_points"]
    assert result.scores.dtypes.astype(str).tolist() == [
        "int64", "object", "float64", "bool", "int64"]
    assert result.scores["metric"].tolist() == ["silhouette"] * 3
    assert [k for k, _, _ in seen] == [3, 4, 5]
    assert [score for _, score, _ in seen] == result.scores["score"].tolist()
    assert all(seconds > 0 for _, _, seconds in seen)
    assert isinstance(result.best_k, int)


def test_best_k_is_the_first_of_equal_scores(weighted, monkeypatch):
    X, _, _ = weighted
    scores = iter([0.2, 0.5, float("nan"), 0.5, 0.1])
    monkeypatch.setattr(cluster_module, "_silhouette_or_nan", lambda *args: next(scores))
    result = search_k(X, k_min=2, k_max=6)
    assert result.best_k == 3


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_undefined_silhouette_is_nan_and_all_undefined_keeps_the_smallest_k():
    """Identical embeddings: every k's silhouette is undefined; the smallest k is kept, with a warning
    (issue 17.4: this once raised after all the model work of a run)."""
    X = np.tile(np.eye(4, dtype=np.float32)[:1], (6, 1))
    with pytest.warns(DegenerateClusteringWarning) as caught:
        result = search_k(X, k_min=2, k_max=3)
    assert result.best_k == 2 and result.scores["score"].isna().all()
    messages = [str(warning.message) for warning in caught]
    assert any("no k in [2, 3] gives a defined silhouette score (see the warnings above); keeping the "
               "smallest, k=2" in message for message in messages)
    assert sum("X has 1 distinct rows" in message for message in messages) == 2
    assert sum("silhouette undefined with 1 distinct clusters" in message
               for message in messages) == 2


@pytest.mark.parametrize(
    "X, k, match",
    [
        (np.repeat(np.eye(3), [2, 2, 1], axis=0), 4, "3 distinct rows and 3 of the 4 clusters"),
        (np.repeat(np.eye(2), 3, axis=0), 2, None),
    ],
)
def test_degenerate_fit_warns(X, k, match, recwarn):
    MentionKMeans(k).fit(X)
    ours = [w for w in recwarn if issubclass(w.category, DegenerateClusteringWarning)]
    if match is None:
        assert not ours
    else:
        assert len(ours) == 1 and match in str(ours[0].message)


# --- bad input -------------------------------------------------------------------------------

GOOD_X = sphere_blobs(6, n_blobs=2, seed=6)[0]


@pytest.mark.parametrize(
    "X, k, weights, error, match",
    [
        (GOOD_X[0], 2, None, ValueError, r"X must be 2-D .*got 1-D with shape \(128,\)"),
        (GOOD_X[None], 2, None, ValueError, "got 3-D"),
        (np.ones((6, 3), dtype=int), 2, None, TypeError, "X must hold floats.*got dtype int64"),
        (np.array([[1.0, None]]), 1, None, TypeError, "got dtype object"),
        (np.empty((0, 3)), 1, None, ValueError, r"at least one row .*got shape \(0, 3\)"),
        (np.where(np.eye(6, 3) > 0, np.nan, 0.5), 2, None, ValueError,
         "NaN or inf in 3 rows, the first at row 0"),
        (np.array([[0.0, 1.0], [np.inf, 0.0]]), 1, None, ValueError, "first at row 1"),
        (GOOD_X, 0, None, ValueError, r"n_clusters must be in \[1, 6\] .*got 0"),
        (GOOD_X, 7, None, ValueError, r"n_clusters must be in \[1, 6\] \(6 = the number"),
        (GOOD_X, 2.0, None, TypeError, "n_clusters must be an int; got float 2.0"),
        (GOOD_X, True, None, TypeError, "got bool True"),
        (GOOD_X, 2, np.ones(5), ValueError, r"expected shape \(6,\), got \(5,\)"),
        (GOOD_X, 2, np.ones((6, 1)), ValueError, r"got \(6, 1\)"),
        (GOOD_X, 2, [1, 1, 0, 1, 1, 1], ValueError, "positive and finite; got 0 at row 2"),
        (GOOD_X, 2, [1, 1, 1, 1, -2, 1], ValueError, "got -2 at row 4"),
        (GOOD_X, 2, [1, 1, 1, 1, 1, np.nan], ValueError, "got nan at row 5"),
        (GOOD_X, 2, ["1"] * 6, TypeError, "sample_weight must be numeric"),
    ],
)
def test_fit_refuses_bad_input(X, k, weights, error, match):
    with pytest.raises(error, match=match):
        MentionKMeans(k).fit(X, sample_weight=weights)


def test_fit_refuses_a_bad_seed():
    with pytest.raises(TypeError, match="random_state must be an int or None; got str '42'"):
        MentionKMeans(2, random_state="42").fit(GOOD_X)


def test_init_only_stores():
    model = MentionKMeans("not checked yet", random_state=None)
    assert model.n_clusters == "not checked yet" and model.random_state is None
    assert not hasattr(model, "labels_")


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"metric": "euclidean"}, ValueError,
         r"metric must be one of \['silhouette', 'nmi'\]; got 'euclidean'"),
        ({"metric": None}, ValueError, "got None"),
        ({"k_min": 1}, ValueError, "k_min must be at least 2; got k_min=1"),
        ({"k_min": 4, "k_max": 3}, ValueError, "got k_min=4 > k_max=3"),
        ({"k_max": 7}, ValueError, r"number of unique rows of X \(6\); got k_max=7"),
        ({"k_min": 2.0}, TypeError, "k_min must be an int; got float 2.0"),
        ({"k_max": "3"}, TypeError, "k_max must be an int; got str '3'"),
        ({"sample_weight": [1, 2, 1.5, 1, 1, 1]}, ValueError,
         "whole occurrence counts; got 1.5 at row 2"),
        ({"sample_weight": [1, 2, 3]}, ValueError, r"expected shape \(6,\), got \(3,\)"),
        ({"silhouette_exact_max": 0}, ValueError, r"silhouette_exact_max must be in \[1, inf\)"),
        ({"silhouette_sample_size": 1}, ValueError, "silhouette_sample_size must be in"),
        ({"progress": "print"}, TypeError, "progress must be callable or None; got str"),
        ({"random_state": 4.2}, TypeError, "random_state must be an int or None"),
        ({"metric": "nmi"}, ValueError, "metric='nmi' needs categories"),
        ({"metric": "nmi", "categories": ["women"] * 5}, ValueError,
         "one entry per row of X: expected 6, got 5"),
    ],
)
def test_search_k_refuses_bad_input(kwargs, error, match):
    arguments = {"k_min": 2, "k_max": 3, **kwargs}
    with pytest.raises(error, match=match):
        search_k(GOOD_X, **arguments)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_nmi_without_any_dictionary_match_scores_nan_and_keeps_the_smallest_k(weighted):
    """No mention in the dictionary: NMI is undefined for every k, not an error after the models ran."""
    X, counts, _ = weighted
    with pytest.warns(DegenerateClusteringWarning) as caught:
        result = search_k(X, k_min=2, k_max=4, metric="nmi", sample_weight=counts,
                          categories=[None, np.nan] * (len(X) // 2))
    assert result.best_k == 2 and result.scores["score"].isna().all()
    assert (result.scores["n_points"] == 0).all() and list(result.scores["k"]) == [2, 3, 4]
    assert any("no mention matches the dictionary" in str(w.message) for w in caught)
