"""Issue 17 item 14: every repository path that README.md and docs/*.md cite (markdown links, and code spans
naming a file under docs/, recipes/, tests/, src/, benchmarks/, mk/, .ci/) exists; no doc cites a file that
lives outside the repository (the design page and notes are copied into docs/)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", REPO / "benchmarks/README.md", *sorted((REPO / "docs").rglob("*.md"))]
TOP = ("docs/", "recipes/", "tests/", "src/", "benchmarks/", "mk/", ".ci/", "Makefile", "pyproject.toml")


def cited(path: Path) -> list[str]:
    text = path.read_text()
    links = [t for t in re.findall(r"\]\(([^)#\s]+)", text) if "://" not in t and not t.startswith("mailto:")]
    spans = [t for t in re.findall(r"`([^`\s]+)`", text) if t.startswith(TOP)]
    return links + spans


def exists(path: Path, ref: str) -> bool:
    """A link is relative to its page (or the repository root); `{a,b}` and `*` are expanded; a pytest node id
    `file.py::test_name*` needs the file and a test function of that name."""
    if "::" in ref:
        file, name = ref.split("::", 1)
        pattern = re.escape(name).replace(r"\*", r"\w*")
        return exists(path, file) and re.search(rf"^def {pattern}\(", (REPO / file).read_text(), re.M) is not None
    m = re.search(r"\{([^}]*)\}", ref)
    if m:
        return all(exists(path, ref[:m.start()] + alt + ref[m.end():]) for alt in m.group(1).split(","))
    bases = [path.parent, REPO]
    return any(list(base.glob(ref)) if "*" in ref else (base / ref).exists() for base in bases)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_cited_paths_exist(doc):
    missing = [ref for ref in cited(doc) if not exists(doc, ref)]
    assert missing == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_no_citation_outside_the_repository(doc):
    text = doc.read_text()
    assert re.findall(r"DESIGN(?:\.md| §)|shared/notes", text) == []


def test_the_checker_sees_citations():
    refs = cited(REPO / "docs/engines.md")
    assert "docs/notes/vllm-cpu.md" in refs
    assert not exists(REPO / "README.md", "docs/no-such-page.md")
    assert exists(REPO / "benchmarks/README.md", "results/engines.{json,md}")
    assert exists(REPO / "README.md", "tests/docs/test_docs_links.py::test_the_checker_sees_*")
    assert not exists(REPO / "README.md", "tests/docs/test_docs_links.py::test_nothing")
