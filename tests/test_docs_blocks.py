"""Every code block of the reStructuredText pages runs as a student pastes it.

The docs build runs the pages' doctests with Sphinx, which shares one namespace across a page;
a block that leans on an earlier one would pass there and raise ``NameError`` when pasted alone.
Here each block runs on its own, in a fresh namespace and an empty working directory:

* a ``.. doctest::`` block is checked by :mod:`doctest` (the same option flags as Sphinx's);
* a ``.. testcode::`` block runs, and its ``.. testoutput::`` block must match what it printed;
* a ``.. code-block:: python`` block runs (it may write files: the directory is a fresh one).

Blocks of one *named* group (``.. doctest:: gpt``) are one session, as in Sphinx: they run in
order in one namespace, and the page says that they continue each other. The notebooks under
``docs/course`` run in a fresh kernel when the docs build.
"""

from __future__ import annotations

import contextlib
import doctest
import io
import re
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
SKIP_DIRS = {"_build", "_generated", "_templates", "api"}
DIRECTIVE = re.compile(
    r"^(?P<indent>\s*)\.\. (?P<kind>doctest|testcode|testoutput|code-block)::\s*(?P<arg>\S*)\s*$"
)
# A block that runs a sweep of the embedded model takes minutes: marked slow (CI runs it).
SLOW = re.compile(r"\brun_hydra\(|\brerun\(")
FLAGS = doctest.ELLIPSIS | doctest.IGNORE_EXCEPTION_DETAIL | doctest.DONT_ACCEPT_TRUE_FOR_1


@dataclass(frozen=True)
class Block:
    """One code block of a page: its kind, group, first line and source."""

    page: Path
    line: int
    kind: str
    group: str
    source: str

    @property
    def where(self) -> str:
        name = self.page.relative_to(DOCS) if self.page.is_relative_to(DOCS) else self.page.name
        return f"{name}:{self.line}"


def pages() -> list[Path]:
    """The documentation's reStructuredText pages (not the generated API stubs)."""
    return sorted(
        p for p in DOCS.rglob("*.rst") if not SKIP_DIRS & set(p.relative_to(DOCS).parts[:-1])
    )


def blocks(page: Path) -> Iterator[Block]:
    """The page's executable blocks, in order."""
    lines = page.read_text().splitlines()
    i = 0
    while i < len(lines):
        match = DIRECTIVE.match(lines[i])
        i += 1
        if not match:
            continue
        kind, arg, indent = match["kind"], match["arg"], len(match["indent"])
        while i < len(lines) and re.match(r"^\s+:[\w-]+:", lines[i]):  # the directive's options
            i += 1
        body: list[str] = []
        start = i + 1
        while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > indent):
            body.append(lines[i])
            i += 1
        if kind == "code-block" and arg not in ("python", "py", "pycon"):
            continue
        group = "" if kind == "code-block" or not arg or arg == "default" else arg
        text = "\n".join(body)
        width = min((_indent(b) for b in body if b.strip()), default=0)
        source = "\n".join(b[width:] for b in text.splitlines()).strip("\n") + "\n"
        yield Block(page, start, kind, group, source)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def sessions(page: Path) -> Iterator[list[Block]]:
    """Each ungrouped block alone; each named group's blocks together, in order."""
    groups: dict[str, list[Block]] = {}
    for block in blocks(page):
        if block.group:
            groups.setdefault(block.group, []).append(block)
        else:
            yield [block]
    yield from groups.values()


def _cases() -> list[Any]:
    return [
        pytest.param(
            session,
            id=session[0].where + (f"[{session[0].group}]" if session[0].group else ""),
            marks=[pytest.mark.slow] if any(SLOW.search(b.source) for b in session) else [],
        )
        for page in pages()
        for session in sessions(page)
    ]


def run_session(session: list[Block]) -> None:
    """Run the blocks in one fresh namespace; fail with the block's place and the mismatch.

    The namespace is a new module installed as ``__main__`` for the run, as in a fresh
    interpreter (``torch.compile`` and pickling look names up in ``sys.modules["__main__"]``).
    """
    main = types.ModuleType("__main__")
    saved = sys.modules["__main__"]
    sys.modules["__main__"] = main
    try:
        _run(session, main.__dict__)
    finally:
        sys.modules["__main__"] = saved


def _run(session: list[Block], namespace: dict[str, Any]) -> None:
    printed = ""
    for block in session:
        if block.kind == "doctest":
            test = doctest.DocTestParser().get_doctest(
                block.source, namespace, block.where, str(block.page), block.line
            )
            report = io.StringIO()
            runner = doctest.DocTestRunner(optionflags=FLAGS)
            test.globs = namespace  # the session's namespace itself, not doctest's copy
            runner.run(test, out=report.write, clear_globs=False)
            if runner.failures:
                pytest.fail(
                    f"{block.where}: the block fails when run on its own\n{report.getvalue()}"
                )
        elif block.kind == "testoutput":
            if printed.strip() != block.source.strip():
                pytest.fail(f"{block.where}: printed {printed!r}, the page shows {block.source!r}")
        else:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(block.source, block.where, "exec"), namespace)
            printed = out.getvalue()


@pytest.mark.parametrize("session", _cases())
def test_block_runs_on_its_own(
    session: list[Block], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    run_session(session)


def test_the_pages_have_blocks() -> None:
    """The parser finds the blocks (a parser that found none would pass every page)."""
    found = [b for p in pages() for b in blocks(p)]
    assert len(found) >= 30
    assert {b.kind for b in found} >= {"doctest", "code-block"}


def test_a_block_that_leans_on_another_fails(tmp_path: Path) -> None:
    """The check catches a block that uses a name an earlier block defined."""
    page = tmp_path / "page.rst"
    page.write_text(
        ".. doctest::\n\n   >>> import scmnet as sn\n   >>> m = sn.toys.erasure()\n\n"
        "Then:\n\n.. doctest::\n\n   >>> sorted(m.graph)\n   ['f', 'u', 'x', 'y']\n"
    )
    first, second = [list(s) for s in sessions(page)]
    with pytest.raises(pytest.fail.Exception, match="NameError"):
        run_session(second)
    run_session(first)


def test_a_named_group_is_one_session(tmp_path: Path) -> None:
    page = tmp_path / "page.rst"
    page.write_text(
        ".. testcode:: g\n\n   x = 2\n\n.. doctest:: g\n\n   >>> x + 1\n   3\n\n"
        ".. code-block:: bash\n\n   echo not python\n"
    )
    (session,) = sessions(page)
    assert [b.kind for b in session] == ["testcode", "doctest"]
    run_session(session)
