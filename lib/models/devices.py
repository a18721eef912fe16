"""Fixed choices (device, precision) as string enums, converted once with a clear error."""

from __future__ import annotations

import enum

from group_appeal_spark.lib.errors import ConfigError


class _Choice(str, enum.Enum):
    """A string enum whose ``parse`` accepts the enum or its value, case-insensitively."""

    @classmethod
    def parse(cls, value, *, key: str | None = None):
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            for member in cls:
                if member.value == value.strip().lower():
                    return member
        valid = ", ".join(repr(m.value) for m in cls)
        name = key or cls.__name__
        raise ConfigError(f"{name}: invalid value {value!r}; expected one of {valid}")


class Device(_Choice):
    """Where inference runs; ``auto`` picks cuda, then mps, then cpu."""

    CPU = "cpu"
    CUDA = "cuda"
    MPS = "mps"
    AUTO = "auto"


class Precision(_Choice):
    """Weights and activations precision; ``fp32`` gives the reference's numbers."""

    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"


def resolve_device(device) -> "torch.device":  # noqa: F821 - torch imported lazily
    """Turn a device choice (``cpu``, ``cuda``, ``cuda:1``, ``mps``, ``auto``) into a torch device.

    Raises
    ------
    ConfigError
        For an unknown device, or a device that this machine does not have.
    """
    import torch

    text = str(device.value if isinstance(device, Device) else device).strip().lower()
    kind, _, index = text.partition(":")
    choice = Device.parse(kind, key="device")
    if choice is Device.AUTO:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if choice is Device.CUDA and not torch.cuda.is_available():
        raise ConfigError(f"device: {text!r} was asked for but torch sees no CUDA device; use 'cpu' or 'auto'")
    if choice is Device.MPS and not (
        getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    ):
        raise ConfigError(f"device: {text!r} was asked for but torch sees no MPS device; use 'cpu' or 'auto'")
    return torch.device(f"{choice.value}:{index}" if index else choice.value)


def torch_dtype(precision) -> "torch.dtype":  # noqa: F821
    """The torch dtype of a precision choice."""
    import torch

    return {
        Precision.FP32: torch.float32,
        Precision.BF16: torch.bfloat16,
        Precision.FP16: torch.float16,
    }[Precision.parse(precision, key="precision")]
