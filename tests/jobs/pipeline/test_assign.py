"""Saved cluster models and `assign`: predict, the JSON format, bad models, and end to end on local[2]."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from group_appeal_spark.lib.clustering.kmeans import MentionKMeans, nearest_centroid
from group_appeal_spark.lib.clustering.model import (
    KEYS_FILE,
    MODEL_FILE,
    ClusterModel,
    ClusterModelError,
    check_same_embedder,
    key_normalisation,
    load_cluster_model,
    save_cluster_model,
)
from group_appeal_spark.lib.errors import GroupAppealSparkError
from sklearn.exceptions import NotFittedError

HUB = {"source": "hub", "repo_id": "maxwlnd/cl_mention_embedding", "revision": None, "commit": "a" * 40}
EMBEDDER = {"embedder": HUB, "embedder_config": None}


def _model(k=3, dim=4, keys=("farmers", "nurses"), ids=(0, 2), embedder=EMBEDDER) -> ClusterModel:
    centroids = np.random.default_rng(0).normal(size=(k, dim)).astype(np.float32)
    return ClusterModel(centroids=centroids, labels=tuple(f"label {i}" if i else None for i in range(k)),
                        mention_keys=tuple(keys), key_cluster_ids=np.asarray(ids, dtype=np.int32),
                        selection={"metric": "silhouette", "k_min": 2, "k_max": 5, "chosen_k": k},
                        embedder=embedder, key_normalisation=key_normalisation({"type": "BertNormalizer"}))


# --- predict ----------------------------------------------------------------------------------

def test_nearest_centroid_on_hand_made_points():
    centers = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    X = np.array([[0.1, 0.0], [1.9, 0.2], [0.0, 2.0], [1.0, 0.0], [3.0, 3.0]])
    labels, distances = nearest_centroid(X, centers)
    # [1, 0] is exactly between centroids 0 and 1: the tie goes to the lowest id
    assert labels.tolist() == [0, 1, 2, 0, 2]
    np.testing.assert_allclose(distances[3], [1.0, 1.0, np.sqrt(10.0)])
    np.testing.assert_allclose(distances[np.arange(5), labels], [0.1, np.hypot(0.1, 0.2), 1.0, 1.0, 3.0])


def test_predict_repeats_fit_labels_and_distances_bit_for_bit():
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(c, 0.1, size=(20, 8)) for c in (-1.0, 0.0, 1.0)]).astype(np.float32)
    weights = rng.integers(1, 6, size=len(X))
    km = MentionKMeans(3).fit(X, sample_weight=weights)
    labels, distances = km.predict_with_distance(X)
    assert np.array_equal(labels, km.labels_) and np.array_equal(distances, km.distances_)
    assert np.array_equal(km.predict(X[::-1]), km.labels_[::-1])  # row order does not matter
    assert km.transform(X[:5]).shape == (5, 3)


@pytest.mark.parametrize("X, error, match", [
    (np.zeros((2, 3), dtype=np.float32), ValueError, "X has 3 features per row but the centroids have 8"),
    (np.full((2, 8), np.nan), ValueError, "must be finite"),
    (np.zeros(8), ValueError, "must be 2-D"),
    (np.zeros((2, 8), dtype=int), TypeError, "must hold floats"),
])
def test_predict_checks_its_input(X, error, match):
    km = MentionKMeans(2).fit(np.random.default_rng(0).normal(size=(10, 8)))
    with pytest.raises(error, match=match):
        km.predict(X)


def test_predict_before_fit_is_refused():
    with pytest.raises(NotFittedError, match="not fitted yet"):
        MentionKMeans(2).predict(np.zeros((1, 2)))


# --- the saved model --------------------------------------------------------------------------

def test_save_load_round_trip_is_exact(tmp_path):
    model = _model()
    folder = save_cluster_model(model, tmp_path / "cluster_model")
    assert sorted(p.name for p in folder.iterdir()) == [KEYS_FILE, MODEL_FILE]
    loaded = load_cluster_model(folder)
    assert loaded.centroids.dtype == np.float32 and np.array_equal(loaded.centroids, model.centroids)
    assert loaded.labels == (None, "label 1", "label 2")
    assert loaded.mention_keys == ("farmers", "nurses") and loaded.key_cluster_ids.tolist() == [0, 2]
    assert loaded.embedder == EMBEDDER and loaded.selection == model.selection
    assert loaded.key_normalisation["normalizer"] == {"type": "BertNormalizer"}
    meta = json.loads((folder / MODEL_FILE).read_text())
    assert meta["format_version"] == 1 and meta["k"] == 3 and meta["n_features"] == 4
    X = np.random.default_rng(2).normal(size=(7, 4)).astype(np.float32)
    assert np.array_equal(loaded.predict_with_distance(X)[0], model.predict_with_distance(X)[0])


def _edit_model(folder, **changes):
    meta = json.loads((folder / MODEL_FILE).read_text())
    meta.update(changes)
    (folder / MODEL_FILE).write_text(json.dumps(meta))


BAD_MODELS = [
    ("missing folder", lambda f: shutil.rmtree(f), r"does not exist"),
    ("no model.json", lambda f: (f / MODEL_FILE).unlink(), r"is partial: model.json is missing"),
    ("no keys.json", lambda f: (f / KEYS_FILE).unlink(), r"is partial: keys.json is missing"),
    ("truncated", lambda f: (f / MODEL_FILE).write_text((f / MODEL_FILE).read_text()[:200]),
     r"model.json is not valid JSON \(a partial or corrupt file"),
    ("not a model", lambda f: (f / MODEL_FILE).write_text('{"hello": 1}'), r"not a group-appeal-spark cluster model"),
    ("newer format", lambda f: _edit_model(f, format_version=2), r"format_version 2; this version .* reads format_version 1"),
    ("short centroid", lambda f: _edit_model(f, centroids=[[0.0] * 4, [0.0] * 3, [0.0] * 4]),
     r"dimension mismatch: centroids must be 3 lists of 4 numbers"),
    ("nan centroid", lambda f: _edit_model(f, centroids=[[float("nan")] + [0.0] * 3] + [[0.0] * 4] * 2),
     r"finite numbers only"),
    ("labels", lambda f: _edit_model(f, labels=["a"]), r"labels must be a list of 3"),
    ("keys of another model", lambda f: (f / KEYS_FILE).write_text('{"mention_keys": ["farmers", "nurses"], '
                                                                   '"cluster_ids": [1, 2]}'),
     r"keys.json does not match model.json"),
    ("id out of range", lambda f: (f / KEYS_FILE).write_text('{"mention_keys": ["a"], "cluster_ids": [3]}'),
     r"cluster_ids must be in \[0, 2\]"),
    ("key format", lambda f: _edit_model(f, key_normalisation={"format_version": 9}),
     r"key_normalisation.format_version 9"),
]


@pytest.mark.parametrize("name, damage, match", BAD_MODELS, ids=[b[0] for b in BAD_MODELS])
def test_bad_model_folders_are_refused_with_one_line(tmp_path, name, damage, match):
    folder = save_cluster_model(_model(), tmp_path / "cluster_model")
    damage(folder)
    with pytest.raises(ClusterModelError, match=match) as info:
        load_cluster_model(folder)
    assert isinstance(info.value, GroupAppealSparkError) and "\n" not in str(info.value)


def test_dimension_mismatch_with_the_embeddings():
    with pytest.raises(ClusterModelError, match="centroids have 4 features, the embeddings have 128"):
        _model().check_dimension(128)


LOCAL = {"source": "local", "content_sha256": "b" * 64}


@pytest.mark.parametrize("model, given, match", [
    (EMBEDDER, {"embedder": {**HUB, "commit": "c" * 40}}, "made with another embedder .* model maxwlnd/cl_mention"),
    (EMBEDDER, {"embedder": {**HUB, "repo_id": "someone/else"}}, "another embedder"),
    ({"embedder": LOCAL}, {"embedder": {**LOCAL, "content_sha256": "d" * 64}}, "another embedder"),
    (EMBEDDER, {"embedder": LOCAL}, "cannot be compared"),
    ({"embedder": HUB, "embedder_config": HUB}, {"embedder": HUB, "embedder_config": {**HUB, "commit": "e" * 40}},
     "another embedder config"),
    (None, EMBEDDER, "does not record its embedder"),
    (EMBEDDER, None, "does not record its embedder"),
])
def test_other_embedders_are_refused(model, given, match):
    with pytest.raises(ClusterModelError, match=match):
        check_same_embedder(model, given, model_where="model", input_where="input")


def test_same_embedder_by_commit_or_content_passes():
    fetched = {"source": "local", "repo_id": HUB["repo_id"], "commit": HUB["commit"], "content_sha256": "f" * 64}
    check_same_embedder(EMBEDDER, {"embedder": fetched}, model_where="m", input_where="i")
    check_same_embedder({"embedder": LOCAL}, {"embedder": dict(LOCAL)}, model_where="m", input_where="i")


# --- end to end on Spark ----------------------------------------------------------------------

def _docs(texts, prefix):
    return pd.DataFrame({"id": [f"{prefix}{i:03d}" for i in range(len(texts))], "text": texts})


@pytest.fixture(scope="module")
def corpora(tmp_path_factory, spark, hub_cache):
    """Two small corpora: B shares half of A's sentences (so some mentions) and adds new ones."""
    from sentences import sentences

    texts = sentences(60, seed=23)
    folder = tmp_path_factory.mktemp("assign-corpus")
    spark.createDataFrame(_docs(texts[:30], "a")).write.parquet(str(folder / "a"))
    spark.createDataFrame(_docs(texts[15:45], "b")).write.parquet(str(folder / "b"))
    return folder / "a", folder / "b"


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, corpora):
    from group_appeal_spark.jobs import run as run_job

    out = tmp_path_factory.mktemp("assign-run") / "a"
    assert run_job.main(["--input", str(corpora[0]), "--output", str(out), "--k-min", "2", "--k-max", "4",
                         "--master", "local[2]", "--set", "output.plots=false"]) == 0
    return out


