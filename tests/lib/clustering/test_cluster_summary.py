"""The cluster_summary table and the clusters' dictionary category: lib's pure summary, then the jobs."""

import logging

import numpy as np
import pandas as pd
import pytest
from group_appeal_spark.lib.clustering.summary import SUMMARY_COLUMNS, summarize_clusters

STANCE_COLUMNS = ["share_positive", "share_negative", "share_neutral"]


def frame(rows, categories=None):
    """A clusters frame from (mention_key, mention, count, cluster_id, distance) rows."""
    pdf = pd.DataFrame(rows, columns=["mention_key", "mention", "count", "cluster_id", "distance_to_centroid"])
    if categories is not None:
        pdf["category"] = categories
    return pdf


def stances(rows):
    return pd.DataFrame(rows, columns=["mention_key", "positive", "negative", "neutral"])


CLUSTERS = frame([
    ("women", "women", 4, 0, 0.30),
    ("old women", "old women", 1, 0, 0.10),
    ("working women", "working women", 2, 0, 0.20),
    ("mothers", "mothers", 2, 0, 0.40),
    ("farmers", "farmers", 2, 1, 0.05),
    ("workers", "workers", 2, 1, 0.50),
    ("pensioners", "pensioners", 3, 1, 0.25),
], categories=["women", "women", "workers", None, "farmers", "workers", None])

STANCES = stances([
    ("women", 2, 1, 1), ("old women", 0, 0, 1), ("working women", 1, 1, 0), ("mothers", 2, 0, 0),
    ("farmers", 0, 2, 0), ("workers", 1, 0, 1), ("pensioners", 0, 3, 0),
    ("not clustered", 9, 9, 9),   # a key of mentions/ without a cluster is ignored
])


# --- lib: pure ---------------------------------------------------------------------------------


def test_summary_columns_and_counts():
    out = summarize_clusters(CLUSTERS, STANCES)
    assert list(out.columns) == SUMMARY_COLUMNS
    assert out["cluster_id"].tolist() == [0, 1]
    assert out["n_occurrences"].tolist() == [9, 7]
    assert out["n_unique"].tolist() == [4, 3]
    assert out["top_mentions"].tolist() == [["women", "mothers", "working women", "old women"],
                                            ["pensioners", "farmers", "workers"]]
    assert out["central_mentions"].tolist() == [["old women", "working women", "women", "mothers"],
                                                ["farmers", "pensioners", "workers"]]
    assert str(out["cluster_id"].dtype) == "int32" and str(out["n_occurrences"].dtype) == "int64"


def test_stance_shares_are_of_occurrences_and_sum_to_one():
    out = summarize_clusters(CLUSTERS, STANCES).set_index("cluster_id")
    # cluster 0: positive 2+0+1+2, negative 1+0+1+0, neutral 1+1+0+0 of 9 occurrences
    assert out.loc[0, STANCE_COLUMNS].tolist() == pytest.approx([5 / 9, 2 / 9, 2 / 9])
    assert out.loc[1, STANCE_COLUMNS].tolist() == pytest.approx([1 / 7, 5 / 7, 1 / 7])
    assert np.allclose(out[STANCE_COLUMNS].sum(axis=1), 1.0)


def test_keys_without_stance_counts_count_zero_and_a_cluster_without_any_is_nan():
    out = summarize_clusters(CLUSTERS, STANCES[STANCES["mention_key"].isin(["women", "mothers"])])
    assert out.loc[0, STANCE_COLUMNS].tolist() == pytest.approx([4 / 6, 1 / 6, 1 / 6])
    assert out.loc[1, STANCE_COLUMNS].isna().all()


def test_without_stance_counts_the_shares_are_nan():
    out = summarize_clusters(CLUSTERS)
    assert out[STANCE_COLUMNS].isna().all().all()
    assert out["n_occurrences"].tolist() == [9, 7]


