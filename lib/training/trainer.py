"""Fitting the embedder: in-batch negative mining, :class:`EmbedderTrainer` and :func:`train_embedder`.

The recipe is described in :mod:`group_appeal_spark.lib.training`.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from group_appeal_spark.lib.choices import NegativeMining
from group_appeal_spark.lib.errors import ConfigError, InputError, ModelLoadError
from group_appeal_spark.lib.inference.batching import pad_rows
from group_appeal_spark.lib.inference.embed import MentionEmbedder, mask_embeddings
from group_appeal_spark.lib.models.devices import resolve_device
from group_appeal_spark.lib.models.hub import (
    EMBEDDER_BASE_ID,
    ModelSource,
    resolve_model_dir,
)
from group_appeal_spark.lib.models.loaders import (
    _require_safetensors,
    load_tokenizer,
    new_embedder_module,
)
from group_appeal_spark.lib.training.config import TrainConfig
from group_appeal_spark.lib.training.metrics import (
    clustering_nmi,
    triplet_accuracy,
    validation_triplets,
)
from group_appeal_spark.lib.training.report import (
    check_out_dir,
    format_metric,
    library_versions,
    save_embedder,
)
from group_appeal_spark.lib.training.terms import (
    TrainingTerms,
    prepare_terms,
    read_training_dictionary,
)

__all__ = ["EmbedderTrainer", "mine_negatives", "train_embedder"]

logger = logging.getLogger(__name__)


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
            "versions": library_versions(),
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
            "%d held-out terms)", before["triplet_accuracy"], format_metric(before["nmi"]), len(terms.categories),
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
                z = mask_embeddings(module, input_ids, attention_mask, tokenizer.mask_token_id)
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
                format_metric(scores["nmi"]), seconds,
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
