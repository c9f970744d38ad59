"""The API reference's summary tables show whole sentences, and its pictures are sharp.

Sphinx's autosummary shows, in each row of the tables of ``docs/api.rst``, the first sentence
of the object's docstring, cut by :func:`sphinx.ext.autosummary.extract_summary` at the first
period followed by a space (only "e.g.", "i.e.", "vs." and "et al." are skipped). A citation
such as "(eq. 12)" in a first sentence therefore cuts the row at "(eq.". These tests list every
object of the tables the way the ``autosummary`` directive does, extract its summary with
Sphinx's own function, and check that the summary is a whole sentence.
"""

from __future__ import annotations

import importlib
import inspect
import re
import struct
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from docutils import nodes
from docutils.frontend import get_default_settings
from docutils.parsers.rst import Parser, roles
from sphinx.ext.autosummary import extract_summary
from sphinx.pycode import ModuleAnalyzer
from sphinx.util.docutils import docutils_namespace

import scmnet as sn

API = Path(__file__).resolve().parents[1] / "docs" / "api.rst"

#: Words that end a summary early when a sentence is cut after them.
ABBREVIATIONS = ("eq.", "Eq.", "eqs.", "Eqs.", "e.g.", "i.e.", "cf.", "Fig.", "Figs.", "vs.")
#: Roles the docstrings use; outside a Sphinx build they are registered as plain literals,
#: as in a build, where they parse without error.
ROLES = ("func", "class", "meth", "attr", "mod", "data", "exc", "obj", "term", "ref", "doc")


def autosummary_entries(text: str) -> list[tuple[str, str]]:
    """``(current module, name)`` of every row of the ``autosummary`` tables of ``text``.

    ``.. currentmodule::`` and ``.. automodule::`` set the module that names are looked up in,
    as they do for the directive.
    """
    entries: list[tuple[str, str]] = []
    module, in_table = "", False
    for line in text.splitlines():
        directive = re.match(r"\.\. (currentmodule|automodule|autosummary)::\s*(\S*)", line)
        if directive:
            in_table = directive.group(1) == "autosummary"
            if not in_table:
                module = directive.group(2)
        elif in_table and line.startswith("   ") and not line.strip().startswith(":"):
            entries.append((module, line.strip().lstrip("~")))
        elif in_table and line.strip() and not line.startswith(" "):
            in_table = False
    return entries


def import_by_name(module: str, name: str) -> Any:
    """The object ``name`` in ``module``, or at its own full path, found as autosummary does.

    Like ``sphinx.ext.autosummary.import_by_name``, ``a.b.c`` is first the attribute ``c`` of
    the module ``a.b`` (so ``scmnet.mediation`` is the function, not the module of that name),
    then the longest importable module prefix and attributes of it.
    """
    for full in (f"{module}.{name}", name):
        parts = full.split(".")
        try:
            return getattr(importlib.import_module(".".join(parts[:-1])), parts[-1])
        except (ImportError, AttributeError, ValueError):
            pass
        for split in range(len(parts), 0, -1):
            try:
                obj: Any = importlib.import_module(".".join(parts[:split]))
            except ImportError:
                continue
            try:
                for part in parts[split:]:
                    obj = getattr(obj, part)
            except AttributeError:
                break
            return obj
    raise LookupError(f"{name} (in {module}) is not importable")


def docstring_lines(name: str, obj: Any) -> list[str]:
    """The docstring autodoc shows for ``obj``: its own, or the attribute comment of a constant.

    A constant (``MAX_NODES``, ``Context``) is documented by the ``#:`` comment or the string
    after its assignment in the module that defines it (docs/conf.py's ``data_docstring``).
    """
    if inspect.isclass(obj) or inspect.isroutine(obj) or inspect.ismodule(obj):
        return (inspect.getdoc(obj) or "").splitlines()
    attr = name.rsplit(".", 1)[-1]
    for module in sorted(m for m in sys.modules if m == "scmnet" or m.startswith("scmnet.")):
        try:
            docs = ModuleAnalyzer.for_module(module).find_attr_docs()
        except Exception:  # a module without source has no attribute comments
            continue
        if ("", attr) in docs and getattr(sys.modules[module], attr, None) is obj:
            return list(docs[("", attr)])
    return []


