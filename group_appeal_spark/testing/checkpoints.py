"""Randomly initialised checkpoints of the three real architectures.

=========================  ===================================================================
:func:`write_detector`     ``RobertaForTokenClassification`` with BIO tags, its classifier bias
                           calibrated on the built-in corpus (:func:`calibrate_detector`)
:func:`write_stance`       ``DebertaV2ForSequenceClassification`` (two NLI labels)
:func:`write_embedder`     ``BertConfig`` for the base repo + the embedder's
                           ``model.safetensors`` (``encoder.*`` + ``projector.0.*``)
=========================  ===================================================================

Sizes default to :data:`TINY_SIZE` (STYLE.md: 2 layers, hidden size 32); ``bench/`` passes the
real ones. Weights are seeded without touching the caller's RNG state, so a seed always gives
the same bytes.
"""

from __future__ import annotations

__all__ = [
    "TINY_SIZE",
    "PROJ_DIM",
    "DETECTOR_LABELS",
    "DETECTOR_O_SHARE",
    "save_model",
    "roberta_config",
    "detector_model",
    "calibrate_detector",
    "write_detector",
    "stance_labels",
    "write_stance",
    "write_embedder",
]

# One size for every tiny model (STYLE.md: 2 layers, hidden size 32).
TINY_SIZE = dict(
    num_hidden_layers=2,
    hidden_size=32,
    num_attention_heads=2,
    intermediate_size=64,
)
PROJ_DIM = 128  # the reference's ModelMask projection size
DETECTOR_LABELS = {0: "O", 1: "B-GROUP", 2: "I-GROUP"}
# Share of tokens the random detector tags "O" on the built-in corpus (see calibrate_detector).
DETECTOR_O_SHARE = 0.72
# Size of the detector's smooth position signal relative to the 0.02-std token embeddings.
_POSITION_WAVE_SCALE = 0.15


def save_model(model, folder):
    """Save an HF model as config.json + model.safetensors, without a progress bar."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(folder)
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


class _ForkedSeed:
    """Seed torch inside a block without disturbing the caller's global RNG state."""

    def __init__(self, seed):
        self.seed = seed

    def __enter__(self):
        import torch

        self._fork = torch.random.fork_rng(devices=[])
        self._fork.__enter__()
        torch.manual_seed(self.seed)

    def __exit__(self, *exc):
        return self._fork.__exit__(*exc)


def roberta_config(vocab_size, *, size=TINY_SIZE, **extra):
    """A ``RobertaConfig`` laid out like roberta-base's, of the given size."""
    from transformers import RobertaConfig

    return RobertaConfig(
        vocab_size=vocab_size,
        max_position_embeddings=514,  # 512 + padding_idx + 1, as roberta-base
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        layer_norm_eps=1e-5,
        **size,
        **extra,
    )


# --------------------------------------------------------------------------------------
# Detector: RobertaForTokenClassification with BIO tags
# --------------------------------------------------------------------------------------
def calibrate_detector(model, tokenizer_folder, o_share=DETECTOR_O_SHARE):
    """Set the classifier bias so that about ``o_share`` of tokens come out "O".

    Random weights give nearly uniform tags, i.e. a mention in almost every token. The bias
    is chosen from the model's own logits on the built-in corpus (a quantile of the
    O-vs-best-other margin), so every seed lands at the same rate. Among non-O tags, I-GROUP
    is favoured over B-GROUP so that consecutive tagged tokens mostly merge into one mention.
    """
    import torch
    from tokenizers import Tokenizer

    from group_appeal_spark.testing.corpus import corpus

    tok = Tokenizer.from_file(str(tokenizer_folder / "tokenizer.json"))
    tok.enable_padding(pad_id=1, pad_token="<pad>")
    enc = tok.encode_batch(corpus()[::10])  # one padded batch: a single forward pass
    ids = torch.tensor([e.ids for e in enc])
    mask = torch.tensor([e.attention_mask for e in enc])
    words = torch.tensor([[s == 0 for s in e.special_tokens_mask] for e in enc]) & mask.bool()
    model.eval()
    with torch.no_grad():
        model.classifier.bias.zero_()
        z = model(input_ids=ids, attention_mask=mask).logits[words]  # (n_tokens, 3)
        # B vs I: favour I so that runs merge, but keep some B so that B-GROUP appears.
        bi_shift = torch.quantile(z[:, 1] - z[:, 2], 0.9).item()
        z[:, 2] += bi_shift
        margin = z[:, 0] - torch.maximum(z[:, 1], z[:, 2])
        o_shift = -torch.quantile(margin, 1.0 - o_share).item()
        bias = torch.tensor([o_shift, 0.0, bi_shift], dtype=model.classifier.bias.dtype)
        # Round so tiny float differences across platforms cannot change the saved bytes.
        model.classifier.bias.copy_(torch.round(bias * 1e4) / 1e4)


