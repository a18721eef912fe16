"""Input hygiene: CSV rows that swallow the lines after them, and rows that share a document id.

Every input row must come out either as a document or as an error record that says why.
"""

import json
import re

import pytest
from group_appeal_spark.jobs import detect as detect_job
from group_appeal_spark.jobs.storage import readers
from group_appeal_spark.jobs.transforms.appeals import prepare_documents
from group_appeal_spark.jobs.transforms.documents import count_duplicate_ids
from group_appeal_spark.lib.choices import DuplicateIds
from group_appeal_spark.lib.config import load_config
from group_appeal_spark.lib.errors import ConfigError, InputError

pytestmark = pytest.mark.spark

SWALLOWED = "unterminated quoted field: this row swallowed the lines after it"


def _prepared(spark, path, **overrides) -> dict:
    """doc_id -> (text, error) of the prepared documents of a CSV input."""
    config = load_config(overrides={"input.path": str(path), "input.format": "csv", **overrides})
    rows = prepare_documents(readers.read_documents(spark, config.input), config).collect()
    out = {r["doc_id"]: (r["__text"], r["__input_error"]) for r in rows}
    assert len(out) == len(rows), "one row per doc_id in these files"
    return out


def test_clean_csv_with_bom_paragraphs_and_doubled_quotes(spark, tmp_path):
    path = tmp_path / "clean.csv"
    # paragraph lines with as many commas as the header: legitimate, as the quotes pair up
    path.write_bytes(b'\xef\xbb\xbfid,party,text\r\n'
                     b'1,Lab,"First, we act.\r\n\r\nThen, we, the people, decide."\r\n'
                     b'2,Con,"He said ""farmers, nurses, teachers"" twice"\r\n'
                     b'3,LD,plain text\r\n'
                     b'4,Grn,"""Quoted"" at the start,\nand a, b, c after"\r\n')
    config = load_config(overrides={"input.path": str(path), "input.format": "csv"})
    df = readers.read_documents(spark, config.input)
    assert df.columns[:3] == ["id", "party", "text"], "the byte order mark is not part of the first name"
    assert _prepared(spark, path) == {
        "1": ("First, we act.\n\nThen, we, the people, decide.", None),  # Spark's parser makes \r\n \n
        "2": ('He said "farmers, nurses, teachers" twice', None),
        "3": ("plain text", None),
        "4": ('"Quoted" at the start,\nand a, b, c after', None),
    }


