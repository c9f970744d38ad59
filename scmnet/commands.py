"""What another package adds to the ``scmnet`` command line: sub-commands and model loaders.

The command line (``scmnet.cli``) finds them through package entry points, so that an
adapter extends it without the core importing the adapter:

* group ``scmnet.commands``: a :class:`Command`, a sub-command with its options and what it runs
  (``scmnet hydra`` comes from the transformer adapter);
* group ``scmnet.directory_loaders``: a :class:`DirectoryLoader`, which loads a network saved in
  a local directory for ``scmnet graph DIR`` (a Hugging Face model directory, from the
  transformer adapter).

An entry point names an object annotated with its protocol, so that the type checker checks the
plug-in against it; in the ``pyproject.toml`` of the package that provides it::

    [project.entry-points."scmnet.commands"]
    hydra = "scmnet.adapters.transformer.command:HYDRA"

The command line loads a plug-in only when it needs it: when its sub-command runs, when the help
lists the sub-commands, or when ``scmnet graph`` is given a directory.

Examples
--------
>>> import argparse
>>> class Hello:
...     name, help, description = "hello", "say hello", "Say hello to someone."
...     def add_arguments(self, parser: argparse.ArgumentParser) -> None:
...         parser.add_argument("who")
...     def run(self, args: argparse.Namespace) -> int:
...         print(f"hello, {args.who}")
...         return 0
>>> isinstance(Hello(), Command)
True
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "COMMANDS",
    "DIRECTORY_LOADERS",
    "Command",
    "DirectoryLoader",
    "LoadedModel",
    "positive_int",
]

COMMANDS = "scmnet.commands"
"""The entry-point group of the sub-commands that other packages add."""

DIRECTORY_LOADERS = "scmnet.directory_loaders"
"""The entry-point group of the loaders of model directories (``scmnet graph DIR``)."""


@runtime_checkable
class Command(Protocol):
    """A sub-command of ``scmnet``: its name, its help, its options and what it runs.

    :meth:`run` returns the exit status. A :class:`~scmnet.ScmnetError` that it raises is
    printed as ``scmnet NAME: error: ...`` on standard error, and the status is 2.
    """

    @property
    def name(self) -> str:
        """The sub-command's name: ``scmnet NAME ...``."""
        ...

    @property
    def help(self) -> str:
        """One line, for ``scmnet --help``."""
        ...

    @property
    def description(self) -> str:
        """A paragraph, for ``scmnet NAME --help``."""
        ...

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the sub-command's options to its parser."""
        ...

    def run(self, args: argparse.Namespace) -> int:
        """Run with the parsed options; returns the exit status."""
        ...


@dataclass(frozen=True)
class LoadedModel:
    """A network that a :class:`DirectoryLoader` loaded, with example inputs for it.

    Attributes
    ----------
    module : torch.nn.Module
        The network, in eval mode.
    example : object
        Example inputs to trace it with (what :func:`~scmnet.trace` takes).
    described : str
        What the example inputs are, for the printed summary (``"the tokenized sentence ..."``).
    """

    module: nn.Module
    example: Any
    described: str


@runtime_checkable
class DirectoryLoader(Protocol):
    """Loads a network saved in a local directory, for ``scmnet graph DIR``."""

    @property
    def name(self) -> str:
        """What it loads, e.g. ``"huggingface"``."""
        ...

    def load(self, folder: Path, *, seed: int) -> LoadedModel:
        """The network saved in ``folder``, and example inputs for it (random ones drawn with
        ``seed``).

        Raises
        ------
        InvalidArgument
            If ``folder`` is not a directory of the kind it loads; the message says what such a
            directory holds. The command line then tries the next loader, and prints the first
            loader's message if none loads the directory.
        """
        ...


def positive_int(text: str) -> int:
    """An ``argparse`` type: a positive integer.

    Examples
    --------
    >>> positive_int("3")
    3
    >>> positive_int("0")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be a positive integer, got 0
    """
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value
