"""The resolved models of a job and everything an executor needs to build its stages.

The driver turns the configuration into a :class:`ModelBundle` once: every model resolved to a
local folder (hub, cache or local directory), a content id per folder, and the inference
settings. The bundle is small and picklable; executors rebuild the stages from it without ever
asking the hub.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

from group_appeal_spark.lib.config import InferenceConfig, JobConfig, SegmentationConfig
from group_appeal_spark.lib.models.devices import resolve_precision
from group_appeal_spark.lib.models.loaders import WEIGHT_ROLES, check_weights
from group_appeal_spark.lib.models.hub import ModelSource, resolve_model_dir, snapshot_commit


def folder_id(folder: Path) -> str:
    """A short id of a model folder's content (names, sizes, mtimes; cheap for GB files)."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            stat = path.stat()
            digest.update(f"{path.relative_to(folder)}\0{stat.st_size}\0{int(stat.st_mtime)}\0".encode())
    return digest.hexdigest()[:16]


CONTENT_HASH_METHOD = ("sampled-sha256-v1: per file (sorted, symlinks followed, hidden ones skipped) its relative "
                       "name and size; all bytes of files up to 16 MiB (configs, tokenizers); of larger files "
                       "(weights) the first MiB (holds the safetensors header: names, dtypes, shapes, offsets), "
                       "the middle MiB and the last MiB")
_WHOLE_FILE_MAX = 16 << 20
_SAMPLE = 1 << 20


