"""The documentation stays true to the repository: generated tables, links."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from conftest import REPO

DOCS = REPO / "docs"
PAGES = [REPO / "README.md", *sorted(DOCS.glob("*.md")), REPO / "examples" / "regulas" / "README.md"]
# [text](target) and ![alt](target); the target ends at whitespace or ")"
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def docs_tables() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_tables", REPO / "benchmarks" / "docs_tables.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_tables_equal_the_results_json() -> None:
    tables = docs_tables()
    page = (DOCS / "benchmarks.md").read_text()
    assert tables.render(page) == page, (
        "docs/benchmarks.md differs from benchmarks/results/*.json; run: python benchmarks/docs_tables.py"
    )


def test_every_table_has_its_marker_and_markers_name_tables(tmp_path: Path) -> None:
    tables = docs_tables()
    with pytest.raises(KeyError, match="no marker for"):
        tables.render("<!-- results:overhead -->\n<!-- /results -->\n")
    with pytest.raises(KeyError, match="names no table"):
        tables.render("<!-- results:nonesuch -->\n<!-- /results -->\n")


def relative_links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # code blocks hold no links
    return [t for t in LINK.findall(text) if not re.match(r"^[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    headings = re.findall(r"^#+\s+(.*)$", text, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_relative_links_point_to_existing_files(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        found = (page.parent / path).resolve()
        if not found.exists() or (anchor and found.suffix == ".md" and anchor not in anchors(found)):
            broken.append(target)
    assert not broken, f"{page.relative_to(REPO)}: links to missing files or headings: {broken}"


def test_docs_do_not_mention_the_obsolete_shared_data_folder() -> None:
    stale = [p.name for p in PAGES if "shared/data" in p.read_text()]
    assert not stale, f"pages still naming the old data folder outside the repo (the data sets ship in regulas/datasets): {stale}"
