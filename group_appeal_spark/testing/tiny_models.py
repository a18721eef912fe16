"""Tiny, randomly initialised copies of the three models the reference loads from the hub.

The tests cannot reach the Hugging Face hub, so this package builds models of the real
architectures (2 layers, hidden size 32) with real tokenizers trained in seconds on a
built-in corpus, and lays them out as an offline hub cache under the real repo ids. The
reference package and this project then load them through the unchanged
``transformers`` / ``huggingface_hub`` code path (``HF_HUB_OFFLINE=1``, ``HF_HUB_CACHE``).

Everything is deterministic: the same ``seed`` gives byte-identical files, so a cache can
be rebuilt on every test run and on every Spark worker.

Repos written (one folder each):

==============================================  ===========================================
``roberta-base``                                byte-level BPE tokenizer + RoBERTa config
``maxwlnd/roberta_group_mention_detector``      ``RobertaForTokenClassification`` (BIO tags)
``maxwlnd/socialgroup_stance_classification_nli``  ``DebertaV2ForSequenceClassification`` +
                                                SentencePiece ``spm.model``
``bert-base-uncased``                           ``BertConfig`` only
``maxwlnd/cl_mention_embedding``                WordPiece tokenizer + ``model.safetensors``
                                                (``encoder.*`` + ``projector.0.*``)
==============================================  ===========================================

This module is the public entry point; the work is done in

* :mod:`~group_appeal_spark.testing.corpus` - the built-in corpus, from ``data/*.txt``;
* :mod:`~group_appeal_spark.testing.tokenizer_files` - BPE, SentencePiece, WordPiece writers;
* :mod:`~group_appeal_spark.testing.checkpoints` - detector (with calibration), stance, embedder;
* :mod:`~group_appeal_spark.testing.repos` - the five repo folders (:func:`build_tiny_repos`);
* :mod:`~group_appeal_spark.testing.hub_cache` - the offline hub cache layout.
"""

from __future__ import annotations

from group_appeal_spark.lib.models.hub import (
    DETECTOR_ID,
    DETECTOR_TOKENIZER_ID,
    EMBEDDER_BASE_ID,
    EMBEDDER_ID,
    STANCE_ID,
)
from group_appeal_spark.testing.checkpoints import DETECTOR_LABELS
from group_appeal_spark.testing.corpus import corpus
from group_appeal_spark.testing.hub_cache import build_tiny_hub_cache, install_into_hub_cache
from group_appeal_spark.testing.repos import REPO_IDS, build_tiny_repos

__all__ = [
    "DETECTOR_ID",
    "DETECTOR_TOKENIZER_ID",
    "STANCE_ID",
    "EMBEDDER_ID",
    "EMBEDDER_BASE_ID",
    "REPO_IDS",
    "DETECTOR_LABELS",
    "corpus",
    "build_tiny_repos",
    "install_into_hub_cache",
    "build_tiny_hub_cache",
]
