"""Memory of N processes that load the same three real-size models: one copy of the weights or N?

Each child loads detector, stance model and embedder (``from_pretrained`` + ``load_file``, the
old way, or ``lib/models/weights.py``'s mapping), runs one forward pass of each, and waits; the parent
then reads ``/proc/<pid>/smaps_rollup`` of every child: RSS, PSS and USS (Private_Clean +
Private_Dirty). One copy per node means the sum of USS stays near the non-weight baseline and
the sum of PSS near one copy of the weights.

    python bench/memory.py --cache /tmp/gas-bench/hub --procs 2
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import common

CHILD = r"""
import os, sys, json, time
import torch
torch.set_num_threads(1)
method = sys.argv[1]
t0 = time.perf_counter()
from group_appeal_spark.lib import models
from group_appeal_spark.lib.models.loaders import load_embedder_module
from transformers import AutoModelForTokenClassification, AutoModelForSequenceClassification
d = lambda rid: models.resolve_model_dir(models.ModelSource("bench", rid), local_files_only=True)
if method == "baseline":
    ms = []
elif method in ("from_pretrained", "previous"):
    from safetensors.torch import load_file
    det = AutoModelForTokenClassification.from_pretrained(str(d(models.DETECTOR_ID)), use_safetensors=True).eval()
    st = AutoModelForSequenceClassification.from_pretrained(str(d(models.STANCE_ID)), use_safetensors=True).eval()
    from group_appeal_spark.lib.models.loaders import _build_module
    from transformers import AutoConfig
    state = load_file(str(d(models.EMBEDDER_ID) / "model.safetensors"))
    emb = _build_module(AutoConfig.from_pretrained(str(d(models.EMBEDDER_BASE_ID))), 128)
    # reference: copy into random-init params; previous (this project before lib/models/weights.py): assign
    emb.load_state_dict(state, strict=True, assign=(method == "previous"))
    del state
    ms = [det, st, emb.encoder]
else:
    det = models.load_token_classifier(d(models.DETECTOR_ID))
    st = models.load_sequence_classifier(d(models.STANCE_ID))
    emb = load_embedder_module(d(models.EMBEDDER_ID), d(models.EMBEDDER_BASE_ID))
    ms = [det, st, emb.encoder]
load_s = time.perf_counter() - t0
ids = torch.randint(5, 1000, (8, 40))
with torch.inference_mode():
    for m in ms:
        m(input_ids=ids, attention_mask=torch.ones_like(ids))
import gc; gc.collect()
print("READY", load_s, flush=True)
sys.stdin.readline()
"""


# baseline: imports only; from_pretrained: transformers + the reference's copying embedder load;
# previous: this project before lib/models/weights.py (from_pretrained + load_file/assign); mmap: now.
METHODS = ("baseline", "from_pretrained", "previous", "mmap")


def measure(method: str, procs: int) -> dict:
    children = [subprocess.Popen([sys.executable, "-c", CHILD, method], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                for _ in range(procs)]
    try:
        load_s = []
        for c in children:
            line = c.stdout.readline()
            if not line.startswith("READY"):
                raise RuntimeError(f"child {c.pid} failed ({method})")
            load_s.append(float(line.split()[1]))
        time.sleep(0.5)
        per = [common.memory_mib(c.pid, weights=True) for c in children]
    finally:
        for c in children:
            try:
                c.stdin.write("\n")
                c.stdin.flush()
            except OSError:
                pass
            c.wait(timeout=60)
    return {"method": method, "procs": procs, "per_process": per, "load_seconds": load_s,
            "sum_weights_pss": sum(p["weights_pss"] for p in per),
            "sum_weights_private": sum(p["weights_private"] for p in per),
            "sum_rss": sum(p["rss"] for p in per), "sum_pss": sum(p["pss"] for p in per),
            "sum_uss": sum(p["uss"] for p in per)}


def run(cache: str, procs: int = 2) -> dict:
    """Baseline (imports only), from_pretrained and mmap; sums over ``procs`` children."""
    out = {"weights_mib": common.weights_mib(cache)}
    for method in METHODS:
        out[method] = measure(method, procs)
    base = out["baseline"]["sum_pss"]
    for method in METHODS[1:]:
        # memory the models add to the workers, in copies of the weights
        out[method]["weight_copies_pss"] = (out[method]["sum_pss"] - base) / out["weights_mib"]
        out[method]["weight_copies_rss"] = (out[method]["sum_rss"] - out["baseline"]["sum_rss"]) / out["weights_mib"]
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", required=True)
    parser.add_argument("--procs", type=int, default=2)
    args = parser.parse_args(argv)
    os.environ["HF_HUB_CACHE"] = args.cache
    os.environ["HF_HUB_OFFLINE"] = "1"
    print(json.dumps(run(args.cache, args.procs), indent=2))


if __name__ == "__main__":
    main()
