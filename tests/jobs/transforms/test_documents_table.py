"""The documents/ table and the mentions' score, segment offsets and optional segment text."""

import json

import pandas as pd
import pytest
from group_appeal_spark.jobs import detect as detect_job
from group_appeal_spark.lib import models
from group_appeal_spark.lib.config import load_config
from group_appeal_spark.lib.inference.detect import MentionDetector
from group_appeal_spark.lib.models.bundle import ModelBundle
from group_appeal_spark.testing.tiny_models import corpus
from reference_differences import mention_as_ours, mentions_as_ours
from sentences import sentences

DOCUMENT_COLUMNS = ["doc_id", "party", "n_segments", "n_mentions", "n_positive", "n_negative", "n_neutral", "error",
                    "n_segments_with_mentions"]


@pytest.fixture(scope="module")
def sparse_overrides(sparse_repos):
    """Tiny models that leave most sentences without a mention, so some documents have none."""
    return {f"models.{role}.local_dir": str(sparse_repos[repo]) for role, repo in models.MODEL_ROLES.items()}


@pytest.fixture(scope="module")
def finder(sparse_overrides):
    return ModelBundle.resolve(load_config(overrides=sparse_overrides)).appeal_finder()


@pytest.fixture(scope="module")
def picked(finder):
    """(sentences with a mention, sentences without) of the built-in corpus."""
    texts = corpus()[:160]
    results = finder.process(texts)
    loud = [t for t, r in zip(texts, results) if r.appeals]
    quiet = [t for t, r in zip(texts, results) if not r.appeals]
    assert len(loud) >= 12 and len(quiet) >= 3, (len(loud), len(quiet))
    return loud, quiet


def _texts(loud):
    # astral and CJK characters before the mentions: offsets count code points on both sides
    return [" ".join(loud[:6]), "🙂🙂 Ünïcode. 我们支持农民。 " + loud[6] + "\n\n" + loud[7]]


def test_appeals_carry_score_and_their_segment(finder, picked):
    texts = _texts(picked[0])
    results = finder.process(texts)
    assert sum(len(r.appeals) for r in results) >= 8
    for text, result in zip(texts, results):
        segments = {i: (start, seg) for i, start, seg in finder.segments(text)}
        detected = finder.detector.detect([seg for _, seg in segments.values()])
        scores = {(i, m.start, m.end): m.score for i, ms in zip(segments, detected) for m in ms}
        for a in result.appeals:
            start, seg = segments[a.seg_idx]
            assert (a.seg_start, a.seg_end) == (start, start + len(seg))
            assert text[a.seg_start:a.seg_end] == seg
            assert a.seg_start <= a.start <= a.end <= a.seg_end  # a lone-space span is empty, as in the reference
            assert a.score == scores[(a.seg_idx, a.start - start, a.end - start)]
            assert 0 < a.score <= 1


@pytest.mark.reference
def test_score_matches_the_reference_pipeline(hub_cache):
    """group-appeal-detector's public API drops the pipeline's score; its pipeline keeps it."""
    ref = pytest.importorskip("group_appeal_detector")
    texts = sentences(120, seed=7)
    expected = ref.GroupAppealDetector(device="cpu")._mention_detector.detect_batch(texts, batch_size=8)
    dirs = {r: models.resolve_model_dir(models.ModelSource("test", r))
            for r in (models.DETECTOR_ID, models.DETECTOR_TOKENIZER_ID)}
    got = MentionDetector.from_dirs(dirs[models.DETECTOR_ID], dirs[models.DETECTOR_TOKENIZER_ID],
                                    batch_size=5).detect(texts)
    assert sum(len(ms) for ms in expected) > 50
    # the documented differences: a mention that cuts a character keeps its text, an empty one is dropped
    kept = [[m for m in ms if mention_as_ours(t, m["word"], m["start"], m["end"])] for t, ms in zip(texts, expected)]
    assert [[(m.span, m.start, m.end) for m in ms] for ms in got] == \
        [mentions_as_ours(t, [(m["word"], m["start"], m["end"]) for m in ms]) for t, ms in zip(texts, expected)]
    for ours, theirs in zip([m.score for ms in got for m in ms], [m["score"] for ms in kept for m in ms]):
        assert ours == pytest.approx(float(theirs), abs=1e-6)


