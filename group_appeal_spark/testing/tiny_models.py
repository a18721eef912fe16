"""Tiny, randomly initialised copies of the three models the reference loads from the hub.

The tests cannot reach the Hugging Face hub, so this module builds models of the real
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
"""

from __future__ import annotations

import hashlib
import io
import json
import pathlib
import random
import shutil
import tempfile

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

from group_appeal_spark.lib.models.hub import (  # noqa: E402 - the real repo ids, in one place
    DETECTOR_ID,
    DETECTOR_TOKENIZER_ID,
    EMBEDDER_BASE_ID,
    EMBEDDER_ID,
    STANCE_ID,
)

REPO_IDS = (DETECTOR_TOKENIZER_ID, DETECTOR_ID, STANCE_ID, EMBEDDER_BASE_ID, EMBEDDER_ID)

DETECTOR_LABELS = {0: "O", 1: "B-GROUP", 2: "I-GROUP"}

# One size for every tiny model (STYLE.md: 2 layers, hidden size 32).
_TINY = dict(
    num_hidden_layers=2,
    hidden_size=32,
    num_attention_heads=2,
    intermediate_size=64,
)
_PROJ_DIM = 128  # the reference's ModelMask projection size
_BPE_VOCAB = 2000
_SPM_VOCAB = 2000
_WORDPIECE_VOCAB = 2000
# Share of tokens the random detector tags "O" on the built-in corpus (see _calibrate_detector).
_DETECTOR_O_SHARE = 0.72
# Size of the detector's smooth position signal relative to the 0.02-std token embeddings.
_POSITION_WAVE_SCALE = 0.15

