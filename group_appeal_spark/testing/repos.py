"""The five repos the reference loads, written as plain folders: tokenizers, then checkpoints."""

from __future__ import annotations

import pathlib
import shutil

from group_appeal_spark.lib.models.hub import (  # the real repo ids, in one place
    DETECTOR_ID,
    DETECTOR_TOKENIZER_ID,
    EMBEDDER_BASE_ID,
    EMBEDDER_ID,
    STANCE_ID,
)
from group_appeal_spark.testing import checkpoints, tokenizer_files

__all__ = ["REPO_IDS", "repo_folders", "write_tokenizers", "build_tiny_repos"]

REPO_IDS = (DETECTOR_TOKENIZER_ID, DETECTOR_ID, STANCE_ID, EMBEDDER_BASE_ID, EMBEDDER_ID)


def repo_folders(out_dir):
    """``{repo_id: out_dir/<org>--<name>}`` for :data:`REPO_IDS`, each created empty."""
    out_dir = pathlib.Path(out_dir)
    folders = {repo_id: out_dir / repo_id.replace("/", "--") for repo_id in REPO_IDS}
    for folder in folders.values():
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
    return folders


def write_tokenizers(folders, *, bert_vocab=None, stance_tokenizer_json=False):
    """Write the tokenizer files of every repo that has some; returns ``{repo_id: vocab size}``.

    Sizes are given for the detector, stance and embedder repos: the smallest ``vocab_size``
    their models may have.
    """
    tok_folder = folders[DETECTOR_TOKENIZER_ID]
    bpe_size = tokenizer_files.write_bpe(tok_folder)
    # roberta-base ships a config.json (AutoTokenizer reads model_type from it) and no
    # tokenizer_config.json, so model_max_length is unset there as on the real hub repo.
    checkpoints.roberta_config(bpe_size, architectures=["RobertaForMaskedLM"]).to_json_file(
        tok_folder / "config.json"
    )
    return {
        DETECTOR_ID: bpe_size,
        STANCE_ID: tokenizer_files.write_sentencepiece(folders[STANCE_ID], tokenizer_json=stance_tokenizer_json),
        EMBEDDER_ID: tokenizer_files.write_wordpiece(folders[EMBEDDER_ID], bert_vocab),
    }


def build_tiny_repos(
    out_dir,
    *,
    seed=0,
    bert_vocab=None,
    stance_label_order=("entailment", "not_entailment"),
    stance_tokenizer_json=False,
    detector_o_share=checkpoints.DETECTOR_O_SHARE,
):
    """Write one plain folder per repo id with tiny models of the real architectures.

    Parameters
    ----------
    out_dir : str or path-like
        Parent folder; created if missing. Each repo goes to ``out_dir/<org>--<name>``.
    seed : int, default 0
        Seed of the random weights (``torch.manual_seed``); the caller's RNG state is kept.
    bert_vocab : str or path-like, optional
        A ``vocab.txt`` for the embedder (e.g. the real bert-base-uncased one); by default a
        small WordPiece vocabulary is trained on :func:`corpus`.
    stance_label_order : tuple of two str, default ("entailment", "not_entailment")
        ``id2label`` of the stance model: ``{0: first, 1: second}``.
    stance_tokenizer_json : bool, default False
        Also save the stance tokenizer converted to ``tokenizer.json``. The default repo holds
        only ``spm.model``, which ``transformers`` converts at load time (needs
        ``sentencepiece`` and ``protobuf``).
    detector_o_share : float, default 0.72
        Share of the built-in corpus's tokens the detector tags "O". The default finds a
        mention in nearly every sentence; about 0.97 leaves most short sentences without one,
        which is what real models do and what tests of empty results need.

    Returns
    -------
    dict of str to pathlib.Path
        ``{repo_id: folder}`` for the five ids in :data:`REPO_IDS`.
    """
    checkpoints.stance_labels(stance_label_order)  # a bad order fails before anything is written
    folders = repo_folders(out_dir)
    vocab = write_tokenizers(folders, bert_vocab=bert_vocab, stance_tokenizer_json=stance_tokenizer_json)
    checkpoints.write_detector(
        folders[DETECTOR_ID], vocab[DETECTOR_ID], seed, folders[DETECTOR_TOKENIZER_ID], detector_o_share
    )
    checkpoints.write_stance(folders[STANCE_ID], seed, stance_label_order, vocab[STANCE_ID])
    checkpoints.write_embedder(folders[EMBEDDER_ID], folders[EMBEDDER_BASE_ID], seed, vocab[EMBEDDER_ID])
    return folders