def test_label_is_the_category_only_above_half_of_the_matched_occurrences():
    out = summarize_clusters(CLUSTERS, STANCES).set_index("cluster_id")
    # cluster 0: 5 of its 7 matched occurrences are women (mothers matches nothing)
    assert (out.loc[0, "category"], out.loc[0, "category_share"], out.loc[0, "label"]) == \
        ("women", pytest.approx(5 / 7), "women")
    # cluster 1: farmers 2 and workers 2, a tie won by the name; 0.5 is not more than half
    assert (out.loc[1, "category"], out.loc[1, "category_share"]) == ("farmers", 0.5)
    assert out.loc[1, "label"] == out.loc[1, "central_mentions"][0] == "farmers"
    moved = CLUSTERS.assign(cluster_id=[0, 0, 0, 0, 1, 0, 1])  # workers joins cluster 0
    out = summarize_clusters(moved).set_index("cluster_id")
    assert (out.loc[1, "category"], out.loc[1, "category_share"], out.loc[1, "label"]) == ("farmers", 1.0, "farmers")


def test_a_cluster_without_matches_has_no_category():
    clusters = CLUSTERS.assign(category=["women", None, None, None, None, None, None])
    out = summarize_clusters(clusters, STANCES)
    assert out["category"].tolist() == ["women", None]
    assert out.loc[0, "category_share"] == 1.0 and np.isnan(out.loc[1, "category_share"])
    assert out["label"].tolist() == ["women", "farmers"]


@pytest.mark.parametrize("clusters", [CLUSTERS.drop(columns="category"), CLUSTERS.assign(category=None)],
                         ids=["no category column", "no mention matched"])
def test_without_a_dictionary_the_label_is_the_first_central_mention(clusters):
    out = summarize_clusters(clusters, STANCES)
    assert out["category"].tolist() == [None, None]
    assert out["category_share"].isna().all()
    assert out["label"].tolist() == ["old women", "farmers"]


def test_top_and_central_are_capped_and_ties_go_by_name():
    rows = [(f"k{i:02d}", name, 5 if i < 6 else 1, 3, 1.0 if i % 2 else 0.5)
            for i, name in enumerate("mlkjihgfedcba")]
    out = summarize_clusters(frame(rows))
    assert out["n_unique"].tolist() == [13]
    assert out["top_mentions"][0] == ["h", "i", "j", "k", "l", "m", "a", "b", "c", "d"]
    assert out["central_mentions"][0] == ["a", "c", "e", "g", "i", "k", "m", "b", "d", "f"]
    assert summarize_clusters(frame(rows), n_top=3)["top_mentions"][0] == ["h", "i", "j"]


def test_row_order_does_not_change_the_summary():
    shuffled = CLUSTERS.sample(frac=1.0, random_state=3)
    pd.testing.assert_frame_equal(summarize_clusters(CLUSTERS, STANCES),
                                  summarize_clusters(shuffled, STANCES.sample(frac=1.0, random_state=4)))


@pytest.mark.parametrize("clusters", [frame([]), frame([], categories=[])], ids=["plain", "with category"])
def test_no_clusters_give_an_empty_typed_summary(clusters):
    out = summarize_clusters(clusters, stances([]))
    assert list(out.columns) == SUMMARY_COLUMNS and len(out) == 0
    assert str(out["cluster_id"].dtype) == "int32" and str(out["share_positive"].dtype) == "float64"


@pytest.mark.parametrize("clusters, stance_counts, kwargs, match", [
    (CLUSTERS.drop(columns="count"), None, {}, r"clusters lacks column\(s\) \['count'\]"),
    (pd.concat([CLUSTERS, CLUSTERS.iloc[:1]]), None, {}, r"clusters: mention_key must be unique; duplicated: \['women'\]"),
    (CLUSTERS, STANCES.drop(columns="neutral"), {}, r"stance_counts lacks column\(s\) \['neutral'\]"),
    (CLUSTERS, pd.concat([STANCES, STANCES.iloc[:1]]), {}, "stance_counts: mention_key must be unique"),
    (CLUSTERS, None, {"n_top": 0}, "n_top must be a positive int; got 0"),
    ([1, 2], None, {}, "clusters must be a pandas DataFrame; got list"),
])
def test_bad_input_is_refused(clusters, stance_counts, kwargs, match):
    with pytest.raises(ValueError, match=match):
        summarize_clusters(clusters, stance_counts, **kwargs)


