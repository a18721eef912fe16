"""Mention embedding: BERT encoder + 768->128 projection, read at the prompt's mask token.

Reproduces ``GroupMentionClusterer.embed`` of group-appeal-detector 0.3.0: the prompt
``Social group of {mention} is: [MASK].``, the last hidden state at the mask position, the
projection, L2 normalisation. Unlike the reference, a mention too long for the 32-token prompt
is truncated itself so the mask token always survives, and every input gets exactly one vector.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from group_appeal_spark.lib.errors import ModelLoadError
from group_appeal_spark.lib.inference.batching import (
    check_one_per_input,
    length_sorted_batches,
    pad_rows,
    to_device,
)
from group_appeal_spark.lib.models.loaders import (  # noqa: F401
    EMBEDDING_DIM,
    load_embedder_module,
    load_tokenizer,
)

PROMPT_PREFIX = "Social group of"
PROMPT_SUFFIX = "is: {mask}."
MAX_LENGTH = 32


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
    def from_dirs(cls, weights_dir, config_dir, *, device="cpu", precision="fp32", batch_size: int = 64,
                  onnx_dir=None):
        """Load tokenizer and weights from ``weights_dir`` and the encoder config from ``config_dir``;
        ``onnx_dir``: run the export there on ONNX Runtime instead of torch."""
        from group_appeal_spark.lib.models.devices import finish_precision, resolve_device, torch_dtype

        tokenizer = load_tokenizer(weights_dir, "embedder tokenizer")
        if onnx_dir is not None:
            from group_appeal_spark.lib.models.onnx import OnnxEmbedder

            return cls(OnnxEmbedder(onnx_dir), tokenizer, device="cpu", batch_size=batch_size)
        module = load_embedder_module(weights_dir, config_dir, dtype=torch_dtype(precision))
        return cls(finish_precision(module, precision, device), tokenizer, device=resolve_device(device),
                   batch_size=batch_size)

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

        input_ids, attention_mask = pad_rows(rows, self.tokenizer.pad_token_id)
        if getattr(self.module, "is_onnx", False):
            return self.module.embed(input_ids, attention_mask, self.tokenizer.mask_token_id).numpy()
        input_ids, attention_mask = to_device(input_ids, self.device), to_device(attention_mask, self.device)
        with torch.inference_mode():
            return mask_embeddings(self.module, input_ids, attention_mask, self.tokenizer.mask_token_id).cpu().numpy()

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
        if getattr(self.module, "is_onnx", False):
            return self.module.output_dim
        return int(self.module.projector[0].out_features)


def mask_embeddings(module, input_ids, attention_mask, mask_token_id: int):
    """The embedder's computation: encoder, hidden state at the mask token, projection, L2 norm.

    Shared by :meth:`MentionEmbedder.forward` (under ``torch.inference_mode``) and the trainer
    (with gradients), so that a trained model embeds exactly as it was trained.

    Parameters
    ----------
    module : torch.nn.Module
        With ``encoder`` and ``projector`` (the :func:`load_embedder_module` layout).
    input_ids, attention_mask : torch.LongTensor, shape (n, length)
        Prompt rows on the module's device, each with exactly one ``mask_token_id``.
    mask_token_id : int

    Returns
    -------
    torch.Tensor, shape (n, dim), float32
        Unit-norm rows, in the order of ``input_ids``.

    Raises
    ------
    OutputMismatchError
        If the batch does not hold exactly as many mask tokens as rows.
    """
    import torch.nn.functional as F

    hidden = module.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    rows_idx, cols_idx = (input_ids == mask_token_id).nonzero(as_tuple=True)
    check_one_per_input(len(input_ids), len(rows_idx), "embedding (mask tokens per prompt)")
    projected = module.projector(hidden[rows_idx, cols_idx])
    return F.normalize(projected.float(), p=2, dim=1)


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
