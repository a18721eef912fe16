"""Safetensors weights memory-mapped once and shared by every Python worker of a node.

``from_pretrained`` builds a model with random weights and then copies the file's tensors into
it, so each Spark Python worker keeps a private copy of every weight (measured: about 270 MB of
759 MB private per worker for DeBERTa-v3-base). Here the model is built without weights
(parameters on the ``meta`` device) and its parameters are then *views into one read-only
mapping of the file*: the pages live in the kernel's page cache, which every process that maps
the same file shares, so a node holds one copy of the weights whatever the number of workers.

The mapping is private (``MAP_PRIVATE``, via ``torch.UntypedStorage.from_file(shared=False)``):
a write into a loaded tensor copies that page for this process only and never reaches the file
or the other workers. A precision other than the stored one is cast at load time into new
tensors (those are then private to the process, as they must be).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import struct
from pathlib import Path

from group_appeal_spark.lib.errors import ModelLoadError

__all__ = ["SafetensorsHeader", "read_header", "load_safetensors", "empty_model", "assign_state_dict",
           "load_pretrained"]

# Safetensors dtype names -> (torch dtype attribute name, bytes per element).
_DTYPES = {
    "F64": ("float64", 8), "F32": ("float32", 4), "F16": ("float16", 2), "BF16": ("bfloat16", 2),
    "I64": ("int64", 8), "I32": ("int32", 4), "I16": ("int16", 2), "I8": ("int8", 1), "U8": ("uint8", 1),
    "BOOL": ("bool", 1), "F8_E4M3": ("float8_e4m3fn", 1), "F8_E5M2": ("float8_e5m2", 1),
}
# The format caps the JSON header at 100 MB; anything larger is a corrupt length field.
_MAX_HEADER = 100 * 2**20


@dataclasses.dataclass(frozen=True)
class SafetensorsHeader:
    """The parsed header of a safetensors file: per tensor its dtype, shape and byte range.

    Attributes
    ----------
    tensors : dict of str to (str, tuple of int, int, int)
        ``name -> (dtype, shape, begin, end)``; byte offsets relative to :attr:`data_start`.
    metadata : dict of str to str
    data_start : int
        Byte offset of the data section in the file (8 + header length).
    file_size : int
    """

    tensors: dict
    metadata: dict
    data_start: int
    file_size: int


def read_header(path) -> SafetensorsHeader:
    """Parse and check the header of a safetensors file (8-byte little-endian length + JSON).

    Raises
    ------
    ModelLoadError
        Naming the file and what is wrong: too short, bad length, bad JSON, unknown dtype, or a
        tensor whose byte range does not fit its shape or lies outside the file.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise ModelLoadError(f"{path}: not a safetensors file ({size} bytes, shorter than the 8-byte header length)")
            (n,) = struct.unpack("<Q", head)
            if n > _MAX_HEADER or 8 + n > size:
                raise ModelLoadError(
                    f"{path}: corrupt or truncated safetensors file: header length {n} does not fit the "
                    f"file's {size} bytes")
            raw = fh.read(n)
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot read the safetensors file: {exc}") from exc
    try:
        header = json.loads(raw.decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
    except (UnicodeDecodeError, ValueError) as exc:
        raise ModelLoadError(f"{path}: corrupt safetensors header: {exc}") from exc
    metadata = header.pop("__metadata__", None) or {}
    data_start, data_size = 8 + n, size - 8 - n
    tensors = {}
    for name, info in header.items():
        try:
            dtype, shape, (begin, end) = info["dtype"], tuple(int(s) for s in info["shape"]), info["data_offsets"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelLoadError(f"{path}: corrupt safetensors header entry for {name!r}: {info!r}") from exc
        if dtype not in _DTYPES:
            raise ModelLoadError(f"{path}: tensor {name!r} has dtype {dtype!r}; supported: {', '.join(_DTYPES)}")
        numel = 1
        for s in shape:
            numel *= s
        if end - begin != numel * _DTYPES[dtype][1] or begin < 0:
            raise ModelLoadError(
                f"{path}: corrupt safetensors header: tensor {name!r} ({dtype}, shape {list(shape)}) has "
                f"byte range [{begin}, {end})")
        if end > data_size:
            raise ModelLoadError(
                f"{path}: truncated safetensors file: tensor {name!r} ends at byte {data_start + end} but the "
                f"file has {size} bytes")
        tensors[name] = (dtype, shape, int(begin), int(end))
    return SafetensorsHeader(tensors, metadata, data_start, size)


def load_safetensors(path, *, dtype=None) -> dict:
    """Tensors of a safetensors file as views into one private, read-only-shared mapping of it.

    Parameters
    ----------
    path : path
        A ``.safetensors`` file.
    dtype : torch.dtype, optional
        Floating tensors stored in another dtype are cast into new tensors of this dtype; the
        others (and everything when None) stay views into the mapping.

    Returns
    -------
    dict of str to torch.Tensor
        In file order. Views share the page cache with every other process mapping the file; an
        in-place write copies the page for this process only (the file never changes).
    """
    import torch

    header = read_header(path)
    if not header.tensors:
        return {}
    try:
        # shared=False: MAP_PRIVATE (copy-on-write); the file is opened read-only.
        storage = torch.UntypedStorage.from_file(str(path), shared=False, nbytes=header.file_size)
    except (RuntimeError, OSError) as exc:
        raise ModelLoadError(f"{path}: cannot memory-map the safetensors file: {exc}") from exc
    base = torch.empty(0, dtype=torch.uint8).set_(storage)
    out = {}
    for name, (st_dtype, shape, begin, end) in header.tensors.items():
        tdtype = getattr(torch, _DTYPES[st_dtype][0])
        start = header.data_start + begin
        raw = base[start: header.data_start + end]
        if start % _DTYPES[st_dtype][1]:
            raw = raw.clone()  # misaligned for its dtype (not written by safetensors itself): copy
        tensor = raw.view(tdtype).view(shape)
        if dtype is not None and tensor.is_floating_point() and tdtype != dtype:
            tensor = tensor.to(dtype)  # a new tensor: the mapping is never written
        out[name] = tensor
    return out


@contextlib.contextmanager
def empty_model():
    """Build ``nn.Module`` s inside this block with parameters on ``meta`` (no memory, no init).

    Buffers stay real: non-persistent ones such as ``position_ids`` are made in ``__init__``
    and are not in the checkpoint, so they must exist after loading.
    """
    import torch.nn as nn

    original = nn.Module.register_parameter

    def register_parameter(module, name, param):
        original(module, name, param)
        if param is not None and param.device.type != "meta":
            meta = type(param)(param.to("meta"), requires_grad=param.requires_grad)
            meta.__dict__.update(param.__dict__)  # attributes libraries set on parameters
            module._parameters[name] = meta

    nn.Module.register_parameter = register_parameter
    try:
        yield
    finally:
        nn.Module.register_parameter = original


def _rename_legacy(key: str) -> str:
    # Keys of old TF-era checkpoints that transformers renames on load.
    for old, new in ((".gamma", ".weight"), (".beta", ".bias")):
        if key.endswith(old) and "LayerNorm" in key:
            return key[: -len(old)] + new
    return key


def _match_prefix(state: dict, expected: set, prefix: str) -> dict:
    """Add or strip the base model prefix (``roberta.``) as transformers does for head/base checkpoints."""
    if not prefix or not expected or any(k in expected for k in state):
        return state
    added = {f"{prefix}.{k}": v for k, v in state.items()}
    if any(k in expected for k in added):
        return added
    stripped = {k[len(prefix) + 1:] if k.startswith(prefix + ".") else k: v for k, v in state.items()}
    return stripped


def assign_state_dict(model, state: dict, source, *, allow_missing=(), ignore_unexpected=True):
    """Make ``state``'s tensors the parameters and buffers of ``model`` without copying them.

    Parameters
    ----------
    model : torch.nn.Module
        Built inside :func:`empty_model`.
    state : dict of str to torch.Tensor
    source : path
        Named in errors.
    allow_missing : sequence of str
        Regular expressions of keys that may be absent (e.g. tied weights, filled by ``tie_weights``).

    Raises
    ------
    ModelLoadError
        When a parameter of the model is not in the file, or a shape differs.
    """
    import re

    expected = {k for k, _ in model.named_parameters()} | {
        k for k, _ in model.named_buffers() if _is_persistent(model, k)}
    state = {_rename_legacy(k): v for k, v in state.items()}
    state = _match_prefix(state, expected, getattr(model, "base_model_prefix", ""))
    own = model.state_dict(keep_vars=True)
    for key, value in state.items():
        if key in own and tuple(own[key].shape) != tuple(value.shape):
            raise ModelLoadError(
                f"{source}: tensor {key!r} has shape {list(value.shape)} but the model's config gives "
                f"{list(own[key].shape)}; the config and the weights do not belong together")
    result = model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False, assign=True)
    unexpected = [k for k in state if k not in own]
    if unexpected and not ignore_unexpected:
        raise ModelLoadError(f"{source}: unexpected tensors in the file: {', '.join(sorted(unexpected)[:10])}")
    if hasattr(model, "tie_weights"):
        model.tie_weights()
    still_meta = [k for k, p in model.named_parameters() if p.device.type == "meta"]
    still_meta += [k for k, b in model.named_buffers() if b.device.type == "meta"]
    still_meta = [k for k in still_meta if not any(re.search(p, k) for p in allow_missing)]
    if still_meta:
        raise ModelLoadError(
            f"{source}: the file has no weights for {', '.join(sorted(still_meta)[:10])}"
            + (f" (and {len(still_meta) - 10} more)" if len(still_meta) > 10 else "")
            + f"; missing keys reported by load_state_dict: {len(result.missing_keys)}")
    for p in model.parameters():
        p.requires_grad_(False)  # inference only; also keeps autograd from holding references
    return model


def _is_persistent(model, name: str) -> bool:
    module_name, _, buf = name.rpartition(".")
    module = model.get_submodule(module_name) if module_name else model
    return buf not in getattr(module, "_non_persistent_buffers_set", set())


def load_pretrained(auto_class, folder, *, dtype=None):
    """A transformers model from a folder's ``config.json`` and ``*.safetensors``, weights mmap-shared.

    Equivalent to ``auto_class.from_pretrained(folder, use_safetensors=True, dtype=dtype)`` (same
    outputs), but every parameter stored in ``dtype`` (or all, when ``dtype`` is None) is a view
    into the file's page-cache mapping instead of a private copy.

    Parameters
    ----------
    auto_class : transformers auto class, e.g. ``AutoModelForTokenClassification``
    folder : path
    dtype : torch.dtype, optional

    Raises
    ------
    ModelLoadError
        Naming the file, for a corrupt file or weights that do not fit the config.
    """
    from transformers import AutoConfig

    folder = Path(folder)
    files = sorted(folder.glob("*.safetensors"))
    config = AutoConfig.from_pretrained(str(folder), trust_remote_code=False)
    state = {}
    for path in files:
        state.update(load_safetensors(path, dtype=dtype))
    with empty_model():
        model = auto_class.from_config(config, trust_remote_code=False)
    if dtype is not None:
        # buffers made in __init__ (position_ids are ints) keep theirs; float buffers follow dtype
        for module in model.modules():
            for name, buf in list(module._buffers.items()):
                if buf is not None and buf.is_floating_point() and buf.dtype != dtype:
                    module._buffers[name] = buf.to(dtype)
        model.config.dtype = dtype
    tied = list(getattr(model, "_tied_weights_keys", None) or [])
    if isinstance(getattr(model, "_tied_weights_keys", None), dict):
        tied = list(model._tied_weights_keys)
    source = files[0] if len(files) == 1 else folder
    assign_state_dict(model, state, source, allow_missing=[f"^{k}$" for k in tied])
    return model.eval()
