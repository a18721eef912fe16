"""The rules on k both clustering backends share: no clustering below 2 unique mentions, a fixed
k, k_max lowered to the number of unique mentions, and the search skipped when k_min exceeds it.

The pure tests call lib's ``plan_clustering``; the Spark tests go through ``cluster_mentions``
(both backends) and the ``cluster`` job on small hand-made embedding tables.
"""

import json
import logging
import warnings

import numpy as np
import pandas as pd
import pytest
from group_appeal_spark.lib.clustering.rules import ClusteringPlan, plan_clustering

LOWERED = "k search: k_max {k_max} lowered to {n}, the number of unique mentions"


# --- the rules, without Spark -------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1])
def test_below_two_unique_mentions_there_is_no_clustering(n):
    reason = f"only {n} unique mention(s); clustering needs at least 2"
    for n_clusters in (None, 3):
        plan = plan_clustering(n, k_min=2, k_max=30, n_clusters=n_clusters)
        assert plan == ClusteringPlan(n, None, None, None, reason, (f"clustering skipped: {reason}",))
        assert not plan.clusters and not plan.searches


@pytest.mark.parametrize("n_clusters, n, expected", [(3, 10, 3), (10, 10, 10), (12, 5, 5), (1, 4, 1)])
def test_fixed_k_is_clamped_to_the_unique_mentions_and_skips_the_search(n_clusters, n, expected):
    # k_min above n and k_max below it: neither matters once k is fixed, and nothing is logged
    plan = plan_clustering(n, k_min=7, k_max=8, n_clusters=n_clusters)
    assert plan == ClusteringPlan(n, expected, None, None, None, ())
    assert plan.clusters and not plan.searches


def test_search_over_the_configured_range():
    plan = plan_clustering(100, k_min=2, k_max=30)
    assert plan == ClusteringPlan(100, None, 2, 30, None, ())
    assert plan.clusters and plan.searches


@pytest.mark.parametrize("n, k_min, k_max", [(4, 2, 30), (5, 5, 6), (2, 2, 3)])
def test_k_max_is_lowered_to_the_unique_mentions(n, k_min, k_max):
    plan = plan_clustering(n, k_min=k_min, k_max=k_max)
    assert plan == ClusteringPlan(n, None, k_min, n, None, (LOWERED.format(k_max=k_max, n=n),))


def test_k_max_equal_to_the_unique_mentions_is_kept_without_a_warning():
    assert plan_clustering(6, k_min=2, k_max=6) == ClusteringPlan(6, None, 2, 6, None, ())


@pytest.mark.parametrize("n, k_min, k_max", [(3, 5, 10), (2, 3, 3), (4, 5, 5)])
def test_search_is_skipped_when_k_min_exceeds_the_unique_mentions(n, k_min, k_max):
    plan = plan_clustering(n, k_min=k_min, k_max=k_max)
    reason = f"k_min {k_min} exceeds the {n} unique mentions"
    assert plan == ClusteringPlan(n, n, None, None, reason, (
        LOWERED.format(k_max=k_max, n=n), f"k search skipped: {reason}; clustering with k={n}"))
    assert plan.clusters and not plan.searches


@pytest.mark.parametrize("kwargs, error, match", [
    ({"n_unique": -1}, ValueError, r"n_unique must be in \[0, inf\); got -1"),
    ({"n_unique": 2.0}, TypeError, "n_unique must be an int; got float 2.0"),
    ({"k_min": 1}, ValueError, r"k_min must be in \[2, inf\); got 1"),
    ({"k_min": 5, "k_max": 4}, ValueError, r"k_max must be in \[5, inf\); got 4"),
    ({"k_max": True}, TypeError, "k_max must be an int; got bool True"),
    ({"n_clusters": 0}, ValueError, r"n_clusters must be in \[1, inf\); got 0"),
    ({"n_clusters": "3"}, TypeError, "n_clusters must be an int; got str '3'"),
])
def test_bad_inputs_are_named_with_their_value(kwargs, error, match):
    args = {"n_unique": 10, "k_min": 2, "k_max": 30, **kwargs}
    with pytest.raises(error, match=match):
        plan_clustering(args.pop("n_unique"), **args)


# --- through cluster_mentions and the cluster job -------------------------------------------

