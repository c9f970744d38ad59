"""Sphinx configuration of the scmnet documentation.

Build nitpicky, with warnings as errors, as the test command does (``make docs`` builds the
html alone)::

    python -m sphinx -n -W --keep-going -b html docs docs/_build/html
    python -m sphinx -n -W --keep-going -b doctest docs docs/_build/doctest

The course notebooks (``docs/course/*.md``) are executed once, by the first build; the second
reads their outputs from the cache in ``docs/_build/.jupyter_cache``.

The pictures shown in the pages are drawn at build time with :mod:`scmnet.draw` into
``docs/_generated`` (which carries its own ``.gitignore``), so they always match the code.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import scmnet

project = "scmnet"
author = "The scmnet developers"
copyright = "the scmnet developers"
version = release = scmnet.__version__

DOCS = Path(__file__).resolve().parent
GENERATED = DOCS / "_generated"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
    "myst_nb",
    # MathJax served from the built site, not a CDN: formulas render offline.
    "sphinx-mathjax-offline",
]

# Tutorials are MyST notebooks (docs/course/*.md, text files that jupytext pairs with .ipynb),
# executed in a fresh kernel when the docs build; a cell that raises fails the build.
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb"}
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = "cache"  # the html and doctest builds share one execution
nb_execution_cache_path = str(DOCS / "_build" / ".jupyter_cache")
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_execution_timeout = 900
nb_merge_streams = True
nb_render_image_options = {"width": "100%"}

templates_path = ["_templates"]
smartquotes = False  # z' is a prime in the formulas, not a closing quote
exclude_patterns = ["_build", "_generated", "images", "**.ipynb_checkpoints"]
html_theme = "alabaster"
html_theme_options = {"description": "Structural causal models for neural networks"}

# API reference: one generated page per public object (docs/api/generated is git-ignored).
autosummary_generate = True
autodoc_typehints = "none"  # numpydoc's Parameters sections give the types
autodoc_member_order = "bysource"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

# The doctest builder runs the ``.. doctest::`` blocks of the narrative pages. The Examples
# sections of docstrings run under ``pytest --doctest-modules`` in their module's namespace,
# so they are not run a second time here.
# There is no global set-up: each block shows its own imports, so that it runs when pasted into
# a fresh interpreter (tests/test_docs_blocks.py runs each one alone).
doctest_test_doctest_blocks = ""


def draw_pictures(app: Any) -> None:
    """Draw the pictures that the pages include, with the code the pages show."""
    from scmnet.draw import draw_graph, draw_intervention

    GENERATED.mkdir(exist_ok=True)
    (GENERATED / ".gitignore").write_text("# drawn by docs/conf.py at build time\n*\n")
    erasure, self_repair = scmnet.toys.erasure(), scmnet.toys.self_repair()
    draw_graph(erasure, GENERATED / "erasure.png", legend=True)
    draw_intervention(erasure, {"x": 0.0}, GENERATED / "erasure_do_x0.png")
    draw_intervention(self_repair, {"x": 0.0}, GENERATED / "self_repair_do_x0.png")


def write_notebooks(app: Any) -> None:
    """Write each course notebook as an ``.ipynb`` file that a page offers for download.

    The course is kept as MyST text notebooks (``docs/course/*.md``) so that a diff reads like
    prose; a lecturer hands out the ``.ipynb`` form, which jupytext converts without outputs
    (the pages show the outputs of the build's own run).
    """
    import jupytext

    folder = GENERATED / "notebooks"
    folder.mkdir(parents=True, exist_ok=True)
    for source in sorted((DOCS / "course").glob("*.md")):
        jupytext.write(jupytext.read(source), folder / f"{source.stem}.ipynb")


def offer_notebook(app: Any, docname: str, source: list[str]) -> None:
    """Put a download link to the page's ``.ipynb`` under the title of a course notebook."""
    if not docname.startswith("course/"):
        return
    name = docname.split("/", 1)[1]
    link = (
        f"\n{{download}}`Download this page as a Jupyter notebook "
        f"<../_generated/notebooks/{name}.ipynb>` (or open ``docs/course/{name}.md`` with "
        "jupytext), and run it from a clone of the repository.\n"
    )
    lines = source[0].split("\n")
    for i, line in enumerate(lines):
        if line.startswith("# "):
            lines.insert(i + 1, link)
            source[0] = "\n".join(lines)
            return


def check_api_reference(app: Any) -> None:
    """Warn (an error under -W) about public names that the API reference leaves out."""
    from sphinx.util import logging

    text = (DOCS / "api.rst").read_text()
    listed = set(re.findall(r"^\s+~?(?:scmnet\.)?([\w.]+)\s*$", text, re.MULTILINE))
    listed |= set(re.findall(r"\.\. (?:auto)?module:: scmnet\.(\w+)", text))
    for name in scmnet.__all__:
        if name not in listed:
            logging.getLogger(__name__).warning(
                "scmnet.%s is public (in scmnet.__all__) but not in docs/api.rst", name
            )


def data_docstring(
    app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """Document a re-exported constant with the docstring written where it is defined.

    ``scmnet.Context`` is defined in :mod:`scmnet.model` with a docstring after the
    assignment; autodoc, looking at ``scmnet/__init__.py``, would otherwise show the docstring
    of the object's type (``Mapping``, ``str``), which says nothing about scmnet.
    """
    if what != "data" or not name.startswith("scmnet."):
        return
    from sphinx.pycode import ModuleAnalyzer

    attr = name.rsplit(".", 1)[1]
    for module in sorted(m for m in sys.modules if m == "scmnet" or m.startswith("scmnet.")):
        try:
            docs = ModuleAnalyzer.for_module(module).find_attr_docs()
        except Exception:  # a compiled or source-less module has no attribute docs
            continue
        if ("", attr) in docs and getattr(sys.modules[module], attr, None) is obj:
            lines[:] = list(docs[("", attr)])
            return
    type_doc = type(obj).__doc__ or ""
    if lines and lines[0].strip() and lines[0].strip() in type_doc:
        lines[:] = []  # only the type's docstring: the value speaks for itself


def setup(app: Any) -> dict[str, Any]:
    app.connect("autodoc-process-docstring", data_docstring)
    app.connect("builder-inited", draw_pictures)
    app.connect("builder-inited", check_api_reference)
    app.connect("builder-inited", write_notebooks)
    app.connect("source-read", offer_notebook)
    return {"parallel_read_safe": True}


# -- Nitpicky cross-references (sphinx -n) ------------------------------------------------------
# Every reference to an scmnet object must resolve. Objects of other packages cannot be linked:
# the docs build offline, without intersphinx inventories. So exactly those packages' targets
# (the standard library modules the docstrings and base classes name, numpy, torch, networkx,
# scipy, pandas, matplotlib) and the builtin type words of numpydoc's parameter types are
# ignored; an scmnet target is never ignored.
_EXTERNAL_PACKAGES = (
    "torch|numpy|np|networkx|nx|scipy|pandas|pd|matplotlib|transformers|"
    "collections|typing|abc|enum|pathlib|dataclasses|os|io|argparse|contextlib|random|math"
)
nitpick_ignore_regex = [
    (r"py:.*", rf"(?:{_EXTERNAL_PACKAGES})(?:\..+)?"),
    (
        r"py:.*",
        r"int|float|complex|str|bytes|bool|None|object|tuple|list|dict|set|frozenset|type|"
        r"callable|iterable|sequence|mapping|path|optional|array-like|array_like|default",
    ),
]
