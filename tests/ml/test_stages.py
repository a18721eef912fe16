"""The Spark ML stages against the notebook API on the same tiny models: identical tables, Params
checked by the config, save/load and Pipeline round trips."""

import numpy as np
import pandas as pd
import pytest
from group_appeal_spark.jobs.transforms import (
    assign_clusters,
    cluster_mentions,
    detect_appeals,
    embed_mentions,
)
from group_appeal_spark.jobs.transforms.clusters import (
    cluster_summary,
    fitted_cluster_model,
)
from group_appeal_spark.lib.clustering.model import load_cluster_model
from group_appeal_spark.lib.config import load_config
from group_appeal_spark.lib.errors import ConfigError, InputError
from pyspark.sql import functions as F

pytestmark = pytest.mark.spark

MENTION_SORT = ["doc_id", "seg_idx", "start", "end"]


def _pdf(df, sort):
    return df.toPandas().sort_values(sort, kind="stable").reset_index(drop=True)


@pytest.fixture(scope="module")
def docs(spark, hub_cache):
    from sentences import sentences

    texts = sentences(40, seed=31)
    rows = [(f"d{i:02d}", " ".join(texts[i:i + 2]), "AB"[i % 2], i) for i in range(0, 40, 2)]
    rows += [("bad-null", None, "A", 99), (None, "Farmers deserve better.", "B", 98)]
    return spark.createDataFrame(rows, "id string, text string, party string, n int")


@pytest.fixture(scope="module")
def notebook(docs):
    """The notebook API's tables on the same documents (carrying party and n)."""
    config = load_config(overrides={"input.carry_cols": ["party", "n"]})
    appeals = detect_appeals(docs, config)
    mentions = _pdf(appeals.mentions, MENTION_SORT)
    errors = _pdf(appeals.errors, ["doc_id"])
    embeddings = embed_mentions(appeals.mentions, config).toPandas().sort_values("mention_key").reset_index(drop=True)
    appeals.release()
    return mentions, errors, embeddings


@pytest.fixture(scope="module")
def detected(docs):
    from group_appeal_spark.ml import AppealDetector

    return AppealDetector().transform(docs).toPandas()


def _as_dict(struct) -> dict:
    return struct if isinstance(struct, dict) else struct.asDict()


def _exploded(detected: pd.DataFrame) -> pd.DataFrame:
    rows = [{"doc_id": r["id"], "party": r["party"], "n": r["n"], **_as_dict(a)}
            for _, r in detected.iterrows() for a in r["appeals"]]
    return pd.DataFrame(rows).sort_values(MENTION_SORT, kind="stable").reset_index(drop=True)


