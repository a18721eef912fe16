"""A deterministic corpus of House-of-Commons-style sentences with a realistic length distribution.

Clauses come from ``group_appeal_spark.testing.tiny_models.corpus()`` (sentences about social groups); each benchmark
sentence joins clauses until it reaches a length drawn from a log-normal distribution (median
about 24 words, clipped to 10-60 words), which is how parliamentary sentence lengths look.
"""

from __future__ import annotations

import random


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
