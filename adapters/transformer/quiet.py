"""Holding back what torch prints while it traces, and leaving an output folder as found.

Tracing a model (``torch.export``) writes warnings, log lines and graph dumps of its own --
about 25 lines before a clear :class:`~scmnet.UntraceableModel`, and sometimes on success.
:func:`captured_output` collects them (torch's loggers, Python warnings, prints to standard
output and error) so that ``scmnet hydra`` shows them only with ``--verbose``.

:func:`restoring` undoes what a run created in its output folder when it fails before its first
result: a run that cannot start leaves no ``settings.json`` behind, and a folder that already
held results is left untouched.

Examples
--------
>>> import logging, warnings
>>> with captured_output() as held:
...     warnings.warn("a tracing warning")
...     logging.getLogger("torch.export").warning("a torch log line")
>>> [any(text in line for line in held.lines) for text in ("log line", "tracing warning")]
[True, True]
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Captured", "captured_output", "restoring"]


@dataclass
class Captured:
    """What was printed inside :func:`captured_output`, one entry a line (filled on exit)."""

    lines: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The lines joined."""
        return "\n".join(self.lines)


def _to_terminal(stream: Any) -> bool:
    """Whether a handler's stream is standard output or error (not a log file, nor a lazily
    opened trace file, whose handler owns and closes its stream)."""
    standard = (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
    return stream is not None and (
        any(stream is s for s in standard) or getattr(stream, "name", None) in _STANDARD
    )


_STANDARD = ("<stdout>", "<stderr>")


def _torch_stream_handlers() -> list[logging.StreamHandler[Any]]:
    """The handlers of torch's loggers that write to the terminal (each logger has its own;
    they do not propagate)."""
    names = ["torch", *(n for n in logging.root.manager.loggerDict if n.startswith("torch."))]
    handlers: list[logging.StreamHandler[Any]] = []
    for name in names:
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler) and _to_terminal(handler.stream):
                handlers.append(handler)
    return handlers


@contextlib.contextmanager
def captured_output() -> Iterator[Captured]:
    """Collect torch's log lines, warnings and prints made inside the block.

    Yields a :class:`Captured` whose ``lines`` hold them once the block ends (also when it
    raises). Nothing inside the block reaches the terminal.
    """
    held = Captured()
    stderr = sys.stderr
    # A real file, not a StringIO: torch's log handlers ask their stream for its fileno().
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as buffer:
        swapped: list[tuple[logging.StreamHandler[Any], Any]] = []
        for handler in _torch_stream_handlers():
            previous = handler.setStream(buffer)
            if previous is not None:
                swapped.append((handler, previous))
        try:
            with (
                warnings.catch_warnings(record=True) as caught,
                contextlib.redirect_stdout(buffer),
                contextlib.redirect_stderr(buffer),
            ):
                warnings.simplefilter("always")
                try:
                    yield held
                finally:
                    noted = [
                        warnings.formatwarning(w.message, w.category, w.filename, w.lineno)
                        for w in caught
                    ]
                    buffer.flush()
                    buffer.seek(0)
                    held.lines = [*buffer.read().splitlines(), *(n.strip() for n in noted)]
        finally:
            for handler, previous in swapped:
                handler.setStream(previous)
            for logger in list(logging.root.manager.loggerDict.values()):
                # handlers made inside the block, on the redirected stderr
                for handler in getattr(logger, "handlers", []):
                    if isinstance(handler, logging.StreamHandler) and handler.stream is buffer:
                        handler.setStream(stderr)


def _entries(folder: Path) -> set[Path]:
    return set(folder.rglob("*")) if folder.is_dir() else set()


def _is_result(path: Path) -> bool:
    """A finished per-prompt result (``measures/NNNNN.npz``; not a half-written ``.tmp.npz``)."""
    return path.parent.name == "measures" and path.suffix == ".npz" and ".tmp" not in path.name


@contextlib.contextmanager
def restoring(out: Path) -> Iterator[None]:
    """Leave ``out`` as it was found if the block fails before it writes its first result.

    On any exception (an interrupt included) with no new ``measures/*.npz`` in ``out``, every
    file and folder the block created there is removed -- ``out`` itself, and the folders
    above it, if the block created them -- and the exception propagates. Once a result exists
    the run is resumable, and nothing is removed.
    """
    out = Path(out)
    created_from = out
    while not created_from.parent.exists() and created_from.parent != created_from:
        created_from = created_from.parent
    existed = out.exists()
    before = _entries(out)
    try:
        yield
    except BaseException:
        new = _entries(out) - before
        if not any(_is_result(p) for p in new):
            if not existed:
                shutil.rmtree(created_from, ignore_errors=True)
            else:
                for path in sorted(new, key=lambda p: len(p.parts), reverse=True):
                    if path.is_dir() and not path.is_symlink():
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        path.unlink(missing_ok=True)
        raise
