"""run -> sample -> a coder fills the sheet -> validate, end to end on tiny models (issue 20).

The coder is simulated: agreeing with the models on most segments and disagreeing on known
ones, so every figure of metrics.json and corrected/ can be recomputed here from the sheet and
the run's tables with the formulas written out in docs/validation.md.
"""

import csv
import io
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from group_appeal_spark.lib import models
from sentences import sentences

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def run_output(tmp_path_factory, sparse_repos, spark):
    """A detect output over 48 three-sentence speeches of two parties, without segment_text."""
    from group_appeal_spark.jobs import detect as detect_job

    folder = tmp_path_factory.mktemp("validation-run")
    pool = sentences(144, seed=11)
    docs = {f"s{i:02d}": " ".join(pool[3 * i:3 * i + 3]) for i in range(48)}
    rows = [{"id": k, "party": "A" if i % 3 else "B", "text": v} for i, (k, v) in enumerate(docs.items())]
    (folder / "docs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    sets = [f"--set=models.{role}.local_dir={sparse_repos[repo]}" for role, repo in models.MODEL_ROLES.items()]
    out = folder / "out"
    assert detect_job.main(["--input", str(folder / "docs.jsonl"), "--input-format", "json", "--carry-cols",
                            "party", "--output", str(out), *sets, "--master", "local[2]"]) == 0
    return out, docs


def _sample(out, sheet, *extra):
    from group_appeal_spark.jobs import sample

    return sample.main(["--input", str(out), "--output", str(sheet), "--master", "local[2]", *extra])


def _read_sheet(path):
    raw = path.read_bytes()
    assert raw.startswith("\ufeff".encode()), "the sheet starts with a byte order mark (Excel reads UTF-8)"
    return pd.read_csv(io.StringIO(raw.decode("utf-8").lstrip("\ufeff")), dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def sheet(run_output, tmp_path_factory):
    out, _ = run_output
    folder = tmp_path_factory.mktemp("sheet") / "sheet"
    assert _sample(out, folder, "--n", "40", "--strata", "party,has_mention", "--allocation", "equal",
                   "--seed", "3") == 0
    return folder


def test_the_sheet_is_a_stratified_sample_with_known_probabilities(run_output, sheet):
    out, docs = run_output
    frame = _read_sheet(sheet / "sheet.csv")
    record = json.loads((sheet / "sample.json").read_text())
    segments = pd.read_parquet(out / "segments")
    mentions = pd.read_parquet(out / "mentions")
    assert list(frame.columns) == ["sample_id", "doc_id", "seg_idx", "stratum", "pi", "segment_text", "predicted",
                                   "gold_has_mention", "gold_mentions"]
    assert len(frame) == record["n"] == 40 and frame["sample_id"].tolist() == [str(i) for i in range(1, 41)]
    assert (frame["gold_has_mention"] == "").all() and (frame["gold_mentions"] == "").all()
    # the design: 4 strata, 10 each (equal), pi = n_h / N_h, the population being segments/
    segments["has_mention"] = (segments["n_mentions"] > 0).astype(int)
    sizes = segments.groupby(["party", "has_mention"]).size()
    assert record["population"] == len(segments) and record["strata"] == ["party", "has_mention"]
    for stratum in record["by_stratum"]:
        party, has = stratum["values"]
        assert stratum["population"] == sizes[(party, has)] and stratum["n"] == 10
        assert stratum["pi"] == pytest.approx(10 / sizes[(party, has)])
        assert stratum["stratum"] == f"party={party}|has_mention={has}"
    for row in frame.itertuples():
        seg = segments[(segments["doc_id"] == row.doc_id) & (segments["seg_idx"] == int(row.seg_idx))].iloc[0]
        assert row.stratum == f"party={seg.party}|has_mention={seg.has_mention}"
        assert float(row.pi) == pytest.approx(10 / sizes[(seg.party, seg.has_mention)])
        # cut from the input documents again (the run kept no segment_text)
        assert row.segment_text == docs[row.doc_id][seg.seg_start:seg.seg_end]
        mine = mentions[(mentions["doc_id"] == row.doc_id) & (mentions["seg_idx"] == int(row.seg_idx))] \
            .sort_values("start")
        expected = "; ".join(f"{docs[row.doc_id][m.start:m.end].strip()}|{m.stance}" for m in mine.itertuples())
        assert row.predicted == expected
    assert frame[["doc_id", "seg_idx"]].drop_duplicates().shape[0] == 40  # without replacement


def test_the_draw_is_reproducible_from_the_seed_and_blind_leaves_predictions_out(run_output, sheet, tmp_path):
    out, _ = run_output
    first = _read_sheet(sheet / "sheet.csv")
    assert _sample(out, tmp_path / "again", "--n", "40", "--strata", "party,has_mention", "--allocation", "equal",
                   "--seed", "3", "--blind") == 0
    again = _read_sheet(tmp_path / "again" / "sheet.csv")
    assert "predicted" not in again.columns
    assert again.to_dict("records") == first.drop(columns="predicted").to_dict("records")
    assert _sample(out, tmp_path / "other", "--n", "40", "--strata", "party,has_mention", "--allocation", "equal",
                   "--seed", "4") == 0
    other = _read_sheet(tmp_path / "other" / "sheet.csv")
    assert set(zip(other["doc_id"], other["seg_idx"])) != set(zip(first["doc_id"], first["seg_idx"]))


def test_proportional_allocation_and_a_kept_segment_text(run_output, tmp_path, spark):
    out, docs = run_output
    # the same run, as if it had kept segment_text: the sheet takes the text from segments/
    kept = tmp_path / "kept"
    shutil.copytree(out, kept)
    segments = pd.read_parquet(out / "segments")
    segments["segment_text"] = [docs[d][a:b].upper() for d, a, b in  # upper: shows where the text came from
                                zip(segments["doc_id"], segments["seg_start"], segments["seg_end"])]
    shutil.rmtree(kept / "segments")
    spark.createDataFrame(segments).write.parquet(str(kept / "segments"))
    assert _sample(kept, tmp_path / "sheet", "--n", "12", "--strata", "party") == 0
    frame = _read_sheet(tmp_path / "sheet" / "sheet.csv")
    record = json.loads((tmp_path / "sheet" / "sample.json").read_text())
    sizes = segments.groupby("party").size()
    n = {s["values"][0]: s["n"] for s in record["by_stratum"]}
    # proportional with largest remainders: 12 * N_h / N, rounded to sum to 12
    quotas = {p: 12 * sizes[p] / len(segments) for p in sizes.index}
    floors = {p: int(q) for p, q in quotas.items()}
    left = 12 - sum(floors.values())
    for p in sorted(quotas, key=lambda p: -(quotas[p] - floors[p]))[:left]:
        floors[p] += 1
    assert n == floors
    assert all(t == t.upper() for t in frame["segment_text"])


@pytest.mark.parametrize("extra, message", [
    (["--n", "5", "--strata", "speaker"], "--strata: ['speaker'] not in segments/"),
    (["--n", "100000"], "is larger than"),
    (["--n", "2", "--strata", "party,has_mention"], "smaller than the 4 non-empty strata"),
    (["--n", "5", "--allocation", "optimal"], "--allocation: invalid value 'optimal'"),
    (["--n", "0"], "--n: 0"),
])
def test_bad_sample_requests_stop_with_one_line(run_output, tmp_path, capsys, extra, message):
    out, _ = run_output
    assert _sample(out, tmp_path / "bad", *extra) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "bad").exists()


def _code(frame, segments_of):
    """A coder who agrees with the models except on known rows (returns the filled frame and them).

    Row 1 of the predicted-positive rows: the coder sees no mention (a false positive); the first
    row without a prediction: the coder finds the sentence's first word to be a group (a false
    negative); the second predicted row: the first mention's stance flipped. The last two rows are
    left uncoded, and two rows get faults (an unknown stance, a span not in the sentence).
    """
    frame = frame.copy()
    frame["gold_has_mention"] = (frame["predicted"] != "").astype(int).astype(str)
    frame["gold_mentions"] = frame["predicted"]
    loud = frame.index[frame["predicted"] != ""].tolist()
    quiet = frame.index[frame["predicted"] == ""].tolist()
    frame.loc[loud[0], ["gold_has_mention", "gold_mentions"]] = ["0", ""]
    word = frame.loc[quiet[0], "segment_text"].split()[0].strip(".,;:!?\"'")
    frame.loc[quiet[0], ["gold_has_mention", "gold_mentions"]] = ["1", f"{word}|negative"]
    span, stance = frame.loc[loud[1], "gold_mentions"].split("; ")[0].rsplit("|", 1)
    flipped = "positive" if stance != "positive" else "negative"
    rest = frame.loc[loud[1], "gold_mentions"].split("; ")[1:]
    frame.loc[loud[1], "gold_mentions"] = "; ".join([f"{span}|{flipped}", *rest])
    frame.loc[loud[2], "gold_mentions"] = frame.loc[loud[2], "gold_mentions"].replace("|", "|hostile", 1)
    frame.loc[quiet[1], ["gold_has_mention", "gold_mentions"]] = ["1", "no such words here|neutral"]
    frame.loc[frame.index[-2:], ["gold_has_mention", "gold_mentions"]] = ["", ""]
    faults = {frame.loc[loud[2], "sample_id"], frame.loc[quiet[1], "sample_id"]}
    uncoded = set(frame.loc[frame.index[-2:], "sample_id"])
    return frame, faults - uncoded, uncoded


def _write_sheet(frame, path):
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, quoting=csv.QUOTE_MINIMAL)
    path.write_text("\ufeff" + buffer.getvalue(), encoding="utf-8")


