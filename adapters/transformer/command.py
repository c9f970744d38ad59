"""The adapter's part of the ``scmnet`` command line: ``scmnet hydra`` and ``scmnet graph DIR``.

Two plug-ins, registered as entry points in ``pyproject.toml`` and checked against the
protocols of :mod:`scmnet.commands`:

* :data:`HYDRA` -- the sub-command ``scmnet hydra``, which runs
  :func:`~scmnet.adapters.transformer.hydra.run_hydra` and prints where the report went;
* :data:`HUGGING_FACE` -- the loader behind ``scmnet graph DIR`` for a local Hugging Face model
  directory: the causal LM in it, and a tokenized sentence (or random token ids, without a
  tokenizer) as example inputs.

Examples
--------
>>> import argparse
>>> parser = argparse.ArgumentParser(prog="scmnet hydra")
>>> HYDRA.add_arguments(parser)
>>> args = parser.parse_args(["--ablation", "zero", "--limit", "5", "--batch-memory", "512"])
>>> args.ablation, args.limit, str(args.out), args.batch_memory
('zero', 5, 'reports/hydra', 512)
>>> args.patches is None  # not given: 15, unless --from-record takes it from the record
True
>>> args = parser.parse_args(["--from-record", "reports/hydra", "--out", "reports/again"])
>>> str(args.from_record), str(args.out)
('reports/hydra', 'reports/again')
>>> try:
...     HYDRA.run(parser.parse_args(["--from-record", "reports/hydra", "--seed", "1"]))
... except InvalidArgument as e:
...     print(e)  # doctest: +NORMALIZE_WHITESPACE
--from-record takes the model, prompts, ablation, patches, seed, limit and dtype from
reports/hydra/settings.json; drop --seed, which would change the numbers, or run without
--from-record
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from scmnet.commands import Command, DirectoryLoader, LoadedModel, positive_int
from scmnet.errors import InvalidArgument, require
from scmnet.random_inputs import random_inputs

from .hydra import UNITS, rerun, run_hydra
from .lm import load_directory
from .precision import DTYPES

__all__ = ["HUGGING_FACE", "HYDRA", "HuggingFaceDirectory", "HydraCommand"]

_RECORDED = ("model", "prompts", "ablation", "patches", "seed", "limit", "dtype")
"""The options --from-record takes from the record: those that change the numbers."""

SENTENCE = "The Eiffel Tower is located in the city of"
"""What ``scmnet graph DIR`` traces a model with a tokenizer on."""


class HydraCommand:
    """``scmnet hydra``: the Hydra-effect analysis of a language model, as a report directory."""

    name = "hydra"
    help = "the Hydra-effect analysis of a language model (Sections 2 and 4 of the paper)"
    description = (
        "Unembedding vs ablation impact, self-repair and erasure of every attention and MLP "
        "layer on a factual-recall prompt set, written as a report directory (figures, CSV "
        "tables, summary.json, summary.md). Resumes an interrupted run in the same --out; "
        "--from-record DIR re-runs the sweep recorded in DIR/settings.json into --out."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The options of ``scmnet hydra``."""
        parser.add_argument(
            "--model",
            default=None,
            help="a local Hugging Face model directory, a .gguf file (or a directory holding "
            "one), or a hub name where a hub is reachable; default: the embedded "
            "SmolLM2-135M-Instruct",
        )
        parser.add_argument(
            "--prompts",
            type=Path,
            default=None,
            help="ROME known-facts JSON, CounterFact JSON, JSONL or text; default: the built-in "
            "set",
        )
        parser.add_argument(
            "--ablation",
            choices=("resample", "zero", "mean", "noise"),
            default=None,
            help="how layers are ablated; default: resample",
        )
        parser.add_argument(
            "--patches",
            type=positive_int,
            default=None,
            help="draws per ablation (resample, noise); default: 15",
        )
        parser.add_argument(
            "--limit", type=positive_int, default=None, help="analyse at most N correct prompts"
        )
        parser.add_argument("--seed", type=int, default=None, help="seed of every draw; default: 0")
        parser.add_argument(
            "--dtype",
            choices=tuple(DTYPES),
            default=None,
            help="the dtype the model computes in (readouts are accumulated in float32); "
            "recorded with the sweep; default: float32",
        )
        parser.add_argument(
            "--from-record",
            type=Path,
            default=None,
            metavar="DIR",
            help="re-run the sweep recorded in DIR/settings.json (its model, prompts, ablation, "
            "patches, seed, limit and dtype) into --out, a directory other than DIR",
        )
        parser.add_argument(
            "--device", default=None, help="torch device (cpu, cuda, cuda:1, ...); default: cpu"
        )
        parser.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
        parser.add_argument(
            "--batch-memory",
            type=positive_int,
            default=None,
            metavar="MIB",
            help="a budget in MiB for the activations of one batched run of ablations (the "
            "rows are cut into chunks that fit); default: all the ablations of a prompt at once",
        )
        parser.add_argument(
            "--out", type=Path, default=Path("reports/hydra"), help="report directory"
        )
        parser.add_argument("--quiet", action="store_true", help="no progress bars")
        parser.add_argument(
            "--verbose",
            action="store_true",
            help="show torch's own output while tracing the model (held back by default)",
        )
        parser.add_argument(
            "--workers",
            type=positive_int,
            default=None,
            metavar="N",
            help="compute the prompts on a local Ray cluster of N workers started for the run "
            "(needs scmnet[ray]); the report is that of one process with as many --threads",
        )
        parser.add_argument(
            "--ray",
            default=None,
            metavar="ADDRESS",
            help="compute the prompts on the existing Ray cluster at ADDRESS (auto, "
            "ray://host:10001), whose nodes see the model and --out at the same paths",
        )
        parser.add_argument(
            "--device-map",
            default=None,
            metavar="MAP",
            help="split a model larger than one device across devices with accelerate: auto, "
            "balanced, balanced_low_0, sequential, a JSON file mapping module paths to "
            "devices (cuda:0, cpu, disk), or one device; not with --device",
        )
        parser.add_argument(
            "--max-memory",
            default=None,
            metavar="SIZES",
            help="with --device-map, the most memory each device may hold, e.g. "
            "cpu=2GiB,cuda:0=20GiB",
        )
        parser.add_argument(
            "--repair-top",
            type=float,
            default=None,
            metavar="FRACTION",
            help="in the report's self-repair table, the shares over only the prompts where the "
            "ablated layer's clean direct effect is in its top FRACTION (e.g. 0.02, Rushing & "
            "Nanda's top 2%%); default: every prompt",
        )
        parser.add_argument(
            "--units",
            choices=UNITS,
            default="layers",
            help="layers (default): the paper's analysis; heads: also every attention head "
            "ablated alone, after the layers (heads.csv and a table in summary.md; not Gemma 3)",
        )
        parser.add_argument(
            "--anti-erasure",
            action="store_true",
            help="also measure the last MLP's anti-erasure neuron by neuron for every ablated "
            "layer, after the layers (columns of selfrepair.csv; not Gemma 3)",
        )
        parser.add_argument(
            "--offload-folder",
            type=Path,
            default=None,
            metavar="DIR",
            help="with --device-map, where modules mapped to disk are offloaded",
        )

    def run(self, args: argparse.Namespace) -> int:
        """Run the analysis (or re-run a record) and print where the report went; returns 0.

        Raises
        ------
        InvalidArgument
            If ``--from-record`` comes with an option that would change the numbers, or
            ``--device-map`` with ``--device``.
        """
        memory = None if args.batch_memory is None else args.batch_memory * 2**20
        if args.device_map is not None and args.device is not None:
            raise InvalidArgument(
                f"--device-map {args.device_map} places each part of the model on its device, "
                f"so it takes no --device; drop --device {args.device}, or drop --device-map to "
                f"put the whole model on {args.device}"
            )
        how: dict[str, Any] = {
            "device": "cpu" if args.device is None else args.device,
            "out": args.out,
            "threads": args.threads,
            "progress": not args.quiet,
            "memory": memory,
            "verbose": args.verbose,
            "workers": args.workers,
            "ray": args.ray,
            "repair_top": args.repair_top,
            "units": args.units,
            "anti_erasure": args.anti_erasure,
        }
        placing = {
            "device_map": args.device_map,
            "max_memory": args.max_memory,
            "offload_folder": args.offload_folder,
        }
        how |= {k: v for k, v in placing.items() if v is not None}  # given only where used
        if args.from_record is not None:
            given = [f"--{n}" for n in _RECORDED if getattr(args, n) is not None]
            if given:
                which = "which would" if len(given) == 1 else "which would each"
                raise InvalidArgument(
                    f"--from-record takes the model, prompts, ablation, patches, seed, limit and "
                    f"dtype "
                    f"from {args.from_record / 'settings.json'}; drop {', '.join(given)}, "
                    f"{which} change the numbers, or run without --from-record"
                )
            summary = rerun(args.from_record, **how)
        else:
            summary = run_hydra(
                model=args.model,
                prompts=args.prompts,
                ablation="resample" if args.ablation is None else args.ablation,
                patches=15 if args.patches is None else args.patches,
                limit=args.limit,
                seed=0 if args.seed is None else args.seed,
                dtype="float32" if args.dtype is None else args.dtype,
                **how,
            )
        print(
            f"scmnet hydra: wrote {args.out} ({summary['prompts_kept']} of "
            f"{summary['prompts_total']} prompts analysed, {summary['seconds']} s); "
            f"see {args.out / 'summary.md'}"
        )
        return 0


