"""The ONNX Runtime backend (``inference.backend: onnx | auto``; the ``onnx`` extra).

Each model is exported once, on the driver (or by ``fetch-models --onnx``), with dynamic batch
and sequence axes, into a folder beside the model named by the model's :func:`content_hash`
(``<stage>-<hash>-<fp32|int8>/model.onnx`` + ``export.json``); the folder joins the bundle
as role ``<stage>_onnx`` and is shipped like the weights. Executors wrap it in a stand-in with
the torch model's call signature (:class:`OnnxModel`, :class:`OnnxEmbedder`), so the stages'
``forward`` and everything around it stay as they are.

``auto`` uses ONNX Runtime for a stage only where ``measurements.json`` in its folder holds a
measurement of *this* CPU (:func:`cpu_id`) in which ONNX was faster than torch at the precision
torch would run (:func:`choose_backend`); ``fetch-models --onnx --measure`` records them.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import tempfile
from pathlib import Path

from group_appeal_spark.lib.errors import ConfigError, ModelLoadError

log = logging.getLogger("group_appeal_spark")

# stage -> the bundle role of its export
ONNX_ROLES = {"detector": "detector_onnx", "stance": "stance_onnx", "embedder": "embedder_onnx"}
OPSET = 17
MEASUREMENTS = "measurements.json"
HOW_TO_INSTALL = "pip install 'group-appeal-spark[onnx]' (onnxruntime and onnx)"


def require_onnx() -> None:
    """Raise a one-line ConfigError where onnxruntime or onnx is not installed."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"inference.backend: onnx needs onnxruntime and onnx ({exc}); {HOW_TO_INSTALL}") from None


def onnx_precision(precision: str) -> str:
    """``int8`` (ONNX Runtime dynamic quantisation) or ``fp32``: what an export is made in."""
    return "int8" if str(precision) == "int8" else "fp32"


def cpu_id() -> str:
    """This CPU as measurements are keyed: model name, torch's vector ISA, bf16 or not."""
    from group_appeal_spark.lib.models.devices import cpu_capability

    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.split(":", 1)[0].strip() in ("model name", "Model"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    facts = cpu_capability()
    return f"{name} | {facts['torch_cpu_capability']} | bf16={'native' if facts['bf16_native'] else 'no'}"


def _graph_inputs(stage: str, model) -> list[str]:
    names = ["input_ids", "attention_mask"]
    if stage == "stance" and int(getattr(model.config, "type_vocab_size", 0) or 0) > 0:
        names.append("token_type_ids")
    return names


def _wrap(stage: str, model, mask_token_id: int | None):
    """An ``nn.Module`` with positional int64 inputs and one float output, as exported."""
    import torch

    class Logits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
            return self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).logits

    class Embeddings(torch.nn.Module):
        # lib.inference.embed.mask_embeddings with the mask position as an argmax (one mask per
        # row is checked before every run): encoder, hidden state at the mask, projection, L2 norm
        def __init__(self):
            super().__init__()
            self.module = model

        def forward(self, input_ids, attention_mask):
            hidden = self.module.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            position = (input_ids == mask_token_id).to(torch.int64).argmax(dim=1)
            picked = hidden[torch.arange(hidden.shape[0]), position]
            return torch.nn.functional.normalize(self.module.projector(picked).float(), p=2, dim=1)

    return Embeddings() if stage == "embedder" else Logits()