# --- Spark: the cluster job on a hand-built run output -----------------------------------------

DICTIONARY = "women,workers,farmers\nwom*,work*,farm*\n"
# mention -> (count, blob, stances of its occurrences)
HAND = {
    "women": (4, 0, "ppnu"), "old women": (1, 0, "u"), "working women": (2, 0, "pn"), "mothers": (2, 0, "pp"),
    "farmers": (2, 1, "nn"), "workers": (2, 1, "pu"), "pensioners": (3, 1, "nnn"), "the elderly": (1, 1, "u"),
}
STANCE_NAMES = {"p": "positive", "n": "negative", "u": "neutral"}


@pytest.fixture(scope="module")
def hand_output(tmp_path_factory, spark):
    """A run output folder with mention_embeddings/ and mentions/ for two well separated blobs."""
    folder = tmp_path_factory.mktemp("hand") / "run"
    rng = np.random.default_rng(0)
    centers = np.eye(8, dtype=np.float32)[:2]
    emb_rows, mention_rows = [], []
    for i, (mention, (count, blob, stance)) in enumerate(HAND.items()):
        vector = centers[blob] + 0.05 * rng.normal(size=8).astype(np.float32)
        emb_rows.append((mention, mention, count, (vector / np.linalg.norm(vector)).tolist()))
        assert len(stance) == count
        mention_rows += [(f"d{i}-{j}", 0, mention, STANCE_NAMES[s], mention) for j, s in enumerate(stance)]
    spark.createDataFrame(emb_rows, "mention_key string, mention string, count long, embedding array<float>") \
        .write.parquet(str(folder / "mention_embeddings"))
    spark.createDataFrame(mention_rows, "doc_id string, seg_idx int, span string, stance string, mention_key string") \
        .repartition(3).write.parquet(str(folder / "mentions"))
    # a finished detect/run output ends with its completion marker; cluster checks it
    (folder / "_SUCCESS.json").write_text(
        '{"complete": true, "job": "detect", "tables": ["mention_embeddings", "mentions"]}')
    return folder


def expected_summary(clusters: pd.DataFrame, with_stance: bool = True) -> dict:
    """Per blob's cluster, the summary worked out by hand from HAND and the job's own clusters/."""
    out = {}
    for blob in (0, 1):
        names = [m for m, (_, b, _) in HAND.items() if b == blob]
        rows = clusters.set_index("mention").loc[names]
        assert rows["cluster_id"].nunique() == 1, "each blob is one cluster"
        letters = "".join(HAND[m][2] for m in names)
        central = rows.reset_index().sort_values(["distance_to_centroid", "mention"])["mention"].tolist()
        shares = [letters.count(s) / len(letters) for s in "pnu"] if with_stance else [None] * 3
        out[int(rows["cluster_id"].iloc[0])] = {"names": names, "shares": shares, "central": central}
    return out


