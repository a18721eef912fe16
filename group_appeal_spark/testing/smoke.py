"""``--tiny-models``: the offline smoke test's model folders, built once per machine and version."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger("group_appeal_spark")

SMOKE_WARNING = ("OFFLINE SMOKE TEST: --tiny-models runs the pipeline on tiny RANDOM-weight models built on "
                 "the fly; every output of this run is meaningless")


def smoke_models_root() -> Path:
    """This user's cache folder of the smoke-test models (``$XDG_CACHE_HOME`` or ``~/.cache``).

    Not a shared temporary folder: there another local user could lay out models first.
    """
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "group-appeal-spark"


def uses_tiny_models(folders) -> bool:
    """Whether every model folder (``ModelBundle.folders``) is one of the smoke test's tiny models."""
    root = str(smoke_models_root().resolve()) + os.sep
    return bool(folders) and all(str(Path(f).resolve()).startswith(root) for f in folders.values())


def tiny_model_overrides() -> dict:
    """Local folders of tiny random models (the offline smoke option), built once per machine.

    The folder is reused by later runs, so ``--tiny-models --resume`` finds the same model
    folders (their ids include file times) and an interrupted smoke run can be resumed.
    """
    import transformers
    from group_appeal_spark import __version__
    from group_appeal_spark.lib.models.hub import MODEL_ROLES, repo_folder_name
    from group_appeal_spark.testing.tiny_models import build_tiny_repos

    log.warning(SMOKE_WARNING)
    # one folder per package and transformers version: each writes its own config.json defaults
    root = smoke_models_root() / f"tiny-models-{__version__}-tf{transformers.__version__}-seed0"
    if not (root / "_COMPLETE").is_file():
        root.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root.parent))
        build_tiny_repos(staging, seed=0)
        (staging / "_COMPLETE").write_text("ok", encoding="utf-8")
        try:
            os.rename(staging, root)  # whole or not at all; another run may have been first
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    return {f"models.{role}.local_dir": str(root / repo_folder_name(repo)) for role, repo in MODEL_ROLES.items()}

