"""Random-init models of the real architectures and sizes, as an offline hub cache under the real ids.

The tokenizers are ``lib/tiny_models.py``'s (trained on its built-in corpus); the model configs
are the real ones (roberta-base, deberta-v3-base with vocab 128100, bert-base-uncased + a
768->128 projection), so the weights have the real size and a forward pass the real FLOPs. The
detector's classifier bias is set so that the random model finds a realistic number of mentions
(about 1.25 per sentence) on the benchmark corpus.

    python bench/build_models.py --cache /tmp/gas-bench/hub
"""

from __future__ import annotations

import argparse
import json
import pathlib
import tempfile

ROBERTA_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                    vocab_size=50265, max_position_embeddings=514, type_vocab_size=1, pad_token_id=1,
                    bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5)
DEBERTA_V3_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                       vocab_size=128100, max_position_embeddings=512, type_vocab_size=0, hidden_act="gelu",
                       relative_attention=True, position_buckets=256, norm_rel_ebd="layer_norm",
                       share_att_key=True, pos_att_type=["p2c", "c2p"], max_relative_positions=-1,
                       position_biased_input=False, layer_norm_eps=1e-7, pad_token_id=0)
BERT_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                 vocab_size=30522, max_position_embeddings=512, type_vocab_size=2)


def _save(model, folder):
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    for name in ("model.safetensors", "config.json"):
        (folder / name).unlink(missing_ok=True)
    model.save_pretrained(folder, safe_serialization=True)


def calibrate_detector(model, tokenizer, texts, target=1.25):
    """Set the classifier bias so that ``texts`` get about ``target`` mentions each.

    The bias only shifts the logits, so one forward pass gives the logits and the mention count
    for any bias is computed from them (argmax + the pipeline's simple grouping).
    """
    import numpy as np
    import torch
    from group_appeal_spark.lib.inference.detect import group_tokens

    enc = tokenizer(list(texts), padding=True, return_tensors="pt", return_special_tokens_mask=True)
    model.eval()
    with torch.no_grad():
        model.classifier.bias.zero_()
        logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits.numpy()
    keep = (enc["attention_mask"].numpy() == 1) & (enc["special_tokens_mask"].numpy() == 0)
    rows = [logits[i][keep[i]] for i in range(len(texts))]
    labels = {0: "O", 1: "B-GROUP", 2: "I-GROUP"}
    flat = np.concatenate(rows)
    bi_shift = float(np.quantile(flat[:, 1] - flat[:, 2], 0.9))  # mostly I-GROUP: runs merge

    def rate(o_shift):
        bias = np.array([o_shift, 0.0, bi_shift])
        return np.mean([len(group_tokens([labels[int(j)] for j in (r + bias).argmax(-1)])) for r in rows])

    lo, hi = -20.0, 20.0  # rate falls as o_shift rises
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if rate(mid) > target else (lo, mid)
    o_shift = round(hi, 4)
    with torch.no_grad():
        model.classifier.bias.copy_(torch.tensor([o_shift, 0.0, bi_shift], dtype=torch.float32))
    return rate(o_shift)


def build(cache_dir, texts, *, seed=0):
    """Write the five repos at real size into the hub cache ``cache_dir``; returns {repo_id: snapshot}."""
    import torch
    from group_appeal_spark.lib.models.weights import load_safetensors  # noqa: F401 - same package, early import check
    from transformers import (
        AutoTokenizer,
        BertConfig,
        BertModel,
        DebertaV2Config,
        DebertaV2ForSequenceClassification,
        RobertaConfig,
        RobertaForTokenClassification,
    )

    from group_appeal_spark.testing import tiny_models as tm

    cache_dir = pathlib.Path(cache_dir)
    with tempfile.TemporaryDirectory(prefix="bench_repos_") as tmp:
        folders = tm.build_tiny_repos(tmp, seed=seed, stance_tokenizer_json=True)
        torch.manual_seed(seed)
        labels = dict(tm.DETECTOR_LABELS)
        det_cfg = RobertaConfig(**ROBERTA_BASE, id2label=labels, label2id={v: k for k, v in labels.items()},
                                architectures=["RobertaForTokenClassification"])
        detector = RobertaForTokenClassification(det_cfg)
        tok = AutoTokenizer.from_pretrained(str(folders[tm.DETECTOR_TOKENIZER_ID]))
        rate = calibrate_detector(detector, tok, texts[:300])
        _save(detector, folders[tm.DETECTOR_ID])
        del detector

        stance_labels = {0: "entailment", 1: "not_entailment"}
        st_cfg = DebertaV2Config(**DEBERTA_V3_BASE, id2label=stance_labels,
                                 label2id={v: k for k, v in stance_labels.items()},
                                 architectures=["DebertaV2ForSequenceClassification"])
        _save(DebertaV2ForSequenceClassification(st_cfg), folders[tm.STANCE_ID])

        from safetensors.torch import save_file

        bert_cfg = BertConfig(**BERT_BASE)
        bert_cfg.save_pretrained(folders[tm.EMBEDDER_BASE_ID])
        encoder = BertModel(bert_cfg, add_pooling_layer=True)
        projector = torch.nn.Sequential(torch.nn.Linear(768, 128))
        state = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
        state.update({f"projector.{k}": v for k, v in projector.state_dict().items()})
        state = {k: v.detach().clone().contiguous() for k, v in state.items()}
        save_file(state, str(folders[tm.EMBEDDER_ID] / "model.safetensors"), metadata={"format": "pt"})
        snaps = {rid: tm.install_into_hub_cache(f, cache_dir, rid) for rid, f in folders.items()}
    sizes = {rid: sum(p.stat().st_size for p in pathlib.Path(s).glob("*.safetensors")) for rid, s in snaps.items()}
    (cache_dir / "bench_models.json").write_text(json.dumps(
        {"detector_mentions_per_sentence_calibration": rate, "weight_bytes": sizes}, indent=2))
    return snaps


def main(argv=None):
    import os
    import sys

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", required=True)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(pathlib.Path(__file__).parent))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from corpus import make_corpus

    build(args.cache, make_corpus(2000))
    print((pathlib.Path(args.cache) / "bench_models.json").read_text())


if __name__ == "__main__":
    main()
