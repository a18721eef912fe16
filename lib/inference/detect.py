"""Mention detection: RoBERTa token classification with BIO tags, simple aggregation.

Reproduces the ``token-classification`` pipeline with ``aggregation_strategy="simple"`` that
group-appeal-detector 0.3.0 runs: per-token softmax and argmax, adjacent tokens of the same tag
grouped unless a token starts with ``B-``, groups tagged ``O`` dropped, the span's text decoded
from its tokens (for RoBERTa it can keep a leading space), character offsets into the input.

Unlike the reference, a text longer than the model's window does not crash: it is cut into
overlapping token windows, each token takes its scores from the window where it sits farthest
from an edge, and the aggregation then runs once over the whole text, so offsets stay offsets
into the original text and no mention is reported twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from group_appeal_spark.lib.inference.batching import (
    check_one_per_input,
    length_sorted_batches,
    pad_rows,
    to_device,
)
from group_appeal_spark.lib.models.loaders import load_token_classifier, load_tokenizer


@dataclasses.dataclass(frozen=True)
class Mention:
    """One detected mention: ``text[start:end]`` is the mention; ``span`` is the decoded tokens."""

    span: str
    start: int
    end: int
    score: float


@dataclasses.dataclass
class TokenizedText:
    """One text's content tokens (special tokens removed) and their character offsets."""

    ids: list[int]
    offsets: list[tuple[int, int]]
    windows: list[tuple[int, int]]  # [start, end) ranges over the content tokens


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row softmax in the pipeline's numerically stable form, shape preserved."""
    shifted = np.exp(logits - np.max(logits, axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def split_tag(label: str) -> tuple[str, str]:
    """``("B"|"I", tag)`` of a BIO label; a label without a prefix continues like ``I-``."""
    if label.startswith("B-"):
        return "B", label[2:]
    if label.startswith("I-"):
        return "I", label[2:]
    return "I", label


def group_tokens(labels: Sequence[str], ignore: frozenset = frozenset({"O"})) -> list[tuple[int, int]]:
    """Group token positions into entities the way simple aggregation does.

    Parameters
    ----------
    labels : sequence of str, shape (n_tokens,)
        Argmax label of each content token.

    Returns
    -------
    list of (first, last_exclusive)
        Token ranges of the kept groups, in order.
    """
    groups: list[tuple[int, int]] = []
    start = 0
    for i in range(1, len(labels) + 1):
        if i < len(labels):
            bi, tag = split_tag(labels[i])
            if tag == split_tag(labels[i - 1])[1] and bi != "B":
                continue
        # the group's tag is its first label's, with the B-/I- prefix dropped
        if labels[start].split("-", 1)[-1] not in ignore:
            groups.append((start, i))
        start = i
    return groups if labels else []


def make_windows(n_tokens: int, window: int, stride: int) -> list[tuple[int, int]]:
    """Overlapping ``[start, end)`` windows of at most ``window`` tokens, ``stride`` tokens shared."""
    if n_tokens <= window:
        return [(0, n_tokens)]
    step = window - stride
    if step < 1:
        raise ValueError(f"window stride {stride} must be smaller than the window ({window} tokens)")
    starts = list(range(0, n_tokens - window, step)) + [n_tokens - window]
    return [(s, s + window) for s in starts]


class MentionDetector:
    """The detection stage: preprocess -> forward -> postprocess.

    Parameters
    ----------
    model : transformers token-classification model
    tokenizer : fast tokenizer (``roberta-base`` for the real detector)
    device : torch.device
    batch_size : int
        Most windows per forward pass.
    max_tokens : int, optional
        Most padded tokens per forward pass.
    window_stride : int
        Tokens shared by neighbouring windows of a long text.
    """

    def __init__(self, model, tokenizer, *, device=None, batch_size: int = 32, max_tokens: int | None = None,
                 window_stride: int = 128):
        import torch

        self.model = model
        self.tokenizer = tokenizer
        self.device = torch.device(device or "cpu")
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.window_stride = window_stride
        self.id2label = {int(k): v for k, v in model.config.id2label.items()}
        # RoBERTa numbers positions from padding_idx + 1, so two positions are unusable.
        positions = int(getattr(model.config, "max_position_embeddings", 512))
        if getattr(model.config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
            positions -= int(model.config.pad_token_id) + 1
        tokenizer_max = getattr(tokenizer, "model_max_length", positions) or positions
        self.window = min(positions, tokenizer_max) - tokenizer.num_special_tokens_to_add(pair=False)
        self.model.to(self.device)

    @classmethod
    def from_dirs(cls, model_dir, tokenizer_dir, *, device="cpu", precision="fp32", onnx_dir=None, **kwargs):
        """Load from folders; ``onnx_dir``: run the export there on ONNX Runtime instead of torch."""
        from group_appeal_spark.lib.models.devices import finish_precision, resolve_device, torch_dtype

        tokenizer = load_tokenizer(tokenizer_dir, "detector tokenizer")
        if onnx_dir is not None:
            from group_appeal_spark.lib.models.onnx import OnnxModel
            from transformers import AutoConfig

            model = OnnxModel(onnx_dir, AutoConfig.from_pretrained(str(model_dir), trust_remote_code=False))
            return cls(model, tokenizer, device="cpu", **kwargs)
        model = load_token_classifier(model_dir, dtype=torch_dtype(precision))
        return cls(finish_precision(model, precision, device), tokenizer, device=resolve_device(device), **kwargs)

    def preprocess(self, texts: Sequence[str]) -> list[TokenizedText]:
        """Tokenize whole texts (no truncation) and plan their windows.

        Tokenized with special tokens, as the pipeline does, so offsets are exactly the
        pipeline's; the special tokens are then dropped and re-added around each window.
        """
        enc = self.tokenizer(
            list(texts), return_offsets_mapping=True, return_special_tokens_mask=True, verbose=False
        )
        out = []
        for ids, offsets, special in zip(enc["input_ids"], enc["offset_mapping"], enc["special_tokens_mask"]):
            keep = [i for i, s in enumerate(special) if not s]
            out.append(TokenizedText([ids[i] for i in keep], [tuple(offsets[i]) for i in keep],
                                     make_windows(len(keep), self.window, self.window_stride)))
        return out

    def forward(self, rows: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """Logits of one batch of windows (special tokens included), one float32 array per row."""
        import torch

        input_ids, attention_mask = pad_rows(rows, self.tokenizer.pad_token_id)
        with torch.inference_mode():
            logits = self.model(
                input_ids=to_device(input_ids, self.device), attention_mask=to_device(attention_mask, self.device)
            ).logits
        logits = logits.float().cpu().numpy()
        return [logits[i, : len(r)] for i, r in enumerate(rows)]

    def postprocess(self, text: str, tokens: TokenizedText, scores: np.ndarray) -> list[Mention]:
        """Mentions of one text from its content tokens' class scores, shape (n_tokens, n_labels)."""
        if not tokens.ids:
            return []
        best = scores.argmax(axis=-1)
        labels = [self.id2label[int(i)] for i in best]
        unk = self.tokenizer.unk_token_id
        mentions = []
        for first, last in group_tokens(labels):
            pieces = []
            for t in range(first, last):
                start, end = tokens.offsets[t]
                # the pipeline shows an unknown token as the text it stands for
                pieces.append(text[start:end] if tokens.ids[t] == unk else
                              self.tokenizer.convert_ids_to_tokens(tokens.ids[t]))
            start, end = int(tokens.offsets[first][0]), int(tokens.offsets[last - 1][1])
            original = text[start:end]
            if not original.strip():
                continue  # a group of tokens that covers no character (or only spaces): no mention
            span = self.tokenizer.convert_tokens_to_string(pieces)
            if span.strip() != original.strip():
                # byte-level BPE decodes a span that cuts a character (Arabic, CJK, emoji) to U+FFFD:
                # the text itself is the mention then (the reference keeps the garbled decoding)
                span = original
            score = float(np.mean(scores[np.arange(first, last), best[first:last]]))
            mentions.append(Mention(span, start, end, score))
        return mentions

    def detect(self, texts: Sequence[str]) -> list[list[Mention]]:
        """Detect mentions in each text.

        Parameters
        ----------
        texts : sequence of str, shape (n,)

        Returns
        -------
        list of list of Mention, length n
            In input order; offsets index into each text.
        """
        return self.detect_counted(texts)[0]

    def detect_counted(self, texts: Sequence[str]) -> tuple[list[list[Mention]], list[int]]:
        """``detect``, and each text's number of detector tokens (special tokens not counted).

        Returns
        -------
        mentions : list of list of Mention, length n
        n_tokens : list of int, length n
            Content tokens of each whole text, before it is cut into windows (the segments
            table's ``n_tokens``).
        """
        if not texts:  # the tokenizer raises on an empty batch
            return [], []
        tokenized = self.preprocess(texts)
        cls_ids, sep_ids = self._special_ids()
        windows = [(t, s, e) for t, tok in enumerate(tokenized) for s, e in tok.windows]
        rows = [cls_ids + tokenized[t].ids[s:e] + sep_ids for t, s, e in windows]
        logits: list = [None] * len(rows)
        for batch in length_sorted_batches([len(r) for r in rows], self.batch_size, self.max_tokens):
            for i, out in zip(batch, self.forward([rows[i] for i in batch])):
                logits[i] = out[len(cls_ids): len(out) - len(sep_ids)]
        results, w = [], 0
        for t, tok in enumerate(tokenized):
            n_windows = len(tok.windows)
            scores = self._merge_windows(tok, logits[w: w + n_windows])
            w += n_windows
            results.append(self.postprocess(texts[t], tok, softmax(scores)))
        check_one_per_input(len(texts), len(results), "detection")
        return results, [len(tok.ids) for tok in tokenized]

    def _special_ids(self) -> tuple[list[int], list[int]]:
        # Where the tokenizer puts its special tokens around a single sequence (RoBERTa: <s> ... </s>).
        enc = self.tokenizer("a", return_special_tokens_mask=True)
        ids, special = enc["input_ids"], enc["special_tokens_mask"]
        first = special.index(0)
        last = len(special) - 1 - special[::-1].index(0)
        return ids[:first], ids[last + 1:]

    @staticmethod
    def _merge_windows(tok: TokenizedText, window_logits: list[np.ndarray]) -> np.ndarray:
        if len(window_logits) == 1:
            return window_logits[0]
        n_labels = window_logits[0].shape[-1]
        merged = np.zeros((len(tok.ids), n_labels), dtype=np.float32)
        best_margin = np.full(len(tok.ids), -1, dtype=np.int64)
        for (start, end), logits in zip(tok.windows, window_logits):
            pos = np.arange(start, end)
            margin = np.minimum(pos - start, end - 1 - pos)
            take = margin > best_margin[pos]
            merged[pos[take]] = logits[take]
            best_margin[pos[take]] = margin[take]
        return merged
