"""Plots of the k search and of the clusters, written to files instead of shown.

The reference calls ``show()``, which on a cluster shows nothing. Here every plot is a file:
a PNG drawn with matplotlib's Agg canvas (no display, and no change to the caller's pyplot
backend) and a standalone HTML page drawn with plotly, with plotly.js inlined so that it opens
without a network. Both libraries are optional (``pip install group-appeal-spark[plots]``):
without one, its plot is skipped with a warning and the function returns ``None``.
"""

from __future__ import annotations

import html
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["plot_cluster_boxplot", "plot_k_scores"]

logger = logging.getLogger(__name__)

_INSTALL_HINT = "pip install group-appeal-spark[plots]"
_METRIC_NAMES = {"silhouette": "Silhouette", "nmi": "NMI"}


def plot_k_scores(scores: pd.DataFrame, best_k: int, path: str | os.PathLike) -> Path | None:
    """Line chart of the score of every k, with the best k marked, as a PNG file.

    Parameters
    ----------
    scores : pandas.DataFrame
        Shape ``(n_k, 5)``: ``KSearchResult.scores``, with columns ``k``, ``metric``,
        ``score`` and ``estimated`` (``n_points`` is not used).
    best_k : int
        The k to mark, normally ``KSearchResult.best_k``.
    path : str or os.PathLike
        Where to write the PNG; missing parent folders are created.

    Returns
    -------
    pathlib.Path or None
        ``path``, or ``None`` when matplotlib is not installed (a warning is logged).

    Raises
    ------
    ValueError
        If ``scores`` lacks one of the columns used or has no rows.
    """
    _check_columns(scores, ["k", "metric", "score", "estimated"], "scores")
    if scores.empty:
        raise ValueError("scores has no rows; there is no k to plot")
    try:
        # The package itself first: a None in sys.modules must stop the import here even if a
        # submodule is still cached.
        import matplotlib  # noqa: F401
        import matplotlib.backends.backend_agg  # noqa: F401
        import matplotlib.figure  # noqa: F401
    except ImportError:
        _log_skipped("k-score plot (PNG)", "matplotlib", path)
        return None

    figure = _k_scores_figure(scores, best_k)
    target = _prepare(path)
    figure.savefig(target, format="png")
    return target


def plot_cluster_boxplot(
    clusters: pd.DataFrame,
    path: str | os.PathLike,
    *,
    mention_col: str = "mention",
    cluster_col: str = "cluster_id",
    distance_col: str = "distance_to_centroid",
    max_points_per_cluster: int = 2000,
) -> Path | None:
    """Box plot per cluster of the distances to the centroid, as a standalone HTML page.

    Parameters
    ----------
    clusters : pandas.DataFrame
        Shape ``(n_mentions, >=3)``: one row per mention with its text, cluster and distance.
    path : str or os.PathLike
        Where to write the HTML; missing parent folders are created.
    mention_col, cluster_col, distance_col : str
        Names of the mention, cluster id and distance columns.
    max_points_per_cluster : int, default=2000
        Most mentions drawn as points per cluster, to bound the page size. The box of a cluster
        is always computed from all its rows; where a cluster has more rows, the points drawn
        are spread evenly over its distance ranks (the nearest and the farthest are always
        among them).

    Returns
    -------
    pathlib.Path or None
        ``path``, or ``None`` when plotly is not installed (a warning is logged).

    Raises
    ------
    ValueError
        If a column is missing or ``max_points_per_cluster`` is not a positive int.
    """
    _check_columns(clusters, [mention_col, cluster_col, distance_col], "clusters")
    if (
        isinstance(max_points_per_cluster, bool)
        or not isinstance(max_points_per_cluster, (int, np.integer))
        or max_points_per_cluster < 1
    ):
        raise ValueError(
            f"max_points_per_cluster must be a positive int; got {max_points_per_cluster!r}"
        )
    try:
        import plotly  # noqa: F401
        import plotly.graph_objects  # noqa: F401
    except ImportError:
        _log_skipped("cluster box plot (HTML)", "plotly", path)
        return None

    figure = _cluster_box_figure(
        clusters, mention_col, cluster_col, distance_col, int(max_points_per_cluster)
    )
    target = _prepare(path)
    figure.write_html(target, include_plotlyjs=True, full_html=True)
    return target