@contextmanager
def summary_parser() -> Iterator[Any]:
    """Docutils settings, with the Sphinx roles the docstrings use parsing as literals."""
    with docutils_namespace():
        for role in ROLES:
            roles.register_local_role(role, roles.GenericRole(role, nodes.literal))
        yield get_default_settings(Parser)


def summary(lines: list[str]) -> str:
    """The text autosummary shows for a docstring of these lines."""
    with summary_parser() as settings:
        return str(extract_summary(lines, settings))


def whole_sentence_problem(text: str) -> str | None:
    """Why ``text`` is not a whole sentence, or ``None`` if it is one."""
    if not text:
        return "it is empty"
    for abbreviation in ABBREVIATIONS:
        if text.endswith(abbreviation) and (
            len(text) == len(abbreviation) or not text[-len(abbreviation) - 1].isalnum()
        ):
            return f"it is cut after {abbreviation!r}"
    if text.count("``") % 2:
        return "it is cut inside ``literal``"
    # Brackets outside literals and roles (an interval ``[low, high)`` is not a bracket).
    prose = re.sub(r"``.*?``|`[^`]*`", "", text)
    for opening, closing in ("()", "[]", "{}"):
        if prose.count(opening) != prose.count(closing):
            return f"it is cut inside {opening}{closing}"
    if prose.count("`"):
        return "it is cut inside a `role`"
    return None


ENTRIES = autosummary_entries(API.read_text())


def test_the_api_tables_are_read_whole() -> None:
    # Every public name that is not a module (those have a section) is a row.
    names = {name.rsplit(".", 1)[-1] for _, name in ENTRIES}
    assert {n for n in sn.__all__ if not inspect.ismodule(getattr(sn, n))} <= names
    assert ("scmnet.tracing", "NodeRecord") in ENTRIES
    assert ("scmnet.adapters.transformer", "causal.ablation_impact") in ENTRIES


@pytest.mark.parametrize(("module", "name"), ENTRIES, ids=[f"{m}.{n}" for m, n in ENTRIES])
def test_every_api_summary_is_a_whole_sentence(module: str, name: str) -> None:
    obj = import_by_name(module, name)
    text = summary(docstring_lines(name, obj))
    assert whole_sentence_problem(text) is None, (
        f"the API table row of {module}.{name} reads {text!r}: "
        f"{whole_sentence_problem(text)}; rephrase its first sentence (write 'equation 12')"
    )


@pytest.mark.parametrize(
    ("docstring", "shown", "problem"),
    [
        # Known answers of Sphinx's extraction, and what the check says of them.
        ("Zero ablation, z~ = 0 (eq. 35).", "Zero ablation, z~ = 0 (eq.", "cut after 'eq.'"),
        ("Zero ablation, z~ = 0 (equation 35).", "Zero ablation, z~ = 0 (equation 35).", None),
        ("As in Fig. 5 of the paper.", "As in Fig.", "cut after 'Fig.'"),
        ("One sentence. Another one.", "One sentence.", None),
        ("Draws from data, e.g. inputs.", "Draws from data, e.g. inputs.", None),
        ("Totals (see :func:`total`. Then more.", "Totals (see :func:`total`.", "inside ()"),
        ("On ``[low, high)``. Then more.", "On ``[low, high)``.", None),
    ],
)
def test_the_check_reads_summaries_as_autosummary_does(
    docstring: str, shown: str, problem: str | None
) -> None:
    text = summary([docstring, "", "More text."])
    assert text == shown
    found = whole_sentence_problem(text)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_pictures_are_drawn_at_150_dpi_by_default(tmp_path: Path) -> None:
    # Projection size: a picture shown full width stays sharp (docs/conf.py draws with defaults).
    pytest.importorskip("matplotlib")
    from scmnet.draw import draw_graph, draw_intervention

    for draw, path in (
        (lambda p: draw_graph(sn.toys.erasure(), p), tmp_path / "graph.png"),
        (lambda p: draw_intervention(sn.toys.erasure(), {"x": 0.0}, p), tmp_path / "do.png"),
        (lambda p: sn.draw_collapsed(sn.toys.erasure(), p), tmp_path / "collapsed.png"),
    ):
        fig = draw(path)
        data = path.read_bytes()
        width, height = struct.unpack(">II", data[16:24])
        assert fig.dpi == 150
        assert (width, height) == (
            round(fig.get_figwidth() * 150),
            round(fig.get_figheight() * 150),
        )
