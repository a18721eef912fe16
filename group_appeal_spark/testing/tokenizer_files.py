"""Tokenizers of the three real kinds, trained on the built-in corpus and written as hub repos lay them out.

==========================  ===========================================================
:func:`write_bpe`           byte-level BPE like roberta-base's (``vocab.json``,
                            ``merges.txt``, ``tokenizer.json``)
:func:`write_sentencepiece` unigram ``spm.model`` like deberta-v3's, optionally also
                            converted to ``tokenizer.json``
:func:`write_wordpiece`     uncased WordPiece like bert-base-uncased's (``vocab.txt``,
                            ``tokenizer.json``)
==========================  ===========================================================

Each returns the number of ids its tokenizer knows, i.e. the smallest ``vocab_size`` a model
for it may have. The same corpus always gives byte-identical files.
"""

from __future__ import annotations

import io
import json
import shutil

from group_appeal_spark.testing.corpus import corpus

__all__ = ["write_bpe", "write_sentencepiece", "write_wordpiece"]

_BPE_VOCAB = 2000
_SPM_VOCAB = 2000
_WORDPIECE_VOCAB = 2000


def _write_json(path, obj):
    # sort_keys + fixed indent: the same object always gives the same bytes.
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------------------
# roberta-base: byte-level BPE
# --------------------------------------------------------------------------------------
def write_bpe(folder):
    """Train a byte-level BPE like roberta-base's; write vocab.json, merges.txt, tokenizer.json."""
    from tokenizers import (
        AddedToken,
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=_BPE_VOCAB - 1,  # <mask> is added last, as in roberta-base (id 50264)
        min_frequency=2,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    # roberta-base's <mask> strips the space on its left, so "a <mask>" -> ["a", "<mask>"].
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, rstrip=False, normalized=False, special=True)])
    tok.post_processor = processors.RobertaProcessing(
        ("</s>", tok.token_to_id("</s>")),
        ("<s>", tok.token_to_id("<s>")),
        trim_offsets=True,
        add_prefix_space=False,
    )
    tok.save(str(folder / "tokenizer.json"))

    # vocab.json / merges.txt as the slow GPT-2 format has them (roberta-base ships both).
    spec = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = dict(spec["model"]["vocab"])
    vocab["<mask>"] = tok.token_to_id("<mask>")
    ordered = dict(sorted(vocab.items(), key=lambda kv: kv[1]))
    (folder / "vocab.json").write_text(json.dumps(ordered, ensure_ascii=False), encoding="utf-8")
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return tok.get_vocab_size(with_added_tokens=True)


# --------------------------------------------------------------------------------------
# deberta-v3: SentencePiece unigram
# --------------------------------------------------------------------------------------
def _train_spm(folder):
    """Train a unigram spm.model laid out like deberta-v3's ([PAD] [CLS] [SEP] [UNK] = 0..3)."""
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus()),
        model_writer=buf,
        model_type="unigram",
        vocab_size=_SPM_VOCAB,
        hard_vocab_limit=False,
        character_coverage=1.0,
        pad_id=0, pad_piece="[PAD]",
        bos_id=1, bos_piece="[CLS]",
        eos_id=2, eos_piece="[SEP]",
        unk_id=3, unk_piece="[UNK]",
        num_threads=1,  # one thread: the EM steps then run in a fixed order
        shuffle_input_sentence=False,
        input_sentence_size=0,
        minloglevel=2,
    )
    (folder / "spm.model").write_bytes(buf.getvalue())
    sp = spm.SentencePieceProcessor(model_proto=buf.getvalue())
    return sp.get_piece_size()


# The BERT-style special tokens both the stance (SentencePiece) and embedder (WordPiece) repos use.
_BERT_SPECIAL_TOKENS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
                        "mask_token": "[MASK]"}


def write_sentencepiece(folder, *, tokenizer_json=False):
    """Write spm.model, tokenizer_config.json, special_tokens_map.json and, if asked, tokenizer.json."""
    n_pieces = _train_spm(folder)
    # DeBERTa-v3 maps bos/eos onto [CLS]/[SEP]; key order kept so the file stays byte-identical
    special = {"bos_token": "[CLS]", "eos_token": "[SEP]", **_BERT_SPECIAL_TOKENS}
    _write_json(folder / "special_tokens_map.json", special)
    _write_json(
        folder / "tokenizer_config.json",
        {
            "tokenizer_class": "DebertaV2Tokenizer",
            "do_lower_case": False,
            "split_by_punct": False,
            "vocab_type": "spm",
            "model_max_length": 512,
            "sp_model_kwargs": {},
            **special,
        },
    )
    # [MASK] is not a piece of spm.model; the tokenizer appends it (deberta-v3: id 128000).
    vocab_size = n_pieces + 1
    if tokenizer_json:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(folder))
        if len(tok) != vocab_size:
            raise RuntimeError(f"converted stance tokenizer has {len(tok)} ids, expected {vocab_size}")
        tok.backend_tokenizer.save(str(folder / "tokenizer.json"))
    return vocab_size


# --------------------------------------------------------------------------------------
# bert-base-uncased: WordPiece
# --------------------------------------------------------------------------------------
def _wordpiece_vocab():
    """An uncased WordPiece vocabulary from the corpus: specials, characters, frequent words.

    Built by counting rather than with tokenizers' WordPieceTrainer, whose ordering of
    equally frequent tokens changes from run to run (the files must be byte-identical).
    """
    from collections import Counter

    from tokenizers import normalizers, pre_tokenizers

    norm = normalizers.BertNormalizer(lowercase=True, strip_accents=True, clean_text=True)
    pre = pre_tokenizers.BertPreTokenizer()
    words = Counter(
        w for sentence in corpus() for w, _ in pre.pre_tokenize_str(norm.normalize_str(sentence))
    )
    chars = sorted({c for w in words for c in w})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars + ["##" + c for c in chars]
    taken = set(vocab)
    for w, _ in sorted(words.items(), key=lambda kv: (-kv[1], kv[0])):
        if len(vocab) >= _WORDPIECE_VOCAB:
            break
        if w not in taken:
            vocab.append(w)
            taken.add(w)
    return vocab


def write_wordpiece(folder, bert_vocab=None):
    """Write vocab.txt, tokenizer.json, tokenizer_config.json, special_tokens_map.json (uncased).

    ``bert_vocab`` is a ``vocab.txt`` to copy instead of the one built from the corpus.
    """
    from tokenizers import BertWordPieceTokenizer

    if bert_vocab is not None:
        shutil.copyfile(bert_vocab, folder / "vocab.txt")
    else:
        (folder / "vocab.txt").write_text("\n".join(_wordpiece_vocab()) + "\n", encoding="utf-8")

    tok = BertWordPieceTokenizer(str(folder / "vocab.txt"), lowercase=True, strip_accents=None, clean_text=True)
    tok.save(str(folder / "tokenizer.json"))
    special = dict(_BERT_SPECIAL_TOKENS)
    _write_json(folder / "special_tokens_map.json", special)
    _write_json(
        folder / "tokenizer_config.json",
        {
            "tokenizer_class": "BertTokenizer",
            "do_lower_case": True,
            "tokenize_chinese_chars": True,
            "strip_accents": None,
            "model_max_length": 512,
            **special,
        },
    )
    return tok.get_vocab_size()