def test_validate_end_to_end_recomputed_from_the_sheet(run_output, sheet, tmp_path):
    from group_appeal_spark.jobs import validate

    out, docs = run_output
    frame = _read_sheet(sheet / "sheet.csv")
    coded, faults, uncoded = _code(frame, None)
    codes = sheet / "coded.csv"
    _write_sheet(coded, codes)
    result_dir = tmp_path / "validation"
    assert validate.main(["--input", str(out), "--codes", str(codes), "--output", str(result_dir), "--min-coded",
                          "5", "--bootstrap", "300", "--master", "local[2]"]) == 0
    result = json.loads((result_dir / "metrics.json").read_text())
    assert result["uncoded"] == len(uncoded) and {p["sample_id"] for p in result["problems"]} == faults
    used = coded[~coded["sample_id"].isin(faults | uncoded)]
    assert result["coded"] == len(used) and result["weighted"] is True
    # sentence level, weighted by 1/pi: recomputed here
    w = 1 / used["pi"].astype(float)
    pred, gold = used["predicted"] != "", used["gold_has_mention"] == "1"
    precision = (w * (pred & gold)).sum() / (w * pred).sum()
    recall = (w * (pred & gold)).sum() / (w * gold).sum()
    got = result["metrics"]["has_mention"]
    assert got["precision"] == pytest.approx(precision) and got["recall"] == pytest.approx(recall)
    assert precision < 1 and recall < 1
    # one stance flipped among the matched mentions
    conf = np.array(result["metrics"]["stance"]["confusion"]["counts"])
    assert conf.sum() - np.trace(conf) == 1
    for name in ("has_mention", "mentions_strict", "mentions_relaxed"):
        cell = result["intervals"][name]["f1"]
        assert cell["ci_low"] <= cell["estimate"] <= cell["ci_high"]

    # the corrected share of segments with a mention, for all segments: sum of the pseudo-outcomes / N
    segments = pd.read_parquet(out / "segments")
    table = pd.read_parquet(result_dir / "corrected")
    assert list(table.columns) == ["party", "scope", "measure", "estimate_predicted", "estimate_dsl", "se", "ci_low",
                                   "ci_high", "n_segments", "n_coded", "reason"]
    yhat_all = (segments["n_mentions"] > 0).astype(float)
    keyed = used.assign(seg_idx=used["seg_idx"].astype(int)).merge(segments, on=["doc_id", "seg_idx"])
    residual = (gold.astype(float).values - (keyed["n_mentions"] > 0).astype(float).values) / keyed["pi"].astype(float)
    expected = (yhat_all.sum() + residual.sum()) / len(segments)
    row = table[(table["scope"] == "all") & (table["measure"] == "share_segments_with_mentions")].iloc[0]
    assert row["estimate_predicted"] == pytest.approx(yhat_all.mean())
    assert row["estimate_dsl"] == pytest.approx(expected) and row["estimate_dsl"] != row["estimate_predicted"]
    assert row["ci_low"] < row["estimate_dsl"] < row["ci_high"] and row["n_coded"] == len(used)
    # one row per party and measure, with the party's own segments and coded rows
    parties = table[table["scope"] == "group"]
    assert sorted(set(parties["party"])) == ["A", "B"] and len(parties) == 2 * 5
    for party, n_coded in keyed.groupby("party").size().items():
        mine = parties[parties["party"] == party]
        assert (mine["n_coded"] == n_coded).all() and (mine["n_segments"] == (segments["party"] == party).sum()).all()
    page = (result_dir / "report.html").read_text(encoding="utf-8")
    assert "corrected (DSL)" in page and 'id="metrics"' in page and page.count("<svg") == 5


