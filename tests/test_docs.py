"""The repository explains itself: every docs reference in code and docs resolves to a file and a heading here."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
SKIP = {".git", "checkpoints", "dataset_demo", "build", ".venv", "__pycache__", ".scratch"}

# `docs/<page>.md#<anchor>` anywhere in the tree, and `(<page>.md#<anchor>)` links between the docs pages.
TREE_REF = re.compile(r"docs/([\w.-]+\.md)(?:#([\w-]+))?")
LINK_REF = re.compile(r"\]\(([\w.-]+\.md)(?:#([\w-]+))?\)")


def slug(heading: str) -> str:
    """The anchor GitHub gives a markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(line.lstrip("#")) for line in page.read_text(encoding="utf-8").splitlines() if line.startswith("#")}


def project_files() -> list[Path]:
    return [
        p
        for p in REPO.rglob("*")
        if p.suffix in {".py", ".md", ".sh", ".toml", ".txt"}
        and p.is_file()
        and not SKIP & set(p.relative_to(REPO).parts)
    ]


def broken_references() -> list[str]:
    bad = []
    for path in project_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        refs = list(TREE_REF.finditer(text))
        if path.parent == DOCS:
            refs += list(LINK_REF.finditer(text))
        for ref in refs:
            page, anchor = DOCS / ref.group(1), ref.group(2)
            where = f"{path.relative_to(REPO)}: {ref.group(0)}"
            if not page.is_file():
                bad.append(f"{where} (no such page)")
            elif anchor and anchor not in anchors(page):
                bad.append(f"{where} (no heading with that anchor; the page has {sorted(anchors(page))})")
    return bad


def test_slug_matches_github() -> None:
    assert slug(" Inverse and forward kinematics") == "inverse-and-forward-kinematics"
    assert slug("opt.txt") == "opttxt"
    assert slug("RVQ-VAE encoder and decoder") == "rvq-vae-encoder-and-decoder"


def test_every_docs_reference_resolves() -> None:
    bad = broken_references()
    assert not bad, "\n".join(bad)


def test_no_reference_to_documents_outside_the_repo() -> None:
    """Comments cite the docs pages, never the clean-room spec (it is not part of the repository)."""
    cites = [
        f"{p.relative_to(REPO)}:{i}"
        for p in project_files()
        if p.name != "test_docs.py"
        for i, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if re.search(r"spec §|momask_spec", line, re.IGNORECASE)
    ]
    assert not cites, "cite docs/<page>.md#<heading> instead:\n" + "\n".join(cites)


def test_checker_catches_a_broken_reference(tmp_path: Path) -> None:
    assert TREE_REF.search("see docs/data.md#normalisation").groups() == ("data.md", "normalisation")
    assert "normalisation" in anchors(DOCS / "data.md")
    assert "no-such-heading" not in anchors(DOCS / "data.md")