# --------------------------------------------------------------------------------------
# Built-in corpus: House-of-Commons-style sentences about social groups.
# --------------------------------------------------------------------------------------
_GROUPS = [
    "farmers", "young people", "working families", "pensioners", "nurses",
    "small businesses", "teachers", "doctors", "carers", "students", "veterans",
    "single parents", "disabled people", "the unemployed", "low-paid workers",
    "hard-working taxpayers", "commuters", "homeowners", "tenants", "first-time buyers",
    "immigrants", "asylum seekers", "refugees", "ethnic minorities", "women",
    "older people", "children", "schoolchildren", "fishermen", "miners", "steelworkers",
    "shopkeepers", "entrepreneurs", "self-employed people", "police officers",
    "firefighters", "armed forces personnel", "rural communities", "coastal towns",
    "northern towns", "Scottish voters", "Welsh farmers", "the people of Northern Ireland",
    "Londoners", "bankers", "landlords", "trade unions", "junior doctors", "midwives",
    "social workers", "care home residents", "people with dementia", "benefit claimants",
    "the poorest households", "the middle classes", "ordinary people", "hard-pressed families",
    "jobseekers", "apprentices", "graduates", "university lecturers", "headteachers",
    "parents", "grandparents", "young mothers", "working mothers", "victims of crime",
    "survivors of domestic abuse", "people on zero-hours contracts", "bus drivers",
    "train drivers", "dock workers", "manufacturers", "exporters", "the business community",
    "charities", "volunteers", "faith groups", "local councils", "constituents",
    "my constituents", "residents of Hull", "families in Cornwall", "the elderly",
    "people in poverty", "homeless people", "rough sleepers", "patients", "cancer patients",
    "people with learning disabilities", "British citizens", "EU nationals", "savers",
    "investors", "motorists", "cyclists", "pub landlords", "publicans", "the NHS workforce",
]
_VERBS_POS = [
    "support", "stand up for", "champion", "protect", "invest in", "help", "back",
    "deliver for", "listen to", "thank", "pay tribute to", "celebrate", "reward",
]
_VERBS_NEG = [
    "betray", "abandon", "ignore", "let down", "punish", "penalise", "neglect",
    "fail", "short-change", "leave behind", "overlook", "squeeze",
]
_POLICIES = [
    "the new housing strategy", "the spending review", "the budget", "the welfare reforms",
    "the immigration bill", "the minimum wage", "universal credit", "the bedroom tax",
    "tuition fees", "the pension triple lock", "the fuel duty freeze", "council tax",
    "the national insurance rise", "the energy price cap", "the apprenticeship levy",
    "the schools funding formula", "the NHS long-term plan", "the industrial strategy",
    "the agricultural subsidies", "the fishing quotas", "the rail franchise",
    "the green deal", "free school meals", "the childcare offer", "the living wage",
    "the sugar tax", "the austerity programme", "the local government settlement",
    "the flood defence scheme", "broadband investment", "the regional growth fund",
]
_OPENERS = [
    "Mr Speaker,", "Madam Deputy Speaker,", "Does the Minister agree that", "I put it to the House that",
    "Will the Secretary of State confirm that", "The truth is that", "Let me be clear:",
    "Members on both sides will know that", "In my constituency", "Over the past decade",
    "Since 2010", "Last week", "For too long", "Time and again", "Once again",
    "The Government's own figures show that", "My hon. Friend is right that",
    "The right hon. Gentleman knows that", "It is a disgrace that", "I am proud that",
]
_CLAUSES = [
    "{g} deserve better than {p}",
    "this Government will always {vp} {g}",
    "this Government continue to {vn} {g}",
    "{p} will {vn} {g} across the country",
    "{p} will {vp} {g} and {g2}",
    "{g} are paying the price for {p}",
    "we must {vp} {g} who keep this country running",
    "the Opposition would {vn} {g} and {g2}",
    "{g} have been hit hardest by {p}",
    "nobody has done more to {vp} {g} than this party",
    "the cost of living crisis is hurting {g}",
    "{g} in my constituency tell me that {p} is not working",
    "{p} was designed to {vp} {g}, yet it continues to {vn} {g2}",
    "thousands of {g} have written to me about {p}",
    "{g} and {g2} are the backbone of our economy",
    "we will not {vn} {g} while {g2} struggle to make ends meet",
    "the Minister should meet {g} to discuss {p}",
    "{g} face rising bills, longer waiting lists and falling wages",
    "{p} takes money from {g} to give tax cuts to {g2}",
    "I want to {vp} {g}, who work so hard for our communities",
]
_PLACES = [
    "Aberdeen", "Barnsley", "Bolton", "Bradford", "Brighton", "Bristol", "Burnley", "Cardiff",
    "Carlisle", "Chesterfield", "Colchester", "Coventry", "Darlington", "Derby", "Doncaster",
    "Dundee", "Durham", "Edinburgh", "Exeter", "Glasgow", "Gloucester", "Grimsby", "Halifax",
    "Harlow", "Hartlepool", "Ipswich", "Kettering", "Lancaster", "Leeds", "Leicester",
    "Lincoln", "Liverpool", "Luton", "Manchester", "Middlesbrough", "Newport", "Norwich",
    "Nottingham", "Oldham", "Oxford", "Peterborough", "Plymouth", "Portsmouth", "Preston",
    "Reading", "Rochdale", "Rotherham", "Salford", "Scunthorpe", "Sheffield", "Southampton",
    "Stockport", "Stoke-on-Trent", "Sunderland", "Swansea", "Swindon", "Telford", "Wakefield",
    "Walsall", "Warrington", "Wigan", "Wolverhampton", "Worcester", "Wrexham", "York",
    "Ynys Môn", "Belfast", "Londonderry", "Inverness", "Stornoway", "Penzance", "Truro",
]
_TOPICS = [
    "waiting times", "hospital beds", "ambulance response times", "food banks", "energy bills",
    "mortgage rates", "rents", "childcare costs", "bus routes", "rail fares", "pothole repairs",
    "flood defences", "broadband coverage", "police numbers", "knife crime", "antisocial behaviour",
    "prison overcrowding", "court backlogs", "legal aid", "school buildings", "class sizes",
    "special educational needs", "mental health services", "dental appointments", "GP surgeries",
    "social care", "adult social care funding", "housing supply", "planning permission",
    "green belt", "wind farms", "nuclear power", "carbon emissions", "air quality", "sewage discharges",
    "water bills", "fuel poverty", "cladding remediation", "leasehold reform", "pension credit",
    "winter fuel payments", "sick pay", "statutory maternity pay", "apprenticeship starts",
    "productivity", "exports", "tariffs", "customs checks", "fishing rights", "steel production",
    "manufacturing jobs", "high street closures", "business rates", "corporation tax",
    "defence spending", "overseas aid", "veterans' housing", "regional inequality",
    "devolution deals", "local bus services", "youth clubs", "libraries", "sports facilities",
    "literacy", "numeracy", "vocational qualifications", "research funding", "tuition debts",
]
_ADJECTIVES = [
    "unprecedented", "disgraceful", "welcome", "overdue", "inadequate", "ambitious", "modest",
    "shameful", "historic", "reckless", "sensible", "fragile", "chronic", "devastating",
    "significant", "remarkable", "unacceptable", "substantial", "desperate", "encouraging",
]
_EXTRA_TEMPLATES = [
    "In {place}, {g} are worried about {t}.",
    "The increase in {t} in {place} is {adj}, and {g} know it.",
    "I visited {place} on Friday, where {g} raised {t} with me.",
    "The figures for {t} are {adj}; {g} in {place} deserve an answer.",
    "What assessment has she made of the effect of {t} on {g} in {place}?",
    "Funding for {t} has been {adj}, leaving {g} without support.",
    "Will the Minister visit {place} to see the {adj} state of {t}?",
    # The stance hypotheses and the embedding prompt, so their words are in the vocabularies.
    "The text is positive towards {g}.",
    "The text is negative towards {g}.",
    "The text is neutral, or contains no stance, towards {g}.",
    "Social group of {g} is:",
]