def test_appeal_detector_gives_detect_appeals_mentions_and_errors(detected, notebook, docs):
    mentions, errors, _ = notebook
    assert list(detected.columns) == [*docs.columns, "appeals", "error", "error_stage"]
    assert len(detected) == docs.count()
    got = _exploded(detected)
    assert len(got) > 20
    pd.testing.assert_frame_equal(got[mentions.columns.tolist()], mentions, check_dtype=False)
    bad = detected[detected["error"].notna()].rename(columns={"id": "doc_id", "error_stage": "stage"})
    bad = bad.sort_values("doc_id", kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(bad[errors.columns.tolist()], errors, check_dtype=False)
    assert detected.loc[detected["error"].notna(), "appeals"].map(len).eq(0).all()


def test_appeal_detector_without_an_id_column_adds_the_generated_doc_id(spark, docs):
    from group_appeal_spark.ml import AppealDetector

    no_id = docs.drop("id").where("text is not null")
    want = detect_appeals(no_id, load_config(overrides={"input.carry_cols": ["party", "n"]}))
    got = AppealDetector(detectBatchSize=3).transform(no_id.repartition(3)).toPandas()
    assert list(got.columns) == ["text", "party", "n", "doc_id", "appeals", "error", "error_stage"]
    rows = [{"doc_id": r["doc_id"], **_as_dict(a)} for _, r in got.iterrows() for a in r["appeals"]]
    got_mentions = pd.DataFrame(rows).sort_values(MENTION_SORT, kind="stable").reset_index(drop=True)
    expected = _pdf(want.mentions, MENTION_SORT).drop(columns=["party", "n"])
    # another batch size and another row order: the same mentions (scores to float precision)
    pd.testing.assert_frame_equal(got_mentions[expected.columns.tolist()], expected, check_dtype=False)
    want.release()


def test_appeal_detector_keeps_columns_a_job_could_not_carry(docs, detected):
    from group_appeal_spark.ml import AppealDetector

    odd = docs.withColumnRenamed("party", "the.party").withColumn("tags", F.create_map(F.lit("k"), "id"))
    got = AppealDetector().transform(odd).toPandas().sort_values("id").reset_index(drop=True)
    assert list(got.columns) == ["id", "text", "the.party", "n", "tags", "appeals", "error", "error_stage"]
    want = detected.sort_values("id").reset_index(drop=True)
    assert got["the.party"].tolist() == want["party"].tolist()
    assert got["tags"].map(lambda m: dict(m) if m is not None else None).tolist() == \
        [{"k": i} if i is not None else {"k": None} for i in want["id"]]
    assert _exploded(got.rename(columns={"the.party": "party"})).equals(_exploded(want))


def test_appeal_detector_refuses_an_input_that_has_its_output_columns(docs):
    from group_appeal_spark.ml import AppealDetector

    with pytest.raises(InputError, match=r"already has column\(s\) \['party'\]"):
        AppealDetector(outputCol="party").transform(docs)


def test_mention_embedder_on_detector_output_and_on_a_mentions_table(spark, docs, notebook):
    from group_appeal_spark.ml import AppealDetector, MentionEmbedder

    mentions, _, embeddings = notebook
    from_detector = MentionEmbedder().transform(AppealDetector().transform(docs)).toPandas()
    from_table = MentionEmbedder(embedBatchSize=5).transform(spark.createDataFrame(mentions)).toPandas()
    for got in (from_detector, from_table):
        got = got.sort_values("mention_key").reset_index(drop=True)
        assert list(got.columns) == ["mention_key", "mention", "count", "embedding"]
        pd.testing.assert_frame_equal(got.drop(columns="embedding"), embeddings.drop(columns="embedding"))
        # batch size 5 instead of 128: the same vectors (a batch of a few rows may take another kernel: 1 ulp)
        np.testing.assert_allclose(np.stack(got["embedding"]), np.stack(embeddings["embedding"]), rtol=0, atol=1e-6)
    assert np.array_equal(np.stack(from_detector.sort_values("mention_key")["embedding"]),
                          np.stack(embeddings["embedding"]))


def test_mention_embedder_names_the_input_it_expects(spark):
    from group_appeal_spark.ml import MentionEmbedder

    with pytest.raises(InputError, match="expected AppealDetector's output"):
        MentionEmbedder().transform(spark.createDataFrame([("x",)], "text string"))


@pytest.fixture(scope="module")
def embeddings_df(spark, notebook):
    return spark.createDataFrame(notebook[2], "mention_key string, mention string, count long, "
                                              "embedding array<float>")


@pytest.fixture(scope="module")
def fitted(embeddings_df):
    from group_appeal_spark.ml import MentionClusterer

    return MentionClusterer(kMin=2, kMax=4).fit(embeddings_df)


def test_mention_clusterer_fits_what_cluster_mentions_fits(fitted, embeddings_df):
    config = load_config(overrides={"clustering.k_min": 2, "clustering.k_max": 4})
    result = cluster_mentions(embeddings_df, config)
    want = fitted_cluster_model(result, embeddings_df, cluster_summary(result.clusters), selection={},
                                embedder=None, key_normalisation={})
    got = fitted.cluster_model
    assert got.k == result.best_k == fitted.k
    assert np.array_equal(got.centroids, want.centroids)
    assert got.labels == want.labels and got.mention_keys == want.mention_keys
    assert np.array_equal(got.key_cluster_ids, want.key_cluster_ids)
    assert got.selection == {"metric": "silhouette", "k_min": 2, "k_max": 4, "chosen_k": result.best_k}
    assert got.embedder["embedder"]["commit"]  # the tiny hub snapshot's, as run records it
    pd.testing.assert_frame_equal(_pdf(fitted.k_search, ["k"]), _pdf(result.k_search, ["k"]))


def test_mention_cluster_model_assigns_as_assign_clusters(fitted, embeddings_df):
    got = _pdf(fitted.transform(embeddings_df.repartition(3)), ["mention_key"])
    want = _pdf(assign_clusters(embeddings_df, fitted.cluster_model), ["mention_key"])
    pd.testing.assert_frame_equal(got, want)
    fit_ids = _pdf(fitted.fit_clusters, ["mention_key"])
    assert got["cluster_id"].tolist() == fit_ids["cluster_id"].tolist()


def test_the_saved_cluster_model_holds_the_json_files_of_cluster_model(fitted, embeddings_df, tmp_path):
    from group_appeal_spark.ml import MentionClusterModel

    fitted.save(str(tmp_path / "m"))
    assert sorted(p.name for p in (tmp_path / "m" / "cluster_model").iterdir()) == ["keys.json", "model.json"]
    assert not list((tmp_path / "m").rglob("*.pkl"))
    assert (tmp_path / "m" / "cluster_model" / "model.json").read_text() == \
        fitted.cluster_model.to_texts()["model.json"]
    loaded = MentionClusterModel.load(str(tmp_path / "m"))
    assert loaded.getKMax() == 4 and loaded.uid == fitted.uid
    assert np.array_equal(load_cluster_model(tmp_path / "m" / "cluster_model").centroids, loaded.clusterCenters())
    pd.testing.assert_frame_equal(_pdf(loaded.transform(embeddings_df), ["mention_key"]),
                                  _pdf(fitted.transform(embeddings_df), ["mention_key"]))


def test_pipeline_save_and_load_give_identical_output(docs, tmp_path):
    from pyspark.ml import Pipeline, PipelineModel

    from group_appeal_spark.ml import AppealDetector, MentionClusterer, MentionEmbedder

    pipeline = Pipeline(stages=[AppealDetector(detectBatchSize=8), MentionEmbedder(), MentionClusterer(kMax=4)])
    model = pipeline.fit(docs)
    want = _pdf(model.transform(docs), ["mention_key"])
    assert list(want.columns) == ["mention_key", "mention", "count", "cluster_id", "distance_to_centroid", "label"]
    pipeline.write().overwrite().save(str(tmp_path / "pipeline"))
    model.write().overwrite().save(str(tmp_path / "model"))
    reloaded = Pipeline.load(str(tmp_path / "pipeline"))
    for saved, made in zip(reloaded.getStages(), pipeline.getStages()):
        assert {p.name: v for p, v in saved.extractParamMap().items()} == \
            {p.name: v for p, v in made.extractParamMap().items()}
    assert reloaded.getStages()[0].getDetectBatchSize() == 8 and reloaded.getStages()[2].getKMax() == 4
    loaded = PipelineModel.load(str(tmp_path / "model"))
    pd.testing.assert_frame_equal(_pdf(loaded.transform(docs), ["mention_key"]), want)


@pytest.mark.parametrize("stage, params, match", [
    ("MentionClusterer", {"kMin": 1}, "clustering.k_min: 1 must be at least 2"),
    ("MentionClusterer", {"kMin": 5, "kMax": 4}, r"clustering.k_max: 4 must not be below clustering.k_min \(5\)"),
    ("MentionClusterer", {"metric": "nmi"}, "the 'nmi' metric needs a dictionary"),
    ("MentionClusterer", {"metric": "cosine"}, "clustering.metric: invalid value 'cosine'; expected one of"),
    ("MentionClusterer", {"kMax": "many"}, "clustering.k_max: 'many' must be an integer"),
    ("AppealDetector", {"precision": "int4"}, "inference.precision: invalid value 'int4'"),
    ("AppealDetector", {"idCol": "a.b"}, "input.id_col: 'a.b' is not a usable column name"),
    ("AppealDetector", {"sortByLength": "yes"}, "inference.sort_by_length: 'yes' must be true or false"),
    ("AppealDetector", {"settings": {"inference.window_stride": 999}}, "inference.window_stride: 999"),
    ("MentionEmbedder", {"embedBatchSize": 0}, "inference.embed_batch_size: 0 must be a positive integer"),
    ("MentionEmbedder", {"settings": {"models.nope": 1}}, "models.nope: unknown key"),
])
def test_params_are_checked_by_the_config_with_its_messages(stage, params, match):
    from group_appeal_spark import ml

    with pytest.raises(ConfigError, match=match):
        getattr(ml, stage)(**params)
    made = getattr(ml, stage)()
    with pytest.raises(ConfigError, match=match):
        made.setParams(**params)
    assert made.config_overrides() == {}, "a refused value is not kept"


def test_params_map_to_config_keys_and_the_config_file(tmp_path):
    from group_appeal_spark.ml import MentionClusterer

    conf = tmp_path / "conf.yaml"
    conf.write_text("clustering:\n  k_max: 12\n  random_state: 7\n")
    stage = MentionClusterer(configFile=str(conf), kMax=9, settings={"clustering.silhouette_exact_max": 50})
    cfg = stage.job_config().clustering
    assert (cfg.k_max, cfg.random_state, cfg.silhouette_exact_max) == (9, 7, 50)
    assert "config key clustering.k_max" in stage.explainParam("kMax")
    assert stage.copy({stage.kMin: 3}).job_config().clustering.k_min == 3
