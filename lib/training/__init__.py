"""Training a mention embedder on a social group dictionary (the ``train-embedder`` job's core).

The embedding model of group-appeal-detector (``maxwlnd/cl_mention_embedding``) is a BERT
encoder read at the mask token of the prompt ``Social group of {mention} is: [MASK].``, a
linear projection and an L2 normalisation, trained with a triplet loss: the anchor is a
dictionary term, the positive another term of the same category, the negative a hard negative
from another category. This package reproduces that recipe for any dictionary and any
BERT-family encoder, and writes a folder with the same layout, so that the result is a drop-in
replacement for the published model (in this project and in the reference package).

Recipe
------
* Terms: each dictionary column is a category, each cell a term. A term without ``*`` is used
  as written. A wildcard term (``farm*``, ``*women``) is used with the ``*`` removed when every
  stem that carried a ``*`` is a word of at least three letters that the tokenizer knows as one
  whole token (``farm*`` -> ``farm``); otherwise (``*`` alone, ``wom*``) it is skipped and
  reported, since a word fragment is no mention anyone would embed. A term repeated in a later
  category is kept only in the first one (the category :class:`CategoryMatcher` would give it).
* Split: per category, a share ``validation_fraction`` of the terms is held out (at least two
  terms stay for training, since an anchor needs a positive). Categories with fewer than two
  training terms are skipped with a warning.
* Triplets: every training term is an anchor once per epoch, in a seeded random order; its
  positive is a random other training term of its category.
* Negatives are mined online in the batch: the batch's anchors and positives are embedded by
  the current model, and each anchor's negative is picked among those embeddings that belong to
  another category. This costs no extra forward pass and the negatives are never stale, unlike a
  pool embedded once per epoch; with a batch of a few dozen anchors spread over many categories,
  the batch holds hard negatives. ``batch_semi_hard`` (the default, Schroff et al. 2015) takes the
  nearest negative that is still farther than the positive, else the nearest one;
  ``batch_hard`` (Hermans et al. 2017) always takes the nearest. On a 46-category dictionary
  from MiniLM, semi-hard reached a higher validation triplet accuracy (0.973 against 0.965 after
  8 epochs) with a validation triplet loss of 0.03 against 0.23: always pulling the very nearest
  negative keeps the loss at about the margin and squeezes the embeddings together.
* Loss: ``max(0, d(a, p) - d(a, n) + margin)`` with Euclidean distances between unit vectors.
* Validation: fixed, seeded triplets whose anchors are held-out terms, with random positives
  (other terms of the category) and random negatives (terms of other categories); the triplet
  accuracy is the share with ``d(a, p) < d(a, n)``. Early stopping keeps the weights of the best
  epoch. The report also gives the NMI between k-means clusters of the held-out terms'
  embeddings (k = their number of categories, as in the k search) and their categories.

Modules
-------
``config``
    :class:`TrainConfig`: every parameter of a run, validated in one place (the
    :class:`NegativeMining` choices live with the package's other choices in ``lib.choices``).
``terms``
    Dictionary CSV -> :class:`TrainingTerms`: reading, wildcard stems, duplicates (by the
    pipeline's own :class:`MentionKeyer`), the per-category split.
``metrics``
    The held-out scores, numpy only: fixed validation triplets, triplet accuracy and loss, NMI
    of k-means clusters.
``trainer``
    In-batch negative mining, :class:`EmbedderTrainer` (loading the start point, the epochs,
    early stopping) and :func:`train_embedder`, the job's whole work. Prompts and embeddings go
    through the embedding stage's own code (:meth:`MentionEmbedder.preprocess`,
    :func:`mask_embeddings`), so a trained model embeds exactly as it was trained.
``report``
    The output folder in the ``cl_mention_embedding`` layout (:func:`save_embedder`) and the
    training report (JSON and markdown).

The public names are re-exported here.
"""

from group_appeal_spark.lib.choices import NegativeMining
from group_appeal_spark.lib.training.config import TrainConfig
from group_appeal_spark.lib.training.metrics import (
    clustering_nmi,
    triplet_accuracy,
    validation_triplets,
)
from group_appeal_spark.lib.training.report import (
    check_out_dir,
    report_markdown,
    save_embedder,
)
from group_appeal_spark.lib.training.terms import (
    TrainingTerms,
    prepare_terms,
    read_training_dictionary,
)
from group_appeal_spark.lib.training.trainer import (
    EmbedderTrainer,
    mine_negatives,
    train_embedder,
)

__all__ = [
    "EmbedderTrainer",
    "NegativeMining",
    "TrainConfig",
    "TrainingTerms",
    "check_out_dir",
    "clustering_nmi",
    "mine_negatives",
    "prepare_terms",
    "read_training_dictionary",
    "report_markdown",
    "save_embedder",
    "train_embedder",
    "triplet_accuracy",
    "validation_triplets",
]
