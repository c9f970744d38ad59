"""The ``scmnet`` command line.

Sub-commands:

* ``scmnet toys [--out DIR] [--samples N] [--seed S]`` -- the toy-model report
  (:func:`scmnet.demo.toy_report`): effects of the erasure and self-repair motifs of Section 3.3,
  checked against the paper's identities, with graph pictures.
* ``scmnet graph MODEL [--inputs SPEC] [--variables GLOB ...] [--collapse DEPTH|auto|none]
  [--format png,graphml,dot] [--seed S] [--out DIR] [--verbose]`` -- trace a network and save
  its causal graph (:mod:`scmnet.export`): GraphML, DOT and a PNG picture, collapsed by block
  when large; outputs that are not tensors are listed as notes, and ``--verbose`` adds what
  torch said when a model cannot be traced.
  MODEL is a Python import path ``package.module:factory`` (a callable returning an
  ``nn.Module``, or a module object) or a local model directory, which an installed loader
  reads (a Hugging Face model directory: the transformer adapter, with the ``hf`` extra).

Other packages add sub-commands and directory loaders through entry points
(:mod:`scmnet.commands`); the command line loads them only when it needs them, and never imports
a package by name. The transformer adapter adds ``scmnet hydra [--model M] [--prompts FILE]
[--ablation zero|mean|noise|resample] [--patches K] [--limit N] [--seed S] [--device D]
[--out DIR]`` -- the Hydra-effect analysis of a language model (default: the embedded
SmolLM2-135M-Instruct), written as a report directory; an interrupted run resumes. It needs the
``hf`` extra; the generic core never imports transformers.

Every sub-command prints where it wrote its results and exits non-zero with a one-line message
on a user error (any :class:`~scmnet.ScmnetError`).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from scmnet.commands import (
    COMMANDS,
    DIRECTORY_LOADERS,
    Command,
    DirectoryLoader,
    positive_int,
)
from scmnet.errors import (
    InvalidArgument,
    MissingDependency,
    ScmnetError,
    UnsupportedModel,
    did_you_mean,
    require,
)
from scmnet.export import MAX_NODES
from scmnet.random_inputs import is_random_spec, random_inputs

__all__ = ["main"]

_BUILT_IN = ("toys", "graph")
"""The sub-commands of the command line itself; the others come from entry points."""


def _parser(plugins: Sequence[Command]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scmnet",
        description="Structural causal models for neural networks.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    toys = sub.add_parser(
        "toys",
        help="effects of the erasure and self-repair toy models (Section 3.3)",
        description="Write the toy-model report: TE, DE and IE of the erasure and self-repair "
        "motifs in a grid of contexts and averaged over P(u), with graph pictures.",
    )
    toys.add_argument("--out", type=Path, default=Path("reports/toys"), help="report directory")
    toys.add_argument("--samples", type=positive_int, default=2000, help="draws of P(u)")
    toys.add_argument("--seed", type=int, default=0, help="seed of the draws")

    graph = sub.add_parser(
        "graph",
        help="trace a network and save its causal graph (GraphML, DOT, PNG)",
        description="Trace a PyTorch network into a causal model and write its graph as "
        "GraphML, DOT and a PNG picture. A graph of more than 40 nodes is also written "
        "collapsed by block (blocks.*), and its picture shows the blocks.",
    )
    graph.add_argument(
        "model",
        metavar="MODEL",
        help="a Python import path 'package.module:factory' (a callable returning an "
        "nn.Module, or an nn.Module object), or a local Hugging Face model directory",
    )
    graph.add_argument(
        "--inputs",
        default=None,
        metavar="SPEC",
        help="example inputs: random tensors 'DTYPE:SHAPE[,DTYPE:SHAPE...]' (e.g. float:1x4, "
        "long:1x12), or 'package.module:factory' returning them; default for a Hugging Face "
        "model: a tokenized sentence, or long:1x8 token ids without a tokenizer",
    )
    graph.add_argument(
        "--variables",
        nargs="+",
        default=None,
        metavar="GLOB",
        help="module path globs of the variables (e.g. 'model.layers.*.mlp'; ** spans "
        "segments); default: sn.Default()",
    )
    graph.add_argument(
        "--collapse",
        type=_collapse_option,
        default="auto",
        metavar="DEPTH|auto|none",
        help="collapse by block: at this module-path depth, automatically when the graph has "
        f"more than {_AUTO_NODES} nodes (auto, the default), or never (none)",
    )
    graph.add_argument(
        "--format",
        type=_formats,
        default=("png", "graphml", "dot"),
        metavar="png,graphml,dot",
        help="what to write, comma-separated (default: all three)",
    )
    graph.add_argument("--seed", type=int, default=0, help="seed of random example inputs")
    graph.add_argument("--out", type=Path, default=Path("reports/graph"), help="output directory")
    graph.add_argument(
        "--verbose",
        action="store_true",
        help="when the model cannot be traced, also print what torch warned and logged",
    )

    for command in plugins:
        plugin = sub.add_parser(command.name, help=command.help, description=command.description)
        command.add_arguments(plugin)
        plugin.set_defaults(plugin=command)
    return parser


# -- sub-commands and loaders of other packages ------------------------------------------------


@dataclass(frozen=True)
class _Unavailable:
    """A sub-command whose entry point failed to load: listed, and its error said when run."""

    name: str
    error: str

    @property
    def help(self) -> str:
        return f"(unavailable: {self.error})"

    @property
    def description(self) -> str:
        return f"The {self.name} command could not be loaded: {self.error}."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        pass  # whatever options follow, running it says why it is unavailable

    def run(self, args: argparse.Namespace) -> int:
        raise MissingDependency(f"the {self.name} command could not be loaded: {self.error}")


def _entry_points(group: str) -> list[EntryPoint]:
    return sorted(entry_points(group=group), key=lambda ep: ep.name)


def _load_command(entry: EntryPoint) -> Command:
    try:
        found = entry.load()
    except ImportError as e:
        return _Unavailable(entry.name, f"{type(e).__name__}: {e}")
    if not isinstance(found, Command):
        return _Unavailable(entry.name, f"{entry.value} is not an scmnet sub-command")
    return found


def _plugins(argv: Sequence[str]) -> list[Command]:
    """The sub-commands of installed packages, unless ``argv`` runs a built-in one."""
    if argv and argv[0] in _BUILT_IN:
        return []  # loading the others would only cost time
    return [_load_command(entry) for entry in _entry_points(COMMANDS)]


def _directory_loaders() -> list[DirectoryLoader]:
    loaders = []
    for entry in _entry_points(DIRECTORY_LOADERS):
        try:
            found = entry.load()
        except ImportError as e:
            raise MissingDependency(
                f"the model-directory loader {entry.name!r} could not be loaded: "
                f"{type(e).__name__}: {e}"
            ) from e
        if isinstance(found, DirectoryLoader):
            loaders.append(found)
    return loaders


# -- scmnet graph -----------------------------------------------------------------------------

_AUTO_NODES = MAX_NODES
_FORMATS = ("png", "graphml", "dot")


def _collapse_option(text: str) -> int | str:
    if text in ("auto", "none"):
        return text
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise argparse.ArgumentTypeError(
        f"must be a positive depth (e.g. 3 for model.layers.3), 'auto' or 'none', got {text!r}"
    )


def _formats(text: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(f.strip().lower() for f in text.split(",") if f.strip()))
    unknown = [f for f in chosen if f not in _FORMATS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"formats are png, graphml and dot, comma-separated; got {text!r}"
        )
    return chosen


@contextlib.contextmanager
def _cwd_importable() -> Iterator[None]:
    """Let import paths name modules of the current directory, as ``python -m`` does."""
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added:
            sys.path.remove(cwd)


def _import_object(spec: str, what: str) -> Any:
    """The object that ``package.module:attribute`` names."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise InvalidArgument(
            f"{what} {spec!r} is not an import path; write it as 'package.module:name', e.g. "
            f"'scmnet.toys.modules:ErasureNet'"
        )
    with _cwd_importable():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            raise InvalidArgument(
                f"cannot import module {module_name!r} of {what} {spec!r} ({e}); check its "
                f"spelling, install its package, or run from the folder that contains it"
            ) from e
        except Exception as e:
            raise InvalidArgument(
                f"importing module {module_name!r} of {what} {spec!r} raised "
                f"{type(e).__name__}: {e}"
            ) from e
    found: Any = module
    for part in attribute.split("."):
        if not hasattr(found, part):
            names = [n for n in dir(found) if not n.startswith("_")]
            raise InvalidArgument(
                f"{found.__name__ if found is module else repr(found)} has no attribute "
                f"{part!r}{did_you_mean(part, names)} ({what} {spec!r}); name a function, "
                f"class or object defined in module {module_name!r}"
            )
        found = getattr(found, part)
    return found