def _ids(folder):
    table = pd.read_parquet(folder / "clusters")
    return dict(zip(table["mention_key"], table["cluster_id"]))


@pytest.mark.spark
def test_run_writes_a_cluster_model_that_matches_its_clusters(first_run):
    model = load_cluster_model(first_run / "cluster_model")
    summary = json.loads((first_run / "summary.json").read_text())
    assert model.k == summary["chosen_k"] and model.n_features == 128
    assert summary["cluster_model"].endswith("cluster_model")
    assert dict(zip(model.mention_keys, model.key_cluster_ids.tolist())) == _ids(first_run)
    labels = pd.read_parquet(first_run / "cluster_summary").set_index("cluster_id")["label"]
    assert list(model.labels) == [labels[i] for i in range(model.k)]
    assert model.embedder["embedder"]["commit"] == summary["models"]["embedder"]["commit"]
    assert model.key_normalisation["normalizer"]["type"] == "BertNormalizer"


@pytest.mark.spark
def test_assign_on_the_same_output_repeats_every_cluster_id(first_run, tmp_path):
    from group_appeal_spark.jobs import cli

    out = tmp_path / "assigned"
    assert cli.main(["assign", "--input", str(first_run), "--cluster-model", str(first_run / "cluster_model"),
                     "--output", str(out), "--master", "local[2]"]) == 0
    got = pd.read_parquet(out / "clusters").sort_values("mention_key").reset_index(drop=True)
    assert list(got.columns) == ["mention_key", "mention", "count", "cluster_id", "distance_to_centroid", "label"]
    want = pd.read_parquet(first_run / "clusters").sort_values("mention_key").reset_index(drop=True)
    pd.testing.assert_frame_equal(got[["mention_key", "mention", "count", "cluster_id"]],
                                  want[["mention_key", "mention", "count", "cluster_id"]])
    # the same float32 vectors against the same centroids: the fit's distances, bit for bit
    assert np.array_equal(got["distance_to_centroid"].to_numpy(), want["distance_to_centroid"].to_numpy())
    labels = load_cluster_model(first_run / "cluster_model").labels
    assert got["label"].tolist() == [labels[i] for i in got["cluster_id"]]
    assert json.loads((out / "summary.json").read_text())["assigned_unique_mentions"] == len(want)


