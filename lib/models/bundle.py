"""The resolved models of a job and everything an executor needs to build its stages.

The driver turns the configuration into a :class:`ModelBundle` once: every model resolved to a
local folder (hub, cache or local directory), a content id per folder, and the inference
settings. The bundle is small and picklable; executors rebuild the stages from it without ever
asking the hub.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

from group_appeal_spark.lib.config import InferenceConfig, JobConfig, SegmentationConfig
from group_appeal_spark.lib.models.hub import resolve_model_dir


def folder_id(folder: Path) -> str:
    """A short id of a model folder's content (names, sizes, mtimes; cheap for GB files)."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            stat = path.stat()
            digest.update(f"{path.relative_to(folder)}\0{stat.st_size}\0{int(stat.st_mtime)}\0".encode())
    return digest.hexdigest()[:16]


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
        return cls(folders=folders, ids={role: folder_id(Path(f)) for role, f in folders.items()},
                   inference=config.inference, segmentation=config.segmentation)

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
        detector = MentionDetector.from_dirs(
            f("detector"), f("detector_tokenizer"), device=inf.device, precision=inf.precision,
            batch_size=inf.detect_batch_size, max_tokens=inf.max_tokens_per_batch, window_stride=inf.window_stride)
        stance = StanceClassifier.from_dir(
            f("stance"), device=inf.device, precision=inf.precision,
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
            device=inf.device, precision=inf.precision, batch_size=inf.embed_batch_size)


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
