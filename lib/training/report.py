"""What a training run writes: the embedder folder and its training report (JSON and markdown)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

from group_appeal_spark.lib.errors import InputError

__all__ = [
    "REPORT_JSON",
    "REPORT_MD",
    "check_out_dir",
    "save_embedder",
    "report_markdown",
    "format_metric",
    "library_versions",
]

# Files that make an output folder: the cl_mention_embedding layout plus the reports.
REPORT_JSON = "training_report.json"
REPORT_MD = "training_report.md"


def check_out_dir(out_dir, *, overwrite: bool) -> Path:
    """Refuse an existing non-empty output folder unless ``overwrite``; returns the path."""
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise InputError(f"output {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError(f"output folder {out} is not empty; choose another folder or pass --overwrite")
    return out


def save_embedder(module, tokenizer, out_dir, *, report: Mapping | None = None, overwrite: bool = False) -> Path:
    """Write a trained embedder in the ``maxwlnd/cl_mention_embedding`` layout.

    Files: the tokenizer's files, the encoder's ``config.json``, ``model.safetensors`` (keys
    ``encoder.*`` with the encoder's full state dict, and ``projector.0.weight`` / ``.bias``),
    and, given a ``report``, ``training_report.json`` and ``training_report.md``. The folder is
    both the weights folder and the config folder of :meth:`MentionEmbedder.from_dirs`.

    Returns
    -------
    Path
        The folder.
    """
    from safetensors.torch import save_file

    out = check_out_dir(out_dir, overwrite=overwrite)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(out))
    module.encoder.config.save_pretrained(str(out))
    # contiguous copies on the CPU: safetensors refuses views and shared storage.
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    if report is not None:
        (out / REPORT_JSON).write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
        (out / REPORT_MD).write_text(report_markdown(report), encoding="utf-8")
    return out


def report_markdown(report: Mapping) -> str:
    """A short human-readable summary of a training report."""
    c, before, after = report["counts"], report["before"], report["after"]
    lines = [
        "# Mention embedder training report",
        "",
        f"- start: {report.get('base_model') or report.get('init_embedder')}"
        + (f" (revision {report['revision']})" if report.get("revision") else ""),
        f"- dictionary: {report.get('dictionary', '(in memory)')}",
        f"- categories: {c['categories_used']} used, {c['categories_skipped']} skipped; "
        f"terms: {c['train_terms']} training, {c['validation_terms']} held out "
        f"({c['validation_categories']} categories), {c['wildcard_terms_kept']} wildcard terms kept as stems, "
        f"{c['terms_skipped']} skipped",
        f"- epochs run: {report['epochs_run']} (best: {report['best_epoch']}"
        + (", stopped early" if report["stopped_early"] else "") + f"), {report['seconds']} s on {report['device']}",
        "",
        "| held-out metric | before | after |",
        "|---|---|---|",
        f"| validation triplet accuracy ({report['validation_triplets']} triplets) | "
        f"{before['triplet_accuracy']:.4f} | {after['triplet_accuracy']:.4f} |",
        f"| NMI of k-means clusters vs categories | {format_metric(before['nmi'])} | {format_metric(after['nmi'])} |",
        "",
        "| epoch | train loss | val. triplet accuracy | val. NMI | seconds |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {h['epoch']} | {h['train_loss']:.4f} | {h['validation_triplet_accuracy']:.4f} | "
        f"{format_metric(h['validation_nmi'])} | {h['seconds']} |"
        for h in report["history"]
    ]
    if report.get("skipped_terms"):
        lines += ["", "Skipped terms:", ""]
        lines += [f"- {s['category']}: `{s['term']}` ({s['reason']})" for s in report["skipped_terms"]]
    return "\n".join(lines) + "\n"


def format_metric(value) -> str:
    """A metric with four decimals, or ``n/a`` when there is none (None or NaN)."""
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def library_versions() -> dict:
    """Versions of the libraries that decide the numbers, for the report."""
    import sklearn
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "scikit-learn": sklearn.__version__}