BACKENDS = ["driver", "spark"]
SCHEMA = "mention_key string, mention string, count long, embedding array<float>"
CLUSTER_COLUMNS = ["mention_key", "mention", "count", "cluster_id", "distance_to_centroid", "category"]


def _rows(n, dim=4, seed=0):
    """n distinct mentions around three well separated centres, with counts 1..3."""
    rng = np.random.default_rng(seed)
    centres = np.eye(dim)[:3] * 10
    X = centres[np.arange(n) % 3] + rng.normal(scale=0.1, size=(n, dim))
    return [(f"key{i:02d}", f"mention {i}", int(i % 3 + 1), [float(v) for v in X[i]]) for i in range(n)]


def _embeddings(spark, n, **kwargs):
    return spark.createDataFrame(_rows(n, **kwargs), SCHEMA)


def _cluster(embeddings, **overrides):
    from group_appeal_spark.jobs.transforms import cluster_mentions
    from group_appeal_spark.lib.config import load_config

    overrides = {f"clustering.{key}": value for key, value in overrides.items()}
    return cluster_mentions(embeddings, load_config(overrides=overrides))


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "group_appeal_spark" and r.levelno == logging.WARNING]


@pytest.mark.spark
@pytest.mark.parametrize("backend", BACKENDS)
def test_fixed_k_has_no_k_search_and_that_many_clusters(spark, backend, caplog):
    with caplog.at_level(logging.WARNING, logger="group_appeal_spark"):
        result = _cluster(_embeddings(spark, 9), n_clusters=3, k_min=2, k_max=4, backend=backend)
    clusters = result.clusters.toPandas().sort_values("mention_key").reset_index(drop=True)
    assert result.best_k == 3 and result.skipped is None
    assert result.k_search.count() == 0
    assert list(clusters.columns) == CLUSTER_COLUMNS
    assert clusters["mention_key"].tolist() == [f"key{i:02d}" for i in range(9)]
    assert sorted(clusters["cluster_id"].unique()) == [0, 1, 2]
    # the three centres come out as the three clusters
    assert clusters.groupby(np.arange(9) % 3)["cluster_id"].nunique().tolist() == [1, 1, 1]
    assert (clusters["distance_to_centroid"] < 1).all()
    assert _warnings(caplog) == []


@pytest.mark.spark
@pytest.mark.parametrize("backend", BACKENDS)
def test_fixed_k_above_the_unique_mentions_is_clamped(spark, backend):
    result = _cluster(_embeddings(spark, 3), n_clusters=5, backend=backend)
    clusters = result.clusters.toPandas()
    assert result.best_k == 3 and result.skipped is None and result.k_search.count() == 0
    assert sorted(clusters["cluster_id"]) == [0, 1, 2]
    assert np.allclose(clusters["distance_to_centroid"], 0.0, atol=1e-5)  # float32 embeddings


@pytest.mark.spark
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n", [0, 1])
def test_clustering_is_skipped_below_two_unique_mentions(spark, backend, n, caplog):
    reason = f"only {n} unique mention(s); clustering needs at least 2"
    with caplog.at_level(logging.WARNING, logger="group_appeal_spark"):
        result = _cluster(_embeddings(spark, n), backend=backend)
    assert result.skipped == reason and result.best_k is None
    assert _warnings(caplog) == [f"clustering skipped: {reason}"]
    assert result.k_search.count() == 0
    assert [f.name for f in result.k_search.schema.fields] == ["k", "metric", "score", "estimated", "n_points",
                                                                "chosen"]
    assert result.clusters.schema.simpleString() == (
        "struct<mention_key:string,mention:string,count:bigint,cluster_id:int,distance_to_centroid:double,"
        "category:string>")
    expected = pd.DataFrame({"mention_key": ["key00"], "mention": ["mention 0"], "count": [1], "cluster_id": [0],
                             "distance_to_centroid": [0.0], "category": [None]}).iloc[:n]
    got = result.clusters.toPandas()
    assert got.to_dict("records") == expected.to_dict("records")


