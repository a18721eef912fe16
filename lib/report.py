"""report.html: one self-contained page summarising a run for a researcher (no Spark, no network).

Everything is inline (CSS and SVG, no script), so the page opens offline from a file or a
bucket; every piece of text from the data goes through :func:`_e`: control characters and
explicit bidirectional controls removed, then :func:`html.escape`; each data value sits in its
own element, which the page isolates (``unicode-bidi: isolate``), so a right-to-left name or a
stray U+202E in the data cannot reorder the text around it.
"""

from __future__ import annotations

import html
import math
import re
from typing import Any

import pandas as pd
from group_appeal_spark.lib.choices import STANCES

STANCE_COLOURS = {"positive": "#2e7d32", "negative": "#c62828", "neutral": "#9e9e9e"}
HEATMAP_TOP = 20

# C0 and C1 controls (tab and newline become spaces) and the explicit bidi embeddings, overrides and isolates
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")

CSS = """
.rate{font-size:.8em;opacity:.85}
.banner{background:#fff3cd;border:1px solid #e0b000;padding:.6em .8em}
td,th,strong,bdi,h3,span,li{unicode-bidi:isolate}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;max-width:1100px;
color:#222;padding:0 1em}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;font-size:.9em}th,td{border:1px solid #ddd;padding:.3em .5em;text-align:left;
vertical-align:top}th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#777}.legend span{display:inline-block;width:.9em;height:.9em;margin:0 .3em 0 1em;
vertical-align:middle}blockquote{margin:.3em 0 .6em 1em;padding-left:.6em;border-left:3px solid #ccc}
svg text{font-family:inherit;font-size:11px}
"""


def _e(value: Any) -> str:
    """``value`` as escaped text; missing values as an empty string."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return html.escape(_CONTROLS.sub("", str(value).replace("\t", " ").replace("\n", " ")))


escape = _e  # for the other pages built on this one's style (lib/validation/report.py)


def _share(value: Any) -> str:
    """A share as a percentage, or a dash when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * float(value):.0f}%"


def _number(value: Any) -> float:
    """A cell as a float, 0 when missing."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        return 0.0
    return 0.0 if math.isnan(out) else out


def _join(values: Any, limit: int = 5) -> str:
    """A list cell as escaped comma-separated text (its first ``limit`` items)."""
    if values is None or (isinstance(values, float) and math.isnan(values)):
        return ""
    return ", ".join(_e(v) for v in list(values)[:limit])


def summary_section(summary: dict) -> str:
    """The run's counts as a two-column table."""
    rows = [("input rows", summary.get("input_rows")), ("documents processed", summary.get("documents_ok")),
            ("documents with errors", summary.get("documents_errors")), ("mentions", summary.get("mentions")),
            ("unique mentions", summary.get("unique_mentions")), ("chosen k", summary.get("chosen_k")),
            ("k selection", summary.get("metric") or "fixed n_clusters")]
    if summary.get("clustering_skipped"):
        rows.append(("clustering skipped", summary["clustering_skipped"]))
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f'<h2>Run summary</h2><table id="summary">{body}</table>'


def k_search_svg(k_search: pd.DataFrame, *, width: int = 640, height: int = 260) -> str:
    """The k search as an inline SVG line chart: score against k, the chosen k marked.

    ``k_search`` has columns ``k``, ``score`` and optionally ``chosen`` and ``metric``.
    """
    data = k_search.dropna(subset=["score"]).sort_values("k") if len(k_search) else k_search
    if not len(data):
        return '<p class="muted">No k search (a fixed number of clusters, or too few mentions).</p>'
    left, right, top, bottom = 50, 20, 15, 35
    ks, scores = data["k"].astype(float).tolist(), data["score"].astype(float).tolist()
    k_lo, k_hi = min(ks), max(ks)
    s_lo, s_hi = min(scores), max(scores)
    if s_hi == s_lo:
        s_lo, s_hi = s_lo - 0.5, s_hi + 0.5
    k_span = (k_hi - k_lo) or 1.0

    def xy(k, s):
        return (left + (k - k_lo) / k_span * (width - left - right),
                top + (s_hi - s) / (s_hi - s_lo) * (height - top - bottom))

    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(k, s) for k, s in zip(ks, scores)))
    parts = [f'<svg id="k-search" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="k search scores">',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="#444"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#444"/>',
             f'<polyline fill="none" stroke="#1565c0" stroke-width="2" points="{points}"/>']
    chosen = data["chosen"].tolist() if "chosen" in data else [False] * len(ks)
    for k, s, c in zip(ks, scores, chosen):
        x, y = xy(k, s)
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{5 if c else 3}" fill="{"#e65100" if c else "#1565c0"}">'
                     f'<title>k={int(k)}: {s:.4f}</title></circle>')
        parts.append(f'<text x="{x:.1f}" y="{height - bottom + 15}" text-anchor="middle">{int(k)}</text>')
    for s in (s_lo, s_hi):
        parts.append(f'<text x="{left - 5}" y="{xy(k_lo, s)[1] + 4:.1f}" text-anchor="end">{s:.3f}</text>')
    metric = _e(data["metric"].iloc[0]) if "metric" in data else "score"
    parts.append(f'<text x="{(width + left) / 2:.0f}" y="{height - 3}" text-anchor="middle">k ({metric}; '
                 f'the chosen k in orange)</text></svg>')
    return "".join(parts)


