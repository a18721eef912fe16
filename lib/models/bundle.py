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
        return cls(folders=folders, ids={role: folder_id(Path(f)) for role, f in folders.items()},
                   inference=config.inference, segmentation=config.segmentation)

    def provenance(self, sources: dict[str, ModelSource]) -> dict[str, dict]:
        """:func:`model_provenance` of every role (driver side; ``sources``: ``config.model_sources()``)."""
        return {role: model_provenance(sources[role], folder) for role, folder in sorted(self.folders.items())}

    def precision(self) -> str:
        """The precision the stages run at on this machine: ``inference.precision`` with ``auto``
        resolved for ``inference.device`` (warns once about emulated bf16)."""
        return resolve_precision(self.inference.precision, self.inference.device).value

    def cache_key(self, stage: str) -> str:
        """The per-worker cache key of a stage: its models' content and its settings."""
        parts = [stage, *(f"{r}={self.ids[r]}" for r in sorted(self.ids)),
                 repr(dataclasses.astuple(self.inference)), repr(dataclasses.astuple(self.segmentation))]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]

    def folder(self, role: str, shipped_root: str | None = None) -> Path:
        """Where role ``role``'s files are: under the shipped root on an executor, else the driver path."""
        if shipped_root is not None:
            return Path(shipped_root) / role
        return Path(self.folders[role])

    def appeal_finder(self, shipped_root: str | None = None):
        """Build the detection + stance stages (executor side)."""
        from group_appeal_spark.lib.inference.appeals import AppealFinder
        from group_appeal_spark.lib.inference.detect import MentionDetector
        from group_appeal_spark.lib.inference.embed import MentionKeyer
        from group_appeal_spark.lib.inference.stance import StanceClassifier

        f = lambda role: self.folder(role, shipped_root)  # noqa: E731
        inf = self.inference
        precision = self.precision()  # here, on the executor: its hardware decides `auto`
        detector = MentionDetector.from_dirs(
            f("detector"), f("detector_tokenizer"), device=inf.device, precision=precision,
            batch_size=inf.detect_batch_size, max_tokens=inf.max_tokens_per_batch, window_stride=inf.window_stride)
        stance = StanceClassifier.from_dir(
            f("stance"), device=inf.device, precision=precision,
            batch_size=inf.stance_batch_size, max_tokens=inf.max_tokens_per_batch)
        keyer = MentionKeyer.from_dir(f("embedder"))
        return AppealFinder(detector, stance, keyer, segmentation=self.segmentation.mode,
                            max_segment_chars=self.segmentation.max_segment_chars)

    def embedder(self, shipped_root: str | None = None):
        """Build the embedding stage (executor side)."""
        from group_appeal_spark.lib.inference.embed import MentionEmbedder

        inf = self.inference
        return MentionEmbedder.from_dirs(
            self.folder("embedder", shipped_root), self.folder("embedder_config", shipped_root),
            device=inf.device, precision=self.precision(), batch_size=inf.embed_batch_size)


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
