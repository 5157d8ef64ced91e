"""The repository's Markdown links resolve: every relative link in the README, docs/, bench/, hooks/ and the policies'
README names a file (and, for a heading anchor, a heading) in the repository, and no Markdown file reaches outside the
repository by a relative path. Readers of the project have only the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The documents whose links must resolve (globs relative to the repository root).
CHECKED = ("README.md", "docs/*.md", "bench/*.md", "hooks/**/*.md", "policies/README.md")

_FENCE = re.compile(r"^\s*(```|~~~)")
_INLINE_CODE = re.compile(r"`[^`]*`")
# [text](target "title") and ![alt](target); the target ends at whitespace or the closing parenthesis.
_INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")


def markdown_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks, with inline code removed: links in code are examples, not links."""
    lines, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(_INLINE_CODE.sub("", line))
    return lines


def links_in(text: str) -> list[str]:
    found: list[str] = []
    for line in markdown_lines(text):
        found += _INLINE_LINK.findall(line)
        reference = _REFERENCE.match(line)
        if reference:
            found.append(reference.group(1))
    return found


def anchor_of(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (but - and _), spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors_in(text: str) -> set[str]:
    anchors: set[str] = set()
    for line in markdown_lines(text):
        heading = _HEADING.match(line)
        if heading:
            base = anchor_of(heading.group(1))
            anchor, n = base, 0
            while anchor in anchors:  # GitHub numbers repeated headings: name, name-1, name-2
                n += 1
                anchor = f"{base}-{n}"
            anchors.add(anchor)
    return anchors


def link_problems(document: Path, root: Path) -> list[str]:
    """Why each relative link of `document` does not resolve inside `root` (empty when all do)."""
    problems = []
    text = document.read_text(encoding="utf-8")
    for target in links_in(text):
        if _SCHEME.match(target) or target.startswith("//"):
            continue  # a URL: not this test's business
        path_part, _, anchor = target.partition("#")
        resolved = (document.parent / path_part).resolve() if path_part else document.resolve()
        where = f"{document.relative_to(root)}: {target}"
        if path_part.startswith("/"):
            problems.append(f"{where}: an absolute path; link relative to the file")
        elif not resolved.is_relative_to(root.resolve()):
            problems.append(f"{where}: points outside the repository")
        elif not resolved.exists():
            problems.append(f"{where}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors_in(resolved.read_text(encoding="utf-8")):
            problems.append(f"{where}: no heading with anchor #{anchor}")
    return problems


def checked_documents(root: Path) -> list[Path]:
    documents = {path for pattern in CHECKED for path in root.glob(pattern) if path.is_file()}
    return sorted(documents)


def all_markdown(root: Path) -> list[Path]:
    """Every Markdown file of the repository, leaving out tool folders (virtualenvs, caches, node_modules)."""
    return sorted(
        path
        for path in root.rglob("*.md")
        if not any(part.startswith(".") or part == "node_modules" for part in path.relative_to(root).parts[:-1])
    )


def test_the_checked_documents_exist() -> None:
    names = {str(path.relative_to(ROOT)) for path in checked_documents(ROOT)}
    assert {"README.md", "docs/architecture.md", "docs/interface.md", "docs/detectors.md", "bench/RESULTS.md"} <= names


@pytest.mark.parametrize("document", checked_documents(ROOT), ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_resolves_in_the_repository(document: Path) -> None:
    assert link_problems(document, ROOT) == []


def test_no_markdown_file_links_outside_the_repository() -> None:
    outside = [
        problem
        for document in all_markdown(ROOT)
        for problem in link_problems(document, ROOT)
        if "outside the repository" in problem or "absolute path" in problem
    ]
    assert outside == []


def test_the_checker_finds_broken_links_outside_links_and_missing_anchors(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Title\n\n## How well it detects (honestly)\n", encoding="utf-8")
    page = tmp_path / "README.md"
    page.write_text(
        "\n".join(
            [
                "[fine](docs/a.md) [anchor](docs/a.md#how-well-it-detects-honestly) [self](#intro) ![img](docs/a.md)",
                "[gone](docs/missing.md) [outside](../elsewhere/notes.md) [bad anchor](docs/a.md#nowhere)",
                "[abs](/etc/passwd) [web](https://example.com/x.md) `[code](nowhere.md)`",
                "[ref]: docs/also-missing.md",
                "```",
                "[in a fence](nowhere.md)",
                "```",
                "# Intro",
            ]
        ),
        encoding="utf-8",
    )
    problems = link_problems(page, tmp_path)
    assert [problem.split(": ")[1] for problem in problems] == [
        "docs/missing.md",
        "../elsewhere/notes.md",
        "docs/a.md#nowhere",
        "/etc/passwd",
        "docs/also-missing.md",
    ]
    assert "outside the repository" in problems[1]
