"""Turn the device and precision choices (defined in :mod:`lib.choices`) into torch objects."""

from __future__ import annotations

from group_appeal_spark.lib.choices import Device, Precision
from group_appeal_spark.lib.errors import ConfigError

# Device and Precision are defined in lib.choices and stay importable from here.
__all__ = ["Device", "Precision", "resolve_device", "torch_dtype"]


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
