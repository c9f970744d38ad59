"""Benchmark: peak memory and time of one prompt's Hydra protocol against the prompt's length.

For each prompt length T, a fresh process loads the embedded SmolLM2-135M, traces it, and runs
:func:`~scmnet.adapters.transformer.measures.measure_prompt` (the clean run and 60 sites x K
values as one effect query) on a random prompt of T tokens. It prints the peak resident memory
of the process after the model is loaded (``ru_maxrss``), the peak during the query, their
difference, and the query's time. The ablation part recomputes the final position only, so its
cost should stay flat in T; the clean run (kept for the rows to read) grows linearly. Usage::

    python benchmarks/hydra_memory.py --lengths 10 500 2000 --patches 15 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def one(length: int, patches: int, threads: int, memory: int | None) -> dict[str, float]:
    """Measure one prompt length in this process (a fresh one: ru_maxrss only grows)."""
    import torch

    from scmnet.adapters.transformer.causal import hydra_model
    from scmnet.adapters.transformer.lm import load_model
    from scmnet.adapters.transformer.measures import measure_prompt

    torch.set_num_threads(threads)
    lm = load_model()
    hydra_model(lm)  # the trace, made once
    g = torch.Generator().manual_seed(length)
    vocab = int(lm.unembedding.shape[0])
    ids = torch.randint(0, vocab, (1, length), generator=g)
    values = torch.randn(patches, 2, lm.n_layers, lm.d_model, generator=g)
    loaded = _peak_mib()
    start = time.perf_counter()
    measure_prompt(lm, ids, 5, values, memory=memory)
    seconds = time.perf_counter() - start
    peak = _peak_mib()
    return {"tokens": length, "loaded_mib": loaded, "peak_mib": peak, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[10, 500, 2000])
    parser.add_argument("--patches", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory-mib", type=int, default=None, help="the query's memory budget")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    memory = None if args.memory_mib is None else args.memory_mib * 2**20
    if args.one is not None:
        print(json.dumps(one(args.one, args.patches, args.threads, memory)))
        return
    print(
        f"SmolLM2-135M, 60 sites x {args.patches} values + clean per prompt, {args.threads} "
        f"thread(s), memory budget {args.memory_mib or 'none'} MiB; one process per length"
    )
    print(f"{'tokens':>7s} {'loaded MiB':>11s} {'peak MiB':>9s} {'query MiB':>10s} {'seconds':>8s}")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    for length in args.lengths:
        command = [sys.executable, __file__, "--one", str(length), "--patches", str(args.patches)]
        command += ["--threads", str(args.threads)]
        if args.memory_mib is not None:
            command += ["--memory-mib", str(args.memory_mib)]
        out = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{r['tokens']:7d} {r['loaded_mib']:11.0f} {r['peak_mib']:9.0f} "
            f"{r['peak_mib'] - r['loaded_mib']:10.0f} {r['seconds']:8.1f}"
        )


if __name__ == "__main__":
    main()
