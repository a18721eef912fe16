"""Training a mention embedder on a social group dictionary (the recipe of the model card).

The embedding model of group-appeal-detector (``maxwlnd/cl_mention_embedding``) is a BERT
encoder read at the mask token of the prompt ``Social group of {mention} is: [MASK].``, a
linear projection and an L2 normalisation, trained with a triplet loss: the anchor is a
dictionary term, the positive another term of the same category, the negative a hard negative
from another category. This module reproduces that recipe for any dictionary and any
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
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from group_appeal_spark.lib.errors import ConfigError, InputError, ModelLoadError
from group_appeal_spark.lib.inference.embed import MAX_LENGTH, MentionEmbedder
from group_appeal_spark.lib.models.devices import Device, _Choice, resolve_device
from group_appeal_spark.lib.models.hub import (
    EMBEDDER_BASE_ID,
    ModelSource,
    resolve_model_dir,
)
from group_appeal_spark.lib.models.loaders import (
    EMBEDDING_DIM,
    _require_safetensors,
    load_tokenizer,
    new_embedder_module,
)

__all__ = [
    "NegativeMining",
    "TrainConfig",
    "TrainingTerms",
    "EmbedderTrainer",
    "prepare_terms",
    "read_training_dictionary",
    "triplet_accuracy",
    "clustering_nmi",
    "save_embedder",
    "check_out_dir",
    "train_embedder",
]

logger = logging.getLogger(__name__)

# Validation triplets drawn per held-out anchor: enough that one unlucky draw moves the accuracy
# of a 40-category dictionary by well under a percent.
VALIDATION_TRIPLETS_PER_ANCHOR = 10
# Files that make an output folder: the cl_mention_embedding layout plus the reports.
REPORT_JSON = "training_report.json"
REPORT_MD = "training_report.md"


class NegativeMining(_Choice):
    """How the negative of a triplet is picked among the batch's other-category embeddings."""

    BATCH_HARD = "batch_hard"
    BATCH_SEMI_HARD = "batch_semi_hard"


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Parameters of one training run; :meth:`validate` checks them all in one place.

    Parameters
    ----------
    margin : float
        Triplet margin on Euclidean distances between unit vectors (range 0..2).
    learning_rate : float
        AdamW learning rate of the encoder.
    projection_learning_rate : float
        AdamW learning rate of the freshly initialised projection, which starts far from any
        useful solution and so moves faster than the pretrained encoder.
    weight_decay : float
        AdamW weight decay.
    epochs : int
        Most passes over the training terms (each term is an anchor once per pass).
    batch_size : int
        Anchors per step (each brings its positive, so ``2 * batch_size`` prompts are encoded).
    validation_fraction : float
        Share of each category's terms held out, in (0, 1).
    patience : int
        Stop after this many epochs without a better validation triplet accuracy (ties are
        broken by the validation triplet loss); 0 turns early stopping off.
    seed : int
        Seeds the split, the triplets, the projection's initialisation and dropout.
    device : str
        ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto``.
    max_length : int
        Token budget of one prompt (32 in the reference).
    proj_dim : int
        Size of the output embedding (128 in the reference).
    negative_mining : str
        ``batch_semi_hard`` (default) or ``batch_hard`` (see the module docstring).
    max_grad_norm : float
        Gradient clipping; keeps the first steps with a random projection from wrecking the
        pretrained encoder.
    """

    margin: float = 0.3
    learning_rate: float = 3e-5
    projection_learning_rate: float = 1e-3
    weight_decay: float = 0.01
    epochs: int = 10
    batch_size: int = 32
    validation_fraction: float = 0.2
    patience: int = 3
    seed: int = 0
    device: str = "cpu"
    max_length: int = MAX_LENGTH
    proj_dim: int = EMBEDDING_DIM
    negative_mining: str = NegativeMining.BATCH_SEMI_HARD.value
    max_grad_norm: float = 1.0

    def validate(self) -> "TrainConfig":
        """Check every field; returns ``self`` with ``negative_mining`` normalised.

        Raises
        ------
        ConfigError
            Naming the first bad field, its value and what is allowed.
        """

        def bad(field: str, expected: str) -> ConfigError:
            return ConfigError(f"{field}: invalid value {getattr(self, field)!r}; expected {expected}")

        def is_number(value) -> bool:
            return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

        def is_int(value) -> bool:
            return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

        if not is_number(self.margin) or not 0 < self.margin <= 2:
            raise bad("margin", "a number in (0, 2] (distances between unit vectors are at most 2)")
        for field in ("learning_rate", "projection_learning_rate"):
            if not is_number(getattr(self, field)) or not getattr(self, field) > 0:
                raise bad(field, "a number > 0")
        if not is_number(self.weight_decay) or self.weight_decay < 0:
            raise bad("weight_decay", "a number >= 0")
        if not is_int(self.epochs) or self.epochs < 1:
            raise bad("epochs", "an integer >= 1")
        if not is_int(self.batch_size) or self.batch_size < 2:
            raise bad("batch_size", "an integer >= 2 (negatives are mined inside the batch)")
        if not is_number(self.validation_fraction) or not 0 < self.validation_fraction < 1:
            raise bad("validation_fraction", "a number in (0, 1)")
        if not is_int(self.patience) or self.patience < 0:
            raise bad("patience", "an integer >= 0 (0: no early stopping)")
        if not is_int(self.seed) or self.seed < 0:
            raise bad("seed", "an integer >= 0")
        if not is_int(self.max_length) or self.max_length < 8:
            raise bad("max_length", "an integer >= 8 (the prompt alone takes about 8 tokens)")
        if not is_int(self.proj_dim) or self.proj_dim < 1:
            raise bad("proj_dim", "an integer >= 1")
        if not is_number(self.max_grad_norm) or not self.max_grad_norm > 0:
            raise bad("max_grad_norm", "a number > 0")
        kind = str(self.device).strip().lower().partition(":")[0]
        Device.parse(kind, key="device")
        mining = NegativeMining.parse(self.negative_mining, key="negative_mining")
        return dataclasses.replace(self, negative_mining=mining.value)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------------------
# Dictionary -> training terms
# --------------------------------------------------------------------------------------


def read_training_dictionary(path) -> pd.DataFrame:
    """Read a dictionary CSV (categories as columns, terms as cells) as strings.

    Raises
    ------
    InputError
        If the file is missing or unreadable; the message names the path.
    """
    from group_appeal_spark.lib.clustering.dictionary import read_dictionary

    try:
        return read_dictionary(path)
    except InputError:
        raise
    except ValueError as exc:  # DictionaryError is a ValueError, not a package error
        raise InputError(str(exc)) from exc


@dataclasses.dataclass
class TrainingTerms:
    """The usable terms of a dictionary, split into training and validation terms.

    Attributes
    ----------
    categories : list of str
        Categories used, in column order.
    train : dict of str -> list of str
        Training terms per category (at least two each).
    validation : dict of str -> list of str
        Held-out terms per category (may be empty for a category).
    skipped_terms : list of dict
        ``{"category", "term", "reason"}`` for every cell not used.
    skipped_categories : list of dict
        ``{"category", "reason"}`` for every column not used.
    wildcard_terms : list of dict
        ``{"category", "term", "used_as"}`` for every wildcard term kept as its stem.
    """

    categories: list[str]
    train: dict[str, list[str]]
    validation: dict[str, list[str]]
    skipped_terms: list[dict]
    skipped_categories: list[dict]
    wildcard_terms: list[dict]

    def flat(self, split: str) -> tuple[list[str], np.ndarray]:
        """Terms of ``split`` (``"train"`` or ``"validation"``) and their category indices, shape (n,)."""
        groups = self.train if split == "train" else self.validation
        terms, labels = [], []
        for index, category in enumerate(self.categories):
            terms += groups[category]
            labels += [index] * len(groups[category])
        return terms, np.asarray(labels, dtype=np.int64)

    def counts(self) -> dict:
        n_train = sum(len(v) for v in self.train.values())
        n_val = sum(len(v) for v in self.validation.values())
        return {
            "categories_used": len(self.categories),
            "categories_skipped": len(self.skipped_categories),
            "validation_categories": sum(1 for v in self.validation.values() if v),
            "train_terms": n_train,
            "validation_terms": n_val,
            "wildcard_terms_kept": len(self.wildcard_terms),
            "terms_skipped": len(self.skipped_terms),
        }


def _wildcard_stem(term: str, tokenizer) -> tuple[str | None, str]:
    """The term with its ``*`` removed, or None and the reason it cannot be used."""
    words = []
    for token in term.split():
        if "*" not in token:
            words.append(token)
            continue
        stem = token.replace("*", "")
        if not stem:
            return None, "wildcard '*' stands for any word"
        if not (stem.isalpha() and len(stem) >= 3):
            return None, f"wildcard stem {stem!r} is not a word of at least 3 letters"
        pieces = tokenizer.tokenize(stem)
        if len(pieces) != 1 or pieces[0] == tokenizer.unk_token:
            return None, f"wildcard stem {stem!r} is not a whole word of the tokenizer's vocabulary"
        words.append(stem)
    return " ".join(words), ""


def prepare_terms(dictionary: pd.DataFrame, tokenizer, *, validation_fraction: float, seed: int) -> TrainingTerms:
    """Clean a dictionary's terms and split them per category.

    Parameters
    ----------
    dictionary : pandas.DataFrame
        Shape (n_terms_max, n_categories): columns are categories, cells terms or missing.
    tokenizer : transformers tokenizer
        The encoder's tokenizer: it decides which wildcard stems are whole words and which
        terms are duplicates (its normaliser lower-cases and strips accents when uncased).
    validation_fraction : float
        Share of each category's terms held out.
    seed : int
        Seeds the split.

    Returns
    -------
    TrainingTerms

    Raises
    ------
    InputError
        If fewer than two categories have at least two training terms.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    normalizer = backend.normalizer if backend is not None else None

    def key(term: str) -> str:
        text = normalizer.normalize_str(term) if normalizer is not None else term
        return " ".join(text.split())

    rng = np.random.default_rng([seed, 0])
    owner: dict[str, str] = {}
    skipped_terms, skipped_categories, wildcards = [], [], []
    usable: dict[str, list[str]] = {}
    for position, category in enumerate(dictionary.columns):
        category = str(category)
        terms = []
        for cell in dictionary.iloc[:, position]:
            if not isinstance(cell, str) or not cell.strip():
                continue
            term = " ".join(cell.split())
            if "*" in term:
                stem, reason = _wildcard_stem(term, tokenizer)
                if stem is None:
                    skipped_terms.append({"category": category, "term": term, "reason": reason})
                    continue
                wildcards.append({"category": category, "term": term, "used_as": stem})
                term = stem
            k = key(term)
            if k in owner:
                if owner[k] != category:
                    skipped_terms.append(
                        {"category": category, "term": term, "reason": f"already a term of category {owner[k]!r}"}
                    )
                continue  # a repeat inside one category adds nothing
            owner[k] = category
            terms.append(term)
        usable[category] = terms

    categories, train, validation = [], {}, {}
    for category, terms in usable.items():
        n_val = min(int(round(validation_fraction * len(terms))), len(terms) - 2)
        if len(terms) - max(n_val, 0) < 2:
            reason = f"{len(terms)} usable term(s); a category needs at least 2 to give positives"
            logger.warning("skipping category %r: %s", category, reason)
            skipped_categories.append({"category": category, "reason": reason})
            continue
        held = set(rng.permutation(len(terms))[: max(n_val, 0)].tolist()) if n_val > 0 else set()
        categories.append(category)
        # File order inside each split, so that the split alone depends on the seed.
        train[category] = [t for i, t in enumerate(terms) if i not in held]
        validation[category] = [t for i, t in enumerate(terms) if i in held]
    if len(categories) < 2:
        raise InputError(
            f"the dictionary has {len(categories)} usable categor{'y' if len(categories) == 1 else 'ies'} "
            f"({', '.join(map(repr, categories)) or 'none'}); training needs at least 2 categories with at "
            f"least 2 terms each (skipped: {[c['category'] for c in skipped_categories]})"
        )
    if skipped_terms:
        logger.warning("skipped %d dictionary term(s); see the training report", len(skipped_terms))
    return TrainingTerms(categories, train, validation, skipped_terms, skipped_categories, wildcards)