def cluster_table(summary: pd.DataFrame) -> str:
    """One row per cluster: id, label, size, top mentions and stance shares."""
    if not len(summary):
        return '<p class="muted">No clusters.</p>'
    head = ("<tr><th>cluster</th><th>label</th><th>mentions</th><th>unique</th><th>top mentions</th>"
            "<th>positive</th><th>negative</th><th>neutral</th></tr>")
    rows = []
    for r in summary.sort_values("cluster_id").to_dict("records"):
        rows.append(f'<tr class="cluster-row"><td class="num">{_e(r["cluster_id"])}</td><td>{_e(r.get("label"))}</td>'
                    f'<td class="num">{_e(r.get("n_occurrences"))}</td><td class="num">{_e(r.get("n_unique"))}</td>'
                    f'<td>{_join(r.get("top_mentions"))}</td>'
                    + "".join(f'<td class="num">{_share(r.get(f"share_{s}"))}</td>' for s in STANCES) + "</tr>")
    return f'<table id="clusters">{head}{"".join(rows)}</table>'


def stance_bars_svg(summary: pd.DataFrame, *, width: int = 640, bar: int = 18) -> str:
    """Stance shares by cluster as horizontal 100% stacked bars (inline SVG)."""
    if not len(summary):
        return '<p class="muted">No clusters.</p>'
    left, scale = 180, width - 200
    data = summary.sort_values("cluster_id").to_dict("records")
    height = len(data) * (bar + 6) + 10
    parts = [f'<svg id="stance-bars" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             'role="img" aria-label="stance by cluster">']
    for i, r in enumerate(data):
        y = 5 + i * (bar + 6)
        name = f'{r["cluster_id"]}: {r.get("label") or ""}'
        parts.append(f'<text x="{left - 6}" y="{y + bar - 5}" text-anchor="end">{_e(name[:28])}</text>')
        x = float(left)
        shares = [_number(r.get(f"share_{s}")) for s in STANCES]
        if not sum(shares):
            parts.append(f'<text x="{left}" y="{y + bar - 5}" fill="#777">no stance</text>')
            continue
        for stance, share in zip(STANCES, shares):
            w = share * scale
            parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar}" fill="{STANCE_COLOURS[stance]}">'
                         f'<title>{stance}: {_share(share)}</title></rect>')
            x += w
    parts.append("</svg>")
    legend = "".join(f'<span style="background:{c}"></span>{s}' for s, c in STANCE_COLOURS.items())
    return "".join(parts) + f'<div class="legend">{legend}</div>'


def heatmap(aggregates: pd.DataFrame | None, group_col: str | None, labels: dict) -> str:
    """Mentions per value of ``group_col`` (its top 20 by mentions) x cluster, as a shaded table."""
    if aggregates is None or not group_col or group_col not in aggregates or not len(aggregates):
        return '<p class="muted">No group column (no carried columns, or no clustering).</p>'
    table = aggregates.assign(_g=aggregates[group_col].astype(object).where(aggregates[group_col].notna(), None))
    table["_g"] = table["_g"].map(lambda v: "(null)" if v is None else str(v))
    pivot = table.pivot_table(index="_g", columns="cluster_id", values="mentions", aggfunc="sum", fill_value=0)
    top = pivot.sum(axis=1).sort_values(ascending=False, kind="stable").index[:HEATMAP_TOP]
    pivot = pivot.loc[top]
    peak = float(pivot.to_numpy().max()) or 1.0
    # the group's documents (the same on each of its rows): a rate per 100 documents beside each count
    documents = table.groupby("_g")["documents"].max() if "documents" in table else None
    head = f"<tr><th>{_e(group_col)}</th>" + "".join(
        f"<th>{_e(c)}: {_e(labels.get(c, ''))}</th>" for c in pivot.columns) + "</tr>"
    rows = []
    for value, counts in pivot.iterrows():
        cells = []
        n_docs = _number(documents.get(value)) if documents is not None else 0.0
        for count in counts:
            alpha = float(count) / peak
            colour = "#fff" if alpha > 0.6 else "#222"
            rate = f'<br><span class="rate">{100 * float(count) / n_docs:.1f}</span>' if n_docs else ""
            cells.append(f'<td class="num" style="background:rgba(21,101,192,{alpha:.2f});color:{colour}">'
                         f"{int(count)}{rate}</td>")
        rows.append(f"<tr><th>{_e(value)}</th>{''.join(cells)}</tr>")
    per = " Below each count: mentions per 100 documents of that value (the counts alone grow with how much a " \
          "value says)." if documents is not None else ""
    note = (f'<p class="muted">Appeals (mentions) per {_e(group_col)} value and cluster; top {len(pivot)} values.'
            f"{per}</p>")
    return f'{note}<table id="heatmap">{head}{"".join(rows)}</table>'