def export(stage: str, model, path, *, mask_token_id: int | None = None) -> Path:
    """Export one fp32 torch model to ``path`` with dynamic batch and sequence axes.

    Parameters
    ----------
    stage : {"detector", "stance", "embedder"}
    model : torch.nn.Module
        As the loaders give it, in fp32.
    mask_token_id : int, optional
        The embedder's mask token (its graph reads the hidden state there).
    """
    import warnings

    import torch

    names = _graph_inputs(stage, model) if stage != "embedder" else ["input_ids", "attention_mask"]
    wrapper = _wrap(stage, model, mask_token_id).eval()
    sample = torch.full((2, 16), 5, dtype=torch.long)
    if stage == "embedder":
        sample[:, 3] = int(mask_token_id)
    args = tuple(sample if n == "input_ids" else torch.ones_like(sample) if n == "attention_mask"
                 else torch.zeros_like(sample) for n in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes["output"] = {0: "batch"} if stage == "embedder" else {0: "batch", 1: "sequence"} if stage == "detector" \
        else {0: "batch"}
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        # the TorchScript exporter: it traces the shapes symbolically with dynamic_axes; its
        # warnings about Python branches on traced sizes are why parity is tested at every length
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, args, str(path), input_names=names, output_names=["output"],
                          dynamic_axes=axes, opset_version=OPSET, dynamo=False, do_constant_folding=True)
    return Path(path)


def quantize(source, target) -> Path:
    """ONNX Runtime dynamic int8 quantisation of ``source`` into ``target`` (MatMul weights int8,
    activations quantised per batch; the analogue of ``precision: int8`` on torch)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
    return Path(target)


def export_root(model_folder) -> Path:
    """Where a model's exports live: beside its folder (a hub snapshot: beside the repo's
    ``snapshots/``, which huggingface_hub lists as revisions), else this user's cache."""
    from group_appeal_spark.lib.models.hub import snapshot_commit

    folder = Path(model_folder).resolve()
    base = folder.parent.parent if snapshot_commit(folder) is not None else folder.parent
    root = base / "gas-onnx"
    try:
        root.mkdir(parents=True, exist_ok=True)
        if os.access(root, os.W_OK):
            return root
    except OSError:
        pass
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "group-appeal-spark" / "onnx"
    cache.mkdir(parents=True, exist_ok=True)
    return cache


def _load_fp32(stage: str, folders: dict):
    from group_appeal_spark.lib.models import loaders

    if stage == "detector":
        return loaders.load_token_classifier(folders["detector"]), None
    if stage == "stance":
        return loaders.load_sequence_classifier(folders["stance"]), None
    tokenizer = loaders.load_tokenizer(folders["embedder"], "embedder tokenizer")
    return loaders.load_embedder_module(folders["embedder"], folders["embedder_config"]), tokenizer.mask_token_id


def ensure_exports(folders: dict, precision: str = "fp32", *, create: bool = True) -> dict:
    """The ONNX folder of each stage, exported now where it is not there yet (driver side).

    Parameters
    ----------
    folders : dict of role to path
        The bundle's model folders (``detector``, ``stance``, ``embedder``, ``embedder_config``).
    precision : str
        ``int8`` adds ONNX Runtime's dynamic quantisation; anything else is fp32.

    create : bool
        False: only the exports that exist already (``backend: auto`` exports nothing itself).

    Returns
    -------
    dict of ONNX role (``detector_onnx``...) to folder
        Each ``<stage>-<content hash[:16]>-<fp32|int8>/`` holding ``model.onnx`` and ``export.json``.
    """
    import torch

    from group_appeal_spark.lib.models.bundle import content_hash

    require_onnx()
    kind = onnx_precision(precision)
    out = {}
    for stage, role in ONNX_ROLES.items():
        digest = content_hash(folders[stage])
        extra = f"+{content_hash(folders['embedder_config'])[:8]}" if stage == "embedder" else ""
        target = export_root(folders[stage]) / f"{stage}-{digest[:16]}{extra}-{kind}"
        if not (target / "export.json").is_file():
            if not create:
                continue
            work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
            model, mask_id = _load_fp32(stage, folders)
            log.info("exporting the %s model to ONNX (%s, opset %d) into %s", stage, kind, OPSET, target)
            if kind == "int8":
                export(stage, model, work / "fp32.onnx", mask_token_id=mask_id)
                quantize(work / "fp32.onnx", work / "model.onnx")
                (work / "fp32.onnx").unlink()
            else:
                export(stage, model, work / "model.onnx", mask_token_id=mask_id)
            (work / "export.json").write_text(json.dumps(
                {"stage": stage, "precision": kind, "content_sha256": digest, "opset": OPSET,
                 "torch": torch.__version__, "exporter": "torch.onnx.export(dynamo=False)",
                 "inputs": ["input_ids", "attention_mask"] if stage == "embedder" else _graph_inputs(stage, model)},
                indent=2), encoding="utf-8")
            try:
                os.rename(work, target)
            except OSError:  # another process was first: its export is as good as this one
                import shutil

                shutil.rmtree(work, ignore_errors=True)
        out[role] = str(target)
    return out