# -- the jobs -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def documents(tmp_path_factory, picked):
    loud, quiet = picked
    good = {f"g{i}": t for i, t in enumerate(_texts(loud) + loud[8:12])}
    good.update({f"q{i}": t for i, t in enumerate(quiet[:3])})
    lines = [json.dumps({"id": k, "party": f"P{len(k)}", "text": v}).encode() for k, v in good.items()]
    lines += [b'{"id": "b1", "party": "X", "text": null}',
              b'{"id": "b2", "party": "X", "text": ""}',
              b'{"id": "b3", "party": "X", "text": "bad \xff\xfe bytes"}',   # invalid UTF-8
              b'{"id": "b4", "party": "X", "text": "unterminated',            # malformed line
              b'{"party": "X", "text": "We support nurses."}']               # missing id
    path = tmp_path_factory.mktemp("documents") / "corpus.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, good


@pytest.fixture(scope="module")
def detect_output(tmp_path_factory, documents, sparse_overrides, spark):
    out = tmp_path_factory.mktemp("documents-run") / "out"
    sets = [f"--set={k}={v}" for k, v in sparse_overrides.items()]
    assert detect_job.main(["--input", str(documents[0]), "--input-format", "json", "--carry-cols", "party",
                            "--output", str(out), "--chunks", "2", "--set", "output.segment_text=true",
                            *sets, "--master", "local[2]"]) == 0
    return out


@pytest.mark.spark
def test_documents_table_has_one_row_per_input_row(detect_output, documents):
    good = documents[1]
    summary = json.loads((detect_output / "summary.json").read_text())
    documents = pd.read_parquet(detect_output / "documents")
    assert list(documents.columns) == DOCUMENT_COLUMNS
    assert summary["chunks"] == 2
    assert len(documents) == summary["input_rows"] == len(good) + 5
    ok = documents[documents["error"].isna()]
    assert sorted(ok["doc_id"]) == sorted(good)
    assert len(ok) == summary["documents_ok"] and ok["n_segments"].sum() == summary["segments"]
    assert dict(zip(ok["doc_id"], ok["party"])) == {k: f"P{len(k)}" for k in good}
    # every input error is a row, with no segment or mention
    bad = documents[documents["error"].notna()]
    errors = pd.read_parquet(detect_output / "errors")
    assert sorted(map(str, zip(bad["doc_id"], bad["error"]))) == sorted(map(str, zip(errors["doc_id"], errors["error"])))
    assert (bad[DOCUMENT_COLUMNS[2:7]] == 0).all().all()
    # the counts are the mentions table's, zero included
    mentions = pd.read_parquet(detect_output / "mentions")
    counts = mentions.groupby(["doc_id", "stance"]).size().unstack(fill_value=0)
    for _, row in ok.iterrows():
        got = counts.loc[row["doc_id"]] if row["doc_id"] in counts.index else {}
        for stance in ("positive", "negative", "neutral"):
            assert row[f"n_{stance}"] == (got[stance] if stance in got else 0), (row["doc_id"], stance)
        assert row["n_mentions"] == row["n_positive"] + row["n_negative"] + row["n_neutral"]
    assert ok["n_mentions"].sum() == len(mentions) == summary["mentions"]
    assert set(ok.loc[ok["n_mentions"] == 0, "doc_id"]) == {"q0", "q1", "q2"}


