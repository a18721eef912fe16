"""aggregates/ (mentions per group value and cluster) and report.html (lib/report.py, in a browser)."""

import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from group_appeal_spark.lib.config import load_config
from group_appeal_spark.lib.errors import InputError
from group_appeal_spark.lib.report import render_report

AGG_COLUMNS = ["cluster_id", "label", "mentions", "positive", "negative", "neutral", "documents", "segments",
               "segments_with_mentions", "share_segments_with_mentions", "segments_with_any_mention",
               "share_segments_with_any_mention", "net_stance"]


def report_frames():
    k_search = pd.DataFrame({"k": [2, 3, 4], "metric": "silhouette", "score": [0.61, 0.42, 0.30],
                             "estimated": False, "n_points": 8, "chosen": [True, False, False]})
    clusters = pd.DataFrame({
        "cluster_id": [0, 1], "n_occurrences": [7, 8], "n_unique": [4, 4],
        "top_mentions": [["women", "mothers"], ["farmers", "<script>alert(1)</script>"]],
        "central_mentions": [["women"], ["farmers"]],
        "share_positive": [0.5, 0.25], "share_negative": [0.25, 0.5], "share_neutral": [0.25, np.nan],
        "category": ["women", None], "category_share": [0.7, None], "label": ["women", "farmers & <co>"]})
    aggregates = pd.DataFrame({"party": ["A", "A", "B", None], "cluster_id": [0, 1, 1, 0],
                               "label": ["women", "farmers & <co>", "farmers & <co>", "women"],
                               "mentions": [5, 2, 6, 2], "positive": [2, 1, 1, 1], "negative": [2, 1, 3, 0],
                               "neutral": [1, 0, 2, 1], "documents": [3, 3, 4, 1]})
    examples = pd.DataFrame({"cluster_id": [0, 1], "mention": ["women", "farmers"],
                             "text": ["We stand with women.", None], "doc_id": ["d1", "d7"]})
    summary = {"input_rows": 9, "documents_ok": 8, "documents_errors": 1, "mentions": 15, "unique_mentions": 8,
               "chosen_k": 2, "metric": "silhouette", "source": "/data/<run>"}
    return summary, k_search, clusters, aggregates, examples


def test_report_holds_every_section_and_escapes_the_data():
    summary, k_search, clusters, aggregates, examples = report_frames()
    page = render_report(summary, k_search, clusters, aggregates, examples, "party")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert page.count('class="cluster-row"') == 2
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "farmers &amp; &lt;co&gt;" in page and "/data/&lt;run&gt;" in page
    assert '<svg id="k-search"' in page and page.count("<polyline") == 1 and page.count("<circle") == 3
    assert '<svg id="stance-bars"' in page and "no stance" not in page
    heat = re.search(r'<table id="heatmap">(.*?)</table>', page).group(1)
    assert re.findall(r"<tr><th>([^<]*)</th>", heat) == ["party", "A", "B", "(null)"]  # 7, 6, 2 mentions
    assert "We stand with women." in page and "(doc d7)" in page
    # a mention without its sentence is shown once, not repeated as its own context
    assert "<em>farmers</em>" not in page and page.count("<strong>farmers</strong>") == 1
    # beside each count, the rate per 100 documents of the group value: A has 3 documents, 5 mentions in 0
    assert re.search(r">5<br><span class=\"rate\">166\.7</span></td>", heat)
    assert "How to read this" in page and "silhouette" in page.split("How to read this")[1]
    # offline: nothing is fetched (the only URL is the SVG namespace)
    assert set(re.findall(r"https?://[^\"' ]+", page)) <= {"http://www.w3.org/2000/svg"}
    assert not re.search(r"<(link|img|iframe)\b|src=", page)


def test_report_without_clustering_or_groups_still_renders():
    summary, k_search, clusters, _, _ = report_frames()
    page = render_report({**summary, "chosen_k": None, "clustering_skipped": "too few"}, k_search.iloc[:0],
                         clusters.iloc[:0])
    assert "No clusters." in page and "No k search" in page and "No group column" in page
    assert "clustering skipped" in page and 'class="cluster-row"' not in page


