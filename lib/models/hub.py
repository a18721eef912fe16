"""Finding the three models' files (hub id + revision, hub cache, local folder) and loading them.

The driver resolves every model to a local folder once (:func:`resolve_model_dir`); executors
only ever load from folders (:func:`load_token_classifier`, :func:`load_sequence_classifier`,
:func:`load_mention_embedder`). Weights are read from safetensors only and no repository code is
ever executed (``trust_remote_code`` stays off).
"""

from __future__ import annotations

import dataclasses
import types
from pathlib import Path

from group_appeal_spark.lib.errors import ModelLoadError

DETECTOR_ID = "maxwlnd/roberta_group_mention_detector"
DETECTOR_TOKENIZER_ID = "roberta-base"
STANCE_ID = "maxwlnd/socialgroup_stance_classification_nli"
EMBEDDER_ID = "maxwlnd/cl_mention_embedding"
EMBEDDER_BASE_ID = "bert-base-uncased"

# The five models of a job: role (its key under ``models.`` in the config) -> default hub id.
MODEL_ROLES = types.MappingProxyType({
    "detector": DETECTOR_ID,
    "detector_tokenizer": DETECTOR_TOKENIZER_ID,
    "stance": STANCE_ID,
    "embedder": EMBEDDER_ID,
    "embedder_config": EMBEDDER_BASE_ID,
})

# What a model folder needs: configs, tokenizer files and safetensors weights. Pickle-based
# weights (*.bin, *.pt, *.ckpt) and other frameworks' files are never fetched.
SNAPSHOT_PATTERNS = ["*.json", "*.txt", "*.model", "*.safetensors"]

_OFFLINE_HELP = (
    "On a machine without access to the Hugging Face hub: run `group-appeal-spark fetch-models "
    "--output DIR` where the hub is reachable and pass `--models-dir DIR`, or set `local_dir` of "
    "this model in the config to a folder with its config, tokenizer and *.safetensors files, "
    "or set HF_HUB_CACHE to a hub cache that holds it (with HF_HUB_OFFLINE=1). To try the pipeline "
    "without the models, `--tiny-models` runs it on tiny random-weight models (an offline smoke test: "
    "its outputs are meaningless)."
)


@dataclasses.dataclass(frozen=True)
class ModelSource:
    """Where one model (or tokenizer, or config) comes from.

    Parameters
    ----------
    role : str
        What it is, for messages (e.g. ``"detector tokenizer"``).
    repo_id : str
        Hugging Face hub id.
    revision : str or None
        A branch, tag or commit to pin; None means the hub's default branch.
    local_dir : str or None
        A local folder to use instead of the hub; wins over ``repo_id``.
    """

    role: str
    repo_id: str
    revision: str | None = None
    local_dir: str | None = None

    def describe(self) -> str:
        if self.local_dir:
            return f"local folder {self.local_dir}"
        return f"'{self.repo_id}'" + (f" at revision {self.revision}" if self.revision else "")


def _hub_cache_dir(cache_dir) -> str:
    if cache_dir:
        return str(cache_dir)
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def resolve_model_dir(source: ModelSource, *, cache_dir=None, local_files_only: bool | None = None) -> Path:
    """Resolve a model source to a local folder holding its files.

    Parameters
    ----------
    source : ModelSource
        The model to find.
    cache_dir : str or Path, optional
        Hub cache folder; default: huggingface_hub's (``HF_HUB_CACHE``).
    local_files_only : bool, optional
        Never contact the hub; default: True when ``HF_HUB_OFFLINE`` is set.

    Returns
    -------
    Path
        A folder with the snapshot's config, tokenizer and safetensors files.

    Raises
    ------
    ModelLoadError
        Naming the model, where it looked, and what to do.
    """
    if source.local_dir:
        folder = Path(source.local_dir).expanduser()
        if not folder.is_dir():
            raise ModelLoadError(
                f"{source.role}: local folder {folder} does not exist or is not a folder. "
                f"Point it at a folder with the model's config, tokenizer and *.safetensors files "
                f"(e.g. one written by `group-appeal-spark fetch-models`)."
            )
        return folder
    from huggingface_hub import snapshot_download

    if local_files_only is None:
        from huggingface_hub import constants

        local_files_only = bool(constants.HF_HUB_OFFLINE)
    try:
        path = snapshot_download(
            source.repo_id,
            revision=source.revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            allow_patterns=SNAPSHOT_PATTERNS,
        )
    except Exception as exc:  # hub errors come in many classes; all mean "not available here"
        where = f"the hub and the hub cache {_hub_cache_dir(cache_dir)}"
        if local_files_only:
            where = f"the hub cache {_hub_cache_dir(cache_dir)} (offline)"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(
            f"{source.role}: cannot find {source.describe()} in {where}: {reason}. {_OFFLINE_HELP}"
        ) from exc
    return Path(path)


def models_dir_source(models_dir, role: str, repo_id: str, revision: str | None = None) -> ModelSource:
    """The source of ``repo_id`` inside a folder written by ``fetch-models``.

    ``fetch-models`` stores each repository under ``<models_dir>/<org>--<name>``.
    """
    return ModelSource(role, repo_id, revision, str(Path(models_dir) / repo_folder_name(repo_id)))


def repo_folder_name(repo_id: str) -> str:
    """The folder name under which ``fetch-models`` stores a repository."""
    return repo_id.replace("/", "--")


def snapshot_commit(folder) -> tuple[str, str] | None:
    """``(repo_id, commit)`` of a hub-cache snapshot folder, or None for any other folder.

    huggingface_hub lays a cached revision out as ``<cache>/models--<org>--<name>/snapshots/<commit>/``:
    the folder name is the full commit sha the revision (branch, tag or sha) resolved to.
    """
    folder = Path(folder)
    repo_dir = folder.parent.parent
    if folder.parent.name != "snapshots" or not repo_dir.name.startswith("models--"):
        return None
    return repo_dir.name[len("models--"):].replace("--", "/"), folder.name
