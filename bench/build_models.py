"""Random-init models of the real architectures and sizes, as an offline hub cache under the real ids.

The tokenizers and checkpoint writers are ``group_appeal_spark.testing``'s (tokenizers trained on
its built-in corpus); only the sizes are the real ones (roberta-base, deberta-v3-base with vocab
128100, bert-base-uncased + a 768->128 projection), so the weights have the real size and a
forward pass the real FLOPs. The detector's classifier bias is set so that the random model finds
a realistic number of mentions (about 1.25 per sentence) on the benchmark corpus.

    python bench/build_models.py --cache /tmp/gas-bench/hub
"""

from __future__ import annotations

import argparse
import json
import pathlib
import tempfile

# The *-base sizes of all three models; vocab sizes are the real checkpoints'.
BASE_SIZE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
ROBERTA_BASE_VOCAB = 50265
DEBERTA_V3_BASE_VOCAB = 128100
BERT_BASE_VOCAB = 30522


def calibrate_detector(model, tokenizer, texts, target=1.25):
    """Set the classifier bias so that ``texts`` get about ``target`` mentions each.

    The bias only shifts the logits, so one forward pass gives the logits and the mention count
    for any bias is computed from them (argmax + the pipeline's simple grouping).
    """
    import numpy as np
    import torch
    from group_appeal_spark.lib.inference.detect import group_tokens
    from group_appeal_spark.testing.checkpoints import DETECTOR_LABELS

    enc = tokenizer(list(texts), padding=True, return_tensors="pt", return_special_tokens_mask=True)
    model.eval()
    with torch.no_grad():
        model.classifier.bias.zero_()
        logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits.numpy()
    keep = (enc["attention_mask"].numpy() == 1) & (enc["special_tokens_mask"].numpy() == 0)
    rows = [logits[i][keep[i]] for i in range(len(texts))]
    flat = np.concatenate(rows)
    bi_shift = float(np.quantile(flat[:, 1] - flat[:, 2], 0.9))  # mostly I-GROUP: runs merge

    def rate(o_shift):
        bias = np.array([o_shift, 0.0, bi_shift])
        return np.mean([len(group_tokens([DETECTOR_LABELS[int(j)] for j in (r + bias).argmax(-1)])) for r in rows])

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
    from group_appeal_spark.lib.models.weights import load_safetensors  # noqa: F401 - same package, early import check
    from transformers import AutoTokenizer

    from group_appeal_spark.testing import checkpoints
    from group_appeal_spark.testing import tiny_models as tm
    from group_appeal_spark.testing.repos import repo_folders, write_tokenizers

    cache_dir = pathlib.Path(cache_dir)
    with tempfile.TemporaryDirectory(prefix="bench_repos_") as tmp:
        folders = repo_folders(tmp)
        write_tokenizers(folders, stance_tokenizer_json=True)
        # Plain random position embeddings (no smoothing): the bias alone sets the mention rate.
        detector = checkpoints.detector_model(ROBERTA_BASE_VOCAB, seed, size=BASE_SIZE, smooth_positions=False)
        tok = AutoTokenizer.from_pretrained(str(folders[tm.DETECTOR_TOKENIZER_ID]))
        rate = calibrate_detector(detector, tok, texts[:300])
        checkpoints.save_model(detector, folders[tm.DETECTOR_ID])
        del detector

        checkpoints.write_stance(folders[tm.STANCE_ID], seed, ("entailment", "not_entailment"),
                                 DEBERTA_V3_BASE_VOCAB, size=BASE_SIZE)
        checkpoints.write_embedder(folders[tm.EMBEDDER_ID], folders[tm.EMBEDDER_BASE_ID], seed, BERT_BASE_VOCAB,
                                   size=BASE_SIZE)
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