def test_group_by_defaults_to_null_and_must_name_carried_columns():
    assert load_config().output.group_by is None
    assert load_config(overrides={"output.group_by": "party,date"}).output.group_by == ["party", "date"]
    ok = load_config(overrides={"input.carry_cols": ["party", "date"], "output.group_by": ["date"]})
    assert ok.output.group_by == ["date"]
    with pytest.raises(InputError, match=r"output.group_by \(--group-by\): \['year'\] not carried; the carried "
                                         r"columns are \['party'\]"):
        load_config(overrides={"input.carry_cols": ["party"], "output.group_by": ["year"]})


def test_group_by_flag_maps_to_the_config_key():
    from group_appeal_spark.jobs import cluster as cluster_job
    from group_appeal_spark.jobs import flags

    args = cluster_job.build_parser().parse_args(["--input", "x", "--group-by", "party, date"])
    assert flags.config_from_args(args).output.group_by == ["party", "date"]


# --- the cluster job on a hand-made run output ------------------------------------------------------

HAND = {  # mention: (blob, [(doc, party, stance), ...])
    "women": (0, [("d1", "A", "positive"), ("d1", "A", "negative"), ("d2", "B", "positive")]),
    "mothers": (0, [("d3", "B", "neutral")]),
    "farmers": (1, [("d1", "A", "negative"), ("d4", None, "negative")]),
    "workers": (1, [("d2", "B", "positive"), ("d2", "B", "neutral"), ("d3", "B", "positive")]),
}
# d5 (party A) has no mention; d6 (party B) failed: it counts in no group's documents
DOCS = [("d1", "A", None), ("d2", "B", None), ("d3", "B", None), ("d4", None, None), ("d5", "A", None),
        ("d6", "B", "input: empty text")]


@pytest.fixture(scope="module")
def grouped_output(tmp_path_factory, spark):
    folder = tmp_path_factory.mktemp("grouped") / "run"
    centers = np.eye(8, dtype=np.float32)[:2]
    rng = np.random.default_rng(1)
    emb, rows = [], []
    for mention, (blob, occurrences) in HAND.items():
        vector = centers[blob] + 0.05 * rng.normal(size=8).astype(np.float32)
        emb.append((mention, mention, len(occurrences), (vector / np.linalg.norm(vector)).tolist()))
        rows += [(doc, party, 0, mention, stance, mention, f"About {mention} in {doc}.")
                 for doc, party, stance in occurrences]
    spark.createDataFrame(emb, "mention_key string, mention string, count long, embedding array<float>") \
        .write.parquet(str(folder / "mention_embeddings"))
    spark.createDataFrame(rows, "doc_id string, party string, seg_idx int, span string, stance string, "
                                "mention_key string, segment_text string").repartition(2) \
        .write.parquet(str(folder / "mentions"))
    n = {d: sum(1 for _, (_, occ) in HAND.items() for o in occ if o[0] == d) for d, _, _ in DOCS}
    spark.createDataFrame([(d, p, 1, n[d], 0, 0, 0, e) for d, p, e in DOCS],
                          "doc_id string, party string, n_segments int, n_mentions int, n_positive int, "
                          "n_negative int, n_neutral int, error string").write.parquet(str(folder / "documents"))
    (folder / "_SUCCESS.json").write_text(
        '{"complete": true, "job": "detect", "tables": ["mention_embeddings", "mentions", "documents"]}')
    return folder


def expected_rows(clusters: pd.DataFrame, by_party: bool) -> dict:
    """(party, cluster_id) -> [mentions, positive, negative, neutral, documents], by hand."""
    cid = dict(zip(clusters["mention"], clusters["cluster_id"]))
    docs = {}
    for _, party, error in DOCS:
        if error is None:
            key = party if by_party else None
            docs[key] = docs.get(key, 0) + 1
    out = {}
    for mention, (_, occurrences) in HAND.items():
        for _, party, stance in occurrences:
            key = (party if by_party else None, cid[mention])
            row = out.setdefault(key, [0, 0, 0, 0, docs[key[0]]])
            row[0] += 1
            row[1 + ["positive", "negative", "neutral"].index(stance)] += 1
    return out


