"""The documentation stands alone: the README stays a short front page, every Markdown link in
the repository's docs resolves to a file (and heading) inside the repository, and the outcome
vocabulary page names every outcome the engine can record."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from engine.domain.outcomes import Outcome

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    return {_slug(m) for m in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)}


def _links(page: Path) -> list[str]:
    return _LINK.findall(_FENCE.sub("", page.read_text(encoding="utf-8")))


def test_the_readme_is_a_short_front_page() -> None:
    assert (ROOT / "README.md").stat().st_size < 12 * 1024
    linked = {Path(unquote(t.split("#")[0])).name for t in _links(ROOT / "README.md")}
    assert "README.md" in linked  # docs/README.md, the index


def test_every_docs_page_is_listed_in_the_index() -> None:
    index = {t.split("#")[0] for t in _links(ROOT / "docs" / "README.md")}
    pages = {p.name for p in (ROOT / "docs").glob("*.md")} - {"README.md"}
    assert pages <= index, pages - index


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_stays_inside_the_repository_and_resolves(page: Path) -> None:
    for target in _links(page):
        assert "://" not in target and not target.startswith(("mailto:", "/")), (
            f"{page.name}: {target} points outside the repository")
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / unquote(path_part)).resolve() if path_part else page
        assert resolved.is_relative_to(ROOT), f"{page.name}: {target} leaves the repository"
        assert resolved.exists(), f"{page.name}: {target} does not exist"
        if anchor and resolved.suffix == ".md":
            assert anchor in _anchors(resolved), f"{page.name}: no heading #{anchor} in {resolved.name}"


def test_no_page_names_the_design_brief_outside_the_repository() -> None:
    for page in PAGES:
        assert "ARCHITECTURE.md" not in page.read_text(encoding="utf-8"), page.name


def test_the_outcome_page_names_every_outcome() -> None:
    text = (ROOT / "docs" / "outcomes.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `(\w+)` \|", text, flags=re.M))
    assert documented == {o.value for o in Outcome}, documented ^ {o.value for o in Outcome}
