"""The course notebooks: listed, complete, convertible, and covering every concept of the course.

The notebooks themselves run when the docs build (myst-nb, a fresh kernel, a raising cell fails
the build); these tests check what a lecturer relies on around them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
COURSE = sorted((DOCS / "course").glob("*.md"))

# Every concept of the course path, with the words that name it on a page (lower case).
CONCEPTS = {
    "do and graph surgery": ["graph surgery", "do("],
    "confounding": ["confound"],
    "the back-door criterion": ["back-door"],
    "adjustment sets by d-separation": ["adjustment set", "d-separat"],
    "the average treatment effect": ["average treatment effect"],
    "the natural-value contrast": ["natural value"],
    "the controlled direct effect": ["controlled direct effect"],
    "natural direct and indirect effects": ["natural direct effect", "natural indirect effect"],
    "counterfactuals in three steps": ["abduction", "action", "prediction"],
    "path-specific effects": ["path-specific"],
    "averaging over P(u) with an interval": ["interval", "p(u)"],
    "the residual stream": ["residual stream"],
    "the final norm's scale": ["scale"],
    "the unembedding and the centred logit": ["unembedding", "centred logit"],
    "the Hydra measures": ["ablation impact", "unembedding impact", "compensat"],
    "exercises": ["## exercises", "## solutions"],
}


def test_there_is_a_course() -> None:
    assert len(COURSE) >= 8, [p.name for p in COURSE]


@pytest.mark.parametrize("notebook", COURSE, ids=lambda p: p.stem)
def test_each_notebook_is_in_the_table_of_contents(notebook: Path) -> None:
    index = (DOCS / "index.rst").read_text()
    assert re.search(rf"^\s+course/{notebook.stem}\s*$", index, re.MULTILINE), notebook.stem
    assert f":doc:`course/{notebook.stem}`" in index, "the course table names every notebook"


@pytest.mark.parametrize("notebook", COURSE, ids=lambda p: p.stem)
def test_each_notebook_ends_with_exercises_and_executed_solutions(notebook: Path) -> None:
    import jupytext

    cells = jupytext.read(notebook).cells
    headings = [
        (i, line)
        for i, c in enumerate(cells)
        if c.cell_type == "markdown"
        for line in c.source.splitlines()
        if line.startswith("#")
    ]
    titles = [line.lstrip("#").strip().lower() for _, line in headings]
    assert "exercises" in titles, titles
    assert "solutions" in titles, titles
    solutions = next(i for i, line in headings if line.lstrip("#").strip().lower() == "solutions")
    assert any(c.cell_type == "code" and c.source.strip() for c in cells[solutions:]), (
        "the solutions are code cells, so the build checks them"
    )
    first_code = next(c for c in cells if c.cell_type == "code")
    assert "import" in first_code.source, "the first code cell shows its imports"


@pytest.mark.parametrize("concept", sorted(CONCEPTS))
def test_the_course_covers_the_concept(concept: str) -> None:
    text = "\n".join(p.read_text().lower() for p in COURSE)
    missing = [word for word in CONCEPTS[concept] if word not in text]
    assert not missing, f"no course notebook mentions {missing} ({concept})"


def test_the_glossary_defines_every_term_the_pages_use() -> None:
    glossary = (DOCS / "glossary.rst").read_text()
    defined = {
        line.strip().lower()
        for line in glossary.splitlines()
        if line.startswith("   ") and not line.startswith("    ") and line.strip()
    }
    pages = [*COURSE, *DOCS.glob("*.rst")]
    roles = [
        m
        for page in pages
        for m in re.findall(r"(?:\{term\}|:term:)`([^`]+)`", page.read_text(), re.DOTALL)
    ]
    used = {_target(role).lower() for role in roles}
    assert used, "the pages link glossary terms"
    assert used <= defined, sorted(used - defined)


def _target(role: str) -> str:
    """The term a role links: ``text <term>`` links ``term``, plain ``term`` itself."""
    explicit = re.search(r"<([^>]+)>\s*$", role)
    return " ".join((explicit[1] if explicit else role).split())
