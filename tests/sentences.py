"""A deterministic set of varied sentences in the style of parliamentary speech, for tests."""

import random

GROUPS = [
    "farmers", "young people", "working families", "pensioners", "nurses", "small businesses",
    "the unemployed", "single mothers", "disabled people", "students", "hard-working taxpayers",
    "the elderly", "migrant workers", "teachers", "doctors and nurses", "families on low incomes",
    "our armed forces", "veterans", "fishermen", "rural communities", "the British people",
    "ordinary working people", "children in care", "carers", "self-employed people",
    "first-time buyers", "commuters", "the Welsh", "asylum seekers", "bankers", "landlords",
    "tenants", "junior doctors", "people with mental health problems", "Café owners",
    "résidents of Île-de-France", "Müller's employees", "women", "men", "LGBT+ people",
]
VERBS = [
    "support", "let down", "stand with", "betrayed", "are proud of", "must protect",
    "will never abandon", "have failed", "owe a great deal to", "are ignoring",
]
OPENERS = [
    "", "Mr Speaker, ", "Madam Deputy Speaker, ", "Frankly, ", "As my hon. Friend said, ",
    "In 2019, ", "Once again, ", "Let me be clear: ", "",
]
CLOSERS = [
    ".", "!", "?", " and we will not forget it.", ", and that is a disgrace.",
    " — every single one of them.", "; the Government must act.", " (and their families).",
    " 🙂", "...",
]


def sentences(n: int = 240, seed: int = 7) -> list[str]:
    """``n`` varied sentences; the same list for the same seed."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        kind = i % 6
        g1, g2 = rng.sample(GROUPS, 2)
        if kind == 0:
            s = f"{rng.choice(OPENERS)}We {rng.choice(VERBS)} {g1}{rng.choice(CLOSERS)}"
        elif kind == 1:
            s = f"{g1.capitalize()} and {g2} {rng.choice(VERBS)} this policy{rng.choice(CLOSERS)}"
        elif kind == 2:
            s = (f"{rng.choice(OPENERS)}The Government {rng.choice(VERBS)} {g1}, while {g2} "
                 f"pay {rng.randint(2, 40)}.{rng.randint(0, 9)}% more in tax{rng.choice(CLOSERS)}")
        elif kind == 3:
            s = f"\"{g1.capitalize()}\", she said, \"deserve better than {g2}\"{rng.choice(CLOSERS)}"
        elif kind == 4:
            words = rng.sample(GROUPS, 5)
            s = (f"{rng.choice(OPENERS)}For {', '.join(words[:-1])} and {words[-1]}, this budget "
                 f"means higher bills, longer waiting lists and fewer opportunities in every region "
                 f"of the country{rng.choice(CLOSERS)}")
        else:
            s = rng.choice([g1.capitalize() + ".", f"What about {g1}?", f"{g1}", f"  {g1} matter  "])
        out.append(s)
    return out