_EXTRA = [
    "The Bill had its second reading on Tuesday 14 March, by 312 votes to 287.",
    "Inflation reached 11.1% in October, the highest rate for forty-one years.",
    "Will he give way? I will not give way; I have given way four times already.",
    "Order! The hon. Member must withdraw that remark immediately.",
    "We have delivered £3.5 billion for roads, railways and bridges in the north-east.",
    "Unemployment has fallen by 1.2 million since 2010, yet wages have stagnated.",
    "The committee's report, published in July, made seventeen recommendations.",
    "Is it not the case that productivity growth has been weaker than in France or Germany?",
    "Quiet diplomacy with Brussels, Washington and Beijing has achieved very little.",
    "The Chancellor's Autumn Statement quietly abandoned the fiscal rules.",
    "Amendment 7 would require an annual review of the scheme's effectiveness.",
    "What a quick, jovial, zealous expression of vexed opinion from the Benches opposite!",
    "Café owners, naïve économistes and Zoë's co-op: accents appear in real speeches too.",
    "Schedule 2, paragraph 4(b), sets out the exemptions for under-18s and over-65s.",
]


def corpus():
    """Return the built-in training corpus, a fixed list of English sentences.

    Returns
    -------
    list of str
        About 3,600 sentences in the style of UK parliamentary speech, many mentioning
        social groups. Generated from fixed word lists with a fixed ``random.Random``
        seed, so the list is identical on every call and machine.
    """
    rng = random.Random(20240501)
    out = list(_EXTRA)
    for i in range(2000):
        g, g2 = rng.sample(_GROUPS, 2)
        clause = rng.choice(_CLAUSES).format(
            g=g, g2=g2, p=rng.choice(_POLICIES), vp=rng.choice(_VERBS_POS),
            vn=rng.choice(_VERBS_NEG),
        )
        opener = rng.choice(_OPENERS)
        sentence = f"{opener} {clause}."
        if i % 3 == 0:
            sentence = sentence[0].upper() + sentence[1:]
        elif i % 3 == 1:
            sentence = clause[0].upper() + clause[1:] + "."
        out.append(sentence)
    for i in range(1500):
        sentence = rng.choice(_EXTRA_TEMPLATES).format(
            place=rng.choice(_PLACES), t=rng.choice(_TOPICS), adj=rng.choice(_ADJECTIVES),
            g=rng.choice(_GROUPS),
        )
        out.append(sentence[0].upper() + sentence[1:])
    out.extend(g[0].upper() + g[1:] + "." for g in _GROUPS)
    return out


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------
def _write_json(path, obj):
    # sort_keys + fixed indent: the same object always gives the same bytes.
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def _save_model(model, folder):
    """Save an HF model as config.json + model.safetensors, without a progress bar."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(folder)
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


class _ForkedSeed:
    """Seed torch inside a block without disturbing the caller's global RNG state."""

    def __init__(self, seed):
        self.seed = seed

    def __enter__(self):
        import torch

        self._fork = torch.random.fork_rng(devices=[])
        self._fork.__enter__()
        torch.manual_seed(self.seed)

    def __exit__(self, *exc):
        return self._fork.__exit__(*exc)


