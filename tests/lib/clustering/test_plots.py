"""Plots written to files, and skipped with a warning when their library is missing."""

import logging
import sys

import numpy as np
import pandas as pd
import pytest
from group_appeal_spark.lib.clustering import plots
from group_appeal_spark.lib.clustering.plots import plot_cluster_boxplot, plot_k_scores

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def k_scores(estimated=False, metric="silhouette"):
    return pd.DataFrame({
        "k": [2, 3, 4, 5],
        "metric": [metric] * 4,
        "score": [0.21, 0.48, 0.33, 0.30],
        "estimated": [estimated] * 4,
        "n_points": [120] * 4,
    })


def clusters(sizes=(5, 3, 8), seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for cluster_id, size in enumerate(sizes):
        for i in range(size):
            rows.append({"mention": f"mention{cluster_id}x{i}", "cluster_id": cluster_id,
                         "distance_to_centroid": float(rng.uniform(0.1, 0.9))})
    return pd.DataFrame(rows)


def test_k_scores_png_is_written(tmp_path):
    path = plot_k_scores(k_scores(), 3, tmp_path / "plots" / "k_scores.png")
    assert path == tmp_path / "plots" / "k_scores.png"
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000


@pytest.mark.parametrize(
    "estimated, metric, title",
    [
        (False, "silhouette", "Silhouette score across k (exact, over all occurrences)"),
        (True, "silhouette", "Silhouette score across k (estimated on a sample of occurrences)"),
        (False, "nmi", "NMI score across k (exact, over all occurrences)"),
    ],
)
def test_k_scores_title_and_best_k(estimated, metric, title):
    figure = plots._k_scores_figure(k_scores(estimated, metric), 3)
    axes = figure.axes[0]
    assert axes.get_title() == title
    line, marker = axes.get_lines()
    assert line.get_xdata().tolist() == [2, 3, 4, 5]
    assert list(marker.get_xdata()) == [3, 3]
    assert axes.get_legend().get_texts()[0].get_text() == "best k = 3"


def test_k_scores_leave_the_pyplot_backend_alone(tmp_path):
    import matplotlib

    before = matplotlib.get_backend()
    plot_k_scores(k_scores(), 3, tmp_path / "k.png")
    assert matplotlib.get_backend() == before


def test_cluster_boxplot_html_is_standalone_and_has_every_mention(tmp_path):
    frame = clusters()
    path = plot_cluster_boxplot(frame, tmp_path / "clusters.html")
    page = path.read_text(encoding="utf-8")
    for mention in frame["mention"]:
        assert mention in page
    assert "Cluster 2" in page
    # plotly.js is inlined (several MB), not loaded from a CDN: the page opens offline.
    assert len(page) > 1_000_000
    assert '<script src="https://cdn.plot.ly' not in page


def test_cluster_boxplot_boxes_use_all_rows_and_points_are_capped():
    frame = clusters(sizes=(50, 4))
    figure = plots._cluster_box_figure(frame, "mention", "cluster_id",
                                       "distance_to_centroid", 10)
    box, points, small_box, small_points = figure.data
    distances = frame.loc[frame["cluster_id"] == 0, "distance_to_centroid"].to_numpy()
    q1, median, q3 = np.quantile(distances, [0.25, 0.5, 0.75])
    assert (box.q1[0], box.median[0], box.q3[0]) == pytest.approx((q1, median, q3))
    assert len(points.y) == 10
    assert min(points.y) == distances.min() and max(points.y) == distances.max()
    assert len(small_points.y) == 4 and small_box.x == (1,)
    assert points.text[0].startswith("mention0x")


def test_cluster_boxplot_hover_text_is_escaped():
    frame = pd.DataFrame({"mention": ["<3 fans & friends"], "cluster_id": [0],
                          "distance_to_centroid": [0.5]})
    figure = plots._cluster_box_figure(frame, "mention", "cluster_id",
                                       "distance_to_centroid", 10)
    assert figure.data[1].text == ("&lt;3 fans &amp; friends",)


def test_cluster_boxplot_other_column_names(tmp_path):
    frame = clusters().rename(columns={"mention": "text", "cluster_id": "c",
                                       "distance_to_centroid": "d"})
    path = plot_cluster_boxplot(frame, tmp_path / "c.html", mention_col="text",
                                cluster_col="c", distance_col="d")
    assert "mention1x2" in path.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "call, library, plot",
    [
        (lambda p: plot_k_scores(k_scores(), 3, p / "k.png"), "matplotlib", "k-score plot"),
        (lambda p: plot_cluster_boxplot(clusters(), p / "c.html"), "plotly", "cluster box plot"),
    ],
)
def test_missing_plot_library_skips_with_a_warning(tmp_path, monkeypatch, caplog, call,
                                                   library, plot):
    monkeypatch.setitem(sys.modules, library, None)
    with caplog.at_level(logging.WARNING, logger=plots.__name__):
        assert call(tmp_path) is None
    assert list(tmp_path.iterdir()) == []
    (record,) = caplog.records
    assert plot in record.getMessage()
    assert f"{library} is not installed" in record.getMessage()
    assert "pip install group-appeal-spark[plots]" in record.getMessage()


@pytest.mark.parametrize(
    "frame, kwargs, match",
    [
        (clusters().drop(columns="mention"), {}, r"lacks the columns \['mention'\]"),
        (clusters(), {"distance_col": "distance"}, r"lacks the columns \['distance'\]"),
        (clusters().to_dict(), {}, "must be a pandas DataFrame; got dict"),
        (clusters(), {"max_points_per_cluster": 0}, "positive int; got 0"),
        (clusters(), {"max_points_per_cluster": 2.5}, "positive int; got 2.5"),
        (clusters(), {"max_points_per_cluster": True}, "positive int; got True"),
    ],
)
def test_cluster_boxplot_refuses_bad_input(tmp_path, frame, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plot_cluster_boxplot(frame, tmp_path / "c.html", **kwargs)


@pytest.mark.parametrize(
    "frame, match",
    [
        (k_scores().drop(columns="estimated"), r"lacks the columns \['estimated'\]"),
        (k_scores().iloc[:0], "has no rows"),
    ],
)
def test_k_scores_refuse_bad_input(tmp_path, frame, match):
    with pytest.raises(ValueError, match=match):
        plot_k_scores(frame, 3, tmp_path / "k.png")
