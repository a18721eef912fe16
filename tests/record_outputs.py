"""Record the three stages' outputs on the tiny models into tests/data/recorded_outputs.json.

group-appeal-detector 0.3.0 needs transformers>=5.5, so the differential tests against it
(``-m reference``) can only run on the 5.x line. On 5.x they prove that this project's stages
agree with the reference; this file records what the stages give there, and
``tests/lib/test_recorded_outputs.py`` checks any other transformers line (4.57) against it.

Run it from the repository root with transformers 5.x, after any change to the tiny models or
to what a stage outputs::

    .venv/bin/python tests/record_outputs.py

The test imports :func:`fingerprint` and :func:`compute_outputs` from here, so the recorded
file and the check are made by the same code.
"""

from __future__ import annotations

import hashlib
import json
import pathlib

FIXTURE = pathlib.Path(__file__).parent / "data" / "recorded_outputs.json"
N_SENTENCES = 240
N_STANCE_PAIRS = 300
N_EMBEDDED = 48
# Beyond the windows of the tiny detector: exercises windowing and the merge of window scores.
LONG_TEXT = "We support farmers and young people, and the Government has failed pensioners. " * 60
EXTRA_SPANS = ["people " * 60, "the [MASK] people", " Café  Owners", "x"]
# Decimals kept: far below the tolerances of the check, far above float32 noise.
SCORE_DECIMALS = 6
EMBEDDING_DECIMALS = 5


def fingerprint(snapshots) -> dict:
    """What the outputs depend on besides the code: per repo, a sha256 of its weight and tokenizer
    files, and its config.json without ``transformers_version``.

    ``snapshots`` is ``{repo_id: folder}``. config.json is written by transformers and lists
    other defaults on 4.x than on 5.x, so it is kept as data and compared key by key.
    """
    out = {}
    for repo_id, folder in sorted(snapshots.items()):
        folder = pathlib.Path(folder)
        h = hashlib.sha256()
        for path in sorted(p for p in folder.iterdir() if p.is_file() and p.name != "config.json"):
            h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        config = {}
        if (folder / "config.json").is_file():
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
            config.pop("transformers_version", None)
        out[repo_id] = {"files_sha256": h.hexdigest(), "config": config}
    return out


def compute_outputs(model_dir) -> dict:
    """Detection, stance and embeddings of the tiny models on tests/sentences.py's sentences.

    ``model_dir(repo_id)`` gives the folder of a repo. Stance pairs and embedded spans are
    taken from the detection recorded in :data:`FIXTURE` when it exists, so that each stage is
    checked on the same inputs even when detection differs.
    """
    from group_appeal_spark.lib import models
    from group_appeal_spark.lib.inference.detect import MentionDetector
    from group_appeal_spark.lib.inference.embed import MentionEmbedder
    from group_appeal_spark.lib.inference.stance import StanceClassifier
    from sentences import sentences

    texts = sentences(N_SENTENCES) + [LONG_TEXT]
    detector = MentionDetector.from_dirs(model_dir(models.DETECTOR_ID), model_dir(models.DETECTOR_TOKENIZER_ID),
                                         batch_size=16)
    detection = [[[m.span, m.start, m.end, round(m.score, SCORE_DECIMALS)] for m in ms]
                 for ms in detector.detect(texts)]

    inputs = detection
    if FIXTURE.is_file():
        inputs = json.loads(FIXTURE.read_text(encoding="utf-8"))["detection"]
    pairs = [(text, m[0]) for text, ms in zip(texts, inputs) for m in ms][:N_STANCE_PAIRS]
    stance = StanceClassifier.from_dir(model_dir(models.STANCE_ID), batch_size=8)
    stances = [[s.stance] + [round(p, SCORE_DECIMALS) for p in (s.prob_positive, s.prob_negative, s.prob_neutral)]
               for s in stance.classify(pairs)]

    spans = sorted({m[0] for ms in inputs for m in ms})[:N_EMBEDDED] + EXTRA_SPANS
    embedder = MentionEmbedder.from_dirs(model_dir(models.EMBEDDER_ID), model_dir(models.EMBEDDER_BASE_ID),
                                         batch_size=16)
    # Python floats: rounding the float32 array would keep float32's long decimal tails
    vectors = [[round(x, EMBEDDING_DECIMALS) for x in row] for row in embedder.embed(spans).tolist()]
    return {
        "detection": detection,
        "stance": stances,
        "embedded_spans": spans,
        "embeddings": vectors,
    }


def _dumps(record: dict) -> str:
    """JSON with one line per sentence, pair or vector, so that a re-recording diffs readably."""
    def compact(value):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)

    parts = []
    for key, value in record.items():
        if isinstance(value, list):
            body = ",\n".join(" " + compact(item) for item in value)
            parts.append(f"{json.dumps(key)}:[\n{body}\n]")
        else:
            parts.append(f"{json.dumps(key)}:{json.dumps(value, ensure_ascii=False, indent=1, sort_keys=True)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def main() -> None:
    import os

    # conftest sets HF_HUB_OFFLINE and HF_HUB_CACHE before huggingface_hub is imported, and knows
    # which vocabulary the test session gives the embedder: the cache built here is the tests' one.
    import conftest  # noqa: F401
    import transformers

    if int(transformers.__version__.split(".")[0]) < 5:
        raise SystemExit(f"record on transformers 5.x, where the reference tests run; this is "
                         f"{transformers.__version__}")
    from group_appeal_spark.lib import models
    from group_appeal_spark.testing.tiny_models import build_tiny_hub_cache

    snapshots = build_tiny_hub_cache(os.environ["HF_HUB_CACHE"], seed=0, bert_vocab=conftest._bert_vocab())

    def model_dir(repo_id):
        return models.resolve_model_dir(models.ModelSource("recording", repo_id))

    FIXTURE.unlink(missing_ok=True)  # record every stage on its own detection
    record = {"recorded_with": {"transformers": transformers.__version__}, "models": fingerprint(snapshots)}
    record.update(compute_outputs(model_dir))
    FIXTURE.parent.mkdir(exist_ok=True)
    FIXTURE.write_text(_dumps(record), encoding="utf-8")
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