# --------------------------------------------------------------------------------------
# roberta-base: byte-level BPE tokenizer
# --------------------------------------------------------------------------------------
def _build_roberta_tokenizer(folder):
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


def _roberta_config(vocab_size, **extra):
    from transformers import RobertaConfig

    return RobertaConfig(
        vocab_size=vocab_size,
        max_position_embeddings=514,  # 512 + padding_idx + 1, as roberta-base
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        layer_norm_eps=1e-5,
        **_TINY,
        **extra,
    )


# --------------------------------------------------------------------------------------
# Detector: RobertaForTokenClassification with BIO tags
# --------------------------------------------------------------------------------------
def _calibrate_detector(model, tokenizer_folder, o_share=_DETECTOR_O_SHARE):
    """Set the classifier bias so that about ``o_share`` of tokens come out "O".

    Random weights give nearly uniform tags, i.e. a mention in almost every token. The bias
    is chosen from the model's own logits on the built-in corpus (a quantile of the
    O-vs-best-other margin), so every seed lands at the same rate. Among non-O tags, I-GROUP
    is favoured over B-GROUP so that consecutive tagged tokens mostly merge into one mention.
    """
    import torch
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_folder / "tokenizer.json"))
    tok.enable_padding(pad_id=1, pad_token="<pad>")
    enc = tok.encode_batch(corpus()[::10])  # one padded batch: a single forward pass
    ids = torch.tensor([e.ids for e in enc])
    mask = torch.tensor([e.attention_mask for e in enc])
    words = torch.tensor([[s == 0 for s in e.special_tokens_mask] for e in enc]) & mask.bool()
    model.eval()
    with torch.no_grad():
        model.classifier.bias.zero_()
        z = model(input_ids=ids, attention_mask=mask).logits[words]  # (n_tokens, 3)
        # B vs I: favour I so that runs merge, but keep some B so that B-GROUP appears.
        bi_shift = torch.quantile(z[:, 1] - z[:, 2], 0.9).item()
        z[:, 2] += bi_shift
        margin = z[:, 0] - torch.maximum(z[:, 1], z[:, 2])
        o_shift = -torch.quantile(margin, 1.0 - o_share).item()
        bias = torch.tensor([o_shift, 0.0, bi_shift], dtype=model.classifier.bias.dtype)
        # Round so tiny float differences across platforms cannot change the saved bytes.
        model.classifier.bias.copy_(torch.round(bias * 1e4) / 1e4)


def _smooth_positions(weight, pad_token_id):
    """Replace random position embeddings by slowly varying random waves.

    With i.i.d. random weights each token is tagged independently, so 30% non-"O" tokens
    give a one-token mention every few words. Position embeddings that change slowly along
    the sequence make neighbouring tokens' tags agree, so tagged tokens come in runs that
    the pipeline merges into multi-token mentions (a B-GROUP/I-GROUP run), as real ones are.
    """
    import math

    import torch

    n, dim = weight.shape
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    period = 8.0 + 12.0 * torch.rand(dim)  # 8 to 20 tokens per wave
    phase = 2 * math.pi * torch.rand(dim)
    waves = torch.sin(2 * math.pi * pos / period + phase) * _POSITION_WAVE_SCALE
    with torch.no_grad():
        weight.copy_(waves)
        weight[: pad_token_id + 1].zero_()  # ids <= padding_idx are never positions of tokens


