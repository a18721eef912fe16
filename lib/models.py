"""Finding the three models' files (hub id + revision, hub cache, local folder) and loading them.

The driver resolves every model to a local folder once (:func:`resolve_model_dir`); executors
only ever load from folders (:func:`load_token_classifier`, :func:`load_sequence_classifier`,
:func:`load_mention_embedder`). Weights are read from safetensors only and no repository code is
ever executed (``trust_remote_code`` stays off).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from group_appeal_spark.lib.errors import ModelLoadError

DETECTOR_ID = "maxwlnd/roberta_group_mention_detector"
DETECTOR_TOKENIZER_ID = "roberta-base"
STANCE_ID = "maxwlnd/socialgroup_stance_classification_nli"
EMBEDDER_ID = "maxwlnd/cl_mention_embedding"
EMBEDDER_BASE_ID = "bert-base-uncased"

# What a model folder needs: configs, tokenizer files and safetensors weights. Pickle-based
# weights (*.bin, *.pt, *.ckpt) and other frameworks' files are never fetched.
SNAPSHOT_PATTERNS = ["*.json", "*.txt", "*.model", "*.safetensors"]

_OFFLINE_HELP = (
    "On a machine without access to the Hugging Face hub: run `group-appeal-spark fetch-models "
    "--out DIR` where the hub is reachable and pass `--models-dir DIR`, or set `local_dir` of "
    "this model in the config to a folder with its config, tokenizer and *.safetensors files, "
    "or set HF_HUB_CACHE to a hub cache that holds it (with HF_HUB_OFFLINE=1)."
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


def _require_safetensors(folder: Path, role: str) -> None:
    if not any(folder.glob("*.safetensors")):
        found = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        raise ModelLoadError(
            f"{role}: no *.safetensors weights in {folder} (found: {', '.join(found) or 'nothing'}). "
            f"Only safetensors weights are loaded; pickle-based *.bin files are refused for safety."
        )


def load_tokenizer(folder, role: str, **kwargs):
    """Load a fast tokenizer from a folder (no remote code); ``role`` names it in errors."""
    from transformers import AutoTokenizer

    # Forked Python workers must not start tokenizers' own thread pool (it deadlocks after fork).
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False, **kwargs)
    except Exception as exc:
        raise ModelLoadError(
            f"{role}: cannot load the tokenizer from {folder}: {exc}. DeBERTa-v3 folders that hold "
            f"only spm.model need the `sentencepiece` and `protobuf` packages."
        ) from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(f"{role}: the tokenizer in {folder} is not a fast tokenizer; character offsets need one")
    return tokenizer


def quiet_transformers() -> None:
    """No per-load progress bars in executor logs (one per task would drown the job's log)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def _load_auto_model(auto_class, folder, role: str, dtype):
    _require_safetensors(Path(folder), role)
    quiet_transformers()
    from group_appeal_spark.lib.weights import load_pretrained

    try:
        # Parameters are views into one private mapping of the safetensors file: every Python
        # worker of a node shares the page cache's copy (from_pretrained gives each its own).
        model = load_pretrained(auto_class, folder, dtype=dtype)
    except ModelLoadError as exc:
        raise ModelLoadError(f"{role}: cannot load the model from {folder}: {exc}") from exc
    except Exception as exc:
        raise ModelLoadError(f"{role}: cannot load the model from {folder}: {exc}") from exc
    return model.eval()


def load_token_classifier(folder, *, dtype=None, role: str = "detector"):
    """Load a token-classification model (the mention detector) from a folder."""
    from transformers import AutoModelForTokenClassification

    return _load_auto_model(AutoModelForTokenClassification, folder, role, dtype)


def load_sequence_classifier(folder, *, dtype=None, role: str = "stance model"):
    """Load a sequence-classification model (the NLI stance model) from a folder."""
    from transformers import AutoModelForSequenceClassification

    return _load_auto_model(AutoModelForSequenceClassification, folder, role, dtype)