def _session(folder):
    require_onnx()
    import onnxruntime as ort
    import torch

    options = ort.SessionOptions()
    # as many threads as torch was given for this task (udfs.cache.set_torch_threads), none idle
    options.intra_op_num_threads = max(1, torch.get_num_threads())
    options.inter_op_num_threads = 1
    path = Path(folder) / "model.onnx"
    if not path.is_file():
        raise ModelLoadError(f"{folder}: no model.onnx (an export of inference.backend onnx)")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class _Output:
    def __init__(self, logits):
        self.logits = logits


class OnnxModel:
    """An exported classifier with the call signature of its torch model: ``model(input_ids=...,
    attention_mask=..., [token_type_ids=...]).logits`` (a CPU float32 torch tensor)."""

    is_onnx = True

    def __init__(self, folder, config):
        self.config = config
        self.session = _session(folder)
        self.inputs = [i.name for i in self.session.get_inputs()]

    def to(self, device):
        return self

    def __call__(self, **tensors):
        import torch

        feed = {name: tensors[name].cpu().numpy() for name in self.inputs if tensors.get(name) is not None}
        return _Output(torch.from_numpy(self.session.run(None, feed)[0]))


class OnnxEmbedder:
    """The exported embedder: :meth:`embed` gives what ``lib.inference.embed.mask_embeddings`` gives."""

    is_onnx = True

    def __init__(self, folder):
        self.session = _session(folder)
        self.output_dim = int(self.session.get_outputs()[0].shape[-1])

    def to(self, device):
        return self

    def embed(self, input_ids, attention_mask, mask_token_id: int):
        import torch

        from group_appeal_spark.lib.inference.batching import check_one_per_input

        ids = input_ids.cpu().numpy()
        check_one_per_input(len(ids), int((ids == mask_token_id).sum()), "embedding (mask tokens per prompt)")
        out = self.session.run(None, {"input_ids": ids, "attention_mask": attention_mask.cpu().numpy()})[0]
        return torch.from_numpy(out)


def record_measurement(folder, rates: dict, *, cpu: str | None = None) -> dict:
    """Add this CPU's measured rates (rows/s by ``torch_fp32``, ``torch_bf16``, ``onnx``...) to the
    ``measurements.json`` of one stage's export folder; returns the file's content."""
    path = Path(folder) / MEASUREMENTS
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    data[cpu or cpu_id()] = {k: float(v) for k, v in rates.items()}
    path.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    return data


def choose_backend(folders: dict, precision: str, *, cpu: str | None = None) -> dict:
    """``inference.backend: auto``: per stage, ``onnx`` where this CPU's recorded measurement has
    ONNX Runtime faster than torch at ``precision`` (the resolved one), else ``torch``.

    Parameters
    ----------
    folders : dict of stage to export folder
    precision : str
        What torch would run at here (``fp32``, ``bf16``, ``int8``...).
    """
    key = cpu or cpu_id()
    chosen = {}
    for stage, folder in folders.items():
        path = Path(folder) / MEASUREMENTS
        rates = {}
        if path.is_file():
            try:
                rates = json.loads(path.read_text(encoding="utf-8")).get(key, {})
            except ValueError:
                rates = {}
        onnx, torch_rate = rates.get("onnx"), rates.get(f"torch_{precision}")
        faster = onnx is not None and torch_rate is not None and onnx > torch_rate
        chosen[stage] = "onnx" if faster else "torch"
    return chosen
