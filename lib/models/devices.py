"""Turn the device and precision choices (defined in :mod:`lib.choices`) into torch objects.

``precision: auto`` and the warning about emulated bf16 are decided here, on the machine that
runs the models (an executor may have other hardware than the driver).
"""

from __future__ import annotations

import logging
import os
import platform
import threading
from pathlib import Path

from group_appeal_spark.lib.choices import Device, Precision
from group_appeal_spark.lib.errors import ConfigError

# Device and Precision are defined in lib.choices and stay importable from here.
__all__ = ["Device", "Precision", "bf16_native", "cpu_capability", "cuda_index", "finish_precision", "resolve_device",
           "resolve_precision", "task_device", "torch_dtype"]

log = logging.getLogger("group_appeal_spark")

# CPU features that run bf16 matrix products in hardware: AVX512_BF16 (Cooper Lake, Zen 4 and
# later), AMX-BF16 (Sapphire Rapids and later), Arm's BF16 / SVE-BF16 (Graviton 3, Neoverse V1+).
# Without one of them torch/oneDNN converts bf16 to fp32 and back around every product: measured
# about 7x slower than plain fp32 on AVX2-only CPUs.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16", "bf16", "sve_bf16")


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
    if choice is Device.CUDA and index:
        count = torch.cuda.device_count()
        if not index.isdigit() or int(index) >= count:
            raise ConfigError(f"device: {text!r} was asked for but torch sees {count} CUDA device(s) "
                              f"(cuda:0..cuda:{count - 1}; CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})")
    if choice is Device.MPS and not (
        getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    ):
        raise ConfigError(f"device: {text!r} was asked for but torch sees no MPS device; use 'cpu' or 'auto'")
    return torch.device(f"{choice.value}:{index}" if index else choice.value)


def cuda_index(address: str, *, visible: str | None = None, count: int | None = None) -> int:
    """The torch ordinal (``cuda:<n>``) of the GPU a cluster manager assigned as ``address``.

    Spark's ``TaskContext.resources()["gpu"].addresses`` are what the discovery script printed:
    physical indices (``nvidia-smi``) or UUIDs. Where the cluster manager also narrowed
    ``CUDA_VISIBLE_DEVICES`` for the process (YARN with GPU isolation, Kubernetes' device plugin),
    torch numbers only the visible GPUs from 0, so the address is looked up in that list first;
    otherwise a numeric address is torch's ordinal itself.

    Parameters
    ----------
    address : str
        One GPU address as Spark gives it.
    visible : str, optional
        ``CUDA_VISIBLE_DEVICES`` (default: this process's environment).
    count : int, optional
        The CUDA devices torch sees (default: ``torch.cuda.device_count()``).

    Raises
    ------
    ConfigError
        When the address is neither in ``CUDA_VISIBLE_DEVICES`` nor an ordinal torch has.
    """
    address = str(address).strip()
    if visible is None:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    listed = [v.strip() for v in (visible or "").split(",") if v.strip()]
    if address in listed:
        return listed.index(address)
    if count is None:
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if address.isdigit() and int(address) < count:
        return int(address)
    raise ConfigError(f"inference.device: Spark assigned GPU {address!r} to this task, but torch sees {count} CUDA "
                      f"device(s) (CUDA_VISIBLE_DEVICES={visible!r}); the GPU discovery script "
                      f"(spark.executor.resource.gpu.discoveryScript) and the GPUs of the node disagree")


def task_device(device, gpu_addresses=()) -> str:
    """The device one Spark task's models go to, as text (``cpu``, ``cuda:1``...).

    Where Spark assigned GPUs to the task (``spark.task.resource.gpu.amount``), ``cuda`` and
    ``auto`` mean the first of them (:func:`cuda_index`), so concurrent tasks of an executor
    use different GPUs instead of all loading onto GPU 0. Without assigned GPUs, and for an
    explicit ``cuda:N``, ``cpu`` or ``mps``, the choice is returned as it is (``cuda`` is then what
    torch sees: its current device).
    """
    text = str(device.value if isinstance(device, Device) else device).strip().lower()
    kind, _, index = text.partition(":")
    choice = Device.parse(kind, key="device")
    addresses = [str(a) for a in gpu_addresses or ()]
    if addresses and (choice is Device.AUTO or (choice is Device.CUDA and not index)):
        return f"cuda:{cuda_index(addresses[0])}"
    return text


def torch_dtype(precision, device="cpu") -> "torch.dtype":  # noqa: F821
    """The torch dtype of a precision choice; ``auto`` is resolved for ``device`` first
    (:func:`resolve_precision`, without its warning)."""
    import torch

    if Precision.parse(precision, key="precision") is Precision.AUTO:
        precision = resolve_precision(precision, device, warn=False)
    return {
        Precision.FP32: torch.float32,
        Precision.BF16: torch.bfloat16,
        Precision.FP16: torch.float16,
        Precision.INT8: torch.float32,  # loaded in fp32, then quantised by :func:`finish_precision`
    }[Precision.parse(precision, key="precision")]


