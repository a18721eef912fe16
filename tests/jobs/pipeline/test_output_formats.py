"""--output-format csv and json end to end (issue 17.3), and the tables' round trip through them."""

import json

import pandas as pd
import pytest
from sentences import sentences

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("formats-corpus") / "docs.jsonl"
    rows = [{"id": f"d{i:02d}", "party": "AB"[i % 2], "text": t} for i, t in enumerate(sentences(16, seed=5))]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_run_writes_csv_end_to_end_and_cluster_refuses_it_as_input(corpus, tmp_path, spark, hub_cache, capsys):
    from group_appeal_spark.jobs import cluster as cluster_job
    from group_appeal_spark.jobs import run as run_job
    from group_appeal_spark.jobs.storage.tables import read_table

    out = tmp_path / "out"
    assert run_job.main(["--input", str(corpus), "--input-format", "json", "--carry-cols", "party",
                         "--output", str(out), "--output-format", "csv", "--k-min", "2", "--k-max", "3",
                         "--set", "output.plots=false", "--master", "local[2]"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    marker = json.loads((out / "_SUCCESS.json").read_text())
    assert marker["complete"] is True and marker["format"] == "csv"
    mentions = pd.concat(pd.read_csv(p) for p in (out / "mentions").glob("part-*.csv"))
    assert len(mentions) == summary["mentions"] > 0 and {"doc_id", "party", "span", "stance"} <= set(mentions.columns)
    documents = pd.concat(pd.read_csv(p) for p in (out / "documents").glob("part-*.csv"))
    assert len(documents) == summary["input_rows"] == 16
    # arrays are JSON text in a cell, and come back as arrays with the table's schema
    embeddings = pd.concat(pd.read_csv(p) for p in (out / "mention_embeddings").glob("part-*.csv"))
    assert len(embeddings) == summary["unique_mentions"]
    assert all(len(json.loads(v)) == 128 for v in embeddings["embedding"])
    schema = "mention_key string, mention string, count long, embedding array<float>"
    back = read_table(spark, str(out / "mention_embeddings"), "csv", schema=spark.createDataFrame([], schema).schema)
    assert back.count() == len(embeddings) and len(back.first()["embedding"]) == 128
    assert (out / "aggregates").is_dir() and (out / "report.html").is_file() and summary["chosen_k"] in (2, 3)

    assert cluster_job.main(["--input", str(out), "--output", str(tmp_path / "again"), "--master", "local[2]"]) == 2
    assert "was written as csv, whose tables lose their column types" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_a_table_round_trips_with_its_types(fmt, spark, tmp_path):
    from group_appeal_spark.jobs.storage.tables import read_table, write_table

    schema = "k string, n long, share double, words array<string>, vec array<float>, flag boolean"
    rows = [("a,\"quoted\"\nline", 3, 0.25, ["x", "y, z"], [1.0, 2.5], True), ("b", None, None, [], [], False)]
    df = spark.createDataFrame(rows, schema)
    write_table(df, str(tmp_path / "t"), fmt, "error")
    back = read_table(spark, str(tmp_path / "t"), fmt, schema=df.schema)
    assert back.schema == df.schema
    assert sorted(map(tuple, back.collect())) == sorted(map(tuple, df.collect()))


def test_a_file_of_only_malformed_json_lines_gives_one_error_record_each(spark, tmp_path):
    from group_appeal_spark.jobs.storage.readers import read_documents
    from group_appeal_spark.jobs.transforms.columns import INPUT_ERROR
    from group_appeal_spark.lib.config import load_config

    path = tmp_path / "broken.jsonl"
    path.write_text('{"text": "unterminated\n[1, 2\nnot json at all\n')
    docs = read_documents(spark, load_config(overrides={"input.path": str(path), "input.format": "json"}).input)
    rows = docs.collect()
    assert len(rows) == 3 and all(r[INPUT_ERROR].startswith("malformed JSON line") for r in rows)
