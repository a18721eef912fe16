"""Core library: the reference's bugs fixed, model loading errors, and lib without pyspark."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from group_appeal_spark.lib import models
from group_appeal_spark.lib.errors import ConfigError, ModelLoadError
from group_appeal_spark.lib.inference.appeals import AppealFinder
from group_appeal_spark.lib.inference.detect import (
    MentionDetector,
    group_tokens,
    make_windows,
    softmax,
)
from group_appeal_spark.lib.inference.embed import MentionEmbedder, MentionKeyer
from group_appeal_spark.lib.inference.stance import (
    StanceClassifier,
    entailment_index,
    stances_from_probs,
)
from group_appeal_spark.lib.models.devices import Precision, resolve_device


def _dir(repo_id):
    return models.resolve_model_dir(models.ModelSource("test", repo_id))


@pytest.fixture(scope="module")
def detector(hub_cache):
    return MentionDetector.from_dirs(_dir(models.DETECTOR_ID), _dir(models.DETECTOR_TOKENIZER_ID))


@pytest.fixture(scope="module")
def finder(hub_cache, detector):
    stance = StanceClassifier.from_dir(_dir(models.STANCE_ID))
    keyer = MentionKeyer.from_dir(_dir(models.EMBEDDER_ID))
    return AppealFinder(detector, stance, keyer, segmentation="none")


# -- post-processing on hand-written arrays (no model) ------------------------------------------

@pytest.mark.parametrize("labels, groups", [
    (["O", "B-G", "I-G", "O"], [(1, 3)]),
    (["B-G", "B-G", "I-G"], [(0, 1), (1, 3)]),
    (["I-G", "I-G", "O", "I-G"], [(0, 2), (3, 4)]),   # I- after O starts a group, as in the pipeline
    (["O", "O"], []),
    ([], []),
    (["B-A", "I-B", "I-B"], [(0, 1), (1, 3)]),
    (["G", "G", "O"], [(0, 2)]),                    # labels without a prefix continue like I-
])
def test_group_tokens(labels, groups):
    assert group_tokens(labels) == groups


def test_softmax_rows_sum_to_one():
    out = softmax(np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0]], dtype=np.float32))
    assert np.allclose(out.sum(axis=1), 1.0)
    assert out[1].argmax() == 0


@pytest.mark.parametrize("n, window, stride, expected", [
    (10, 20, 5, [(0, 10)]),
    (20, 20, 5, [(0, 20)]),
    (30, 20, 5, [(0, 20), (10, 30)]),
    (50, 20, 5, [(0, 20), (15, 35), (30, 50)]),
])
def test_make_windows(n, window, stride, expected):
    windows = make_windows(n, window, stride)
    assert windows == expected
    covered = set()
    for s, e in windows:
        covered |= set(range(s, e))
    assert covered == set(range(n))


def test_stance_ties_take_the_first_class():
    out = stances_from_probs(np.array([[0.4, 0.4, 0.2], [0.1, 0.3, 0.3], [0.2, 0.2, 0.2]]))
    assert [s.stance for s in out] == ["positive", "negative", "positive"]


@pytest.mark.parametrize("label2id, id2label, expected", [
    ({"entailment": 0, "not_entailment": 1}, None, 0),
    ({"not_entailment": 0, "entailment": 1}, None, 1),
    ({"ENTAILMENT": 2, "neutral": 1, "contradiction": 0}, None, 2),
    (None, {0: "not_entailment", 1: "entailment"}, 1),
])
def test_entailment_index_read_from_config(label2id, id2label, expected):
    class Config:
        pass

    c = Config()
    c.label2id, c.id2label = label2id, id2label
    assert entailment_index(c) == expected


def test_entailment_index_missing_names_labels():
    class Config:
        label2id = {"yes": 0, "no": 1}
        id2label = {0: "yes", 1: "no"}

    with pytest.raises(ModelLoadError, match="no 'entailment' label"):
        entailment_index(Config())


# -- the reference's bugs -------------------------------------------------------------------------

def test_long_text_is_windowed_not_crashed(detector):
    """The reference crashes beyond 512 tokens; we window and keep offsets into the original text."""
    sentence = "We support farmers and young people, and the Government has failed pensioners. "
    text = sentence * 60  # ~1,000 tokens
    [mentions] = detector.detect([text])
    assert len(mentions) > 60
    assert all(text[m.start:m.end].strip() == m.span.strip() for m in mentions)
    starts = [m.start for m in mentions]
    assert starts == sorted(starts) and len(set(starts)) == len(starts), "no mention reported twice"
    # mentions far from window edges agree with detecting that stretch alone
    [alone] = detector.detect([sentence * 5])
    assert [(m.span, m.start, m.end) for m in mentions if m.end <= len(sentence) * 2] == \
        [(m.span, m.start, m.end) for m in alone if m.end <= len(sentence) * 2]


def test_reference_crashes_on_long_text_where_we_do_not(hub_cache, detector):
    ref = pytest.importorskip("group_appeal_detector")
    text = "We support farmers and young people in every region. " * 80
    with pytest.raises(Exception, match="out of bounds|index"):
        ref.GroupMentionDetector(device="cpu").detect(text)
    assert detector.detect([text])[0]


@pytest.mark.parametrize("bad", [None, 3, 4.5, {"a": 1}, ["x"], "", "   ", "\u200b", "\ud800 x"])
def test_bad_rows_get_an_error_and_do_not_cost_the_others(finder, bad):
    texts = ["We support farmers.", bad, "Nurses deserve better than bankers."]
    results = finder.process(texts)
    assert len(results) == 3
    assert results[1].error and results[1].error_stage == "input" and results[1].appeals == []
    assert results[0].error is None and results[2].error is None
    alone = finder.process([texts[0], texts[2]])
    assert [r.appeals for r in alone] == [results[0].appeals, results[2].appeals]


def test_appeal_offsets_are_document_offsets_in_sentence_mode(finder):
    finder_s = AppealFinder(finder.detector, finder.stance, finder.keyer, segmentation="sentence")
    doc = "Mr Speaker, we support farmers.  The Government has failed young people and pensioners!\nNurses matter."
    [result] = finder_s.process([doc])
    assert result.n_segments == 3 and result.appeals
    for a in result.appeals:
        assert doc[a.start:a.end].strip() == a.span.strip()
        assert a.stance in ("positive", "negative", "neutral")
        assert a.prob_positive + a.prob_negative + a.prob_neutral > 0


def test_embedder_checks_one_vector_per_input(hub_cache):
    embedder = MentionEmbedder.from_dirs(_dir(models.EMBEDDER_ID), _dir(models.EMBEDDER_BASE_ID))
    # a mask token written inside a mention must not become a second mask
    out = embedder.embed(["the [MASK] people", "[MASK]", "farmers"])
    assert out.shape == (3, 128)


def test_bf16_runs_and_agrees_roughly(hub_cache):
    texts = ["We support farmers and young people.", "The Government has failed pensioners."]
    fp32 = MentionEmbedder.from_dirs(_dir(models.EMBEDDER_ID), _dir(models.EMBEDDER_BASE_ID))
    bf16 = MentionEmbedder.from_dirs(_dir(models.EMBEDDER_ID), _dir(models.EMBEDDER_BASE_ID), precision="bf16")
    a, b = fp32.embed(texts), bf16.embed(texts)
    assert b.dtype == np.float32 and ((a * b).sum(axis=1) > 0.98).all()


# -- model loading ----------------------------------------------------------------------------------

def test_missing_model_error_names_model_place_and_fix(tmp_path):
    with pytest.raises(ModelLoadError, match=r"detector: cannot find 'someone/missing'.*fetch-models.*--models-dir"):
        models.resolve_model_dir(models.ModelSource("detector", "someone/missing"), cache_dir=tmp_path,
                                 local_files_only=True)


def test_missing_local_dir(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        models.resolve_model_dir(models.ModelSource("stance model", "x/y", local_dir=str(tmp_path / "nope")))


def test_pickle_weights_are_refused(tmp_path, hub_cache):
    folder = tmp_path / "model"
    shutil.copytree(_dir(models.DETECTOR_ID), folder)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelLoadError, match="safetensors.*refused"):
        models.load_token_classifier(folder)


def test_pinned_revision_resolves_offline(hub_cache):
    snapshot = hub_cache[models.STANCE_ID]
    path = models.resolve_model_dir(models.ModelSource("stance", models.STANCE_ID, revision=snapshot.name))
    assert path == snapshot
    with pytest.raises(ModelLoadError, match="revision 0000000"):
        models.resolve_model_dir(models.ModelSource("stance", models.STANCE_ID, revision="0" * 40))


def test_stance_label_order_comes_from_config(tmp_path, hub_cache):
    from group_appeal_spark.testing.tiny_models import build_tiny_repos

    repos = build_tiny_repos(tmp_path, seed=0, stance_label_order=("not_entailment", "entailment"))
    swapped = StanceClassifier.from_dir(repos[models.STANCE_ID])
    normal = StanceClassifier.from_dir(_dir(models.STANCE_ID))
    assert (swapped.entailment, normal.entailment) == (1, 0)
    pair = [("We support farmers.", " farmers")]
    # same weights, other label order: the entailment probability is the other softmax column
    s, n = swapped.classify(pair)[0], normal.classify(pair)[0]
    assert s.prob_positive == pytest.approx(1 - n.prob_positive, abs=1e-5)


@pytest.mark.parametrize("device, match", [("tpu", "expected one of"), ("cuda:0", "CUDA")])
def test_device_errors(device, match):
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match=match):
        resolve_device(device)


def test_precision_parse():
    assert Precision.parse("BF16") is Precision.BF16
    with pytest.raises(ConfigError, match="'fp32', 'bf16', 'fp16'"):
        Precision.parse("int4")


def test_lib_imports_without_pyspark():
    """lib/ is the Spark-free core: every module imports with pyspark made unimportable."""
    code = textwrap.dedent("""
        import importlib, pkgutil, sys
        sys.modules["pyspark"] = None
        import group_appeal_spark.lib as lib
        # walk_packages imports each subpackage; it yields names relative to lib with their dots
        names = [m.name for m in pkgutil.walk_packages(lib.__path__, prefix="group_appeal_spark.lib.")]
        names = [n.removeprefix("group_appeal_spark.lib.") for n in names]
        for name in names:
            importlib.import_module("group_appeal_spark.lib." + name)
        importlib.import_module("group_appeal_spark.testing.tiny_models")
        print(json.dumps(names))
    """).replace("import importlib", "import json, importlib")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy())
    assert out.returncode == 0, out.stderr
    names = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"inference.detect", "inference.stance", "inference.embed", "clustering.kmeans", "models.hub",
            "inference.appeals"} <= set(names)


# -- one source of truth: choices and the Spark schemas follow lib's definitions -----------------

def test_choice_enums_are_defined_once():
    from group_appeal_spark.lib import choices
    from group_appeal_spark.lib.inference import segment
    from group_appeal_spark.lib.models import devices

    assert devices.Precision is choices.Precision and devices.Device is choices.Device
    assert segment.SegmentationMode is choices.SegmentationMode


@pytest.mark.parametrize("choice, value, key, match", [
    ("Precision", "int4", None, r"^invalid precision 'int4'; expected one of: 'fp32', 'bf16', 'fp16', 'int8', 'auto'$"),
    ("SegmentationMode", "words", None, r"^invalid segmentation mode 'words'; expected one of: 'sentence', 'none'$"),
    ("InputFormat", "jsnol", "input.format",
     r"^input.format: invalid value 'jsnol'; expected one of: 'parquet', 'csv', 'json', 'text', 'delta', 'orc', "
     r"'avro', 'cloudfiles'$"),
    ("Metric", None, "clustering.metric", r"^clustering.metric: invalid value None; expected one of: 'silhouette', 'nmi'$"),
    ("WriteMode", ["error"], "output.mode", r"^output.mode: invalid value \['error'\]; expected one of: 'error', "),
])
def test_choice_parse_errors_list_the_valid_values(choice, value, key, match):
    from group_appeal_spark.lib import choices

    with pytest.raises(ConfigError, match=match):
        getattr(choices, choice).parse(value, key=key)


def test_spark_schemas_are_derived_from_the_record_dataclasses():
    from group_appeal_spark.udfs.schemas import APPEAL_TYPE, DOCUMENT_RESULT_TYPE
    from pyspark.sql import types as T

    # the schema as it was written out by hand before it was derived
    appeal = T.StructType([
        T.StructField("seg_idx", T.IntegerType(), False),
        T.StructField("span", T.StringType(), False),
        T.StructField("start", T.IntegerType(), False),
        T.StructField("end", T.IntegerType(), False),
        T.StructField("stance", T.StringType(), False),
        T.StructField("prob_positive", T.DoubleType(), False),
        T.StructField("prob_negative", T.DoubleType(), False),
        T.StructField("prob_neutral", T.DoubleType(), False),
        T.StructField("mention_key", T.StringType(), False),
        T.StructField("score", T.DoubleType(), False),
        T.StructField("seg_start", T.IntegerType(), False),
        T.StructField("seg_end", T.IntegerType(), False),
    ])
    document = T.StructType([
        T.StructField("appeals", T.ArrayType(appeal, containsNull=False), True),
        T.StructField("n_segments", T.IntegerType(), True),
        T.StructField("error", T.StringType(), True),
        T.StructField("error_stage", T.StringType(), True),
        T.StructField("segments", T.ArrayType(T.StructType([
            T.StructField(name, T.IntegerType(), False)
            for name in ("seg_idx", "seg_start", "seg_end", "n_tokens", "n_mentions", "n_positive", "n_negative",
                         "n_neutral")]), containsNull=False), True),
    ])
    assert APPEAL_TYPE == appeal
    assert DOCUMENT_RESULT_TYPE == document
    assert DOCUMENT_RESULT_TYPE.json() == document.json()  # nullability included, field by field


def test_mentions_columns_and_empty_appeals_type_are_derived():
    from group_appeal_spark.jobs.transforms.appeals import APPEALS_ARRAY, MENTION_COLUMNS

    assert APPEALS_ARRAY == ("array<struct<seg_idx:int,span:string,start:int,end:int,stance:string,"
                             "prob_positive:double,prob_negative:double,prob_neutral:double,mention_key:string,"
                             "score:double,seg_start:int,seg_end:int>>")
    assert MENTION_COLUMNS == ["seg_idx", "span", "start", "end", "stance", "prob_positive", "prob_negative",
                               "prob_neutral", "mention_key", "score", "seg_start", "seg_end"]


@pytest.mark.parametrize("hint, match", [
    (bool | None, "no Spark type for"),      # bool is not mapped: no record has one
    (int | str, "only X | None unions"),
    (dict[str, int], "no Spark type for"),
])
def test_spark_type_refuses_unmapped_hints(hint, match):
    from group_appeal_spark.udfs.schemas import spark_type

    with pytest.raises(TypeError, match=match):
        spark_type(hint)


# -- both segmentation modes go through segment_document ----------------------------------------

@pytest.mark.parametrize("text", ["We support farmers.", "  We support farmers. Nurses too!\n"])
def test_mode_none_short_text_is_one_untouched_segment(text):
    # the reference feeds the raw text; a leading space changes RoBERTa's tokens
    finder = AppealFinder(None, None, None, segmentation="none", max_segment_chars=20_000)
    assert finder.segments(text) == [(0, 0, text)]


def test_mode_none_applies_max_segment_chars():
    text = " We support farmers and nurses. " * 10
    finder = AppealFinder(None, None, None, segmentation="none", max_segment_chars=40)
    segments = finder.segments(text)
    assert len(segments) > 1 and [s[0] for s in segments] == list(range(len(segments)))
    assert all(len(t) <= 40 and text[start:start + len(t)] == t for _, start, t in segments)
    assert segments[:2] == [(0, 1, "We support farmers and nurses.  We"), (1, 36, "support farmers and nurses.  We support")]


def test_mode_none_long_text_offsets_are_document_offsets(finder):
    doc = "  We support farmers and young people. " * 4
    finder_short = AppealFinder(finder.detector, finder.stance, finder.keyer, segmentation="none",
                                max_segment_chars=50)
    [result] = finder_short.process([doc])
    assert result.error is None and result.n_segments > 1
    for a in result.appeals:
        assert doc[a.start:a.end].strip() == a.span.strip()