# --------------------------------------------------------------------------------------
# Metrics (numpy only)
# --------------------------------------------------------------------------------------


def validation_triplets(terms: TrainingTerms, seed: int, per_anchor: int = VALIDATION_TRIPLETS_PER_ANCHOR):
    """Fixed evaluation triplets over ``all terms = validation terms + training terms``.

    Returns
    -------
    all_terms : list of str, shape (n,)
    triplets : ndarray, shape (m, 3), int
        Rows ``(anchor, positive, negative)`` of indices into ``all_terms``; anchors are
        held-out terms, positives other terms of their category, negatives terms of others.
    """
    val_terms, val_labels = terms.flat("validation")
    train_terms, train_labels = terms.flat("train")
    all_terms = val_terms + train_terms
    labels = np.concatenate([val_labels, train_labels])
    rng = np.random.default_rng([seed, 1])
    rows = []
    for anchor in range(len(val_terms)):
        same = np.flatnonzero((labels == labels[anchor]) & (np.arange(len(labels)) != anchor))
        other = np.flatnonzero(labels != labels[anchor])
        positives = rng.choice(same, size=per_anchor, replace=True)
        negatives = rng.choice(other, size=per_anchor, replace=True)
        rows += [(anchor, int(p), int(n)) for p, n in zip(positives, negatives)]
    return all_terms, np.asarray(rows, dtype=np.int64).reshape(-1, 3)