def test_validate_refuses_what_it_cannot_use(run_output, sheet, tmp_path, capsys):
    from group_appeal_spark.jobs import validate

    out, _ = run_output
    base = ["--input", str(out), "--output", str(tmp_path / "v"), "--master", "local[2]"]
    assert validate.main([*base, "--codes", str(tmp_path / "none.csv")]) == 2
    assert "--codes:" in capsys.readouterr().err
    assert validate.main([*base, "--codes", str(sheet / "sheet.csv")]) == 2  # nothing coded yet
    assert "has no usable coded row (40 rows: 40 not coded yet" in capsys.readouterr().err
    assert validate.main([*base, "--codes", str(sheet / "sheet.csv"), "--min-coded", "1"]) == 2
    assert "--min-coded: 1" in capsys.readouterr().err
    assert not (tmp_path / "v").exists()


def test_sample_overwrite_never_loses_a_coded_sheet(run_output, tmp_path, capsys):
    out, _ = run_output
    folder = tmp_path / "s"
    assert _sample(out, folder, "--n", "6") == 0
    assert _sample(out, folder, "--n", "6") == 2
    assert "already exists" in capsys.readouterr().err
    assert _sample(out, folder, "--n", "6", "--seed", "8", "--overwrite") == 0
    frame = _read_sheet(folder / "sheet.csv")
    frame.loc[0, "gold_has_mention"] = "0"
    _write_sheet(frame, folder / "sheet.csv")
    assert _sample(out, folder, "--n", "6", "--overwrite") == 2
    assert "has 1 coded rows; --overwrite would lose them" in capsys.readouterr().err
    assert _read_sheet(folder / "sheet.csv").loc[0, "gold_has_mention"] == "0"
