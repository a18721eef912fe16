"""Deterministic benchmark corpora of House-of-Commons-style text.

* :func:`make_corpus` (``synthetic``): sentences of 10-60 words. Clauses come from
  ``group_appeal_spark.testing.tiny_models.corpus()`` (sentences about social groups); each sentence
  joins clauses until it reaches a length drawn from a log-normal distribution (median about 24
  words), which is how parliamentary sentence lengths look.
* :func:`make_sentences` (``sentences``): sentences whose character lengths follow real manifesto
  sentences (:data:`SENTENCE_CHARS`), built from the testing corpus's word lists, so that the
  benchmark tokenizers (trained on them) split them as they split their training text.
* :func:`make_speeches` (``speeches``): documents of such sentences, median
  :data:`SPEECH_MEDIAN_CHARS` characters, log-normal with a long right tail.

``python bench/corpus.py 1500`` prints :func:`check_lengths` for both of the last two.
"""

from __future__ import annotations

import bisect
import functools
import math
import random
from statistics import NormalDist


def make_corpus(n: int, *, seed: int = 7) -> list[str]:
    """``n`` sentences of 10-60 words, the same for the same ``n`` and ``seed``."""
    from group_appeal_spark.testing.tiny_models import corpus

    clauses = [s.rstrip(".") for s in corpus()]
    rng = random.Random(seed)
    joins = [", and ", "; ", ", but ", " because ", ", while ", ", so "]
    out = []
    for _ in range(n):
        target = int(min(60, max(10, rng.lognormvariate(3.2, 0.45))))
        words: list[str] = []
        text = ""
        while len(words) < target:
            clause = rng.choice(clauses)
            text = clause if not text else text + rng.choice(joins) + clause[0].lower() + clause[1:]
            words = text.split()
        text = " ".join(words[:target]).rstrip(",;") + "."
        out.append(text[0].upper() + text[1:])
    return out


def length_stats(texts) -> dict:
    import numpy as np

    n = np.array([len(t.split()) for t in texts])
    return {"sentences": len(texts), "words_mean": float(n.mean()), "words_p10": float(np.percentile(n, 10)),
            "words_p50": float(np.median(n)), "words_p90": float(np.percentile(n, 90))}


# ----------------------------------------------------------------------------------------------
# sentences and speeches with the character lengths of real input
# ----------------------------------------------------------------------------------------------
# Character lengths of real manifesto sentences: percentile -> characters (their mean is 110).
SENTENCE_CHARS = {10: 29, 50: 94, 90: 201, 99: 444}
SENTENCE_MEAN_CHARS = 110
SENTENCE_CLIP = (12, 1000)
# Speeches: log-normal document lengths around this median (p90 about 2.8x, p99 about 6.4x it).
SPEECH_MEDIAN_CHARS, SPEECH_SIGMA, SPEECH_CLIP = 1200, 0.8, (150, 20_000)
JOINS = [", and ", "; ", ", but ", " because ", ", while ", ", so ", " and "]


def sentence_chars_quantile(u: float) -> float:
    """The sentence length (characters) at quantile ``u`` of :data:`SENTENCE_CHARS`.

    Log-length is linear in the normal score between the given percentiles and goes on with the
    end segments' slopes beyond them (a piecewise log-normal): one log-normal cannot fit, the left
    tail is heavier than the right one. Its mean is 109.6, clipped to :data:`SENTENCE_CLIP`.
    """
    normal = NormalDist()
    zs = [normal.inv_cdf(p / 100) for p in SENTENCE_CHARS]
    ys = [math.log(c) for c in SENTENCE_CHARS.values()]
    z = normal.inv_cdf(u)
    i = min(max(bisect.bisect(zs, z), 1), len(zs) - 1)
    return math.exp(ys[i - 1] + (ys[i] - ys[i - 1]) * (z - zs[i - 1]) / (zs[i] - zs[i - 1]))


def stratified(n: int, rng: random.Random, quantile, clip: tuple[int, int]) -> list[int]:
    """``n`` integer draws from the distribution with this quantile function, one from each of ``n``
    equal strata, shuffled: the percentiles of the sample sit on the distribution's for any seed
    (plain draws put the 99th percentile of 1,500 sentences about 7% off)."""
    lo, hi = clip
    values = [min(hi, max(lo, round(quantile((i + rng.random()) / n)))) for i in range(n)]
    rng.shuffle(values)
    return values


@functools.cache
def _lists() -> dict:
    """The word lists of the testing corpus (group_appeal_spark/testing/data/*.txt)."""
    from group_appeal_spark.testing.corpus import _entries

    lists = {name: _entries(name) for name in ("groups", "clauses", "policies", "verbs_positive",
                                               "verbs_negative", "openers", "places", "topics", "adjectives")}
    # templates.txt ends with the stance hypotheses and the embedding prompt: no sentences of a speech
    lists["templates"] = tuple(t.rstrip(".?") for t in _entries("templates")
                               if not t.startswith(("The text is", "Social group")))
    lists["group_first"] = tuple(c for c in lists["clauses"] if c.startswith("{g}"))
    return lists