def _k_scores_figure(scores: pd.DataFrame, best_k: int):
    """The matplotlib Figure of plot_k_scores, on its own Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    metrics = sorted(set(scores["metric"].astype(str)))
    metric = ", ".join(_METRIC_NAMES.get(name, name) for name in metrics)
    estimated = bool(scores["estimated"].any())
    ordered = scores.sort_values("k")

    # A bare Figure with its own Agg canvas: pyplot would keep global state and could pick an
    # interactive backend on a machine with a display.
    figure = Figure(figsize=(10, 6), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.plot(ordered["k"], ordered["score"], marker="o", linewidth=1.5)
    axes.axvline(best_k, linestyle="--", color="tab:red", label=f"best k = {best_k}")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("Number of clusters (k)")
    axes.set_ylabel(f"{metric} score")
    axes.grid(True, alpha=0.5)
    axes.legend(loc="best")
    how = (
        "estimated on a sample of occurrences" if estimated else "exact, over all occurrences"
    )
    axes.set_title(f"{metric} score across k ({how})")
    return figure


def _cluster_box_figure(
    clusters: pd.DataFrame,
    mention_col: str,
    cluster_col: str,
    distance_col: str,
    max_points_per_cluster: int,
):
    """The plotly Figure of plot_cluster_boxplot: per cluster a box trace and a points trace."""
    import plotly.graph_objects as go

    figure = go.Figure()
    cluster_ids = []
    # A numeric x axis (cluster i at x=i) lets the points sit beside their box with a
    # deterministic jitter; the tick labels carry the cluster names.
    jitter = np.random.default_rng(0)
    groups = clusters.groupby(cluster_col, sort=True, dropna=True)
    for position, (cluster_id, members) in enumerate(groups):
        cluster_ids.append(cluster_id)
        distances = members[distance_col].to_numpy(dtype=np.float64)
        q1, median, q3 = np.quantile(distances, [0.25, 0.5, 0.75])
        lower, upper = _tukey_fences(distances, q1, q3)
        figure.add_trace(
            go.Box(
                x=[position],
                q1=[q1],
                median=[median],
                q3=[q3],
                lowerfence=[lower],
                upperfence=[upper],
                name=f"Cluster {cluster_id}",
                boxpoints=False,
                hoverinfo="skip",
                line=dict(width=1),
                showlegend=False,
            )
        )
        shown = _spread(np.argsort(distances, kind="stable"), max_points_per_cluster)
        texts = [
            # plotly renders hover text as HTML: a mention such as "<3 fans" must stay text.
            html.escape(str(text), quote=False)
            for text in members[mention_col].to_numpy()[shown]
        ]
        figure.add_trace(
            go.Scatter(
                x=position + jitter.uniform(-0.3, 0.3, size=shown.size),
                y=distances[shown],
                mode="markers",
                marker=dict(size=4, opacity=0.6),
                text=texts,
                hovertemplate="%{text}<br>distance %{y:.3f}<extra>" + f"Cluster {cluster_id}"
                + "</extra>",
                name=f"Cluster {cluster_id}",
                showlegend=False,
            )
        )
        if shown.size < distances.size:
            logger.info(
                "cluster %s: %d of %d mentions drawn as points", cluster_id, shown.size,
                distances.size,
            )

    figure.update_layout(
        title=dict(text="Distance of each mention to its cluster centroid", x=0.5),
        xaxis=dict(
            tickmode="array",
            tickvals=list(range(len(cluster_ids))),
            ticktext=[f"Cluster {cluster_id}" for cluster_id in cluster_ids],
            title="Cluster",
        ),
        yaxis=dict(title="Euclidean distance to centroid", zeroline=True),
        hovermode="closest",
        margin=dict(l=60, r=30, t=80, b=80),
    )
    return figure


def _tukey_fences(values: np.ndarray, q1: float, q3: float) -> tuple[float, float]:
    """Whisker ends as plotly draws them: the most extreme values within 1.5 IQR."""
    spread = 1.5 * (q3 - q1)
    inside = values[(values >= q1 - spread) & (values <= q3 + spread)]
    return float(inside.min()), float(inside.max())


def _spread(order: np.ndarray, limit: int) -> np.ndarray:
    """At most `limit` entries of `order`, evenly spaced, always keeping the first and last."""
    if order.size <= limit:
        return order
    picks = np.unique(np.linspace(0, order.size - 1, num=limit).round().astype(np.int64))
    return order[picks]


def _check_columns(frame: pd.DataFrame, columns: list[str], name: str) -> None:
    """Raise a ValueError naming the columns of `frame` that are missing."""
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{name} must be a pandas DataFrame; got {type(frame).__name__}")
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(
            f"{name} lacks the columns {missing}; it has {list(frame.columns)}"
        )


def _prepare(path: str | os.PathLike) -> Path:
    """`path` as a Path whose parent folder exists."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def _log_skipped(plot: str, library: str, path: str | os.PathLike) -> None:
    """Log that a plot was skipped because its library cannot be imported."""
    logger.warning(
        "%s not written to %s: %s is not installed; enable plots with `%s`",
        plot, path, library, _INSTALL_HINT,
    )
