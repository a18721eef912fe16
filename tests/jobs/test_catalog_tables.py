"""Catalog tables: documents read from a table (--input-table), outputs published as tables
(--output-table-prefix), on the test session's local catalog with a database of its own."""

import json
import os
import re

import numpy as np
import pandas as pd
import pytest
from group_appeal_spark.jobs import assign as assign_job
from group_appeal_spark.jobs import catalog, cli
from group_appeal_spark.jobs import cluster as cluster_job
from group_appeal_spark.jobs import detect as detect_job
from group_appeal_spark.jobs import run as run_job
from group_appeal_spark.lib.config import load_config
from group_appeal_spark.lib.errors import ConfigError
from group_appeal_spark.lib.table_names import TablePrefix, parse_table
from sentences import sentences

DB = "gas_catalog_tests"
DETECT = ["mentions", "errors", "documents", "segments", "mention_embeddings"]


# -- names (no Spark) ---------------------------------------------------------------------------

@pytest.mark.parametrize("text, namespace, prefix, mentions", [
    ("main.appeals.hansard_", ("main", "appeals"), "hansard_", "main.appeals.hansard_mentions"),
    ("appeals.h_", ("appeals",), "h_", "appeals.h_mentions"),
    ("h_", (), "h_", "h_mentions"),
    ("main.appeals.", ("main", "appeals"), "", "main.appeals.mentions"),
    ("`my-catalog`.appeals.`x-`", ("my-catalog", "appeals"), "x-", "`my-catalog`.appeals.`x-mentions`"),
])
def test_prefix_forms(text, namespace, prefix, mentions):
    parsed = TablePrefix.parse(text)
    assert (parsed.namespace, parsed.prefix, parsed.name("mentions")) == (namespace, prefix, mentions)
    assert parsed.spark_name("mentions") == ".".join(f"`{p}`" for p in (*namespace, prefix + "mentions"))