@pytest.mark.spark
def test_mentions_carry_score_segment_offsets_and_text(detect_output, documents):
    good = documents[1]
    mentions = pd.read_parquet(detect_output / "mentions")
    assert list(mentions.columns)[-4:] == ["score", "seg_start", "seg_end", "segment_text"]
    assert len(mentions) >= 10
    for m in mentions.itertuples():
        text = good[m.doc_id]
        assert m.segment_text == text[m.seg_start:m.seg_end]
        assert m.seg_start <= m.start <= m.end <= m.seg_end
        assert 0 < m.score <= 1
    assert mentions["doc_id"].eq("g1").any()  # the document with astral characters before its mentions


@pytest.mark.spark
def test_segment_text_only_when_asked_and_one_model_pass(spark, sparse_overrides, picked):
    from group_appeal_spark.jobs.transforms import detect_appeals

    texts = dict(zip(["a", "b"], _texts(picked[0])))
    df = spark.createDataFrame(pd.DataFrame({"id": list(texts), "text": list(texts.values())}))
    plain = detect_appeals(df, sparse_overrides)
    assert "segment_text" not in plain.mentions.columns
    assert "segment_text" not in plain.cached.schema["r"].dataType["appeals"].dataType.elementType.names
    plain.release()
    asked = detect_appeals(df, {**sparse_overrides, "output.segment_text": True})
    try:
        assert asked.mentions.columns[-1] == "segment_text"
        # the text is cut on the JVM side: the UDF still runs once per row
        plan = asked.cached._jdf.queryExecution().executedPlan().toString()
        assert plan.count("ArrowEvalPython") == 1, plan
        rows = asked.mentions.select("seg_start", "seg_end", "segment_text", "doc_id").collect()
        assert rows and all(r.segment_text == texts[r.doc_id][r.seg_start:r.seg_end] for r in rows)
    finally:
        asked.release()


@pytest.mark.spark
def test_segments_table_has_one_row_per_segment_mention_or_not(detect_output, documents, finder):
    good = documents[1]
    summary = json.loads((detect_output / "summary.json").read_text())
    segments = pd.read_parquet(detect_output / "segments")
    docs = pd.read_parquet(detect_output / "documents")
    mentions = pd.read_parquet(detect_output / "mentions")
    assert list(segments.columns) == ["doc_id", "party", "seg_idx", "seg_start", "seg_end", "n_tokens", "n_mentions",
                                      "n_positive", "n_negative", "n_neutral", "segment_text"]
    # the denominator: every segment of every processed document, reconciled in summary.json
    assert len(segments) == docs["n_segments"].sum() == summary["segments"] == summary["segment_rows"]
    assert set(segments["doc_id"]) == set(good)  # rows with an input error have no segment
    assert (segments["n_mentions"] == 0).sum() >= 3
    for doc_id, text in good.items():
        mine = segments[segments["doc_id"] == doc_id].sort_values("seg_idx")
        expected = finder.segments(text)
        assert list(mine["seg_idx"]) == [i for i, _, _ in expected]
        assert list(zip(mine["seg_start"], mine["segment_text"])) == [(start, seg) for _, start, seg in expected]
        assert all(text[r.seg_start:r.seg_end] == r.segment_text for r in mine.itertuples())
        assert list(mine["n_tokens"]) == [len(finder.detector.tokenizer(seg, add_special_tokens=False)["input_ids"])
                                          for _, _, seg in expected]
        assert (mine["party"] == f"P{len(doc_id)}").all()
    # per segment, the mentions table's counts; per document, documents.n_segments_with_mentions
    by_segment = mentions.groupby(["doc_id", "seg_idx", "stance"]).size().unstack(fill_value=0)
    for r in segments.itertuples():
        got = by_segment.loc[(r.doc_id, r.seg_idx)] if (r.doc_id, r.seg_idx) in by_segment.index else {}
        for stance in ("positive", "negative", "neutral"):
            assert getattr(r, f"n_{stance}") == (got[stance] if stance in got else 0)
        assert r.n_mentions == r.n_positive + r.n_negative + r.n_neutral
    with_mentions = segments[segments["n_mentions"] > 0].groupby("doc_id").size()
    for r in docs.itertuples():
        assert r.n_segments_with_mentions == with_mentions.get(r.doc_id, 0), r.doc_id
