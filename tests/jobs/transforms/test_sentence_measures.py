"""aggregates/'s per-sentence measures and its complete panel, on a hand-counted example."""

import math

import pytest

from group_appeal_spark.jobs.transforms.aggregates import group_aggregates

# d1 (A): 3 segments, mentions in segments 0 and 2; d2 (A): 2 segments, none; d3 (B): 4 segments,
# mentions in segment 1; d4 (B) failed; d5 (C): 1 segment, no mention
DOCS = [("d1", "A", 3, 2, None), ("d2", "A", 2, 0, None), ("d3", "B", 4, 1, None), ("d4", "B", 0, 0, "input: empty"),
        ("d5", "C", 1, 0, None)]
MENTIONS = [("d1", "A", 0, "women", "positive"), ("d1", "A", 0, "farmers", "negative"),
            ("d1", "A", 2, "women", "positive"), ("d1", "A", 2, "mothers", "neutral"),
            ("d3", "B", 1, "farmers", "negative"), ("d3", "B", 1, "farmers", "positive")]
CLUSTERS = [("women", 0), ("mothers", 0), ("farmers", 1)]
COLUMNS = ["mentions", "positive", "negative", "neutral", "documents", "segments", "segments_with_mentions",
           "share_segments_with_mentions", "segments_with_any_mention", "share_segments_with_any_mention",
           "net_stance"]
# by hand: A has 2 documents and 5 segments, 2 of them with a mention (0.4); B 1 document (d4
# failed), 4 segments, 1 with a mention; C 1 document, 1 segment, none
BY_PARTY = {
    ("A", 0): [3, 2, 0, 1, 2, 5, 2, 0.4, 2, 0.4, 2 / 3],     # d1 s0, d1 s2
    ("A", 1): [1, 0, 1, 0, 2, 5, 1, 0.2, 2, 0.4, -1.0],      # d1 s0
    ("B", 1): [2, 1, 1, 0, 1, 4, 1, 0.25, 1, 0.25, 0.0],     # d3 s1 (two mentions, one segment)
}
PANEL_ZEROS = {
    ("B", 0): [0, 0, 0, 0, 1, 4, 0, 0.0, 1, 0.25, None],
    ("C", 0): [0, 0, 0, 0, 1, 1, 0, 0.0, 0, 0.0, None],
    ("C", 1): [0, 0, 0, 0, 1, 1, 0, 0.0, 0, 0.0, None],
}
# without groups: 4 documents, 10 segments, 3 with a mention (d1 s0, d1 s2, d3 s1)
OVERALL = {
    (None, 0): [3, 2, 0, 1, 4, 10, 2, 0.2, 3, 0.3, 2 / 3],
    (None, 1): [3, 1, 2, 0, 4, 10, 2, 0.2, 3, 0.3, -1 / 3],
}


@pytest.fixture(scope="module")
def frames(spark):
    mentions = spark.createDataFrame(MENTIONS, "doc_id string, party string, seg_idx int, mention_key string, "
                                               "stance string")
    clusters = spark.createDataFrame(CLUSTERS, "mention_key string, cluster_id int")
    summary = spark.createDataFrame([(0, "women"), (1, "farmers")], "cluster_id int, label string")
    documents = spark.createDataFrame(DOCS, "doc_id string, party string, n_segments int, "
                                            "n_segments_with_mentions int, error string")
    return mentions, clusters, summary, documents


def _rows(table, groups):
    rows = {}
    for r in table.collect():
        key = (r["party"] if groups else None, r["cluster_id"])
        rows[key] = [r[c] for c in COLUMNS]
    return rows


def _same(got, expected):
    assert got.keys() == expected.keys()
    for key in expected:
        for column, a, b in zip(COLUMNS, got[key], expected[key]):
            assert (a is None and b is None) or math.isclose(a, b, abs_tol=1e-12), (key, column, a, b)


@pytest.mark.spark
@pytest.mark.parametrize("panel", [False, True])
def test_per_sentence_measures_by_hand(frames, panel):
    table = group_aggregates(*frames, ["party"], complete_panel=panel)
    assert table.columns == ["party", "cluster_id", "label", *COLUMNS[:4], *COLUMNS[4:]]
    _same(_rows(table, True), {**BY_PARTY, **(PANEL_ZEROS if panel else {})})
    labels = {r["cluster_id"]: r["label"] for r in table.collect()}
    assert labels == {0: "women", 1: "farmers"}


@pytest.mark.spark
@pytest.mark.parametrize("panel", [False, True])
def test_per_sentence_measures_without_groups(frames, panel):
    _same(_rows(group_aggregates(*frames, [], complete_panel=panel), False), OVERALL)


@pytest.mark.spark
def test_a_mention_outside_the_clusters_keeps_its_row_in_the_panel(spark, frames):
    mentions, clusters, summary, documents = frames
    extra = spark.createDataFrame([("d2", "A", 1, "nurses", "neutral")], mentions.schema)
    got = _rows(group_aggregates(mentions.unionByName(extra), clusters, summary, documents, ["party"],
                                 complete_panel=True), True)
    assert got[("A", None)][:4] == [1, 0, 0, 1] and got[("A", None)][6] == 1
    assert sum(v[0] for v in got.values()) == len(MENTIONS) + 1  # every mention counted once