def _module_from_import(spec: str) -> Any:
    from torch import nn

    found = _import_object(spec, "MODEL")
    if not isinstance(found, nn.Module):
        if not callable(found):
            raise UnsupportedModel(
                f"MODEL {spec!r} is a {type(found).__name__}, not an nn.Module; name an "
                f"nn.Module object or a callable that returns one"
            )
        try:
            found = found()
        except Exception as e:
            raise UnsupportedModel(
                f"calling MODEL {spec!r} raised {type(e).__name__}: {e}; name a callable that "
                f"takes no arguments and returns an nn.Module"
            ) from e
        if not isinstance(found, nn.Module):
            raise UnsupportedModel(
                f"MODEL {spec!r} returned a {type(found).__name__}, not an nn.Module; scmnet "
                f"graph traces torch networks (save an SCM's graph with sn.to_graphml)"
            )
    return found.eval()


def _inputs(spec: str, model: Any, seed: int) -> tuple[Any, str]:
    """Example inputs from ``--inputs`` (random tensors, or what an import path returns), and
    what they are."""
    if is_random_spec(spec):
        return random_inputs(spec, model, seed), f"random inputs {spec} (seed {seed})"
    found = _import_object(spec, "--inputs")
    if callable(found):
        try:
            found = found()
        except Exception as e:
            raise InvalidArgument(
                f"calling --inputs {spec!r} raised {type(e).__name__}: {e}; name a callable "
                f"that takes no arguments and returns the example inputs"
            ) from e
    return found, f"the inputs of {spec}"


