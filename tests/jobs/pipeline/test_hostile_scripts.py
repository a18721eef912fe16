"""Issue 17's hostile cases through `run`, reconciled row by row: non-Latin scripts, emoji,
bidirectional overrides and control characters in texts, ids and party names, and lines that are
not JSON at all."""

import json
import re

import pandas as pd
import pytest

pytestmark = pytest.mark.spark

ROWS = [
    {"id": "ar", "party": "حزب", "text": "المزارعون في الريف يستحقون دعما أفضل من الحكومة."},
    {"id": "zh", "party": "党", "text": "农民和工人应该得到政府更好的支持。年轻人需要住房。"},
    {"id": "emoji", "party": "🙂", "text": "Nurses 👩‍⚕️ and farmers 🚜 deserve better pay 💪🏽 now."},
    {"id": "bidi\u202e", "party": "evil\u202eparty", "text": "Farmers \u202edeserve\u202c better. Nurses too."},
    {"id": "ctrl", "party": "A\x1b[31m", "text": "Young people\x00 need homes.\x07 Pensioners \x1b[0mtoo."},
    {"id": "dash", "party": "B", "text": "In 2019 the region of the country — farmers — lost out."},
]
BROKEN = ['{"id": "half", "text": "unterminated', "not json at all", "[1, 2, 3]"]
CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory, hub_cache, spark):
    from group_appeal_spark.jobs import run as run_job

    folder = tmp_path_factory.mktemp("hostile-scripts")
    lines = [json.dumps(r, ensure_ascii=False) for r in ROWS] + BROKEN
    (folder / "docs.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = folder / "out"
    assert run_job.main(["--input", str(folder / "docs.jsonl"), "--input-format", "json", "--carry-cols", "party",
                         "--output", str(out), "--set", "output.segment_text=true", "--k-min", "2", "--k-max", "3",
                         "--set", "output.plots=false", "--master", "local[2]"]) == 0
    return out


def test_every_row_is_accounted_for_once(hostile_run):
    summary = json.loads((hostile_run / "summary.json").read_text())
    documents = pd.read_parquet(hostile_run / "documents")
    errors = pd.read_parquet(hostile_run / "errors")
    assert summary["input_rows"] == len(ROWS) + len(BROKEN) == len(documents)
    assert sorted(documents["doc_id"].dropna()) == sorted(r["id"] for r in ROWS)
    assert summary["documents_ok"] == len(ROWS) and summary["documents_with_errors"] == len(BROKEN)
    assert len(errors) == len(BROKEN) and set(errors["stage"]) == {"input"}
    assert errors["error"].str.startswith("malformed JSON line").sum() >= 2
    # carried party names arrive as they were, controls and all
    assert dict(zip(documents["doc_id"], documents["party"])) == {r["id"]: r["party"] for r in ROWS} | {None: None}


def test_every_mention_is_its_own_text(hostile_run):
    mentions = pd.read_parquet(hostile_run / "mentions")
    texts = {r["id"]: r["text"] for r in ROWS}
    assert len(mentions) >= 6
    for m in mentions.itertuples():
        original = texts[m.doc_id][m.start:m.end]
        assert original.strip() and m.span.strip() == original.strip(), (m.doc_id, m.span, original)
        assert "\ufffd" not in m.span and "\ufffd" not in m.mention_key
        assert m.segment_text == texts[m.doc_id][m.seg_start:m.seg_end]


def test_the_report_shows_no_control_or_bidi_characters(hostile_run):
    page = (hostile_run / "report.html").read_text(encoding="utf-8")
    assert not CONTROLS.search(page)
    assert "unicode-bidi:isolate" in page