@pytest.mark.spark
def test_run_with_cluster_model_and_assign_keep_shared_keys_ids(first_run, corpora, tmp_path, spark):
    import group_appeal_spark
    from group_appeal_spark.jobs import assign as assign_job
    from group_appeal_spark.jobs import run as run_job

    model_dir = first_run / "cluster_model"
    second = tmp_path / "b"
    assert run_job.main(["--input", str(corpora[1]), "--output", str(second), "--master", "local[2]",
                         "--cluster-model", str(model_dir), "--set", "output.plots=false"]) == 0
    assert not (second / "k_search").exists() and not (second / "cluster_model").exists()
    first, got = _ids(first_run), _ids(second)
    shared = set(first) & set(got)
    assert shared and set(got) - set(first), "the corpora share some mentions and not others"
    assert {key: got[key] for key in shared} == {key: first[key] for key in shared}
    k = load_cluster_model(model_dir).k
    assert set(got.values()) <= set(range(k))
    # assign on that second output, and the notebook function, agree with it
    out = tmp_path / "b-assigned"
    assert assign_job.main(["--input", str(second), "--cluster-model", str(model_dir), "--output", str(out),
                            "--master", "local[2]"]) == 0
    assert _ids(out) == got
    embeddings = spark.read.parquet(str(second / "mention_embeddings")).repartition(3)
    notebook = group_appeal_spark.assign_clusters(embeddings, str(model_dir)).toPandas()
    assert dict(zip(notebook["mention_key"], notebook["cluster_id"])) == got


def _copy_model(first_run, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(first_run / "cluster_model", folder)
    return folder


def _other_embedder(folder):
    meta = json.loads((folder / MODEL_FILE).read_text())
    meta["embedder"]["embedder"]["commit"] = "0" * 40
    (folder / MODEL_FILE).write_text(json.dumps(meta))


CLI_CASES = [
    ("missing", lambda f: shutil.rmtree(f), "does not exist"),
    ("partial", lambda f: (f / KEYS_FILE).unlink(), "is partial: keys.json is missing"),
    ("other embedder", _other_embedder, "made with another embedder"),
]


@pytest.mark.spark
@pytest.mark.parametrize("job", ["assign", "run"])
@pytest.mark.parametrize("name, damage, match", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_bad_cluster_models_stop_the_jobs_with_one_line(first_run, corpora, tmp_path, capsys, job, name, damage,
                                                         match):
    from group_appeal_spark.jobs import cli

    folder = _copy_model(first_run, tmp_path)
    damage(folder)
    out = tmp_path / "out"
    if job == "assign":
        args = ["assign", "--input", str(first_run)]
    else:
        args = ["run", "--input", str(corpora[1])]
    code = cli.main([*args, "--cluster-model", str(folder), "--output", str(out), "--master", "local[2]"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith(f"{job}: error:") and match in err[-1]
    assert not (out / "clusters").exists() and not (out / "mentions").exists()
