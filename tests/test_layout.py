"""The house follows the design: the core imports neither transformers nor the adapters.

DESIGN.md's floors, bottom up: errors; SCMs and interventions; effects, tracing, toys, drawing;
testing; adapters; command line. Nothing points up a floor: no module of ``scmnet/`` imports
``transformers`` or the adapters, the command line included. The adapters reach the command
line the other way round: through entry points, which the command line loads when a
sub-command needs them (:mod:`scmnet.commands`). Read statically from the source, so that an
import hidden in a function, or made by name through ``importlib``, is found too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "scmnet"


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """Every module a file imports: import statements and ``import_module("...")`` calls."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.lineno, node.module
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


CORE_FILES = sorted(CORE.rglob("*.py"))


def test_the_scan_finds_imports(tmp_path: Path) -> None:
    """The rule below can fail: the scanner sees every kind of import."""
    source = tmp_path / "m.py"
    source.write_text(
        "import transformers\n"
        "from scmnet.adapters.transformer import hydra\n"
        "def f():\n"
        "    import importlib\n"
        "    importlib.import_module('transformers.models')\n"
    )
    found = [m for _, m in imported_modules(source)]
    assert found == [
        "transformers",
        "scmnet.adapters.transformer",
        "importlib",
        "transformers.models",
    ]


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: str(p.relative_to(CORE)))
def test_the_core_never_imports_transformers_or_the_adapters(path: Path) -> None:
    for line, module in imported_modules(path):
        where = f"{path.relative_to(CORE.parent)}:{line}"
        assert not _within(module, "transformers"), (
            f"{where} imports {module}: the core never imports transformers; put code that "
            f"needs it in adapters/"
        )
        assert not _within(module, "scmnet.adapters"), (
            f"{where} imports {module}: the core never imports the adapters; an adapter adds "
            f"to the command line through an entry point (scmnet.commands)"
        )


def test_the_core_imports_no_adapter_at_import_time() -> None:
    """``import scmnet`` (and its tracing) loads neither transformers nor an adapter."""
    import subprocess
    import sys

    code = (
        "import sys, scmnet, scmnet.tracing, scmnet.cli, scmnet.export, scmnet.draw\n"
        "bad = [m for m in sys.modules if m.startswith(('transformers', 'scmnet.adapters'))]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
