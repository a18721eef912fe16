"""Loading model folders: tokenizers, the two classifiers and the mention embedder.

Executors only ever load from local folders that the driver resolved (:mod:`.hub`). Weights are
read from safetensors only, memory-mapped (:mod:`.weights`), and no repository code is ever
executed (``trust_remote_code`` stays off).
"""

from __future__ import annotations

import os
from pathlib import Path

from group_appeal_spark.lib.errors import ModelLoadError
from group_appeal_spark.lib.models.weights import read_header

EMBEDDING_DIM = 128  # the mention embedder's projection size


# The roles whose folders carry weights (the others hold a tokenizer or a config only).
WEIGHT_ROLES = ("detector", "stance", "embedder")


def check_weights(folder, role: str) -> None:
    """On the driver, before any Spark work: ``folder`` holds safetensors weights whose headers
    fit their files (a missing, pickle-only, truncated or garbage file is one clear error)."""
    folder = Path(folder)
    _require_safetensors(folder, role)
    for path in sorted(folder.glob("*.safetensors")):
        read_header(path)


def _require_safetensors(folder: Path, role: str) -> None:
    if not any(folder.glob("*.safetensors")):
        found = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        raise ModelLoadError(
            f"{role}: no *.safetensors weights in {folder} (found: {', '.join(found) or 'nothing'}). "
            f"Only safetensors weights are loaded; pickle-based *.bin files are refused for safety."
        )


def load_tokenizer(folder, role: str, **kwargs):
    """Load a fast tokenizer from a folder (no remote code); ``role`` names it in errors."""
    from transformers import AutoTokenizer

    # Forked Python workers must not start tokenizers' own thread pool (it deadlocks after fork).
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False, **kwargs)
    except Exception as exc:
        raise ModelLoadError(
            f"{role}: cannot load the tokenizer from {folder}: {exc}. DeBERTa-v3 folders that hold "
            f"only spm.model need the `sentencepiece` and `protobuf` packages."
        ) from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(f"{role}: the tokenizer in {folder} is not a fast tokenizer; character offsets need one")
    return tokenizer


def quiet_transformers() -> None:
    """No per-load progress bars in executor logs (one per task would drown the job's log)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def _load_auto_model(auto_class, folder, role: str, dtype):
    _require_safetensors(Path(folder), role)
    quiet_transformers()
    from group_appeal_spark.lib.models.weights import load_pretrained

    try:
        # Parameters are views into one private mapping of the safetensors file: every Python
        # worker of a node shares the page cache's copy (from_pretrained gives each its own).
        model = load_pretrained(auto_class, folder, dtype=dtype)
    except ModelLoadError as exc:
        raise ModelLoadError(f"{role}: cannot load the model from {folder}: {exc}") from exc
    except Exception as exc:
        raise ModelLoadError(f"{role}: cannot load the model from {folder}: {exc}") from exc
    return model.eval()


def load_token_classifier(folder, *, dtype=None, role: str = "detector"):
    """Load a token-classification model (the mention detector) from a folder."""
    from transformers import AutoModelForTokenClassification

    return _load_auto_model(AutoModelForTokenClassification, folder, role, dtype)


def load_sequence_classifier(folder, *, dtype=None, role: str = "stance model"):
    """Load a sequence-classification model (the NLI stance model) from a folder."""
    from transformers import AutoModelForSequenceClassification

    return _load_auto_model(AutoModelForSequenceClassification, folder, role, dtype)


def _build_module(config, proj_dim: int):
    import torch.nn as nn
    from transformers import AutoModel

    class MentionEmbedderModel(nn.Module):
        """An encoder and a one-layer projection; state-dict keys ``encoder.*``, ``projector.0.*``."""

        def __init__(self):
            super().__init__()
            self.encoder = AutoModel.from_config(config)
            self.projector = nn.Sequential(nn.Linear(config.hidden_size, proj_dim))

    return MentionEmbedderModel()


def new_embedder_module(config, proj_dim: int = EMBEDDING_DIM):
    """A freshly initialised embedder module (for training) with the checkpoint's key layout."""
    return _build_module(config, proj_dim)


def load_embedder_module(weights_dir, config_dir, *, dtype=None, role: str = "embedder"):
    """Load the embedder from a folder with ``model.safetensors`` and a folder with the encoder config.

    Parameters
    ----------
    weights_dir : path
        Folder holding ``model.safetensors`` with keys ``encoder.*`` and ``projector.0.{weight,bias}``.
    config_dir : path
        Folder holding the encoder's ``config.json`` (``bert-base-uncased`` for the real model; a
        folder written by ``train-embedder`` holds both).
    dtype : torch.dtype, optional
        Cast into new tensors of this dtype at load time (the loaded file is never changed).
    """
    from group_appeal_spark.lib.models.weights import (
        assign_state_dict,
        empty_model,
        load_safetensors,
    )
    from transformers import AutoConfig

    weights_dir = Path(weights_dir)
    _require_safetensors(weights_dir, role)
    weights = weights_dir / "model.safetensors"
    if not weights.is_file():
        raise ModelLoadError(f"{role}: {weights_dir} has no model.safetensors (the embedder's checkpoint)")
    try:
        config = AutoConfig.from_pretrained(str(config_dir), trust_remote_code=False)
        # views into one private mapping of the file, shared by all workers through the page cache
        state = load_safetensors(weights, dtype=dtype)
        if "projector.0.weight" not in state:
            raise ModelLoadError(
                f"{role}: {weights} has no 'projector.0.weight'; expected the keys encoder.* and "
                f"projector.0.{{weight,bias}} of maxwlnd/cl_mention_embedding"
            )
        with empty_model():
            module = _build_module(config, int(state["projector.0.weight"].shape[0]))
        unexpected = sorted(set(state) - set(module.state_dict()))
        if unexpected:  # the reference loads with strict=True
            raise ModelLoadError(f"{role}: {weights} has unexpected keys: {', '.join(unexpected[:10])}")
        assign_state_dict(module, state, weights)
    except ModelLoadError as exc:
        if str(exc).startswith(f"{role}:"):
            raise
        raise ModelLoadError(f"{role}: cannot load the embedder from {weights_dir} (config {config_dir}): {exc}") from exc
    except Exception as exc:
        raise ModelLoadError(f"{role}: cannot load the embedder from {weights_dir} (config {config_dir}): {exc}") from exc
    if dtype is not None:
        # float buffers follow the precision; weights were cast at load time into new tensors
        for sub in module.modules():
            for name, buf in list(sub._buffers.items()):
                if buf is not None and buf.is_floating_point() and buf.dtype != dtype:
                    sub._buffers[name] = buf.to(dtype)
    return module.eval()
