"""Parameters of a training run: :class:`TrainConfig`, validated in one place."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from group_appeal_spark.lib.choices import Device, NegativeMining
from group_appeal_spark.lib.errors import ConfigError
from group_appeal_spark.lib.inference.embed import MAX_LENGTH
from group_appeal_spark.lib.models.loaders import EMBEDDING_DIM

__all__ = ["TrainConfig"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Parameters of one training run; :meth:`validate` checks them all in one place.

    Parameters
    ----------
    margin : float
        Triplet margin on Euclidean distances between unit vectors (range 0..2).
    learning_rate : float
        AdamW learning rate of the encoder.
    projection_learning_rate : float
        AdamW learning rate of the freshly initialised projection, which starts far from any
        useful solution and so moves faster than the pretrained encoder.
    weight_decay : float
        AdamW weight decay.
    epochs : int
        Most passes over the training terms (each term is an anchor once per pass).
    batch_size : int
        Anchors per step (each brings its positive, so ``2 * batch_size`` prompts are encoded).
    validation_fraction : float
        Share of each category's terms held out, in (0, 1).
    patience : int
        Stop after this many epochs without a better validation triplet accuracy (ties are
        broken by the validation triplet loss); 0 turns early stopping off.
    seed : int
        Seeds the split, the triplets, the projection's initialisation and dropout.
    device : str
        ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto``.
    max_length : int
        Token budget of one prompt (32 in the reference).
    proj_dim : int
        Size of the output embedding (128 in the reference).
    negative_mining : str
        ``batch_semi_hard`` (default) or ``batch_hard`` (see :mod:`group_appeal_spark.lib.training`).
    max_grad_norm : float
        Gradient clipping; keeps the first steps with a random projection from wrecking the
        pretrained encoder.
    """

    margin: float = 0.3
    learning_rate: float = 3e-5
    projection_learning_rate: float = 1e-3
    weight_decay: float = 0.01
    epochs: int = 10
    batch_size: int = 32
    validation_fraction: float = 0.2
    patience: int = 3
    seed: int = 0
    device: str = "cpu"
    max_length: int = MAX_LENGTH
    proj_dim: int = EMBEDDING_DIM
    negative_mining: str = NegativeMining.BATCH_SEMI_HARD.value
    max_grad_norm: float = 1.0

    def validate(self) -> "TrainConfig":
        """Check every field; returns ``self`` with ``negative_mining`` normalised.

        Raises
        ------
        ConfigError
            Naming the first bad field, its value and what is allowed.
        """

        def bad(field: str, expected: str) -> ConfigError:
            return ConfigError(f"{field}: invalid value {getattr(self, field)!r}; expected {expected}")

        def is_number(value) -> bool:
            return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

        def is_int(value) -> bool:
            return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

        if not is_number(self.margin) or not 0 < self.margin <= 2:
            raise bad("margin", "a number in (0, 2] (distances between unit vectors are at most 2)")
        for field in ("learning_rate", "projection_learning_rate"):
            if not is_number(getattr(self, field)) or not getattr(self, field) > 0:
                raise bad(field, "a number > 0")
        if not is_number(self.weight_decay) or self.weight_decay < 0:
            raise bad("weight_decay", "a number >= 0")
        if not is_int(self.epochs) or self.epochs < 1:
            raise bad("epochs", "an integer >= 1")
        if not is_int(self.batch_size) or self.batch_size < 2:
            raise bad("batch_size", "an integer >= 2 (negatives are mined inside the batch)")
        if not is_number(self.validation_fraction) or not 0 < self.validation_fraction < 1:
            raise bad("validation_fraction", "a number in (0, 1)")
        if not is_int(self.patience) or self.patience < 0:
            raise bad("patience", "an integer >= 0 (0: no early stopping)")
        if not is_int(self.seed) or self.seed < 0:
            raise bad("seed", "an integer >= 0")
        if not is_int(self.max_length) or self.max_length < 8:
            raise bad("max_length", "an integer >= 8 (the prompt alone takes about 8 tokens)")
        if not is_int(self.proj_dim) or self.proj_dim < 1:
            raise bad("proj_dim", "an integer >= 1")
        if not is_number(self.max_grad_norm) or not self.max_grad_norm > 0:
            raise bad("max_grad_norm", "a number > 0")
        kind = str(self.device).strip().lower().partition(":")[0]
        Device.parse(kind, key="device")
        mining = NegativeMining.parse(self.negative_mining, key="negative_mining")
        return dataclasses.replace(self, negative_mining=mining.value)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
