"""Mention embedding: BERT encoder + 768->128 projection, read at the prompt's mask token.

Reproduces ``GroupMentionClusterer.embed`` of group-appeal-detector 0.3.0: the prompt
``Social group of {mention} is: [MASK].``, the last hidden state at the mask position, the
projection, L2 normalisation. Unlike the reference, a mention too long for the 32-token prompt
is truncated itself so the mask token always survives, and every input gets exactly one vector.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from group_appeal_spark.lib.batching import check_one_per_input, length_sorted_batches, pad_rows
from group_appeal_spark.lib.errors import ModelLoadError
from group_appeal_spark.lib.models import _require_safetensors, load_tokenizer

PROMPT_PREFIX = "Social group of"
PROMPT_SUFFIX = "is: {mask}."
MAX_LENGTH = 32
EMBEDDING_DIM = 128


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
    from transformers import AutoConfig

    from group_appeal_spark.lib.weights import assign_state_dict, empty_model, load_safetensors

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


@dataclasses.dataclass
class EmbedderInputs:
    """Token id rows of the prompts, one per mention, each with exactly one mask token."""

    rows: list[list[int]]
    truncated: np.ndarray  # (n,) bool: the mention was cut to fit MAX_LENGTH


class MentionEmbedder:
    """The embedding stage: preprocess -> forward -> postprocess.

    Parameters
    ----------
    module : torch.nn.Module
        From :func:`load_embedder_module`.
    tokenizer : transformers tokenizer
        The embedder's (uncased BERT) tokenizer.
    device : torch.device
    batch_size : int
        Most prompts per forward pass.
    max_length : int
        Token budget of one prompt, special tokens included (32 in the reference).
    """

    def __init__(self, module, tokenizer, *, device=None, batch_size: int = 64, max_length: int = MAX_LENGTH):
        import torch

        self.module = module
        self.tokenizer = tokenizer
        self.device = torch.device(device or "cpu")
        self.batch_size = batch_size
        self.max_length = max_length
        if tokenizer.mask_token_id is None:
            raise ModelLoadError("embedder: the tokenizer has no mask token; the prompt needs one")
        self._prefix = tokenizer(PROMPT_PREFIX, add_special_tokens=False)["input_ids"]
        self._suffix = tokenizer(PROMPT_SUFFIX.format(mask=tokenizer.mask_token), add_special_tokens=False)["input_ids"]
        self._budget = max_length - 2 - len(self._prefix) - len(self._suffix)
        if self._budget < 1:
            raise ValueError(f"max_length={max_length} leaves no room for the mention in the prompt")
        self.module.to(self.device)

    @classmethod
    def from_dirs(cls, weights_dir, config_dir, *, device="cpu", precision="fp32", batch_size: int = 64):
        """Load tokenizer and weights from ``weights_dir`` and the encoder config from ``config_dir``."""
        from group_appeal_spark.lib.options import resolve_device, torch_dtype

        tokenizer = load_tokenizer(weights_dir, "embedder tokenizer")
        module = load_embedder_module(weights_dir, config_dir, dtype=torch_dtype(precision))
        return cls(module, tokenizer, device=resolve_device(device), batch_size=batch_size)

    def preprocess(self, mentions: Sequence[str]) -> EmbedderInputs:
        """Token ids of each mention's prompt: ``[CLS] prefix mention suffix [SEP]``.

        Composing the prompt from separately tokenized parts gives the same ids as tokenizing the
        whole prompt (BERT pre-tokenizes on whitespace and punctuation), but lets a long mention
        be cut while the mask token stays. A mask token written inside a mention is split into
        plain text so that each prompt holds exactly one mask.
        """
        cls_id, sep_id = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        encoded = self.tokenizer(
            list(mentions), add_special_tokens=False, split_special_tokens=True
        )["input_ids"]
        rows, truncated = [], np.zeros(len(encoded), dtype=bool)
        for i, ids in enumerate(encoded):
            if len(ids) > self._budget:
                ids, truncated[i] = ids[: self._budget], True
            rows.append([cls_id, *self._prefix, *ids, *self._suffix, sep_id])
        return EmbedderInputs(rows, truncated)

    def forward(self, rows: Sequence[Sequence[int]]) -> np.ndarray:
        """Run one batch of prompt rows; returns the (n, dim) float32 L2-normalised embeddings."""
        import torch
        import torch.nn.functional as F

        input_ids, attention_mask = pad_rows(rows, self.tokenizer.pad_token_id)
        input_ids, attention_mask = input_ids.to(self.device), attention_mask.to(self.device)
        with torch.inference_mode():
            hidden = self.module.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            rows_idx, cols_idx = (input_ids == self.tokenizer.mask_token_id).nonzero(as_tuple=True)
            check_one_per_input(len(rows), len(rows_idx), "embedding (mask tokens per prompt)")
            projected = self.module.projector(hidden[rows_idx, cols_idx])
            return F.normalize(projected.float(), p=2, dim=1).cpu().numpy()

    def embed(self, mentions: Sequence[str]) -> np.ndarray:
        """Embed mentions.

        Parameters
        ----------
        mentions : sequence of str, shape (n,)

        Returns
        -------
        ndarray, shape (n, 128), float32
            Unit-norm embeddings in input order.
        """
        if not len(mentions):  # the tokenizer raises on an empty batch
            return np.zeros((0, self._output_dim()), dtype=np.float32)
        inputs = self.preprocess(mentions)
        out = np.zeros((len(inputs.rows), self._output_dim()), dtype=np.float32)
        lengths = [len(r) for r in inputs.rows]
        for batch in length_sorted_batches(lengths, self.batch_size):
            out[batch] = self.forward([inputs.rows[i] for i in batch])
        check_one_per_input(len(mentions), len(out), "embedding")
        return out

    def _output_dim(self) -> int:
        return int(self.module.projector[0].out_features)


class MentionKeyer:
    """The dedupe key of a mention: the embedding tokenizer's own normalisation.

    For the uncased BERT tokenizer that is: control characters removed, CJK characters spaced,
    accents stripped, lower case; then surrounding whitespace dropped and runs collapsed. Two
    mentions with the same key give the same token ids, hence the same embedding.
    """

    def __init__(self, tokenizer):
        backend = getattr(tokenizer, "backend_tokenizer", None)
        self._normalizer = backend.normalizer if backend is not None else None

    @classmethod
    def from_dir(cls, folder):
        return cls(load_tokenizer(folder, "embedder tokenizer"))

    def key(self, mention: str) -> str:
        text = self._normalizer.normalize_str(mention) if self._normalizer is not None else mention
        return " ".join(text.split())

    def keys(self, mentions: Sequence[str]) -> list[str]:
        return [self.key(m) for m in mentions]
