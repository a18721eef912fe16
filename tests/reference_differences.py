"""The documented differences from group-appeal-detector 0.3.0 (docs/reference-differences.md),
applied to the reference's output so that the differential tests compare like with like."""


def mention_as_ours(text: str, span: str, start: int, end: int):
    """A reference mention as this package gives it: ``(span, start, end)``, or None where it is
    dropped (a token group covering no character). Where the byte-level decoding is not the text
    (a cut character decodes to U+FFFD), the span is ``text[start:end]``."""
    original = text[start:end]
    if not original.strip():
        return None
    return (original if span.strip() != original.strip() else span), start, end


def mentions_as_ours(text: str, mentions) -> list:
    """``mention_as_ours`` over ``(span, start, end)`` triples, the dropped ones left out."""
    return [m for m in (mention_as_ours(text, *triple) for triple in mentions) if m is not None]