def _build_detector(folder, vocab_size, seed, tokenizer_folder, o_share=_DETECTOR_O_SHARE):
    from transformers import RobertaForTokenClassification

    config = _roberta_config(
        vocab_size,
        id2label=dict(DETECTOR_LABELS),
        label2id={v: k for k, v in DETECTOR_LABELS.items()},
        architectures=["RobertaForTokenClassification"],
    )
    with _ForkedSeed(seed):
        model = RobertaForTokenClassification(config)
        _smooth_positions(model.roberta.embeddings.position_embeddings.weight, config.pad_token_id)
    _calibrate_detector(model, tokenizer_folder, o_share)
    _save_model(model, folder)


# --------------------------------------------------------------------------------------
# Stance: DeBERTa-v3 with a SentencePiece unigram tokenizer
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


def _build_stance(folder, seed, label_order, tokenizer_json):
    from transformers import DebertaV2Config, DebertaV2ForSequenceClassification

    if len(label_order) != 2 or len(set(label_order)) != 2:
        raise ValueError(f"stance_label_order must be two distinct labels, got {label_order!r}")
    n_pieces = _train_spm(folder)
    special = {
        "bos_token": "[CLS]",
        "eos_token": "[SEP]",
        "unk_token": "[UNK]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "mask_token": "[MASK]",
    }
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

    id2label = {0: label_order[0], 1: label_order[1]}
    config = DebertaV2Config(
        vocab_size=vocab_size,
        **_TINY,
        hidden_act="gelu",
        max_position_embeddings=512,
        type_vocab_size=0,
        relative_attention=True,
        position_buckets=256,
        norm_rel_ebd="layer_norm",
        share_att_key=True,
        pos_att_type=["p2c", "c2p"],
        max_relative_positions=-1,
        position_biased_input=False,
        layer_norm_eps=1e-7,
        pad_token_id=0,
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
        architectures=["DebertaV2ForSequenceClassification"],
    )
    with _ForkedSeed(seed + 1):
        model = DebertaV2ForSequenceClassification(config)
    _save_model(model, folder)


# --------------------------------------------------------------------------------------
# Embedder: BERT WordPiece tokenizer + ModelMask state dict
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


def _build_wordpiece(folder, bert_vocab):
    """Write vocab.txt, tokenizer.json, tokenizer_config.json, special_tokens_map.json (uncased)."""
    from tokenizers import BertWordPieceTokenizer

    if bert_vocab is not None:
        shutil.copyfile(bert_vocab, folder / "vocab.txt")
    else:
        (folder / "vocab.txt").write_text("\n".join(_wordpiece_vocab()) + "\n", encoding="utf-8")

    tok = BertWordPieceTokenizer(str(folder / "vocab.txt"), lowercase=True, strip_accents=None, clean_text=True)
    tok.save(str(folder / "tokenizer.json"))
    special = {
        "unk_token": "[UNK]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "mask_token": "[MASK]",
    }
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


def _build_embedder(embedder_folder, base_folder, seed, bert_vocab):
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig, BertModel

    vocab_size = _build_wordpiece(embedder_folder, bert_vocab)
    config = BertConfig(vocab_size=vocab_size, max_position_embeddings=512, type_vocab_size=2, **_TINY)
    config.save_pretrained(base_folder)

    with _ForkedSeed(seed + 2):
        # The reference builds AutoModel.from_config(config): a BertModel with its pooler.
        encoder = BertModel(config, add_pooling_layer=True)
        projector = torch.nn.Sequential(torch.nn.Linear(config.hidden_size, _PROJ_DIM))
    state = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    state.update({f"projector.{k}": v for k, v in projector.state_dict().items()})
    # Fresh contiguous copies: safetensors refuses shared or strided storage.
    state = {k: v.detach().clone().contiguous() for k, v in state.items()}
    save_file(state, str(embedder_folder / "model.safetensors"), metadata={"format": "pt"})


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------
def _repo_folder(out_dir, repo_id):
    return pathlib.Path(out_dir) / repo_id.replace("/", "--")


