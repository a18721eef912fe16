"""The validation report: the models' accuracy on the coded sample and, per group, the estimates
from the models alone beside the corrected (DSL) ones with their intervals. One self-contained
page in report.html's style (inline CSS and SVG, no script); every data value is escaped."""

from __future__ import annotations

import math

import pandas as pd
from group_appeal_spark.lib.report import CSS, escape

_METRIC_ROWS = (("has_mention", "precision", "sentence has a mention: precision"),
                ("has_mention", "recall", "sentence has a mention: recall"),
                ("has_mention", "f1", "sentence has a mention: F1"),
                ("mentions_strict", "precision", "mentions, exact spans: precision"),
                ("mentions_strict", "recall", "mentions, exact spans: recall"),
                ("mentions_strict", "f1", "mentions, exact spans: F1"),
                ("mentions_relaxed", "precision", "mentions, overlapping spans: precision"),
                ("mentions_relaxed", "recall", "mentions, overlapping spans: recall"),
                ("mentions_relaxed", "f1", "mentions, overlapping spans: F1"),
                ("stance", "accuracy", "stance of matched mentions: accuracy"),
                ("stance", "macro_f1", "stance of matched mentions: macro-F1"))


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{float(value):.{digits}f}"


def metrics_table(result: dict) -> str:
    """Each metric with its bootstrap interval."""
    intervals = result.get("intervals") or {}
    rows = []
    for group, name, label in _METRIC_ROWS:
        cell = (intervals.get(group) or {}).get(name) or {}
        estimate = cell.get("estimate", (result["metrics"].get(group) or {}).get(name))
        rows.append(f'<tr><th>{escape(label)}</th><td class="num">{_fmt(estimate)}</td>'
                    f'<td class="num">{_fmt(cell.get("ci_low"))} – {_fmt(cell.get("ci_high"))}</td></tr>')
    return ('<table id="metrics"><tr><th>metric</th><th>estimate</th><th>95% bootstrap interval</th></tr>'
            + "".join(rows) + "</table>")


def confusion_table(result: dict) -> str:
    conf = result["metrics"]["stance"]["confusion"]
    labels = conf["labels"]
    head = "".join(f"<th>predicted {escape(s)}</th>" for s in labels)
    body = "".join(f"<tr><th>coded {escape(s)}</th>" + "".join(f'<td class="num">{n}</td>' for n in row) + "</tr>"
                   for s, row in zip(labels, conf["counts"]))
    return f'<table id="confusion"><tr><th></th>{head}</tr>{body}</table>'


def intervals_svg(rows: pd.DataFrame, groups: list[str], *, width: int = 640, row: int = 22) -> str:
    """Per group: the models' estimate (grey dot) and the corrected one with its interval (blue)."""
    rows = rows[rows["estimate_dsl"].notna() | rows["estimate_predicted"].notna()]
    if rows.empty:
        return '<p class="muted">No estimate to draw.</p>'
    values = [v for c in ("estimate_predicted", "ci_low", "ci_high") for v in rows[c] if pd.notna(v)]
    lo, hi = min(0.0, min(values)), max(values) or 1.0
    left, right = 170, width - 20

    def x(v):
        return left + (right - left) * (v - lo) / ((hi - lo) or 1.0)

    parts = []
    for i, r in enumerate(rows.itertuples()):
        y = 18 + i * row
        name = "all segments" if r.scope == "all" else ", ".join(
            "(null)" if getattr(r, g) is None or (isinstance(getattr(r, g), float) and math.isnan(getattr(r, g)))
            else str(getattr(r, g)) for g in groups)
        parts.append(f'<text x="{left - 6}" y="{y + 4}" text-anchor="end">{escape(name)}</text>')
        if pd.notna(r.ci_low):
            parts.append(f'<line x1="{x(r.ci_low):.1f}" x2="{x(r.ci_high):.1f}" y1="{y}" y2="{y}" stroke="#1565c0" '
                         f'stroke-width="3"/><circle cx="{x(r.estimate_dsl):.1f}" cy="{y}" r="4" fill="#1565c0"/>')
        if pd.notna(r.estimate_predicted):
            parts.append(f'<circle cx="{x(r.estimate_predicted):.1f}" cy="{y}" r="4" fill="#9e9e9e"/>')
    height = 30 + len(rows) * row
    axis = (f'<line x1="{left}" x2="{right}" y1="{height - 8}" y2="{height - 8}" stroke="#999"/>'
            f'<text x="{left}" y="{height}">{lo:.2f}</text><text x="{right}" y="{height}" text-anchor="end">'
            f'{hi:.2f}</text>')
    return (f'<svg class="intervals" width="{width}" height="{height + 6}" xmlns="http://www.w3.org/2000/svg">'
            + "".join(parts) + axis + "</svg>")


