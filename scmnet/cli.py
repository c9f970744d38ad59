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

Every sub-command prints where it wrote its results and exits non-zero with a one-line message
on a user error (any :class:`~scmnet.ScmnetError`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from scmnet.errors import ScmnetError

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
    return parser


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
            # Imported by name: the core never depends on the adapters (or transformers).
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
    except ScmnetError as e:
        print(f"scmnet {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