def build_tiny_repos(
    out_dir,
    *,
    seed=0,
    bert_vocab=None,
    stance_label_order=("entailment", "not_entailment"),
    stance_tokenizer_json=False,
    detector_o_share=_DETECTOR_O_SHARE,
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
    out_dir = pathlib.Path(out_dir)
    folders = {repo_id: _repo_folder(out_dir, repo_id) for repo_id in REPO_IDS}
    for folder in folders.values():
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)

    tok_folder = folders[DETECTOR_TOKENIZER_ID]
    bpe_size = _build_roberta_tokenizer(tok_folder)
    # roberta-base ships a config.json (AutoTokenizer reads model_type from it) and no
    # tokenizer_config.json, so model_max_length is unset there as on the real hub repo.
    _roberta_config(bpe_size, architectures=["RobertaForMaskedLM"]).to_json_file(tok_folder / "config.json")

    _build_detector(folders[DETECTOR_ID], bpe_size, seed, tok_folder, detector_o_share)
    _build_stance(folders[STANCE_ID], seed, tuple(stance_label_order), stance_tokenizer_json)
    _build_embedder(folders[EMBEDDER_ID], folders[EMBEDDER_BASE_ID], seed, bert_vocab)
    return folders


# Optional files transformers asks the hub for when loading configs and tokenizers.
_PROBED_FILES = (
    "config.json",
    "tokenizer_config.json",
    "tokenizer.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
    "generation_config.json",
    "processor_config.json",
    "preprocessor_config.json",
)


def _snapshot_sha(folder):
    """sha1 over the sorted relative file names and contents: a stable fake commit id."""
    h = hashlib.sha1()
    for path in sorted(p for p in pathlib.Path(folder).rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        h.update(rel.encode("utf-8") + b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def install_into_hub_cache(folder, cache_dir, repo_id):
    """Lay a repo folder out as huggingface_hub's cache for ``repo_id``.

    Writes ``cache_dir/models--<org>--<name>/refs/main`` (a commit sha derived from the
    files), ``snapshots/<sha>/<files>`` as plain copies (no blobs or symlinks, so the
    cache survives being zipped or shipped to Spark workers) and, as an online download
    leaves them, ``.no_exist/<sha>/<name>`` markers for optional files the repo lacks.

    Parameters
    ----------
    folder : str or path-like
        A folder as written by :func:`build_tiny_repos`.
    cache_dir : str or path-like
        The hub cache root (what ``HF_HUB_CACHE`` points at).
    repo_id : str
        e.g. ``"roberta-base"`` or ``"maxwlnd/cl_mention_embedding"``.

    Returns
    -------
    pathlib.Path
        The snapshot folder.
    """
    folder = pathlib.Path(folder)
    repo_dir = pathlib.Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
    sha = _snapshot_sha(folder)
    snapshot = repo_dir / "snapshots" / sha
    if snapshot.exists():
        shutil.rmtree(snapshot)
    shutil.copytree(folder, snapshot)
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(sha, encoding="utf-8")
    # An online run records each file the hub answered 404 for as .no_exist/<sha>/<name>;
    # offline, transformers then treats the file as absent instead of raising "couldn't
    # connect". AutoTokenizer needs this for config.json in the embedder repo, which has none.
    no_exist = repo_dir / ".no_exist" / sha
    for name in _PROBED_FILES:
        if not (folder / name).exists():
            no_exist.mkdir(parents=True, exist_ok=True)
            (no_exist / name).write_bytes(b"")
    return snapshot


def build_tiny_hub_cache(cache_dir, *, seed=0, bert_vocab=None, **kw):
    """Build the five tiny repos and install them into a hub cache.

    Parameters
    ----------
    cache_dir : str or path-like
        Hub cache root; point ``HF_HUB_CACHE`` at it and set ``HF_HUB_OFFLINE=1`` before
        ``huggingface_hub`` is first imported.
    seed, bert_vocab, **kw
        Passed to :func:`build_tiny_repos`.

    Returns
    -------
    dict of str to pathlib.Path
        ``{repo_id: snapshot folder}``.
    """
    cache_dir = pathlib.Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tiny_repos_") as tmp:
        folders = build_tiny_repos(tmp, seed=seed, bert_vocab=bert_vocab, **kw)
        return {rid: install_into_hub_cache(f, cache_dir, rid) for rid, f in folders.items()}