def examples_section(examples: pd.DataFrame | None, labels: dict) -> str:
    """Per cluster, its example mentions (``cluster_id``, ``mention``, optional ``text``, ``doc_id``)."""
    if examples is None or not len(examples):
        return '<p class="muted">No examples.</p>'
    parts = []
    for cluster_id, rows in examples.groupby("cluster_id", sort=True):
        parts.append(f"<h3>Cluster {_e(cluster_id)}: {_e(labels.get(cluster_id, ''))}</h3>")
        for r in rows.to_dict("records"):
            text = r.get("text")
            quote = f": <bdi>{_e(text)}</bdi>" if isinstance(text, str) and text else ""
            doc = f' <span class="muted">(doc {_e(r.get("doc_id"))})</span>' if r.get("doc_id") is not None else ""
            parts.append(f"<blockquote><strong>{_e(r.get('mention'))}</strong>{quote}{doc}</blockquote>")
    if "text" not in examples or examples["text"].isna().all():
        parts.insert(0, '<p class="muted">Run with <code>--set output.segment_text=true</code> to see the sentence '
                        "each example mention was said in.</p>")
    return "".join(parts)


def render_report(summary: dict, k_search: pd.DataFrame, clusters: pd.DataFrame,
                  aggregates: pd.DataFrame | None = None, examples: pd.DataFrame | None = None,
                  group_col: str | None = None, *, title: str = "group-appeal-spark report") -> str:
    """The whole report.html as a string.

    Parameters
    ----------
    summary : dict
        ``input_rows``, ``documents_ok``, ``documents_errors``, ``mentions``, ``unique_mentions``,
        ``chosen_k``, ``metric`` and optionally ``clustering_skipped`` and ``source``.
    k_search : DataFrame, (n_k rows)
        The k_search table (``k``, ``metric``, ``score``, ``chosen``).
    clusters : DataFrame, (n_clusters rows)
        The cluster_summary table.
    aggregates : DataFrame, optional
        The aggregates table; its ``group_col`` gives the heatmap.
    examples : DataFrame, optional
        ``cluster_id``, ``mention`` and optionally ``text`` and ``doc_id``: a few per cluster.
    group_col : str, optional
        The column of ``aggregates`` the heatmap is drawn for.
    """
    labels = dict(zip(clusters["cluster_id"], clusters["label"])) if len(clusters) else {}
    source = f'<p class="muted">source: {_e(summary["source"])}</p>' if summary.get("source") else ""
    how_to_read = (
        '<h2>How to read this</h2><ul>'
        "<li>A <strong>mention</strong> is a span the detector tagged as a social group; one sentence may hold "
        "several. <strong>Stance</strong> is the author's position toward the group in that sentence: the NLI model "
        "scores \u201cThe text is positive / negative / neutral towards ...\u201d and the most probable one is "
        "kept; the shares are over a cluster's mention occurrences.</li>"
        "<li>A <strong>cluster</strong> gathers mentions whose embeddings are close (count-weighted k-means); its "
        "label is its most frequent mention, or the dictionary category most of its mentions match.</li>"
        "<li>The <strong>silhouette</strong> (from -1 to 1) says how much closer each mention is to its own cluster "
        "than to the next one; the k with the highest score is chosen. <strong>NMI</strong> (0 to 1) says how "
        "well clusters match a dictionary's categories.</li>"
        "<li>The models were trained on one domain (UK parliamentary debates): before publishing, validate on a "
        "hand-coded sample of your own corpus (<code>group-appeal-spark sample</code>, then <code>validate</code>: "
        "accuracy on your corpus and estimates corrected for the models' error).</li></ul>")
    smoke = ('<p id="smoke-test" class="banner"><strong>Offline smoke test:</strong> this run used tiny models with '
             'random weights (<code>--tiny-models</code>); every number and cluster on this page is meaningless.</p>'
             if summary.get("smoke_test") else "")
    body = [f"<h1>{_e(title)}</h1>", smoke, source, summary_section(summary),
            "<h2>k search</h2>", k_search_svg(k_search),
            "<h2>Clusters</h2>", cluster_table(clusters),
            "<h2>Stance by cluster</h2>", stance_bars_svg(clusters),
            f"<h2>Appeals by {_e(group_col or 'group')} and cluster</h2>", heatmap(aggregates, group_col, labels),
            "<h2>Examples nearest each centroid</h2>", examples_section(examples, labels), how_to_read]
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
            f'<body>{"".join(body)}</body></html>\n')