def corrected_section(table: pd.DataFrame, groups: list[str]) -> str:
    """Per measure: the interval plot and the table of predicted and corrected estimates."""
    if table.empty:
        return '<p class="muted">No group to estimate.</p>'
    out = []
    heads = "".join(f"<th>{escape(g)}</th>" for g in groups)
    for measure, rows in table.groupby("measure", sort=False):
        cells = []
        for r in rows.itertuples():
            names = "".join(f"<td>{'all' if r.scope == 'all' else escape(getattr(r, g))}</td>" for g in groups)
            cells.append(f"<tr>{names}<td class=\"num\">{_fmt(r.estimate_predicted)}</td>"
                         f"<td class=\"num\">{_fmt(r.estimate_dsl)}</td>"
                         f"<td class=\"num\">{_fmt(r.ci_low)} – {_fmt(r.ci_high)}</td>"
                         f"<td class=\"num\">{r.n_coded}</td><td class=\"num\">{r.n_segments}</td>"
                         f"<td>{escape(r.reason)}</td></tr>")
        out.append(f'<h3>{escape(measure)}</h3>{intervals_svg(rows, groups)}'
                   f'<table class="corrected"><tr>{heads}<th>models alone</th><th>corrected (DSL)</th>'
                   f'<th>95% interval</th><th>coded</th><th>segments</th><th>note</th></tr>{"".join(cells)}</table>')
    return "".join(out)


def render_validation(result: dict, table: pd.DataFrame, groups: list[str],
                      *, title: str = "group-appeal-spark validation") -> str:
    """The whole validation report.html as a string.

    Parameters
    ----------
    result : dict
        What ``validate`` writes to metrics.json (``metrics``, ``intervals``, ``coded``, ``uncoded``,
        ``problems``, ``source``, ``codes``, ``weighted``).
    table : DataFrame, (n_groups x n_measures rows)
        The corrected table's rows: the group columns, ``scope``, ``measure``, the estimates.
    groups : list of str
        The group columns.
    """
    problems = result.get("problems") or []
    listed = "".join(f"<li>sample_id {escape(p['sample_id'])}, {escape(p['column'])}: {escape(p['message'])}</li>"
                     for p in problems[:50])
    more = f"<li>... and {len(problems) - 50} more (metrics.json lists them all)</li>" if len(problems) > 50 else ""
    body = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="muted">run: {escape(result.get("source"))}; coded sheet: {escape(result.get("codes"))}</p>',
        f'<p>{result["coded"]} coded segments used; {result["uncoded"]} rows not coded yet (skipped); '
        f'{len(problems)} rows with a problem (not used). Metrics are weighted by 1/pi'
        f'{" (strata were sampled at different rates)" if result.get("weighted") else ""}.</p>',
        f"<ul id=\"problems\">{listed}{more}</ul>" if problems else "",
        "<h2>Accuracy on the coded sample</h2>", metrics_table(result),
        "<h2>Stance of the matched mentions (counts)</h2>", confusion_table(result),
        "<h2>Estimates: the models alone and corrected for their error</h2>",
        '<p class="muted">Grey: from the models alone, over every segment. Blue: the design-based supervised '
        "learning (DSL) estimate, which uses the coded sample to correct the models' error, with its 95% "
        "interval.</p>",
        corrected_section(table, groups),
        "<h2>How to read this</h2><ul>"
        "<li>Precision: the share of what the models found that the coder agrees with; recall: the share of what "
        "the coder found that the models found. Exact spans must match to the character; overlapping spans "
        "need only share a character.</li>"
        "<li>The corrected estimate is unbiased whatever the models' error, given a random sample with known "
        "inclusion probabilities; where the two estimates differ, the models' error matters for that group. A "
        "group with fewer coded segments than the minimum gets no corrected estimate (see the note).</li>"
        "<li>Cite the method as Egami, Hinck, Stewart and Wei (2023), Using imperfect surrogates for downstream "
        "inference: design-based supervised learning for social science applications of large language "
        "models, NeurIPS.</li></ul>",
    ]
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
            f'<body>{"".join(body)}</body></html>\n')