def test_ragged_rows_are_malformed_lines(spark, tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text('id,party,text\n1,Lab,"We support farmers."\n2,Con\n3,LD,too,many,fields\n4,Grn,ok\n',
                    encoding="utf-8")
    got = _prepared(spark, path)
    assert {k: v[1] for k, v in got.items()} == {"1": None, "2": "malformed CSV line", "3": "malformed CSV line",
                                                 "4": None}


@pytest.mark.parametrize("body, swallowed, breaks", [
    # the runaway quote stops at a later quote: Spark keeps the raw text from the opening quote
    ('1,Lab,ok\n2,Con,"never closed\n3,LD,"third, row"\n4,Grn,fourth\n', "2", 1),
    # the runaway quote runs to the end of the file
    ('1,Lab,ok\n2,Con,"never closed\n3,LD,third row\n4,Grn,fourth\n', "2", 3),
    # ... and the file has no final line break
    ('1,Lab,ok\n2,Con,"never closed\n3,LD,third row\n4,Grn,fourth', "2", 2),
    # two runaway quotes: the file's quotes pair up again, the raw values' own quotes do not
    ('1,Lab,ok\n2,Con,"never closed\n3,LD,"third, row"\n4,Grn,"also open\n5,X,"fifth"\n6,Y,six\n', "2 4", 1),
])
def test_unterminated_quote_mid_file_is_reported(spark, tmp_path, body, swallowed, breaks):
    path = tmp_path / "broken.csv"
    path.write_text("id,party,text\n" + body, encoding="utf-8")
    got = _prepared(spark, path)
    for key in swallowed.split():
        reason = got[key][1]
        assert reason.startswith(SWALLOWED)
        assert f"({breaks} line break(s) inside a quoted field of " in reason
        assert "broken.csv" in reason and 'double any quote inside it ("")' in reason
        assert got[key][0] is None, "withheld from the models"
    assert got["1"] == ("ok", None)
    # nothing else is silently merged: every other row Spark produced is a clean document
    assert all(error is None for key, (_, error) in got.items() if key not in swallowed.split())
    assert "3" not in got, "row 3 lives inside the reported row"


def test_swallowed_row_in_a_malformed_line(spark, tmp_path):
    path = tmp_path / "short.csv"
    # the runaway quote in the middle column: the swallowed row ends up with too few fields
    path.write_text('id,party,text\n1,"Lab,never closed\n2,Con,b\n', encoding="utf-8")
    got = _prepared(spark, path)
    assert list(got) == ["1"] and got["1"][1].startswith(SWALLOWED)
    assert "inside a quoted field of column 'party'" in got["1"][1]


def test_broken_file_does_not_taint_its_neighbours(spark, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    (folder / "a.csv").write_text('id,party,text\n1,Lab,"Para one,\nthen, two, three"\n', encoding="utf-8")
    (folder / "b.csv").write_text('id,party,text\n2,Con,"never closed\n3,LD,x\n', encoding="utf-8")
    got = _prepared(spark, folder)
    assert got["1"] == ("Para one,\nthen, two, three", None)
    assert got["2"][1].startswith(SWALLOWED) and "b.csv" in got["2"][1]


# --- duplicate ids ---------------------------------------------------------------------------

def _dup_frame(spark, order=1, partitions=1):
    rows = [("a", "P", "first text"), ("b", "P", "only"), ("a", "Q", "another"), ("c", "P", "one"),
            ("a", "P", "first text"), ("c", "R", "two"), (None, "P", "no id")]
    return spark.createDataFrame(rows[::order], "id string, party string, text string").repartition(partitions)


def test_duplicate_ids_keep_processes_every_row(spark):
    config = load_config(overrides={"input.carry_cols": ["party"]})
    assert config.input.duplicate_ids == "keep"
    docs = prepare_documents(_dup_frame(spark), config).collect()
    assert len(docs) == 7 and [r["__input_error"] for r in docs].count(None) == 6
    assert count_duplicate_ids(_dup_frame(spark), config) == (
        count_duplicate_ids(_dup_frame(spark), config).__class__(ids=2, rows=5, examples=["a", "c"]))


@pytest.mark.parametrize("order, partitions", [(1, 1), (-1, 3), (1, 4)])
def test_duplicate_ids_first_keeps_one_row_deterministically(spark, order, partitions):
    config = load_config(overrides={"input.duplicate_ids": "First", "input.carry_cols": ["party"]})
    docs = prepare_documents(_dup_frame(spark, order, partitions), config).collect()
    assert len(docs) == 7, "every row is a document or an error record"
    kept = sorted((r["doc_id"], r["party"], r["__text"]) for r in docs if r["__input_error"] is None)
    assert kept == [("a", "P", "first text"), ("b", "P", "only"), ("c", "P", "one")]
    dropped = sorted((r["doc_id"], r["party"], r["__input_error"]) for r in docs
                     if r["__input_error"] and r["doc_id"] is not None)
    reason = "duplicate document id (input.duplicate_ids=first): kept another row with this id (id)"
    assert dropped == [("a", "P", reason), ("a", "Q", reason), ("c", "R", reason)]


def test_duplicate_ids_first_prefers_a_row_without_input_error(spark, tmp_path):
    path = tmp_path / "dup.csv"
    # row "1" first by column order is malformed; the valid copy is the one processed
    path.write_text('id,party,text\n1,A\n1,B,good text\n', encoding="utf-8")
    config = load_config(overrides={"input.path": str(path), "input.format": "csv", "input.duplicate_ids": "first"})
    docs = prepare_documents(readers.read_documents(spark, config.input), config).collect()
    assert sorted(((r["__text"], r["__input_error"]) for r in docs), key=str) == [
        ("good text", None), (None, "malformed CSV line")]


def test_duplicate_ids_error_names_count_and_examples(spark):
    config = load_config(overrides={"input.duplicate_ids": "error"})
    with pytest.raises(InputError, match=r"^input: 2 document id\(s\) occur more than once in column 'id' "
                                         r"\(5 rows\), e\.g\. 'a', 'c'; make the ids unique"):
        prepare_documents(_dup_frame(spark), config)
    unique = spark.createDataFrame([("a", "x"), ("b", "y")], "id string, text string")
    assert prepare_documents(unique, config).count() == 2


def test_generated_ids_are_never_duplicates(spark):
    config = load_config(overrides={"input.duplicate_ids": "error", "input.id_col": "nope"})
    assert prepare_documents(_dup_frame(spark), config).count() == 7
    assert count_duplicate_ids(_dup_frame(spark), config).rows == 0


@pytest.mark.parametrize("value", ["drop", "last", "", 1])
def test_bad_duplicate_ids_choice_fails_at_load(value):
    valid = ", ".join(map(repr, DuplicateIds.values()))
    with pytest.raises(ConfigError, match=rf"^input\.duplicate_ids: invalid value {re.escape(repr(str(value)))}; "
                                          rf"expected one of: {re.escape(valid)}$"):
        load_config(overrides={"input.duplicate_ids": value})


@pytest.fixture(scope="module")
def dup_jsonl(tmp_path_factory):
    path = tmp_path_factory.mktemp("dups") / "docs.jsonl"
    rows = [{"id": "a", "text": "We support farmers."}, {"id": "a", "text": "Nurses deserve better."},
            {"id": "b", "text": "Pensioners matter."}, {"id": "a", "text": "Teachers too."}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_detect_first_mode_reconciles_and_counts(dup_jsonl, tmp_path, hub_cache, spark):
    import pandas as pd

    out = tmp_path / "out"
    assert detect_job.main(["--input", str(dup_jsonl), "--input-format", "json", "--output", str(out),
                            "--set", "input.duplicate_ids=first", "--master", "local[2]"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["input_rows"] == 4 and summary["documents_ok"] == 2 and summary["documents_with_errors"] == 2
    assert summary["duplicate_ids"] == 1 and summary["duplicate_id_rows"] == 3
    errors = pd.read_parquet(out / "errors")
    assert errors[["doc_id", "stage"]].values.tolist() == [["a", "input"], ["a", "input"]]
    assert errors["error"].str.startswith("duplicate document id (input.duplicate_ids=first)").all()


def test_detect_error_mode_stops_with_one_line(dup_jsonl, tmp_path, hub_cache, spark, capsys, monkeypatch):
    def no_models(*a, **kw):
        raise AssertionError("the models must not run")

    from group_appeal_spark.jobs.pipeline import detect as detect_half

    monkeypatch.setattr(detect_half, "detect_appeals", no_models)
    out = tmp_path / "out"
    code = detect_job.main(["--input", str(dup_jsonl), "--input-format", "json", "--output", str(out),
                            "--set", "input.duplicate_ids=error", "--master", "local[2]"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("detect: error: input: 1 document id(s) occur more than once in column 'id' "
                              "(3 rows), e.g. 'a'")
