"""README.md and docs/*.md: every relative link resolves, every anchor names a heading of its page.

Links are checked outside code (fenced blocks and inline code spans are not markdown); external
http(s) and mailto links are not fetched. An anchor, same-page (``#performance``) or on another
page (``docs/operations.md#performance``), must be the slug GitHub gives one of the target page's
headings: lowercase, punctuation other than hyphens and underscores dropped, each space a hyphen,
and a repeated slug suffixed -1, -2, ... Every docs/ page is linked from README and links back.
"""

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,}).*?^ {0,3}\1[ \t]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(?!`).+?(?<!`)\1(?!`)", re.S)
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.M)
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$", re.M)
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)  # http:, https:, mailto:, ...


def pages() -> list:
    return [README] + sorted(DOCS.glob("*.md"))


def _without_fences(text: str) -> str:
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading, before de-duplication."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link or image: its text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML tags
    text = text.replace("`", "").replace("*", "")
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set:
    """Every heading anchor of a markdown page, duplicates numbered as GitHub numbers them."""
    seen, out = {}, set()
    for match in HEADING.finditer(_without_fences(text)):
        base = slug(match.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(text: str) -> list:
    """Targets of the page's inline and reference-style links, code excluded."""
    prose = CODE_SPAN.sub("", _without_fences(text))
    return INLINE_LINK.findall(prose) + REFERENCE_LINK.findall(prose)


def problems(page: Path) -> list:
    """One line per link of ``page`` that does not resolve."""
    found = []
    for target in links(page.read_text(encoding="utf-8")):
        if EXTERNAL.match(target):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            found.append(f"{page.relative_to(ROOT)}: {target}: {path} does not exist")
            continue
        if anchor:
            if dest.is_dir() or dest.suffix != ".md":
                found.append(f"{page.relative_to(ROOT)}: {target}: an anchor into a file that is not markdown")
            elif anchor not in anchors(dest.read_text(encoding="utf-8")):
                found.append(f"{page.relative_to(ROOT)}: {target}: no heading of {dest.name} has the anchor #{anchor}")
    return found


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_resolves(page):
    assert links(page.read_text(encoding="utf-8")) or page == README, f"{page} links nowhere"
    assert not problems(page), "\n".join(problems(page))


def test_every_docs_page_is_linked_from_readme():
    targets = {(ROOT / t.partition("#")[0]).resolve() for t in links(README.read_text(encoding="utf-8"))
               if not EXTERNAL.match(t) and t.partition("#")[0]}
    docs = sorted(DOCS.glob("*.md"))
    assert docs, "docs/ holds no page"
    unlinked = [p.name for p in docs if p.resolve() not in targets]
    assert not unlinked, f"docs/ pages README.md does not link: {unlinked}"


@pytest.mark.parametrize("page", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_every_docs_page_opens_with_a_summary_that_links_back(page):
    text = page.read_text(encoding="utf-8")
    title, summary = text.split("\n\n", 2)[:2]
    assert title.startswith("# "), f"{page.name} does not open with a title"
    assert "(../README.md)" in summary, f"{page.name}'s first paragraph does not link back to README.md"


def test_readme_keeps_the_commands_ci_and_the_cluster_test_run():
    readme = README.read_text(encoding="utf-8")
    assert '```bash\npip install "torch==2.13.0" ".[test,reference]" && pytest -q tests\n```' in readme
    assert ('```bash\npip install "torch==2.13.0" ".[spark,plots]" && group-appeal-spark run --input '
            'examples/sample_corpus.jsonl --input-format json --carry-cols party,speaker,date --output out/\n```') in readme
    # tests/jobs/test_standalone_cluster.py runs the spark-submit block of docs/deploying.md
    deploying = (DOCS / "deploying.md").read_text(encoding="utf-8")
    assert deploying.count("```bash\npip wheel --no-deps . -w dist/") == 1


def test_slugs_follow_githubs_rules():
    assert slug("What happens to bad rows, failures and restarts") == "what-happens-to-bad-rows-failures-and-restarts"
    assert slug("Report, plots and `summary.json`") == "report-plots-and-summaryjson"
    assert slug("Overwrite vs. append") == "overwrite-vs-append"
    assert slug("Differences from group-appeal-detector 0.3.0") == "differences-from-group-appeal-detector-030"
    assert slug("`cluster_model/`") == "cluster_model"
    assert slug("On a cluster with spark-submit") == "on-a-cluster-with-spark-submit"
    page = "# Notes\n\n## Setup\n\n```bash\n# Setup\n```\n\n## Setup\n\n### Setup ##\n"
    assert anchors(page) == {"notes", "setup", "setup-1", "setup-2"}


def test_the_checker_finds_broken_links_and_anchors(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "other.md").write_text("# Other\n\n## Part two\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text("# Page\n\n[ok](other.md#part-two) [ok](#page) [web](https://example.org/#x) `[code](gone.md)`\n"
                    "[gone](gone.md) [bad](other.md#part-three) [bad](#nowhere)\n\n"
                    "```\n[fenced](gone-too.md)\n```\n", encoding="utf-8")
    found = problems(page)
    assert len(found) == 3, found
    assert any("gone.md does not exist" in p for p in found)
    assert any("#part-three" in p for p in found) and any("#nowhere" in p for p in found)