@pytest.mark.spark
@pytest.mark.parametrize("backend", BACKENDS)
def test_k_max_is_lowered_to_the_unique_mentions_in_the_k_search(spark, backend, caplog):
    with caplog.at_level(logging.WARNING, logger="group_appeal_spark"):
        result = _cluster(_embeddings(spark, 4), k_min=2, k_max=30, backend=backend)
    scores = result.k_search.toPandas().sort_values("k")
    assert scores["k"].tolist() == [2, 3, 4]
    assert scores["chosen"].sum() == 1 and result.best_k == int(scores.loc[scores["chosen"], "k"].iloc[0])
    assert result.best_k == int(scores.loc[scores["score"].idxmax(), "k"])
    assert result.skipped is None
    assert _warnings(caplog) == [LOWERED.format(k_max=30, n=4)]
    assert result.clusters.toPandas()["cluster_id"].nunique() == result.best_k


@pytest.mark.spark
@pytest.mark.parametrize("backend", BACKENDS)
def test_k_search_is_skipped_when_k_min_exceeds_the_unique_mentions(spark, backend, caplog):
    with caplog.at_level(logging.WARNING, logger="group_appeal_spark"):
        result = _cluster(_embeddings(spark, 3), k_min=5, k_max=6, backend=backend)
    reason = "k_min 5 exceeds the 3 unique mentions"
    assert result.skipped == reason and result.best_k == 3 and result.k_search.count() == 0
    assert _warnings(caplog) == [LOWERED.format(k_max=6, n=3), f"k search skipped: {reason}; clustering with k=3"]
    assert sorted(result.clusters.toPandas()["cluster_id"]) == [0, 1, 2]


@pytest.mark.spark
def test_cluster_job_with_a_fixed_number_of_clusters(spark, tmp_path):
    from group_appeal_spark.jobs import cluster as cluster_job

    source, out = tmp_path / "in", tmp_path / "out"
    _embeddings(spark, 9).write.parquet(str(source / "mention_embeddings"))
    # a finished detect/run output ends with its completion marker; cluster checks it
    (source / "_SUCCESS.json").write_text('{"complete": true, "job": "detect", "tables": ["mention_embeddings"]}')
    assert cluster_job.main(["--input", str(source), "--output", str(out), "--n-clusters", "3",
                             "--master", "local[2]"]) == 0
    clusters = pd.read_parquet(out / "clusters").sort_values("mention_key").reset_index(drop=True)
    assert list(clusters.columns) == CLUSTER_COLUMNS
    assert clusters["mention_key"].tolist() == [f"key{i:02d}" for i in range(9)]
    assert sorted(clusters["cluster_id"].unique()) == [0, 1, 2]
    assert clusters.groupby(np.arange(9) % 3)["cluster_id"].nunique().tolist() == [1, 1, 1]
    assert len(pd.read_parquet(out / "k_search")) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["chosen_k"] == 3 and summary["clustering_skipped"] is None and summary["metric"] is None
    assert summary["config"]["clustering"]["n_clusters"] == 3


@pytest.mark.spark
@pytest.mark.parametrize("backend", BACKENDS)
def test_two_mentions_seen_once_each_are_clustered_not_a_crash(spark, backend):
    """Issue 17.4: silhouette is undefined for every k of [2, 2]; the run keeps k=2 instead of failing."""
    rows = [("a", "farmers", 1, [1.0, 0.0]), ("b", "nurses", 1, [0.0, 1.0])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = _cluster(spark.createDataFrame(rows, SCHEMA), k_min=2, k_max=3, backend=backend)
    assert result.best_k == 2 and result.skipped is None
    assert sorted(result.clusters.toPandas()["cluster_id"]) == [0, 1]
    assert result.k_search.count() == 1


@pytest.mark.spark
@pytest.mark.parametrize("backend", BACKENDS)
def test_nmi_with_no_mention_in_the_dictionary_keeps_the_smallest_k(spark, backend, tmp_path):
    dictionary = tmp_path / "dict.csv"
    dictionary.write_text("health,farming\nsurgeons,growers\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = _cluster(_embeddings(spark, 9), metric="nmi", dictionary=str(dictionary), k_min=2, k_max=4,
                          backend=backend)
    scores = result.k_search.toPandas()
    assert result.best_k == 2 and scores["score"].isna().all() and len(scores) == 3
    assert any("no mention matches the dictionary" in str(w.message) for w in caught)
