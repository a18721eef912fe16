"""Stance toward a mentioned group: three NLI hypotheses per (text, mention) pair.

Reproduces ``StanceClassifier`` of group-appeal-detector 0.3.0: the premise is the text, the
hypotheses say the text is positive / negative / neutral towards the mention, each pair is
tokenized with truncation, the softmax of its logits gives the entailment probability, and the
stance is the class with the highest one (the first of positive, negative, neutral on ties).
Identical pairs are computed once and the three hypotheses run in length-sorted batches.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from group_appeal_spark.lib.choices import STANCES
from group_appeal_spark.lib.errors import ModelLoadError
from group_appeal_spark.lib.inference.batching import (
    check_one_per_input,
    length_sorted_batches,
    pad_rows,
    to_device,
)
from group_appeal_spark.lib.models.loaders import (
    load_sequence_classifier,
    load_tokenizer,
)

HYPOTHESES = (
    "The text is positive towards {group}.",
    "The text is negative towards {group}.",
    "The text is neutral, or contains no stance, towards {group}.",
)


@dataclasses.dataclass(frozen=True)
class Stance:
    """The predicted stance and the entailment probability of each class."""

    stance: str
    prob_positive: float
    prob_negative: float
    prob_neutral: float


def entailment_index(config) -> int:
    """The logit index of the entailment class, read from the model config's label names."""
    label2id = {str(k).lower(): int(v) for k, v in (getattr(config, "label2id", None) or {}).items()}
    if "entailment" in label2id:
        return label2id["entailment"]
    labels = {int(k): str(v).lower() for k, v in (getattr(config, "id2label", None) or {}).items()}
    for idx, name in labels.items():
        if name == "entailment":
            return idx
    raise ModelLoadError(
        f"stance model: no 'entailment' label in its config (label2id={getattr(config, 'label2id', None)}); "
        f"an NLI model with labels entailment/not_entailment is expected"
    )


def stances_from_probs(probs: np.ndarray) -> list[Stance]:
    """Stances from entailment probabilities, shape (n_pairs, 3) in the order of ``STANCES``."""
    best = probs.argmax(axis=1)  # argmax keeps the first maximum, like the reference's max()
    return [Stance(STANCES[b], float(p[0]), float(p[1]), float(p[2])) for b, p in zip(best, probs)]


class StanceClassifier:
    """The stance stage: preprocess -> forward -> postprocess.

    Parameters
    ----------
    model : transformers sequence-classification (NLI) model
    tokenizer : its tokenizer
    device : torch.device
    batch_size : int
        Most (text, mention) pairs per forward pass (each is three model rows).
    max_tokens : int, optional
        Most padded tokens per forward pass.
    """

    def __init__(self, model, tokenizer, *, device=None, batch_size: int = 32, max_tokens: int | None = None):
        import torch

        self.model = model
        self.tokenizer = tokenizer
        self.device = torch.device(device or "cpu")
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.entailment = entailment_index(model.config)
        self.model.to(self.device)

    @classmethod
    def from_dir(cls, model_dir, *, device="cpu", precision="fp32", onnx_dir=None, **kwargs):
        """Load from a folder; ``onnx_dir``: run the export there on ONNX Runtime instead of torch."""
        from group_appeal_spark.lib.models.devices import finish_precision, resolve_device, torch_dtype

        tokenizer = load_tokenizer(model_dir, "stance tokenizer")
        if onnx_dir is not None:
            from group_appeal_spark.lib.models.onnx import OnnxModel
            from transformers import AutoConfig

            model = OnnxModel(onnx_dir, AutoConfig.from_pretrained(str(model_dir), trust_remote_code=False))
            return cls(model, tokenizer, device="cpu", **kwargs)
        model = load_sequence_classifier(model_dir, dtype=torch_dtype(precision))
        return cls(finish_precision(model, precision, device), tokenizer, device=resolve_device(device), **kwargs)

    def preprocess(self, pairs: Sequence[tuple[str, str]]) -> tuple[list[list[int]], list[list[int]] | None]:
        """Token ids (and token type ids, where the tokenizer makes them) of the three
        (premise, hypothesis) rows of each pair, pair-major."""
        premises = [text for text, _ in pairs for _ in HYPOTHESES]
        hypotheses = [h.format(group=group) for _, group in pairs for h in HYPOTHESES]
        # truncation=True is the reference's: longest_first down to the tokenizer's max length
        enc = self.tokenizer(premises, hypotheses, truncation=True)
        return enc["input_ids"], enc.get("token_type_ids")

    def forward(self, rows: Sequence[Sequence[int]], type_rows: Sequence[Sequence[int]] | None = None) -> np.ndarray:
        """Entailment probability of each row of one batch, shape (n_rows,)."""
        import torch

        input_ids, attention_mask = pad_rows(rows, self.tokenizer.pad_token_id)
        extra = {}
        if type_rows is not None:
            extra["token_type_ids"] = to_device(pad_rows(type_rows, 0)[0], self.device)
        with torch.inference_mode():
            logits = self.model(
                input_ids=to_device(input_ids, self.device), attention_mask=to_device(attention_mask, self.device),
                **extra).logits
            return torch.softmax(logits.float(), dim=-1)[:, self.entailment].cpu().numpy()

    def classify(self, pairs: Sequence[tuple[str, str]]) -> list[Stance]:
        """Classify the stance of each (text, mention) pair.

        Parameters
        ----------
        pairs : sequence of (str, str), shape (n,)
            The premise text and the mention as the detector gave it.

        Returns
        -------
        list of Stance, length n, in input order
        """
        if not pairs:  # a batch without mentions: the tokenizer raises on an empty batch
            return []
        unique = list(dict.fromkeys(pairs))
        rows, types = self.preprocess(unique)
        probs = np.zeros(len(rows), dtype=np.float32)
        # batch_size counts pairs, as in the reference; each pair is three model rows
        for batch in length_sorted_batches([len(r) for r in rows], self.batch_size * len(HYPOTHESES),
                                           self.max_tokens):
            probs[batch] = self.forward([rows[i] for i in batch],
                                        None if types is None else [types[i] for i in batch])
        by_pair = dict(zip(unique, stances_from_probs(probs.reshape(-1, len(HYPOTHESES)))))
        result = [by_pair[p] for p in pairs]
        check_one_per_input(len(pairs), len(result), "stance")
        return result