def content_hash(folder: Path) -> str:
    """sha256 of a model folder's content, reading at most ~3 MiB of each weights file.

    Reading every byte of GB-sized weights on each run (from /dbfs, a mounted volume) costs
    seconds to minutes; the samples catch any other checkpoint or training run (they change every
    tensor) but not an edit confined to bytes outside them. The method is
    :data:`CONTENT_HASH_METHOD`; unlike :func:`folder_id`, mtimes do not count, so a copy hashes
    the same.
    """
    digest = hashlib.sha256()
    folder = Path(folder)
    for path in sorted(folder.rglob("*")):
        # hidden files (.cache/huggingface of a hub download) hold timestamps, not the model
        if not path.is_file() or any(p.startswith(".") for p in path.relative_to(folder).parts):
            continue
        size = path.stat().st_size
        digest.update(f"{path.relative_to(folder).as_posix()}\0{size}\0".encode())
        with open(path, "rb") as fh:
            if size <= _WHOLE_FILE_MAX:
                for block in iter(lambda: fh.read(_SAMPLE), b""):
                    digest.update(block)
                continue
            for offset in (0, (size - _SAMPLE) // 2, size - _SAMPLE):
                fh.seek(offset)
                digest.update(fh.read(_SAMPLE))
    return digest.hexdigest()


def model_provenance(source: ModelSource, folder) -> dict:
    """Where one model's files came from, exactly enough to get the same files again.

    A hub-cache snapshot (resolved from the hub, or a ``local_dir`` inside a cache) gives the
    repo id and the commit sha it resolved to; any other folder its path and
    :func:`content_hash`, plus the commit that ``fetch-models`` recorded in the folder's
    ``manifest.json`` when there is one.
    """
    folder = Path(folder)
    snapshot = snapshot_commit(folder)
    if snapshot is not None:
        repo_id, commit = snapshot
        return {"source": "hub", "repo_id": repo_id, "revision": None if source.local_dir else source.revision,
                "commit": commit, "folder": str(folder)}
    out = {"source": "local", "folder": str(folder), "content_sha256": content_hash(folder),
           "content_hash_method": CONTENT_HASH_METHOD}
    manifest = folder.parent / "manifest.json"
    if manifest.is_file():  # a fetch-models folder: <models_dir>/<org>--<name> beside manifest.json
        try:
            entries = json.loads(manifest.read_text(encoding="utf-8")).values()
        except (ValueError, AttributeError):
            entries = []
        for entry in entries:
            if isinstance(entry, dict) and entry.get("folder") == folder.name:
                out.update(repo_id=entry.get("repo_id"), revision=entry.get("revision"),
                           commit=entry.get("commit"), commit_from="fetch-models manifest.json")
                break
    return out


@dataclasses.dataclass(frozen=True)
class ModelBundle:
    """Model folders by role, their content ids, and the inference settings.

    ``folders`` are paths on the driver. When the job ships the files to executors
    (``shipped_name`` set), each file travels alone under the name ``shipped_files`` gives it,
    and an executor lays them out again under ``<SparkFiles root>/<shipped_name>/<role>/``.
    """

    folders: dict[str, str]
    ids: dict[str, str]
    inference: InferenceConfig = dataclasses.field(default_factory=InferenceConfig)
    segmentation: SegmentationConfig = dataclasses.field(default_factory=SegmentationConfig)
    shipped_name: str | None = None
    shipped_files: tuple[tuple[str, str, str], ...] = ()  # (role, relative path, shipped name)

    @classmethod
    def resolve(cls, config: JobConfig) -> "ModelBundle":
        """Resolve every model of ``config`` to a local folder (driver side)."""
        local_only = True if config.models.offline else None
        folders = {}
        for role, source in config.model_sources().items():
            folders[role] = str(resolve_model_dir(source, cache_dir=config.models.cache_dir,
                                                  local_files_only=local_only))
            if role in WEIGHT_ROLES:
                check_weights(folders[role], role)
        folders.update(onnx_exports(folders, config.inference))
        return cls(folders=folders, ids={role: folder_id(Path(f)) for role, f in folders.items()},
                   inference=config.inference, segmentation=config.segmentation)

    def provenance(self, sources: dict[str, ModelSource]) -> dict[str, dict]:
        """:func:`model_provenance` of every model role (driver side; ``sources``: ``config.model_sources()``),
        and of each ONNX export its folder and ``export.json``."""
        out = {role: model_provenance(sources[role], folder) for role, folder in sorted(self.folders.items())
               if role in sources}
        for role, folder in sorted(self.folders.items()):
            if role not in sources:
                meta = Path(folder) / "export.json"
                out[role] = {"source": "onnx export", "folder": str(folder),
                             **(json.loads(meta.read_text(encoding="utf-8")) if meta.is_file() else {})}
        return out

    def precision(self, device=None) -> str:
        """The precision the stages run at on this machine: ``inference.precision`` with ``auto``
        resolved for ``device`` (default ``inference.device``; warns once about emulated bf16)."""
        return resolve_precision(self.inference.precision, device or self.inference.device).value

    def cache_key(self, stage: str, device: str | None = None) -> str:
        """The per-worker cache key of a stage: its models' content, its settings and the device
        its models sit on (a reused Python worker may serve tasks that Spark gave other GPUs)."""
        parts = [stage, *(f"{r}={self.ids[r]}" for r in sorted(self.ids)),
                 repr(dataclasses.astuple(self.inference)), repr(dataclasses.astuple(self.segmentation)),
                 f"device={device or self.inference.device}"]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]

    def folder(self, role: str, shipped_root: str | None = None) -> Path:
        """Where role ``role``'s files are: under the shipped root on an executor, else the driver path."""
        if shipped_root is not None:
            return Path(shipped_root) / role
        return Path(self.folders[role])

    def batching(self, device) -> dict:
        """Rows and padded tokens per forward pass on ``device``: the configured CPU ones, or on
        CUDA a batch bounded by ``inference.cuda_max_tokens_per_batch`` alone (a GPU needs far
        more rows per pass than a CPU core; the row caps are CPU settings)."""
        inf = self.inference
        if _kind(device) == "cuda" and inf.cuda_max_tokens_per_batch is not None:
            budget = inf.cuda_max_tokens_per_batch  # every row holds >= 1 token: the budget binds
            return {"detect": budget, "stance": budget, "embed": budget, "max_tokens": budget}
        return {"detect": inf.detect_batch_size, "stance": inf.stance_batch_size, "embed": inf.embed_batch_size,
                "max_tokens": inf.max_tokens_per_batch}

    def appeal_finder(self, shipped_root: str | None = None, device: str | None = None):
        """Build the detection + stance stages (executor side) on ``device`` (default
        ``inference.device``; a Spark task passes the GPU it was given, ``udfs/devices.py``)."""
        from group_appeal_spark.lib.inference.appeals import AppealFinder
        from group_appeal_spark.lib.inference.detect import MentionDetector
        from group_appeal_spark.lib.inference.embed import MentionKeyer
        from group_appeal_spark.lib.inference.stance import StanceClassifier

        f = lambda role: self.folder(role, shipped_root)  # noqa: E731
        inf = self.inference
        device = device or inf.device
        precision = self.precision(device)  # here, on the executor: its hardware decides `auto`
        sizes = self.batching(device)
        backend = self.backend(device, shipped_root)
        detector = MentionDetector.from_dirs(
            f("detector"), f("detector_tokenizer"), device=device, precision=precision,
            batch_size=sizes["detect"], max_tokens=sizes["max_tokens"], window_stride=inf.window_stride,
            onnx_dir=backend.get("detector"))
        stance = StanceClassifier.from_dir(
            f("stance"), device=device, precision=precision,
            batch_size=sizes["stance"], max_tokens=sizes["max_tokens"], onnx_dir=backend.get("stance"))
        keyer = MentionKeyer.from_dir(f("embedder"))
        return AppealFinder(detector, stance, keyer, segmentation=self.segmentation.mode,
                            max_segment_chars=self.segmentation.max_segment_chars)

    def embedder(self, shipped_root: str | None = None, device: str | None = None):
        """Build the embedding stage (executor side) on ``device`` (default ``inference.device``)."""
        from group_appeal_spark.lib.inference.embed import MentionEmbedder

        device = device or self.inference.device
        return MentionEmbedder.from_dirs(
            self.folder("embedder", shipped_root), self.folder("embedder_config", shipped_root),
            device=device, precision=self.precision(device), batch_size=self.batching(device)["embed"],
            onnx_dir=self.backend(device, shipped_root).get("embedder"))

    def backend(self, device, shipped_root: str | None = None) -> dict:
        """The ONNX folder of each stage that runs on ONNX Runtime here (empty: all on torch).

        ``inference.backend``: ``onnx`` where the driver exported the models (``*_onnx`` roles);
        ``auto`` only for the stages a recorded measurement of this CPU says are faster on it
        (:func:`lib.models.onnx.choose_backend`); never on a GPU.
        """
        from group_appeal_spark.lib.models.onnx import ONNX_ROLES, choose_backend

        if not any(r in self.folders for r in ONNX_ROLES.values()) or _kind(device) != "cpu":
            return {}
        folders = {stage: self.folder(role, shipped_root) for stage, role in ONNX_ROLES.items() if role in self.folders}
        if self.inference.backend == "onnx":
            return folders
        chosen = choose_backend(folders, self.precision(device))
        return {stage: folder for stage, folder in folders.items() if chosen.get(stage) == "onnx"}