def _smooth_positions(weight, pad_token_id):
    """Replace random position embeddings by slowly varying random waves.

    With i.i.d. random weights each token is tagged independently, so 30% non-"O" tokens
    give a one-token mention every few words. Position embeddings that change slowly along
    the sequence make neighbouring tokens' tags agree, so tagged tokens come in runs that
    the pipeline merges into multi-token mentions (a B-GROUP/I-GROUP run), as real ones are.
    """
    import math

    import torch

    n, dim = weight.shape
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    period = 8.0 + 12.0 * torch.rand(dim)  # 8 to 20 tokens per wave
    phase = 2 * math.pi * torch.rand(dim)
    waves = torch.sin(2 * math.pi * pos / period + phase) * _POSITION_WAVE_SCALE
    with torch.no_grad():
        weight.copy_(waves)
        weight[: pad_token_id + 1].zero_()  # ids <= padding_idx are never positions of tokens


def _transformers_major():
    import transformers

    return int(transformers.__version__.split(".", 1)[0])


def _redraw_in_transformers_5_order(model, seed):
    """Redraw a transformers 4.x RoBERTa's weights in the order transformers 5 draws them.

    transformers 5 registers ``RobertaEmbeddings.position_embeddings`` after ``LayerNorm`` (4.x:
    second), so the same seed gave other weights under 4.x. Replaying 5.x's draws (construction,
    then the base model's ``post_init``, then the head's) makes both lines write the same bytes,
    so outputs recorded on 5.x can be checked on 4.x.
    """
    import torch

    embeddings = model.roberta.embeddings
    embeddings._modules["position_embeddings"] = embeddings._modules.pop("position_embeddings")
    torch.manual_seed(seed)
    with torch.no_grad():
        for module in model.roberta.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
        model.roberta.apply(model.roberta._init_weights)
        model.classifier.reset_parameters()
        model._init_weights(model.classifier)


def detector_model(vocab_size, seed, *, size=TINY_SIZE, smooth_positions=True):
    """A random, uncalibrated ``RobertaForTokenClassification`` with :data:`DETECTOR_LABELS`."""
    from transformers import RobertaForTokenClassification

    config = roberta_config(
        vocab_size,
        size=size,
        id2label=dict(DETECTOR_LABELS),
        label2id={v: k for k, v in DETECTOR_LABELS.items()},
        architectures=["RobertaForTokenClassification"],
    )
    with _ForkedSeed(seed):
        model = RobertaForTokenClassification(config)
        if _transformers_major() < 5:
            _redraw_in_transformers_5_order(model, seed)
        if smooth_positions:
            _smooth_positions(model.roberta.embeddings.position_embeddings.weight, config.pad_token_id)
    return model


def write_detector(folder, vocab_size, seed, tokenizer_folder, o_share=DETECTOR_O_SHARE, *, size=TINY_SIZE):
    """Write the detector, calibrated with the BPE tokenizer in ``tokenizer_folder``."""
    model = detector_model(vocab_size, seed, size=size)
    calibrate_detector(model, tokenizer_folder, o_share)
    save_model(model, folder)


# --------------------------------------------------------------------------------------
# Stance: DeBERTa-v3 sequence classifier
# --------------------------------------------------------------------------------------
def stance_labels(label_order):
    """``id2label`` of the stance model, ``{0: first, 1: second}``; ValueError unless two distinct labels."""
    label_order = tuple(label_order)
    if len(label_order) != 2 or len(set(label_order)) != 2:
        raise ValueError(f"stance_label_order must be two distinct labels, got {label_order!r}")
    return {0: label_order[0], 1: label_order[1]}


def write_stance(folder, seed, label_order, vocab_size, *, size=TINY_SIZE):
    """Write a deberta-v3-like ``DebertaV2ForSequenceClassification`` (config.json + weights)."""
    from transformers import DebertaV2Config, DebertaV2ForSequenceClassification

    id2label = stance_labels(label_order)
    config = DebertaV2Config(
        vocab_size=vocab_size,
        **size,
        hidden_act="gelu",
        max_position_embeddings=512,
        type_vocab_size=0,
        relative_attention=True,
        position_buckets=256,
        norm_rel_ebd="layer_norm",
        share_att_key=True,
        pos_att_type=["p2c", "c2p"],
        max_relative_positions=-1,
        position_biased_input=False,
        layer_norm_eps=1e-7,
        pad_token_id=0,
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
        architectures=["DebertaV2ForSequenceClassification"],
    )
    with _ForkedSeed(seed + 1):
        model = DebertaV2ForSequenceClassification(config)
    save_model(model, folder)


# --------------------------------------------------------------------------------------
# Embedder: BERT encoder + projection, saved as the reference's ModelMask state dict
# --------------------------------------------------------------------------------------
def write_embedder(embedder_folder, base_folder, seed, vocab_size, *, size=TINY_SIZE, proj_dim=PROJ_DIM):
    """Write the base repo's ``config.json`` and the embedder's ``model.safetensors``."""
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=vocab_size, max_position_embeddings=512, type_vocab_size=2, **size)
    config.save_pretrained(base_folder)

    with _ForkedSeed(seed + 2):
        # The reference builds AutoModel.from_config(config): a BertModel with its pooler.
        encoder = BertModel(config, add_pooling_layer=True)
        projector = torch.nn.Sequential(torch.nn.Linear(config.hidden_size, proj_dim))
    state = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    state.update({f"projector.{k}": v for k, v in projector.state_dict().items()})
    # Fresh contiguous copies: safetensors refuses shared or strided storage.
    state = {k: v.detach().clone().contiguous() for k, v in state.items()}
    save_file(state, str(embedder_folder / "model.safetensors"), metadata={"format": "pt"})
