"""The documentation stays true to the code and to itself: every option in docs/options.md exactly once,
a README a newcomer reads in five minutes, and no relative link (or #anchor) pointing at nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_kick.options import OPTIONS

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def _outside_code(text: str) -> str:
    """The text with fenced code blocks and inline code removed (a link in code is not a link)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown file: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.S | re.M)
    found, seen = set(), {}
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        found.add(slug if n == 0 else f"{slug}-{n}")
    return found


def _option_rows() -> list[str]:
    """The first cell of every table row of docs/options.md that names an option."""
    rows = []
    for line in (ROOT / "docs" / "options.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("|"):
            first = line.split("|")[1]
            rows += re.findall(r"`(--kick-[a-z-]+)", first)
    return rows


def test_every_option_is_one_row_of_docs_options():
    rows = _option_rows()
    defined = [opt.flag_name for opt in OPTIONS]
    assert len(defined) == len(set(defined))
    for flag in defined:
        assert rows.count(flag) == 1, f"{flag}: {rows.count(flag)} rows in docs/options.md, want exactly 1"
    assert sorted(set(rows) - set(defined)) == [], "docs/options.md lists options that options.py does not define"


def test_every_option_row_names_its_ini_key():
    text = (ROOT / "docs" / "options.md").read_text(encoding="utf-8")
    for opt in OPTIONS:
        [row] = [
            line
            for line in text.splitlines()
            if line.startswith(f"| `{opt.flag_name}`") or line.startswith(f"| `{opt.flag_name} ")
        ]
        assert f"`{opt.ini}`" in row, f"{opt.flag_name}: its ini key {opt.ini} is not in its row"


def test_options_are_tabled_only_in_docs_options():
    """Other pages link to docs/options.md instead of repeating an option table."""
    for page in PAGES:
        if page.name == "options.md":
            continue
        rows = [
            line
            for line in page.read_text(encoding="utf-8").splitlines()
            if re.match(r"\| `--kick-[a-z-]+[^`]*` \|", line)
        ]
        assert len(rows) <= 1, f"{page.relative_to(ROOT)} has an option table: {rows[:3]}"


def test_readme_is_at_most_250_lines():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_at_files_that_exist(page):
    broken = []
    for target in LINK.findall(_outside_code(page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        where = (page.parent / path).resolve() if path else page
        if not where.exists():
            broken.append(f"{target}: no such file")
        elif anchor and where.suffix == ".md" and anchor not in _anchors(where):
            broken.append(f"{target}: no heading #{anchor} in {where.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)
