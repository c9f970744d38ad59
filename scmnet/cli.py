"""The ``scmnet`` command line.

Sub-commands:

* ``scmnet toys [--out DIR] [--samples N] [--seed S]`` -- the toy-model report
  (:func:`scmnet.demo.toy_report`): effects of the erasure and self-repair motifs of Section 3.3,
  checked against the paper's identities, with graph pictures.
* ``scmnet hydra [--model M] [--prompts FILE] [--ablation zero|mean|noise|resample]
  [--patches K] [--limit N] [--seed S] [--device D] [--out DIR]`` -- the Hydra-effect analysis
  of a language model (default: the embedded SmolLM2-135M-Instruct), written as a report
  directory; an interrupted run resumes. Needs the ``hf`` extra; the generic core never imports
  transformers, only this sub-command does.
* ``scmnet graph MODEL [--inputs SPEC] [--variables GLOB ...] [--collapse DEPTH|auto|none]
  [--format png,graphml,dot] [--seed S] [--out DIR]`` -- trace a network and save its causal
  graph (:mod:`scmnet.export`): GraphML, DOT and a PNG picture, collapsed by block when large.
  MODEL is a Python import path ``package.module:factory`` (a callable returning an
  ``nn.Module``, or a module object) or a local Hugging Face model directory (the ``hf``
  extra; transformers is imported only then).

Every sub-command prints where it wrote its results and exits non-zero with a one-line message
on a user error (any :class:`~scmnet.ScmnetError`).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from scmnet.errors import (
    InvalidArgument,
    ScmnetError,
    UnsupportedModel,
    did_you_mean,
    require,
)
from scmnet.export import MAX_NODES

__all__ = ["main"]


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
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
    toys.add_argument("--samples", type=_positive, default=2000, help="draws of P(u)")
    toys.add_argument("--seed", type=int, default=0, help="seed of the draws")

    hydra = sub.add_parser(
        "hydra",
        help="the Hydra-effect analysis of a language model (Sections 2 and 4 of the paper)",
        description="Unembedding vs ablation impact, self-repair and erasure of every attention "
        "and MLP layer on a factual-recall prompt set, written as a report directory (figures, "
        "CSV tables, summary.json, summary.md). Resumes an interrupted run in the same --out.",
    )
    hydra.add_argument(
        "--model",
        default=None,
        help="a local Hugging Face model directory (or hub name where a hub is reachable); "
        "default: the embedded SmolLM2-135M-Instruct",
    )
    hydra.add_argument(
        "--prompts",
        type=Path,
        default=None,
        help="ROME known-facts JSON, CounterFact JSON, JSONL or text; default: the built-in set",
    )
    hydra.add_argument(
        "--ablation", choices=("resample", "zero", "mean", "noise"), default="resample"
    )
    hydra.add_argument(
        "--patches", type=_positive, default=15, help="draws per ablation (resample, noise)"
    )
    hydra.add_argument(
        "--limit", type=_positive, default=None, help="analyse at most N correct prompts"
    )
    hydra.add_argument("--seed", type=int, default=0, help="seed of every draw")
    hydra.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1, ...)")
    hydra.add_argument("--threads", type=_positive, default=None, help="torch CPU threads")
    hydra.add_argument("--out", type=Path, default=Path("reports/hydra"), help="report directory")
    hydra.add_argument("--quiet", action="store_true", help="no progress bars")

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
    return parser


# -- scmnet graph -----------------------------------------------------------------------------

_AUTO_NODES = MAX_NODES
_FORMATS = ("png", "graphml", "dot")
_DTYPES = {
    "float": "float32",
    "float32": "float32",
    "double": "float64",
    "float64": "float64",
    "half": "float16",
    "float16": "float16",
    "bfloat16": "bfloat16",
    "long": "int64",
    "int64": "int64",
    "int": "int32",
    "int32": "int32",
    "bool": "bool",
}
_SHAPE = re.compile(r"[0-9]+(x[0-9]+)*")
_SENTENCE = "The Eiffel Tower is located in the city of"


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


def _vocabulary(model: Any) -> int:
    """How many token ids random ``long`` inputs draw from: the model's vocabulary, else 10."""
    from torch import nn

    size = getattr(getattr(model, "config", None), "vocab_size", None)
    if isinstance(size, int) and size > 0:
        return size
    embeddings = [m for m in model.modules() if isinstance(m, nn.Embedding)]
    return int(embeddings[0].num_embeddings) if embeddings else 10