class HuggingFaceDirectory:
    """A causal LM from a local Hugging Face model directory, for ``scmnet graph DIR``."""

    name = "huggingface"

    def load(self, folder: Path, *, seed: int) -> LoadedModel:
        """The model in ``folder`` and its example inputs: the tokenized :data:`SENTENCE`, or
        random token ids ``long:1x8`` drawn with ``seed`` where there is no tokenizer.

        Raises
        ------
        InvalidArgument
            If ``folder`` has no ``config.json``.
        MissingDependency
            If transformers (extra ``hf``) is missing.
        UnsupportedModel
            If transformers cannot load the model or its tokenizer.
        """
        if not (folder / "config.json").is_file():
            raise InvalidArgument(
                f"{str(folder)!r} has no config.json, so it is not a Hugging Face model "
                f"directory; write one with model.save_pretrained(dir), or give MODEL as "
                f"'package.module:factory'"
            )
        require("transformers", "hf")
        model, tokenizer = load_directory(folder)
        if tokenizer is not None:
            ids = tokenizer(SENTENCE, return_tensors="pt")["input_ids"]
            return LoadedModel(model, {"input_ids": ids}, f"the tokenized sentence {SENTENCE!r}")
        (ids,) = random_inputs("long:1x8", model, seed)
        described = f"random token ids long:1x8 (seed {seed}; no tokenizer)"
        return LoadedModel(model, {"input_ids": ids}, described)


HYDRA: Command = HydraCommand()
"""The sub-command ``scmnet hydra`` (entry point ``hydra`` of group ``scmnet.commands``)."""

HUGGING_FACE: DirectoryLoader = HuggingFaceDirectory()
"""The loader of Hugging Face model directories (entry point ``huggingface`` of group
``scmnet.directory_loaders``)."""