def _load_directory(folder: Path, inputs: str | None, seed: int) -> tuple[Any, Any, str]:
    """The network saved in ``folder`` (read by the first installed loader that reads it), and
    example inputs for it."""
    loaders = _directory_loaders()
    if not loaders:
        raise InvalidArgument(
            f"{str(folder)!r} is a directory, but no installed package loads models from "
            f"directories (the transformer adapter loads Hugging Face ones: pip install "
            f"'scmnet[hf]'); or give MODEL as 'package.module:factory'"
        )
    refusals: list[InvalidArgument] = []
    for loader in loaders:
        try:
            loaded = loader.load(folder, seed=seed)
        except InvalidArgument as e:  # not a directory of its kind
            refusals.append(e)
            continue
        if inputs is not None:
            return loaded.module, *_inputs(inputs, loaded.module, seed)
        return loaded.module, loaded.example, loaded.described
    raise refusals[0]


def _load(spec: str, inputs: str | None, seed: int) -> tuple[Any, Any, str]:
    """The network that MODEL names, its example inputs, and what they are."""
    require("torch", "torch")
    folder = Path(spec).expanduser()
    if folder.is_dir():
        return _load_directory(folder, inputs, seed)
    if folder.exists():
        raise InvalidArgument(
            f"MODEL {spec!r} is a file; give a Hugging Face model directory (with "
            f"config.json) or an import path 'package.module:factory'"
        )
    if any(c in spec for c in "/\\") or spec.startswith((".", "~")):
        raise InvalidArgument(
            f"there is no directory {spec!r}; give the path of a local Hugging Face model "
            f"directory (one with config.json), or an import path 'package.module:factory'"
        )
    if ":" not in spec:
        raise InvalidArgument(
            f"MODEL {spec!r} is neither an existing directory nor an import path; give a local "
            f"Hugging Face model directory or 'package.module:factory' (e.g. "
            f"'scmnet.toys.modules:ErasureNet')"
        )
    model = _module_from_import(spec)
    if inputs is None:
        raise InvalidArgument(
            f"MODEL {spec!r} needs example inputs: pass --inputs with random tensors "
            f"(e.g. float:1x4, or long:1x12 for token ids) or 'package.module:factory' that "
            f"returns them"
        )
    return model, *_inputs(inputs, model, seed)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _graph(args: argparse.Namespace) -> list[str]:
    """Run ``scmnet graph``; returns the lines to print."""
    from scmnet.draw import draw_graph
    from scmnet.export import _block_depth, collapse, to_dot, to_graphml

    model, example, described = _load(args.model, args.inputs, args.seed)
    from scmnet.tracing import trace  # imports torch, which _load has checked for

    traced = trace(model, example, variables=args.variables)
    graph = traced.graph
    if args.collapse == "none":
        depth = None
    elif args.collapse == "auto":
        depth = _block_depth(graph) if len(graph) > _AUTO_NODES else None
    else:
        depth = int(args.collapse)
    blocks = collapse(traced, depth) if depth is not None else None

    args.out.mkdir(parents=True, exist_ok=True)
    lines = [
        f"scmnet graph: traced {type(model).__name__} on {described} "
        f"({_count(len(traced.exogenous), 'input')}, "
        f"{_count(len(traced.endogenous), 'variable')}, "
        f"{_count(graph.number_of_edges(), 'edge')}; front end {traced.info.frontend})"
    ]
    lines += [f"  note: {note}" for note in traced.info.notes]
    full = _count(len(graph), "node")
    shown = f"{_count(len(blocks), 'block')} at depth {depth}" if blocks is not None else full
    if "graphml" in args.format:
        lines.append(f"  wrote {to_graphml(traced, args.out / 'graph.graphml')} ({full})")
        if blocks is not None:
            lines.append(f"  wrote {to_graphml(blocks, args.out / 'blocks.graphml')} ({shown})")
    if "dot" in args.format:
        to_dot(traced, args.out / "graph.dot")
        lines.append(f"  wrote {args.out / 'graph.dot'} ({full})")
        if blocks is not None:
            to_dot(blocks, args.out / "blocks.dot")
            lines.append(f"  wrote {args.out / 'blocks.dot'} ({shown})")
    if "png" in args.format:
        png = args.out / ("blocks.png" if blocks is not None else "graph.png")
        target = blocks if blocks is not None else traced
        draw_graph(target, png)
        lines.append(f"  wrote {png} ({shown})")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Examples
    --------
    >>> import tempfile
    >>> main(["toys", "--out", tempfile.mkdtemp(), "--samples", "10"])  # doctest: +ELLIPSIS
    scmnet toys: wrote ...
    0
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = _parser(_plugins(arguments))
    args, extra = parser.parse_known_args(arguments)
    if extra and not isinstance(getattr(args, "plugin", None), _Unavailable):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.command == "toys":
            from scmnet.demo import toy_report

            summary = toy_report(args.out, samples=args.samples, seed=args.seed)
            status = "all identities hold" if summary["all_identities_hold"] else "IDENTITY FAILED"
            print(f"scmnet toys: wrote {args.out} ({summary['rows']} rows, {status})")
            return 0 if summary["all_identities_hold"] else 1
        if args.command == "graph":
            print("\n".join(_graph(args)))
            return 0
        plugin: Command = args.plugin
        return plugin.run(args)
    except ScmnetError as e:
        print(f"scmnet {args.command}: error: {e}", file=sys.stderr)
        details = getattr(e, "details", ())
        if details and getattr(args, "verbose", False):
            print(f"what torch said while tracing ({len(details)} lines):", file=sys.stderr)
            print("\n".join(details), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