@pytest.mark.spark
@pytest.mark.parametrize("group_by", [None, "party"])
def test_cluster_job_writes_aggregates_and_report(spark, grouped_output, tmp_path, group_by):
    from group_appeal_spark.jobs import cluster as cluster_job

    out = tmp_path / "out"
    argv = ["--input", str(grouped_output), "--output", str(out), "--n-clusters", "2", "--master", "local[2]"]
    assert cluster_job.main(argv + (["--group-by", group_by] if group_by else [])) == 0
    clusters = pd.read_parquet(out / "clusters")
    summary = pd.read_parquet(out / "cluster_summary")
    table = pd.read_parquet(out / "aggregates")
    assert list(table.columns) == ["party", *AGG_COLUMNS]
    assert table["mentions"].sum() == len(pd.read_parquet(grouped_output / "mentions"))
    labels = dict(zip(summary["cluster_id"], summary["label"]))
    got = {(r.party, r.cluster_id): [r.mentions, r.positive, r.negative, r.neutral, r.documents]
           for r in table.itertuples()}
    assert got == expected_rows(clusters, by_party=True)
    assert all(r.label == labels[r.cluster_id] for r in table.itertuples())

    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count('class="cluster-row"') == 2 and '<table id="heatmap">' in page
    assert "<th>input rows</th><td>6</td>" in page and "<th>documents with errors</th><td>1</td>" in page
    assert "<th>mentions</th><td>9</td>" in page and "About women in d" in page


@pytest.mark.spark
def test_without_carried_columns_one_row_per_cluster(spark, grouped_output, tmp_path):
    from group_appeal_spark.jobs import cluster as cluster_job

    source = tmp_path / "plain"
    shutil.copytree(grouped_output, source)
    for name in ("mentions", "documents"):
        frame = pd.read_parquet(grouped_output / name).drop(columns="party")
        shutil.rmtree(source / name)
        spark.createDataFrame(frame).write.parquet(str(source / name))
    out = tmp_path / "out"
    assert cluster_job.main(["--input", str(source), "--output", str(out), "--n-clusters", "2",
                             "--master", "local[2]"]) == 0
    table = pd.read_parquet(out / "aggregates")
    assert list(table.columns) == AGG_COLUMNS
    got = {r.cluster_id: [r.mentions, r.positive, r.negative, r.neutral, r.documents] for r in table.itertuples()}
    assert got == {c: v for (_, c), v in expected_rows(pd.read_parquet(out / "clusters"), by_party=False).items()}
    assert "No group column" in (out / "report.html").read_text(encoding="utf-8")


@pytest.mark.spark
def test_group_by_a_column_not_carried_stops_before_any_table(spark, grouped_output, tmp_path, capsys):
    from group_appeal_spark.jobs import cluster as cluster_job

    out = tmp_path / "out"
    assert cluster_job.main(["--input", str(grouped_output), "--output", str(out), "--n-clusters", "2",
                             "--group-by", "year", "--master", "local[2]"]) == 2
    err = capsys.readouterr().err
    assert "output.group_by (--group-by): ['year'] not carried; the carried columns are ['party']" in err
    assert not (out / "clusters").exists() and not (out / "aggregates").exists()


# --- a real headless browser ------------------------------------------------------------------------

def test_report_renders_in_headless_chromium(tmp_path):
    browser = shutil.which("chromium")
    if browser is None:
        pytest.skip("chromium is not on PATH (apt-get install -y chromium)")
    summary, k_search, clusters, aggregates, examples = report_frames()
    report = tmp_path / "report.html"
    report.write_text(render_report(summary, k_search, clusters, aggregates, examples, "party"), encoding="utf-8")
    png = tmp_path / "report.png"
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]
    shot = subprocess.run([*flags, f"--screenshot={png}", "--window-size=1200,2000", report.as_uri()],
                          capture_output=True, text=True, timeout=120)
    dom = subprocess.run([*flags, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120)
    for run in (shot, dom):
        console = [line for line in run.stderr.splitlines()
                   if ("CONSOLE" in line and "Uncaught" in line) or "ERROR:CONSOLE" in line]
        assert not console, console
    assert dom.stdout.count('class="cluster-row"') == 2, dom.stderr[-2000:]
    assert "farmers &amp; &lt;co&gt;" in dom.stdout
    assert png.exists() and png.stat().st_size > 10_000, shot.stderr[-2000:]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_refuses_group_by_without_carried_columns_before_any_work(tmp_path, capsys):
    from group_appeal_spark.jobs import run as run_job

    out = tmp_path / "out"
    code = run_job.main(["--input", str(tmp_path / "missing.jsonl"), "--output", str(out), "--group-by", "party",
                         "--tiny-models", "--master", "local[1]"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--group-by" in err and "carries no columns" in err and not (out / "mentions").exists()