def _random_inputs(spec: str, model: Any, seed: int) -> tuple[Any, ...]:
    """Seeded random tensors for ``DTYPE:SHAPE[,DTYPE:SHAPE...]``."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    tensors = []
    for part in spec.split(","):
        name, _, shape_text = part.strip().partition(":")
        if name not in _DTYPES:
            raise InvalidArgument(
                f"unknown dtype {name!r} in --inputs {spec!r}{did_you_mean(name, _DTYPES)}; "
                f"the dtypes are {', '.join(_DTYPES)}"
            )
        if not _SHAPE.fullmatch(shape_text):
            raise InvalidArgument(
                f"bad shape {shape_text!r} in --inputs {spec!r}; write the sizes joined by 'x', "
                f"e.g. {name}:1x4"
            )
        shape = tuple(int(d) for d in shape_text.split("x"))
        dtype = getattr(torch, _DTYPES[name])
        if dtype.is_floating_point:
            tensors.append(torch.randn(shape, generator=generator).to(dtype))
        else:
            high = 2 if dtype == torch.bool else _vocabulary(model)
            tensors.append(torch.randint(0, high, shape, generator=generator).to(dtype))
    return tuple(tensors)


def _inputs(spec: str, model: Any, seed: int) -> tuple[Any, str]:
    """Example inputs from ``--inputs`` (random tensors, or what an import path returns), and
    what they are."""
    head, _, tail = spec.partition(":")
    if head in _DTYPES or _SHAPE.fullmatch(tail.partition(",")[0]):
        return _random_inputs(spec, model, seed), f"random inputs {spec} (seed {seed})"
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


def _load_hf(folder: Path, inputs: str | None, seed: int) -> tuple[Any, Any, str]:
    """A causal LM from a local Hugging Face directory, and example inputs for it."""
    if not (folder / "config.json").is_file():
        raise InvalidArgument(
            f"{str(folder)!r} has no config.json, so it is not a Hugging Face model directory; "
            f"write one with model.save_pretrained(dir), or give MODEL as "
            f"'package.module:factory'"
        )
    require("transformers", "hf")
    # The command line is the one floor above the adapters (the core never imports them);
    # imported by name, as the type checker sees ``adapters/`` under its folder name.
    lm = importlib.import_module("scmnet.adapters.transformer.lm")
    model, tokenizer = lm.load_directory(folder)
    if inputs is not None:
        return model, *_inputs(inputs, model, seed)
    if tokenizer is not None:
        ids = tokenizer(_SENTENCE, return_tensors="pt")["input_ids"]
        return model, {"input_ids": ids}, f"the tokenized sentence {_SENTENCE!r}"
    (ids,) = _random_inputs("long:1x8", model, seed)
    return model, {"input_ids": ids}, f"random token ids long:1x8 (seed {seed}; no tokenizer)"


def _load(spec: str, inputs: str | None, seed: int) -> tuple[Any, Any, str]:
    """The network that MODEL names, its example inputs, and what they are."""
    require("torch", "torch")
    folder = Path(spec).expanduser()
    if folder.is_dir():
        return _load_hf(folder, inputs, seed)
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
    args = _parser().parse_args(argv)
    try:
        if args.command == "toys":
            from scmnet.demo import toy_report

            summary = toy_report(args.out, samples=args.samples, seed=args.seed)
            status = "all identities hold" if summary["all_identities_hold"] else "IDENTITY FAILED"
            print(f"scmnet toys: wrote {args.out} ({summary['rows']} rows, {status})")
            return 0 if summary["all_identities_hold"] else 1
        if args.command == "hydra":
            # Imported by name, as in _load_hf: the command line is the floor above the adapters.
            hydra = importlib.import_module("scmnet.adapters.transformer.hydra")
            summary = hydra.run_hydra(
                model=args.model,
                prompts=args.prompts,
                ablation=args.ablation,
                patches=args.patches,
                limit=args.limit,
                seed=args.seed,
                device=args.device,
                out=args.out,
                threads=args.threads,
                progress=not args.quiet,
            )
            print(
                f"scmnet hydra: wrote {args.out} ({summary['prompts_kept']} of "
                f"{summary['prompts_total']} prompts analysed, {summary['seconds']} s); "
                f"see {args.out / 'summary.md'}"
            )
            return 0
        if args.command == "graph":
            print("\n".join(_graph(args)))
            return 0
    except ScmnetError as e:
        print(f"scmnet {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
