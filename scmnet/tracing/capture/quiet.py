"""Keep torch's own tracing chatter off the terminal, and keep it for the error message.

``torch.fx`` and ``torch.export`` warn and log as they go (a data-dependent guard alone logs a
dozen lines of graph code before the exception that scmnet turns into a clear
:class:`~scmnet.UntraceableModel`). :func:`captured` collects those warnings, log records and
writes to ``sys.stdout``/``sys.stderr`` while a front end runs; the caller attaches them to the
error it raises (:attr:`~scmnet.UntraceableModel.details`, printed by ``scmnet graph
--verbose``) and drops them when tracing succeeds.

Examples
--------
>>> import logging, warnings
>>> with captured() as lines:
...     warnings.warn("from torch")
...     logging.getLogger("torch.export").warning("a guard")
>>> [line.split(": ", 1)[-1] for line in lines]
['a guard', 'from torch']
"""

from __future__ import annotations

import contextlib
import logging
import sys
import tempfile
import warnings
from collections.abc import Iterator

__all__ = ["captured"]


class _Collect(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self._lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record must not hide the real error
            message = str(record.msg)
        self._lines.append(f"{record.levelname} {record.name}: {message}")


def _torch_loggers() -> list[logging.Logger]:
    """The ``torch`` logger and every logger below it that has handlers of its own."""
    names = ["torch", *(n for n in logging.root.manager.loggerDict if n.startswith("torch."))]
    found = [logging.getLogger(n) for n in names]
    return [lg for lg in found if lg.name == "torch" or lg.handlers]


@contextlib.contextmanager
def captured() -> Iterator[list[str]]:
    """Collect warnings, ``torch.*`` log records and stray prints instead of showing them.

    Prints go to a temporary file, not a string buffer: torch's log handlers ask their stream
    for a file descriptor, and a handler torch opens lazily inside the block (on the redirected
    standard error) is pointed back at the real one afterwards.

    Yields
    ------
    list of str
        Filled with one line per warning or log record (and the printed text), in order.
    """
    lines: list[str] = []
    collect = _Collect(lines)
    loggers = _torch_loggers()
    saved = [(lg, lg.handlers[:], lg.propagate) for lg in loggers]
    stderr = sys.stderr
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as buffer:
        try:
            for lg in loggers:
                lg.handlers = [collect] if lg.name == "torch" else []
                lg.propagate = lg.name != "torch"
            with (
                warnings.catch_warnings(record=True) as caught,
                contextlib.redirect_stdout(buffer),
                contextlib.redirect_stderr(buffer),
            ):
                warnings.simplefilter("always")
                try:
                    yield lines
                finally:
                    lines.extend(f"{w.category.__name__}: {w.message}" for w in caught)
        finally:
            for lg, handlers, propagate in saved:
                lg.handlers = handlers
                lg.propagate = propagate
            for logger in list(logging.root.manager.loggerDict.values()):
                for handler in getattr(logger, "handlers", []):  # opened inside the block
                    if isinstance(handler, logging.StreamHandler) and handler.stream is buffer:
                        handler.setStream(stderr)
            buffer.flush()
            buffer.seek(0)
            printed = buffer.read()
            if printed.strip():
                lines.extend(printed.splitlines())