def triplet_accuracy(embeddings: np.ndarray, triplets: np.ndarray, margin: float) -> tuple[float, float]:
    """Share of triplets with ``d(a, p) < d(a, n)``, and their mean triplet loss.

    Parameters
    ----------
    embeddings : ndarray, shape (n, d)
    triplets : ndarray, shape (m, 3)
        ``(anchor, positive, negative)`` row indices.
    margin : float

    Returns
    -------
    accuracy, loss : float
    """
    if len(triplets) == 0:
        return float("nan"), float("nan")
    a, p, n = (embeddings[triplets[:, i]] for i in range(3))
    d_ap = np.linalg.norm(a - p, axis=1)
    d_an = np.linalg.norm(a - n, axis=1)
    return float(np.mean(d_ap < d_an)), float(np.mean(np.maximum(d_ap - d_an + margin, 0.0)))


def clustering_nmi(embeddings: np.ndarray, labels: np.ndarray) -> float | None:
    """NMI of ``KMeans(k = number of labels, random_state=42, n_init="auto")`` against ``labels``.

    Parameters
    ----------
    embeddings : ndarray, shape (n, d)
    labels : ndarray, shape (n,)

    Returns
    -------
    float or None
        None when there are fewer than two categories or fewer points than categories.
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score

    k = len(np.unique(labels))
    if k < 2 or len(labels) <= k:
        return None
    clusters = KMeans(n_clusters=k, random_state=42, n_init="auto").fit_predict(embeddings)
    return float(normalized_mutual_info_score(labels, clusters))


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------


def _pairwise_distances(z):
    """Euclidean distances between unit rows, shape (n, n); clamped so sqrt has a gradient at 0."""
    import torch

    return torch.sqrt(torch.clamp(2.0 - 2.0 * (z @ z.T), min=1e-12))


def mine_negatives(distances, labels, anchors: int, mining: NegativeMining):
    """Pick each anchor's negative among the batch.

    Parameters
    ----------
    distances : torch.Tensor, shape (2b, 2b)
        Between the b anchors (rows 0..b-1) and their b positives (rows b..2b-1).
    labels : torch.LongTensor, shape (2b,)
    anchors : int
        b.
    mining : NegativeMining

    Returns
    -------
    negatives : torch.LongTensor, shape (b,)
        Row index of each anchor's negative.
    valid : torch.BoolTensor, shape (b,)
        False where the batch holds no other-category row for that anchor.
    """
    import torch

    d = distances[:anchors].detach()
    other = labels[None, :] != labels[:anchors, None]
    valid = other.any(dim=1)
    inf = torch.tensor(float("inf"), dtype=d.dtype, device=d.device)
    hardest = torch.where(other, d, inf).argmin(dim=1)
    if mining is NegativeMining.BATCH_HARD:
        return hardest, valid
    d_ap = d[torch.arange(anchors), torch.arange(anchors) + anchors]
    beyond = other & (d > d_ap[:, None])
    semi = torch.where(beyond, d, inf).argmin(dim=1)
    return torch.where(beyond.any(dim=1), semi, hardest), valid


class EmbedderTrainer:
    """Train a mention embedder (encoder + projection) with the triplet recipe.

    Parameters
    ----------
    config : TrainConfig, optional
    base_model : str, optional
        A hub id or a local folder of a BERT-family encoder with safetensors weights
        (default ``bert-base-uncased``, the base of the published model).
    revision : str, optional
        Hub revision of ``base_model``.
    init_embedder : str or Path, optional
        Instead of a base encoder, continue from an embedder folder in the
        ``cl_mention_embedding`` layout (tokenizer + ``model.safetensors``).
    init_embedder_config : str or Path, optional
        Folder of that embedder's encoder config (default: ``init_embedder`` itself).
    cache_dir : str or Path, optional
        Hub cache for ``base_model``.

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained module (best epoch), keys ``encoder.*`` and ``projector.0.*``.
    tokenizer_ : transformers tokenizer
    terms_ : TrainingTerms
    report_ : dict
        Everything written to ``training_report.json``.
    """

    def __init__(
        self,
        config: TrainConfig | None = None,
        *,
        base_model: str | None = None,
        revision: str | None = None,
        init_embedder=None,
        init_embedder_config=None,
        cache_dir=None,
    ):
        self.config = config if config is not None else TrainConfig()
        self.base_model = base_model
        self.revision = revision
        self.init_embedder = init_embedder
        self.init_embedder_config = init_embedder_config
        self.cache_dir = cache_dir

    # ---- loading ------------------------------------------------------------------
    def _load(self, config: TrainConfig):
        """The tokenizer and the module to train, with a freshly seeded projection."""
        import torch
        from transformers import AutoModel

        if self.init_embedder is not None:
            if self.base_model is not None:
                raise ConfigError("base_model and init_embedder are exclusive: give one start point")
            from group_appeal_spark.lib.models.loaders import load_embedder_module

            folder = Path(self.init_embedder)
            tokenizer = load_tokenizer(folder, "initial embedder tokenizer")
            module = load_embedder_module(folder, self.init_embedder_config or folder, role="initial embedder")
            if module.projector[0].out_features != config.proj_dim:
                raise ConfigError(
                    f"proj_dim: invalid value {config.proj_dim!r}; the initial embedder {folder} projects to "
                    f"{module.projector[0].out_features} dimensions"
                )
            return tokenizer, module.float()

        repo = self.base_model or EMBEDDER_BASE_ID
        local = repo if Path(repo).expanduser().is_dir() else None
        folder = resolve_model_dir(
            ModelSource("base encoder", repo, self.revision, local), cache_dir=self.cache_dir
        )
        tokenizer = load_tokenizer(folder, "base encoder tokenizer")
        if tokenizer.mask_token_id is None:
            raise ModelLoadError(f"base encoder: the tokenizer in {folder} has no mask token; the prompt needs one")
        _require_safetensors(Path(folder), "base encoder")
        try:
            encoder = AutoModel.from_pretrained(
                str(folder), use_safetensors=True, trust_remote_code=False, dtype=torch.float32
            )
        except Exception as exc:
            raise ModelLoadError(f"base encoder: cannot load the encoder from {folder}: {exc}") from exc
        module = new_embedder_module(encoder.config, config.proj_dim)
        module.encoder = encoder
        # Seed right before the projection's own initialisation, so that it does not depend on
        # how many random numbers building the encoder drew.
        torch.manual_seed(config.seed)
        module.projector[0].reset_parameters()
        return tokenizer, module

    # ---- fitting ------------------------------------------------------------------
    def fit(self, dictionary: pd.DataFrame) -> "EmbedderTrainer":
        """Train on a dictionary.

        Parameters
        ----------
        dictionary : pandas.DataFrame
            Shape (n_terms_max, n_categories): categories as columns, terms as cells.

        Returns
        -------
        self
        """
        import torch

        config = self.config.validate()
        if not isinstance(dictionary, pd.DataFrame):
            raise InputError(f"dictionary must be a pandas DataFrame; got {type(dictionary).__name__}")
        device = resolve_device(config.device)
        started = time.perf_counter()
        # fork_rng: seeding for dropout must not change the caller's global torch RNG.
        cuda_ids = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda_ids):
            torch.manual_seed(config.seed)
            tokenizer, module = self._load(config)
            terms = prepare_terms(
                dictionary, tokenizer, validation_fraction=config.validation_fraction, seed=config.seed
            )
            embedder = MentionEmbedder(
                module, tokenizer, device=device, batch_size=max(64, 2 * config.batch_size),
                max_length=config.max_length,
            )
            history, best, before, after = self._train(config, terms, embedder, device)
        self.module_ = embedder.module.eval()
        self.tokenizer_ = tokenizer
        self.terms_ = terms
        self._embedder = embedder
        self.report_ = {
            "base_model": None if self.init_embedder is not None else (self.base_model or EMBEDDER_BASE_ID),
            "revision": self.revision,
            "init_embedder": None if self.init_embedder is None else str(self.init_embedder),
            "config": config.to_dict(),
            "device": str(device),
            "counts": terms.counts(),
            "categories": terms.categories,
            "skipped_categories": terms.skipped_categories,
            "skipped_terms": terms.skipped_terms,
            "wildcard_terms": terms.wildcard_terms,
            "history": history,
            "best_epoch": best,
            "epochs_run": len(history),
            "stopped_early": len(history) < config.epochs,
            "validation_triplets": int(self._n_val_triplets),
            "before": before,
            "after": after,
            "seconds": round(time.perf_counter() - started, 2),
            "versions": _versions(),
        }
        return self

    def _evaluate(self, embedder, eval_terms, triplets, val_labels, n_val, margin) -> dict:
        """Validation triplet accuracy and loss, and held-out NMI, of the module as it is now."""
        embedder.module.eval()
        vectors = embedder.embed(eval_terms)
        accuracy, loss = triplet_accuracy(vectors, triplets, margin)
        nmi = clustering_nmi(vectors[:n_val], val_labels) if n_val else None
        return {"triplet_accuracy": accuracy, "triplet_loss": loss, "nmi": nmi}

    def _train(self, config: TrainConfig, terms: TrainingTerms, embedder: MentionEmbedder, device):
        import torch
        import torch.nn.functional as F
        from group_appeal_spark.lib.inference.batching import pad_rows

        module, tokenizer = embedder.module, embedder.tokenizer
        train_terms, train_labels = terms.flat("train")
        val_terms, val_labels = terms.flat("validation")
        eval_terms, triplets = validation_triplets(terms, config.seed)
        self._n_val_triplets = len(triplets)
        rows = embedder.preprocess(train_terms).rows
        by_category = [np.flatnonzero(train_labels == c) for c in range(len(terms.categories))]
        mining = NegativeMining.parse(config.negative_mining)

        evaluate = lambda: self._evaluate(  # noqa: E731
            embedder, eval_terms, triplets, val_labels, len(val_terms), config.margin
        )
        before = evaluate()
        logger.info(
            "before training: validation triplet accuracy %.4f, held-out NMI %s (%d categories, %d training and "
            "%d held-out terms)", before["triplet_accuracy"], _fmt(before["nmi"]), len(terms.categories),
            len(train_terms), len(val_terms),
        )
        projector = list(module.projector.parameters())
        optimizer = torch.optim.AdamW(
            [
                {"params": list(module.encoder.parameters()), "lr": config.learning_rate},
                {"params": projector, "lr": config.projection_learning_rate},
            ],
            weight_decay=config.weight_decay,
        )
        rng = np.random.default_rng([config.seed, 2])
        history, best_key, best_epoch, best_state, stale = [], None, 0, None, 0
        for epoch in range(1, config.epochs + 1):
            tick = time.perf_counter()
            module.train()
            order = rng.permutation(len(train_terms))
            positives = np.empty(len(train_terms), dtype=np.int64)
            for i in order:
                same = by_category[train_labels[i]]
                # A random other term of the category: draw among the category's terms but the anchor.
                j = int(rng.integers(len(same) - 1))
                positives[i] = same[j] if same[j] != i else same[-1]
            losses, active = [], []
            for start in range(0, len(order), config.batch_size):
                anchors = order[start : start + config.batch_size]
                b = len(anchors)
                batch = np.concatenate([anchors, positives[anchors]])
                input_ids, attention_mask = pad_rows([rows[i] for i in batch], tokenizer.pad_token_id)
                input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
                hidden = module.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
                r, c = (input_ids == tokenizer.mask_token_id).nonzero(as_tuple=True)
                z = F.normalize(module.projector(hidden[r, c]), p=2, dim=1)
                labels = torch.as_tensor(train_labels[batch], device=device)
                distances = _pairwise_distances(z)
                negatives, valid = mine_negatives(distances, labels, b, mining)
                if not bool(valid.any()):
                    continue  # a batch of one category has no negative to learn from
                idx = torch.arange(b, device=device)
                d_ap = distances[idx, idx + b]
                d_an = distances[idx, negatives]
                hinge = torch.relu(d_ap - d_an + config.margin)[valid]
                loss = hinge.mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(module.parameters(), config.max_grad_norm)
                optimizer.step()
                losses.append(float(loss.detach()) * int(valid.sum()))
                active.append(int(valid.sum()))
            train_loss = sum(losses) / max(sum(active), 1)
            scores = evaluate()
            seconds = time.perf_counter() - tick
            history.append(
                {
                    "epoch": epoch,
                    "train_loss": train_loss,
                    "validation_triplet_accuracy": scores["triplet_accuracy"],
                    "validation_triplet_loss": scores["triplet_loss"],
                    "validation_nmi": scores["nmi"],
                    "seconds": round(seconds, 2),
                }
            )
            logger.info(
                "epoch %d/%d: train loss %.4f, validation triplet accuracy %.4f (loss %.4f), held-out NMI %s, %.1f s",
                epoch, config.epochs, train_loss, scores["triplet_accuracy"], scores["triplet_loss"],
                _fmt(scores["nmi"]), seconds,
            )
            key = (scores["triplet_accuracy"], -scores["triplet_loss"])
            if best_key is None or key > best_key:
                best_key, best_epoch, stale = key, epoch, 0
                if epoch < config.epochs:  # the last epoch's weights are the module itself
                    best_state = copy.deepcopy({k: v.detach().cpu() for k, v in module.state_dict().items()})
                else:
                    best_state = None
            else:
                stale += 1
                if config.patience and stale >= config.patience:
                    logger.info("early stop: no better validation triplet accuracy for %d epoch(s)", stale)
                    break
        if best_epoch != len(history) and best_state is not None:
            module.load_state_dict(best_state)
            logger.info("restored the weights of epoch %d (the best on validation)", best_epoch)
        module.eval()
        after = evaluate()
        return history, best_epoch, before, after

    # ---- using the result -----------------------------------------------------------
    def embed(self, mentions: Sequence[str]) -> np.ndarray:
        """Embed mentions with the trained model; shape (n, proj_dim), float32, unit rows."""
        self._check_fitted()
        self.module_.eval()
        return self._embedder.embed(mentions)

    def save(self, out_dir, *, overwrite: bool = False, dictionary_path=None) -> Path:
        """Write the embedder folder and the training report; see :func:`save_embedder`."""
        self._check_fitted()
        report = dict(self.report_)
        if dictionary_path is not None:
            report = {"dictionary": str(dictionary_path), **report}
        return save_embedder(self.module_, self.tokenizer_, out_dir, report=report, overwrite=overwrite)

    def _check_fitted(self):
        if not hasattr(self, "module_"):
            raise RuntimeError("EmbedderTrainer is not fitted; call fit(dictionary) first")


def check_out_dir(out_dir, *, overwrite: bool) -> Path:
    """Refuse an existing non-empty output folder unless ``overwrite``; returns the path."""
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise InputError(f"output {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError(f"output folder {out} is not empty; choose another folder or pass --overwrite")
    return out


def save_embedder(module, tokenizer, out_dir, *, report: Mapping | None = None, overwrite: bool = False) -> Path:
    """Write a trained embedder in the ``maxwlnd/cl_mention_embedding`` layout.

    Files: the tokenizer's files, the encoder's ``config.json``, ``model.safetensors`` (keys
    ``encoder.*`` with the encoder's full state dict, and ``projector.0.weight`` / ``.bias``),
    and, given a ``report``, ``training_report.json`` and ``training_report.md``. The folder is
    both the weights folder and the config folder of :meth:`MentionEmbedder.from_dirs`.

    Returns
    -------
    Path
        The folder.
    """
    from safetensors.torch import save_file

    out = check_out_dir(out_dir, overwrite=overwrite)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(out))
    module.encoder.config.save_pretrained(str(out))
    # contiguous copies on the CPU: safetensors refuses views and shared storage.
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    if report is not None:
        (out / REPORT_JSON).write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
        (out / REPORT_MD).write_text(report_markdown(report), encoding="utf-8")
    return out


def report_markdown(report: Mapping) -> str:
    """A short human-readable summary of a training report."""
    c, before, after = report["counts"], report["before"], report["after"]
    lines = [
        "# Mention embedder training report",
        "",
        f"- start: {report.get('base_model') or report.get('init_embedder')}"
        + (f" (revision {report['revision']})" if report.get("revision") else ""),
        f"- dictionary: {report.get('dictionary', '(in memory)')}",
        f"- categories: {c['categories_used']} used, {c['categories_skipped']} skipped; "
        f"terms: {c['train_terms']} training, {c['validation_terms']} held out "
        f"({c['validation_categories']} categories), {c['wildcard_terms_kept']} wildcard terms kept as stems, "
        f"{c['terms_skipped']} skipped",
        f"- epochs run: {report['epochs_run']} (best: {report['best_epoch']}"
        + (", stopped early" if report["stopped_early"] else "") + f"), {report['seconds']} s on {report['device']}",
        "",
        "| held-out metric | before | after |",
        "|---|---|---|",
        f"| validation triplet accuracy ({report['validation_triplets']} triplets) | "
        f"{before['triplet_accuracy']:.4f} | {after['triplet_accuracy']:.4f} |",
        f"| NMI of k-means clusters vs categories | {_fmt(before['nmi'])} | {_fmt(after['nmi'])} |",
        "",
        "| epoch | train loss | val. triplet accuracy | val. NMI | seconds |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {h['epoch']} | {h['train_loss']:.4f} | {h['validation_triplet_accuracy']:.4f} | "
        f"{_fmt(h['validation_nmi'])} | {h['seconds']} |"
        for h in report["history"]
    ]
    if report.get("skipped_terms"):
        lines += ["", "Skipped terms:", ""]
        lines += [f"- {s['category']}: `{s['term']}` ({s['reason']})" for s in report["skipped_terms"]]
    return "\n".join(lines) + "\n"


def _fmt(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def _versions() -> dict:
    import sklearn
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "scikit-learn": sklearn.__version__}


def train_embedder(
    dictionary_path,
    out_dir,
    config: TrainConfig | None = None,
    *,
    base_model: str | None = None,
    revision: str | None = None,
    init_embedder=None,
    init_embedder_config=None,
    overwrite: bool = False,
) -> EmbedderTrainer:
    """Read a dictionary CSV, train, and write the embedder folder (the job's whole work).

    The output folder is checked before training, so a bad ``out_dir`` fails at once.
    """
    config = (config or TrainConfig()).validate()
    check_out_dir(out_dir, overwrite=overwrite)
    dictionary = read_training_dictionary(dictionary_path)
    trainer = EmbedderTrainer(
        config, base_model=base_model, revision=revision,
        init_embedder=init_embedder, init_embedder_config=init_embedder_config,
    ).fit(dictionary)
    trainer.save(out_dir, overwrite=overwrite, dictionary_path=os.fspath(dictionary_path))
    return trainer