@pytest.mark.spark
@pytest.mark.parametrize("backend", ["driver", "spark"])
def test_cluster_job_writes_the_summary_and_categories(spark, hand_output, tmp_path, backend):
    from group_appeal_spark.jobs import cluster as cluster_job

    dictionary = tmp_path / "dict.csv"
    dictionary.write_text(DICTIONARY)
    out = tmp_path / "out"
    assert cluster_job.main(["--input", str(hand_output), "--output", str(out), "--n-clusters", "2",
                             "--dictionary", str(dictionary), "--set", f"clustering.backend={backend}",
                             "--master", "local[2]"]) == 0
    clusters = pd.read_parquet(out / "clusters")
    assert list(clusters.columns) == ["mention_key", "mention", "count", "cluster_id", "distance_to_centroid",
                                      "category"]
    assert dict(zip(clusters["mention"], clusters["category"])) == {
        "women": "women", "old women": "women", "working women": "workers", "mothers": None,
        "farmers": "farmers", "workers": "workers", "pensioners": None, "the elderly": None}

    summary = pd.read_parquet(out / "cluster_summary")
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert str(summary["cluster_id"].dtype) == "int32" and str(summary["n_unique"].dtype) == "int64"
    expected = expected_summary(clusters)
    assert sorted(summary["cluster_id"]) == sorted(expected)
    for row in summary.itertuples():
        want = expected[row.cluster_id]
        counts = {m: HAND[m][0] for m in want["names"]}
        assert row.n_occurrences == sum(counts.values())
        assert row.n_unique == len(want["names"])
        assert list(row.top_mentions) == sorted(counts, key=lambda m: (-counts[m], m))
        assert list(row.central_mentions) == want["central"]
        assert [row.share_positive, row.share_negative, row.share_neutral] == pytest.approx(want["shares"])
        if "women" in want["names"]:   # women 5 of 7 matched occurrences
            assert (row.category, row.category_share, row.label) == ("women", pytest.approx(5 / 7), "women")
        else:                          # farmers 2, workers 2: a tie, not a majority
            assert (row.category, row.category_share, row.label) == ("farmers", 0.5, want["central"][0])


@pytest.mark.spark
@pytest.mark.parametrize("arrow", ["true", "false"])
def test_summary_frame_has_nulls_for_nans_with_and_without_arrow(spark, arrow):
    """The table is made from pandas; its NaNs must be nulls either way Spark converts the frame."""
    from group_appeal_spark.jobs.transforms.clusters import _summary_frame

    clusters = CLUSTERS.assign(category=["women", None, None, None, None, None, None])
    summary = summarize_clusters(clusters, None, n_top=2)
    before = spark.conf.get("spark.sql.execution.arrow.pyspark.enabled")
    spark.conf.set("spark.sql.execution.arrow.pyspark.enabled", arrow)
    try:
        rows = sorted(_summary_frame(spark, summary).collect(), key=lambda r: r.cluster_id)
    finally:
        spark.conf.set("spark.sql.execution.arrow.pyspark.enabled", before)
    assert [r.cluster_id for r in rows] == [0, 1]
    assert all(r.share_positive is None and r.share_neutral is None for r in rows)
    assert (rows[0].category, rows[0].category_share) == ("women", 1.0)
    assert (rows[1].category, rows[1].category_share) == (None, None)
    assert [r.top_mentions for r in rows] == [list(v) for v in summary["top_mentions"]]


@pytest.mark.spark
def test_cluster_job_without_mentions_or_dictionary_warns_and_nulls(spark, hand_output, tmp_path, caplog):
    from group_appeal_spark.jobs import cluster as cluster_job

    old = tmp_path / "old"   # an older output: mention_embeddings/ only
    spark.read.parquet(str(hand_output / "mention_embeddings")).write.parquet(str(old / "mention_embeddings"))
    (old / "summary.json").write_text("{}")  # older versions wrote summary.json last, and no marker
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="group_appeal_spark"):
        assert cluster_job.main(["--input", str(old), "--output", str(out), "--n-clusters", "2",
                                 "--master", "local[2]"]) == 0
    assert any("no mentions table" in r.getMessage() and "stance shares are null" in r.getMessage()
               for r in caplog.records)
    clusters = pd.read_parquet(out / "clusters")
    assert clusters["category"].isna().all()
    summary = pd.read_parquet(out / "cluster_summary")
    expected = expected_summary(clusters, with_stance=False)
    assert summary[STANCE_COLUMNS + ["category", "category_share"]].isna().all().all()
    assert summary["n_occurrences"].sum() == sum(c for c, _, _ in HAND.values())
    for row in summary.itertuples():
        assert row.label == row.central_mentions[0] == expected[row.cluster_id]["central"][0]