@pytest.mark.parametrize("overrides, match", [
    ({"output.table_prefix": "a.b.c.d"}, r"output.table_prefix: 'a.b.c.d' has 4 dot-separated parts, at most 3"),
    ({"output.table_prefix": "bad-name_"}, r"output.table_prefix: 'bad-name_' is not a valid name at '-name_'"),
    ({"output.table_prefix": "a..b_"}, r"output.table_prefix: 'a..b_' is not a valid name at '.b_'"),
    ({"output.table_prefix": "."}, r"output.table_prefix: '.' is not a valid name"),
    ({"output.table_prefix": ""}, r"output.table_prefix: '' must be a table name"),
    ({"output.table_prefix": "x_", "output.format": "csv"}, r"output.table_prefix: .* output.format 'csv' does not keep"),
    ({"input.table": "main.corpora."}, r"input.table: 'main.corpora.' is not a valid name at its end"),
    ({"input.table": "a.b.c.d"}, r"input.table: 'a.b.c.d' has 4 dot-separated parts"),
])
def test_bad_names_are_config_errors(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config(overrides=overrides)


def test_good_names_are_kept_as_given():
    config = load_config(overrides={"input.table": "main.corpora.hansard", "output.table_prefix": "main.appeals."})
    assert (config.input.table, config.output.table_prefix) == ("main.corpora.hansard", "main.appeals.")
    assert parse_table(config.input.table) == ("main", "corpora", "hansard")


@pytest.mark.parametrize("job, flags", [
    ("run", ["--input-table", "--output-table-prefix"]),
    ("detect", ["--input-table", "--output-table-prefix"]),
    ("cluster", ["--output-table-prefix"]),
    ("assign", ["--output-table-prefix"]),
])
def test_help_shows_the_table_flags(job, flags, capsys):
    with pytest.raises(SystemExit):
        cli.main([job, "--help"])
    out = capsys.readouterr().out
    assert all(flag in out for flag in flags), out


@pytest.mark.parametrize("job", ["run", "detect"])
@pytest.mark.parametrize("given, match", [
    (["--input", "x.parquet", "--input-table", "db.docs"], "give --input PATH or --input-table NAME, not both"),
    ([], "no input; give --input PATH .* or --input-table NAME"),
])
def test_exactly_one_of_input_and_input_table(job, given, match, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main([job, *given, "--output", str(out)]) == 2
    error = _last_error(capsys)
    assert error.startswith(f"{job}: error: input: ") and re.search(match, error), error
    assert not out.exists()


# -- the jobs on the local catalog --------------------------------------------------------------

@pytest.fixture(scope="module")
def db(spark, tmp_path_factory):
    """A database of its own, under a temporary folder (not the working directory's spark-warehouse)."""
    location = tmp_path_factory.mktemp("warehouse") / f"{DB}.db"
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {DB} LOCATION '{location}'")
    yield DB
    spark.sql(f"DROP DATABASE IF EXISTS {DB} CASCADE")


@pytest.fixture(scope="module")
def corpus(spark, db, hub_cache, tmp_path_factory):
    """The same documents as a parquet folder and as the table ``<db>.docs``; one has an input error."""
    rows = [{"id": f"d{i:02d}", "party": ["Lab", "Con"][i % 2], "text": t} for i, t in enumerate(sentences(14, seed=5))]
    rows.append({"id": "empty", "party": "Lab", "text": ""})
    path = tmp_path_factory.mktemp("catalog-corpus") / "docs"
    spark.createDataFrame(pd.DataFrame(rows)).repartition(2).write.parquet(str(path))
    spark.read.parquet(str(path)).write.saveAsTable(f"{db}.docs")
    return path


def _table(spark, folder, name):
    return spark.read.parquet(str(folder / name))


def assert_same_rows(spark, folder, name, table):
    """The catalog table ``table`` holds exactly the rows and columns of ``<folder>/<name>``."""
    want, got = _table(spark, folder, name), spark.table(table)
    assert got.schema == want.schema, (table, got.schema, want.schema)
    assert got.count() == want.count() and got.exceptAll(want).count() == 0 and want.exceptAll(got).count() == 0, table


def _last_error(capsys) -> str:
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def table_run(corpus, db):
    out = corpus.parent.parent / "table-run"
    assert run_job.main(["--input-table", f"{db}.docs", "--output", str(out), "--output-table-prefix", f"{db}.r_",
                         "--carry-cols", "party", "--k-min", "2", "--k-max", "3", "--set", "output.plots=false",
                         "--master", "local[2]"]) == 0
    return out


@pytest.mark.spark
def test_run_from_a_table_publishes_every_table_it_wrote(spark, db, table_run):
    summary = json.loads((table_run / "summary.json").read_text())
    marker = json.loads((table_run / "_SUCCESS.json").read_text())
    assert summary["chosen_k"] and summary["input_rows"] == 15 and summary["documents_with_errors"] == 1
    written = [*DETECT, "k_search", "clusters", "cluster_summary", "aggregates"]
    assert summary["catalog_tables"] == {name: f"{db}.r_{name}" for name in written}
    assert marker["catalog_tables"] == summary["catalog_tables"] and sorted(marker["tables"]) == sorted(written)
    assert summary["config"]["input"]["table"] == f"{db}.docs" and summary["config"]["input"]["path"] is None
    for name, table in summary["catalog_tables"].items():
        assert_same_rows(spark, table_run, name, table)
    assert spark.table(f"{db}.r_documents").count() == 15


@pytest.fixture(scope="module")
def file_detect(spark, corpus, db, tmp_path_factory):
    """detect from the parquet folder, into a prefix where two tables are in the way: refused, then --overwrite."""
    spark.range(3).write.saveAsTable(f"{db}.d_mentions")
    spark.range(2).write.saveAsTable(f"{db}.d_errors")
    out = tmp_path_factory.mktemp("file-detect") / "out"
    args = ["--input", str(corpus), "--output", str(out), "--output-table-prefix", f"{db}.d_", "--carry-cols", "party",
            "--master", "local[2]"]
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        refused = detect_job.main(args)
    written_before = out.exists()
    assert detect_job.main([*args, "--overwrite"]) == 0
    return out, refused, err.getvalue().strip().splitlines()[-1], written_before


@pytest.mark.spark
def test_existing_tables_are_refused_then_replaced_with_overwrite(spark, db, file_detect):
    out, refused, error, written_before = file_detect
    assert refused == 2 and not written_before, "refused before anything was written"
    assert error == (f"detect: error: output: catalog table(s) {db}.d_mentions, {db}.d_errors already exist; "
                     f"choose another --output-table-prefix, or pass --overwrite to replace them")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["catalog_tables"] == {name: f"{db}.d_{name}" for name in DETECT}
    for name in DETECT:
        assert_same_rows(spark, out, name, f"{db}.d_{name}")


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in ("doc_id", "seg_idx", "start", "mention_key") if c in df.columns]
    return df.sort_values(keys).reset_index(drop=True)


@pytest.mark.spark
def test_input_from_a_table_equals_input_from_the_same_parquet(spark, db, table_run, file_detect):
    from_file = file_detect[0]
    for name in ("mentions", "errors", "documents", "segments"):
        pd.testing.assert_frame_equal(_sorted(spark.table(f"{db}.r_{name}").toPandas()),
                                      _sorted(pd.read_parquet(from_file / name)), obj=name)
    got = _sorted(spark.table(f"{db}.r_mention_embeddings").toPandas())
    want = _sorted(pd.read_parquet(from_file / "mention_embeddings"))
    pd.testing.assert_frame_equal(got.drop(columns="embedding"), want.drop(columns="embedding"))
    np.testing.assert_allclose(np.stack(got["embedding"]), np.stack(want["embedding"]), atol=1e-6, rtol=0)


@pytest.mark.spark
def test_resume_of_a_finished_output_publishes_it(spark, db, corpus, file_detect):
    out = file_detect[0]
    assert detect_job.main(["--input", str(corpus), "--output", str(out), "--output-table-prefix", f"{db}.late_",
                            "--carry-cols", "party", "--resume", "--master", "local[2]"]) == 0
    published = {name: f"{db}.late_{name}" for name in DETECT}
    assert json.loads((out / "summary.json").read_text())["catalog_tables"] == published
    assert json.loads((out / "_SUCCESS.json").read_text())["catalog_tables"] == published
    for name in DETECT:
        assert_same_rows(spark, out, name, published[name])


@pytest.mark.spark
def test_a_missing_input_table_stops_the_job_with_one_line(db, corpus, tmp_path, capsys):
    out = tmp_path / "out"
    assert detect_job.main(["--input-table", f"{db}.no_such_docs", "--output", str(out), "--master", "local[2]"]) == 2
    assert _last_error(capsys) == (f"detect: error: input: table {db}.no_such_docs does not exist (--input-table / "
                                   f"input.table); check its catalog and schema, or give --input PATH")
    assert not out.exists()


@pytest.mark.spark
@pytest.mark.parametrize("prefix, match", [
    ("no_such_schema.p_", "output: schema no_such_schema of --output-table-prefix no_such_schema.p_ does not exist; "
                          "create it first (CREATE SCHEMA no_such_schema) or give another prefix"),
    ("spark_catalog.no_such_schema.p_", "output: schema spark_catalog.no_such_schema of --output-table-prefix"),
    ("a.b.c.d", "output.table_prefix: 'a.b.c.d' has 4 dot-separated parts"),
    ("bad-name_", "output.table_prefix: 'bad-name_' is not a valid name"),
])
def test_bad_prefixes_stop_the_job_with_one_line(db, corpus, tmp_path, capsys, prefix, match):
    out = tmp_path / "out"
    code = run_job.main(["--input", str(corpus), "--output", str(out), "--output-table-prefix", prefix,
                         "--master", "local[2]"])
    error = _last_error(capsys)
    assert code == 2 and error.startswith("run: error: ") and match in error, error
    assert not out.exists()


@pytest.mark.spark
def test_a_prefix_that_would_replace_the_input_table_is_refused(spark, db, corpus, tmp_path, capsys):
    spark.read.parquet(str(corpus)).write.saveAsTable(f"{db}.clash_documents")
    out = tmp_path / "out"
    assert detect_job.main(["--input-table", f"{db}.clash_documents", "--output", str(out), "--output-table-prefix",
                            f"{db}.clash_", "--overwrite", "--master", "local[2]"]) == 2
    assert _last_error(capsys) == (f"detect: error: output: --output-table-prefix {db}.clash_ would replace the "
                                   f"input table {db}.clash_documents; choose another prefix")
    assert spark.table(f"{db}.clash_documents").count() == 15 and not out.exists()


@pytest.fixture(scope="module")
def clustered(table_run, db, tmp_path_factory):
    out = tmp_path_factory.mktemp("catalog-cluster") / "out"
    assert cluster_job.main(["--input", str(table_run), "--output", str(out), "--n-clusters", "2",
                             "--output-table-prefix", f"spark_catalog.{db}.c_", "--set", "output.plots=false",
                             "--master", "local[2]"]) == 0
    return out


@pytest.mark.spark
def test_cluster_and_assign_publish_their_tables(spark, db, table_run, clustered, tmp_path, capsys):
    summary = json.loads((clustered / "summary.json").read_text())
    names = ["k_search", "clusters", "cluster_summary", "aggregates"]
    assert summary["catalog_tables"] == {name: f"spark_catalog.{db}.c_{name}" for name in names}
    assert json.loads((clustered / "_SUCCESS.json").read_text())["catalog_tables"] == summary["catalog_tables"]
    for name, table in summary["catalog_tables"].items():
        assert_same_rows(spark, clustered, name, table)
    # assign: clusters/ only; a second time into the same tables needs --overwrite
    args = ["--input", str(table_run), "--cluster-model", str(clustered / "cluster_model"),
            "--output-table-prefix", f"{db}.a_", "--master", "local[2]"]
    assert assign_job.main([*args, "--output", str(tmp_path / "a1")]) == 0
    summary = json.loads((tmp_path / "a1" / "summary.json").read_text())
    assert summary["catalog_tables"] == {"clusters": f"{db}.a_clusters"} and "tables" not in summary
    assert_same_rows(spark, tmp_path / "a1", "clusters", f"{db}.a_clusters")
    assert assign_job.main([*args, "--output", str(tmp_path / "a2")]) == 2
    assert f"output: catalog table(s) {db}.a_clusters already exist" in _last_error(capsys)
    assert not (tmp_path / "a2" / "clusters").exists()


@pytest.mark.spark
def test_a_published_table_that_lost_rows_fails_the_job(spark, db, table_run, clustered, tmp_path, capsys,
                                                        monkeypatch):
    monkeypatch.setattr(catalog, "_table_rows", lambda spark, name: 0)
    out = tmp_path / "out"
    assert assign_job.main(["--input", str(table_run), "--cluster-model", str(clustered / "cluster_model"),
                            "--output", str(out), "--output-table-prefix", f"{db}.lost_", "--master", "local[2]"]) == 2
    n = spark.read.parquet(str(out / "clusters")).count()
    assert _last_error(capsys) == (f"assign: error: output: published table {db}.lost_clusters has 0 rows but "
                                   f"{out}/clusters has {n:,}; the table is incomplete: run again with --overwrite")
    assert not (out / "_SUCCESS.json").exists() and not (out / "summary.json").exists()


@pytest.mark.spark
def test_cluster_into_its_own_input_republishes_its_tables(spark, db, table_run, tmp_path):
    import shutil

    folder = tmp_path / "run"
    shutil.copytree(table_run, folder)
    assert cluster_job.main(["--input", str(folder), "--output", str(folder), "--overwrite", "--n-clusters", "2",
                             "--output-table-prefix", f"{db}.s_", "--set", "output.plots=false",
                             "--master", "local[2]"]) == 0
    names = ["k_search", "clusters", "cluster_summary", "aggregates"]
    assert json.loads((folder / "cluster_summary.json").read_text())["catalog_tables"] == \
        {name: f"{db}.s_{name}" for name in names}
    # the marker keeps the run's detect tables where they were published, the replaced ones where they are now
    marker = json.loads((folder / "_SUCCESS.json").read_text())
    assert marker["catalog_tables"] == {**{name: f"{db}.r_{name}" for name in DETECT},
                                        **{name: f"{db}.s_{name}" for name in names}}
    for name in names:
        assert_same_rows(spark, folder, name, f"{db}.s_{name}")


@pytest.mark.spark
def test_overwrite_drops_a_table_of_the_job_this_run_did_not_write(spark, db, clustered):
    """E.g. aggregates/, which a run that skips clustering does not write: the prefix never mixes two runs."""
    spark.range(4).write.saveAsTable(f"{db}.z_aggregates")
    spark.range(4).write.saveAsTable(f"{db}.z_other")  # not one of the job's tables: left alone
    config = load_config(overrides={"output.path": str(clustered), "output.table_prefix": f"{db}.z_",
                                    "output.mode": "overwrite"})
    published = catalog.publish(spark, config, ["clusters"], replace=True, others=["clusters", "aggregates"])
    assert published == {"clusters": f"{db}.z_clusters"}
    assert not spark.catalog.tableExists(f"{db}.z_aggregates") and spark.catalog.tableExists(f"{db}.z_other")
    assert_same_rows(spark, clustered, "clusters", f"{db}.z_clusters")


@pytest.mark.spark
@pytest.mark.parametrize("prefix, bad", [("`bad-`", "bad-mentions"), ("`größe_`", "größe_mentions")])
def test_a_prefix_the_session_catalog_refuses_stops_the_job_before_any_work(spark, db, corpus, tmp_path, capsys,
                                                                             prefix, bad):
    """Spark's session catalog refuses such a name only after it wrote the table's files (issue 17.6)."""
    location = spark.sql(f"DESCRIBE DATABASE {db}").where("info_name = 'Location'").first()["info_value"]
    before = sorted(os.listdir(location.replace("file:", "")))
    out = tmp_path / "out"
    assert detect_job.main(["--input", str(corpus), "--output", str(out), "--output-table-prefix", f"{db}.{prefix}",
                            "--master", "local[2]"]) == 2
    assert _last_error(capsys) == (f"detect: error: output: --output-table-prefix {db}.{prefix}: Spark's session "
                                   f"catalog takes only ASCII letters, digits and _ in schema and table names, "
                                   f"not {bad!r}; choose another prefix")
    assert sorted(os.listdir(location.replace("file:", ""))) == before and not out.exists()