def _kind(device) -> str:
    """``cpu``, ``cuda`` or ``mps``: the kind of a device choice, ``auto`` resolved on this machine."""
    kind = str(device).split(":", 1)[0].strip().lower()
    if kind != "auto":
        return kind
    from group_appeal_spark.lib.models.devices import resolve_device

    return resolve_device(kind).type


def onnx_exports(folders: dict, inference: InferenceConfig) -> dict:
    """The ONNX folders a bundle carries (driver side): for ``backend: onnx`` exported now where
    missing; for ``auto`` those that exist (``fetch-models --onnx``); none for ``torch`` or a GPU."""
    if inference.backend == "torch" or str(inference.device).split(":", 1)[0].lower() in ("cuda", "mps"):
        return {}
    from group_appeal_spark.lib.models.onnx import ensure_exports, require_onnx

    if inference.backend == "auto":
        try:
            require_onnx()
        except Exception:  # auto without the onnx extra: torch everywhere, as without measurements
            return {}
    return ensure_exports(folders, inference.precision, create=inference.backend == "onnx")


def bundle_name(bundle: ModelBundle) -> str:
    """The folder name the bundle's models are shipped under (from their content ids)."""
    return "gas-models-" + hashlib.sha256("|".join(sorted(bundle.ids.values())).encode()).hexdigest()[:12]


def stage_for_shipping(bundle: ModelBundle, staging_root: str | Path) -> tuple[Path, tuple[tuple[str, str, str], ...]]:
    """Lay the bundle's files out flat under ``<staging_root>/<name>/`` for ``SparkContext.addFile``.

    Spark ships single files to the executors of a cluster (a directory only in local mode), and
    a shipped file keeps its base name, so each file gets a name unique in the bundle:
    ``<name>--<role>--<path with / as -->``. Files are hard-linked where the filesystem allows
    (no copy of GBs of weights), copied otherwise; hub-cache symlinks are resolved so the
    staged folder holds real files.

    Returns
    -------
    folder : Path
        The staging folder.
    manifest : tuple of (role, relative path, shipped name)
        What :func:`rebuild_shipped` needs to lay the files out again by role on an executor.
    """
    import shutil

    name = bundle_name(bundle)
    root = Path(staging_root) / name
    root.mkdir(parents=True, exist_ok=True)
    manifest = []
    for role, folder in sorted(bundle.folders.items()):
        for path in sorted(Path(folder).rglob("*")):
            if not path.is_file():
                continue
            rel = path.relative_to(folder).as_posix()
            flat = f"{name}--{role}--{rel.replace('/', '--')}"
            dest = root / flat
            if not dest.exists():
                real = os.path.realpath(path)
                try:
                    os.link(real, dest)
                except OSError:
                    shutil.copyfile(real, dest)
            manifest.append((role, rel, flat))
    return root, tuple(manifest)


def rebuild_shipped(files_root: str | Path, name: str, manifest, locate) -> Path:
    """On an executor: the folder ``<files_root>/<name>/<role>/...`` of links to the shipped files.

    ``locate(shipped_name)`` gives the local path of one shipped file (``SparkFiles.get``).
    Python workers of one executor share ``files_root``; the first to get here builds the
    folder aside and renames it into place, so the others see it whole or not at all.
    """
    import shutil
    import tempfile

    root = Path(files_root) / name
    if (root / "_COMPLETE").is_file():
        return root
    work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=files_root))
    try:
        for role, rel, flat in manifest:
            dest = work / role / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.path.abspath(locate(flat)), dest)
        (work / "_COMPLETE").write_text("ok", encoding="utf-8")
        try:
            os.rename(work, root)
        except OSError:  # another worker was first: its folder is as good as this one
            if not (root / "_COMPLETE").is_file():
                raise
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return root