@pytest.mark.spark
@pytest.mark.parametrize("backend", ["driver", "spark"])
@pytest.mark.parametrize("keep", [[], ["women"]], ids=["no mention", "one mention"])
def test_skipped_clustering_gives_a_summary_row_per_cluster_row(spark, hand_output, tmp_path, backend, keep):
    from group_appeal_spark.jobs.transforms import cluster_mentions, cluster_summary
    from group_appeal_spark.lib.config import load_config
    from pyspark.sql import functions as F

    dictionary = tmp_path / "dict.csv"
    dictionary.write_text(DICTIONARY)
    config = load_config(overrides={"clustering.backend": backend, "clustering.dictionary": str(dictionary)})
    embeddings = spark.read.parquet(str(hand_output / "mention_embeddings"))
    embeddings = embeddings.where(F.col("mention_key").isin(keep)) if keep else embeddings.limit(0)
    mentions = spark.read.parquet(str(hand_output / "mentions"))
    result = cluster_mentions(embeddings, config)
    assert result.best_k is None and result.skipped
    clusters = result.clusters.toPandas()
    summary = cluster_summary(result.clusters, mentions).toPandas()
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert len(summary) == len(clusters) == len(keep)
    if keep:
        assert clusters["category"].tolist() == ["women"]
        row = summary.iloc[0]
        assert (row.cluster_id, row.n_occurrences, row.n_unique) == (0, 4, 1)
        assert list(row.top_mentions) == list(row.central_mentions) == ["women"]
        assert [row.share_positive, row.share_negative, row.share_neutral] == pytest.approx([0.5, 0.25, 0.25])
        assert (row.category, row.category_share, row.label) == ("women", 1.0, "women")


# --- Spark: the run job ------------------------------------------------------------------------


@pytest.mark.spark
def test_run_writes_a_summary_consistent_with_clusters_and_mentions(spark, hub_cache, tmp_path):
    from group_appeal_spark.jobs import run as run_job
    from sentences import sentences

    docs = tmp_path / "docs"
    spark.createDataFrame(pd.DataFrame({"id": [f"d{i:02d}" for i in range(12)], "text": sentences(12, seed=5)})) \
        .write.parquet(str(docs))
    out = tmp_path / "out"
    assert run_job.main(["--input", str(docs), "--output", str(out), "--k-min", "2", "--k-max", "3",
                         "--master", "local[2]"]) == 0
    clusters = pd.read_parquet(out / "clusters")
    mentions = pd.read_parquet(out / "mentions")
    summary = pd.read_parquet(out / "cluster_summary").set_index("cluster_id").sort_index()
    assert list(summary.reset_index().columns) == SUMMARY_COLUMNS
    assert clusters["category"].isna().all()   # no dictionary
    groups = clusters.groupby("cluster_id")
    assert len(summary) >= 2 and summary.index.tolist() == sorted(groups.groups)
    assert summary["n_occurrences"].to_dict() == groups["count"].sum().to_dict()
    assert summary["n_unique"].to_dict() == groups.size().to_dict()
    stance = mentions.merge(clusters[["mention_key", "cluster_id"]], on="mention_key")
    shares = pd.crosstab(stance["cluster_id"], stance["stance"], normalize="index")
    for name in ("positive", "negative", "neutral"):
        want = shares[name] if name in shares else 0.0
        assert np.allclose(summary[f"share_{name}"], want)
    assert summary[["category", "category_share"]].isna().all().all()
    assert (summary["label"] == summary["central_mentions"].map(lambda m: m[0])).all()
    assert summary["top_mentions"].map(len).le(10).all()