def finish_precision(model, precision, device):
    """Apply what loading in :func:`torch_dtype` leaves to do for ``precision``; returns the model.

    ``int8``: dynamic int8 quantisation of every ``torch.nn.Linear`` (weights int8 with one scale
    per tensor, activations quantised per batch; matrix products in int8 with AVX2 / AVX-512 VNNI).
    The embeddings, layer norms and attention products stay fp32. The quantised weights are
    private to each process (a quarter of the fp32 size); the fp32 embedding matrices stay
    memory-mapped. Other precisions: the model as it is.

    Raises
    ------
    ConfigError
        ``int8`` on a device other than the CPU, or with a torch that has no dynamic quantisation.
    """
    if Precision.parse(precision, key="precision") is not Precision.INT8:
        return model
    import warnings

    import torch

    target = resolve_device(device)
    if target.type != "cpu":
        raise ConfigError(f"precision: int8 (dynamic quantisation) runs on the CPU only, not on {target}; "
                          f"use bf16 or fp16 there")
    try:
        from torch.ao.quantization import quantize_dynamic
    except ImportError as exc:  # a torch without the eager-mode quantisation API
        raise ConfigError(f"precision: int8 needs torch.ao.quantization.quantize_dynamic, which torch "
                          f"{torch.__version__} does not have; use fp32 or bf16") from exc
    with warnings.catch_warnings():
        # torch 2.10+ announces the API's move to torchao on every call, once per Python worker
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)


def _cpu_flags() -> tuple[frozenset, str]:
    """The CPU's feature flags and where they were read (torch's cpuinfo, else /proc/cpuinfo)."""
    import torch

    get_capabilities = getattr(torch.cpu, "get_capabilities", None)  # recent torch only
    if get_capabilities is not None:
        try:
            return frozenset(k for k, v in get_capabilities().items() if v is True), "torch.cpu.get_capabilities"
        except Exception:  # a build without cpuinfo: fall back to the kernel's view
            pass
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset(), "none"
    flags = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86 / Arm
            flags.update(value.split())
    return frozenset(flags), "/proc/cpuinfo"


def cpu_capability() -> dict:
    """The hardware facts that decide the CPU precision, as torch and the CPU report them.

    Returns
    -------
    dict
        ``torch_cpu_capability``: ``torch.backends.cpu.get_cpu_capability()`` (the vector ISA
        torch's own kernels dispatch to: ``"AVX2"``, ``"AVX512"``, ``"SVE256"``, ``"DEFAULT"``...;
        it never names bf16, so it cannot decide alone); ``bf16_native``: whether the CPU has a
        bf16 matrix instruction; ``bf16_flags_seen``: which of :data:`BF16_CPU_FLAGS` it has;
        ``flags_source``: where the flags were read; ``architecture``, ``torch_version`` and
        ``torch_threads`` (``torch.get_num_threads()`` of this process).
    """
    import torch

    flags, source = _cpu_flags()
    seen = [flag for flag in BF16_CPU_FLAGS if flag in flags]
    return {
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "bf16_native": bool(seen),
        "bf16_flags_seen": seen,
        "flags_source": source,
        "architecture": platform.machine(),
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def bf16_native(device) -> bool:
    """Whether ``device`` (a torch device or device choice) computes bf16 in hardware.

    CUDA: ``torch.cuda.is_bf16_supported`` without emulation (compute capability 8.0+). CPU:
    :func:`cpu_capability`. MPS: False (no reliable probe; ``auto`` stays fp32 there).
    """
    import torch

    kind = device.type if isinstance(device, torch.device) else resolve_device(device).type
    if kind == "cuda":
        try:
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
        except TypeError:  # torch < 2.4 has no including_emulation and never counted emulation
            return bool(torch.cuda.is_bf16_supported())
    if kind == "cpu":
        return cpu_capability()["bf16_native"]
    return False


_warned: set = set()
_warned_lock = threading.Lock()


def resolve_precision(precision, device="cpu", *, warn: bool = True) -> Precision:
    """The precision a stage really runs at on this machine.

    Call it where the models run (on the executor, when a stage is built): ``auto`` becomes
    ``bf16`` where ``device`` computes bf16 natively (:func:`bf16_native`), else ``fp16`` on CUDA
    and ``fp32`` elsewhere. An
    explicit ``bf16`` on a CPU or CUDA device without native bf16 is kept, with one warning per
    process and device kind (Python workers are reused across tasks: no per-task repetition).

    Raises
    ------
    ConfigError
        For an unknown precision or device.
    """
    choice = Precision.parse(precision, key="precision")
    if choice not in (Precision.AUTO, Precision.BF16):
        return choice
    target = resolve_device(device)
    native = bf16_native(target)
    if choice is Precision.AUTO:
        if target.type == "cuda":  # every CUDA GPU computes fp16 in hardware; bf16 needs compute 8.0+
            return Precision.BF16 if native else Precision.FP16
        return Precision.BF16 if native else Precision.FP32
    if warn and not native and target.type in ("cpu", "cuda"):
        with _warned_lock:
            first = target.type not in _warned
            _warned.add(target.type)
        if first:
            if target.type == "cpu":
                facts = cpu_capability()
                what = (f"this CPU ({facts['torch_cpu_capability']}, none of {', '.join(BF16_CPU_FLAGS)}) "
                        f"has no native bf16")
            else:
                what = "this CUDA device has no native bf16 (compute capability below 8.0)"
            log.warning("precision bf16: %s; bf16 is emulated and expected to be SLOWER than fp32 "
                        "(about 7x on AVX2 CPUs); use precision fp32 or auto", what)
    return choice