def _clause(rng: random.Random, kinds=("clauses", "clauses", "templates")) -> str:
    """One clause about a social group, its placeholders filled."""
    w = _lists()
    g, g2 = rng.sample(w["groups"], 2)
    return rng.choice(w[rng.choice(kinds)]).format(
        g=g, g2=g2, p=rng.choice(w["policies"]), vp=rng.choice(w["verbs_positive"]),
        vn=rng.choice(w["verbs_negative"]), place=rng.choice(w["places"]), t=rng.choice(w["topics"]),
        adj=rng.choice(w["adjectives"]))


def _inner(clause: str) -> str:
    """``clause`` to follow an opener or another clause: a capital first letter lowered (not "I")."""
    return clause if clause.startswith("I ") else clause[0].lower() + clause[1:]


def make_sentence(rng: random.Random, chars: int) -> str:
    """A sentence of about ``chars`` characters: clauses joined, cut at the nearest word boundary.

    Short sentences start with a group (``{g} deserve better than ...``), so that cutting keeps it;
    longer ones may start with an opener (``Mr Speaker,``, ``Does the Minister agree that``).
    """
    if chars < 40:
        text = _clause(rng, ("group_first",))
    else:
        text = _clause(rng)
        if rng.random() < 0.4:
            text = rng.choice(_lists()["openers"]) + " " + _inner(text)
    while len(text) < chars:
        text += rng.choice(JOINS) + _inner(_clause(rng))
    words = text.split(" ")
    out = words[0]
    for word in words[1:]:  # keep a word if at least half of it fits before the full stop
        if len(out) + 1 + len(word) / 2 > chars - 1:
            break
        out += " " + word
    end = "?" if out.startswith(("Does", "Will", "What", "Is ")) else "."
    return out[0].upper() + out[1:].rstrip(",;:") + end


def make_sentences(n: int, *, seed: int = 11) -> list[str]:
    """``n`` sentences whose character lengths follow :data:`SENTENCE_CHARS`; the same for the same
    ``n`` and ``seed``."""
    rng = random.Random(seed)
    return [make_sentence(rng, chars) for chars in stratified(n, rng, sentence_chars_quantile, SENTENCE_CLIP)]


def make_speeches(n: int, *, seed: int = 13) -> list[str]:
    """``n`` speeches: sentences as :func:`make_sentences`'s (lengths drawn at random) up to a speech
    length from a log-normal of median :data:`SPEECH_MEDIAN_CHARS`; the last sentence is cut to fit."""
    rng = random.Random(seed)
    speech_quantile = lambda u: SPEECH_MEDIAN_CHARS * math.exp(SPEECH_SIGMA * NormalDist().inv_cdf(u))
    speeches = []
    for target in stratified(n, rng, speech_quantile, SPEECH_CLIP):
        sentences, length = [], -1
        while length + 1 < target:
            chars = round(min(max(sentence_chars_quantile(rng.random()), SENTENCE_CLIP[0]), SENTENCE_CLIP[1]))
            sentences.append(make_sentence(rng, min(chars, max(SENTENCE_CLIP[0], target - length - 1))))
            length += 1 + len(sentences[-1])
        speeches.append(" ".join(sentences))
    return speeches


def char_stats(texts) -> dict:
    """Character lengths: ``texts``, ``mean`` and ``p10`` ``p50`` ``p90`` ``p99``."""
    import numpy as np

    n = np.array([len(t) for t in texts])
    return {"texts": len(texts), "mean": float(n.mean()),
            **{f"p{p}": float(np.percentile(n, p)) for p in (10, 50, 90, 99)}}


def check_lengths(texts, targets=None, *, tolerance=0.05) -> bool:
    """Print the realised mean and percentiles of the character lengths of ``texts`` against
    ``targets`` (default: :data:`SENTENCE_CHARS` and :data:`SENTENCE_MEAN_CHARS`) and the share of
    texts that name a group of the word lists; whether each is within ``tolerance`` of its target."""
    if targets is None:
        targets = {"mean": SENTENCE_MEAN_CHARS, **{f"p{p}": c for p, c in SENTENCE_CHARS.items()}}
    stats = char_stats(texts)
    ok = True
    for key, value in stats.items():
        if key in targets:
            error = value / targets[key] - 1
            ok &= abs(error) <= tolerance
            print(f"  {key:>4}: {value:8.1f} chars, target {targets[key]:6}, {error:+.1%}")
        elif key != "texts":
            print(f"  {key:>4}: {value:8.1f} chars")
    groups = _lists()["groups"]
    named = sum(any(g in t for g in groups) for t in texts) / len(texts)
    print(f"  {len(texts):,} texts; {named:.0%} name a group; within {tolerance:.0%} of every target: {ok}")
    return ok


if __name__ == "__main__":
    import sys

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1500
    print("sentences:")
    sentences_ok = check_lengths(make_sentences(n))
    print(f"speeches (target: median {SPEECH_MEDIAN_CHARS} characters):")
    speeches_ok = check_lengths(make_speeches(n), {"p50": SPEECH_MEDIAN_CHARS})
    sys.exit(0 if sentences_ok and speeches_ok else 1)
