"""Benchmark: how the Hydra protocol's cost grows with prompt length, depth and prompt count.

Three series, each timed in this one process with the thread count pinned:

* **length** (``--lengths``) -- on the embedded SmolLM2-135M, a random prompt of T tokens:
  the per-prompt query (:func:`~scmnet.adapters.transformer.measures.measure_prompt`, resample
  values of K donors) and its clean run alone (:func:`~scmnet.adapters.transformer.causal.
  final_readings`), interleaved. The ablation part (query minus clean run) recomputes the final
  position only, so it should stay nearly flat: its FLOPs grow only by the attention over the
  T cached keys (``_common.protocol_flops``), printed next to it. Peak memory against length
  is ``benchmarks/hydra_memory.py`` (``--memory`` runs it here for the same lengths);
* **layers** (``--layers``) -- random-weight Llamas of the same width (``--width``) and 4, 8,
  16, 32 layers, timed round-robin. Ablating layer k recomputes the L - 1 - k layers after it,
  so one prompt's FLOPs grow as L^2 and the time per layer-ablation (per prompt / (2 L K)) as
  L; the script prints both and the fitted log-log slopes of time and FLOPs against L;
* **prompts** (``--counts``) -- ``run_sweep`` (resample, K = 15) over N of the built-in prompts
  into a fresh folder: the time, the time per prompt, the least-squares line a + b N (a: the
  clean pass and set-up, b: one prompt) and the peak resident memory after each N (it should
  not grow: each prompt's results are written out and its cached clean run cleared).

Usage::

    python benchmarks/hydra_growth.py --threads 2
    python benchmarks/hydra_growth.py --part layers --layers 4 8 16 32 --width 256
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import Shape, median_time, protocol_flops, random_llama

from scmnet.adapters.transformer.ablations import Ablation
from scmnet.adapters.transformer.causal import final_readings, hydra_model
from scmnet.adapters.transformer.lm import LanguageModel, load_model
from scmnet.adapters.transformer.measures import measure_prompt
from scmnet.adapters.transformer.prompts import builtin_prompts
from scmnet.adapters.transformer.sweep import clean_pass, run_sweep


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _slope(x: list[float], y: list[float]) -> float:
    """The least-squares slope of log y against log x."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def _donor_values(lm: LanguageModel, patches: int, seed: int) -> torch.Tensor:
    """K resample values: the final-position contributions of K random donor prompts."""
    gen = torch.Generator().manual_seed(seed)
    vocab = int(lm.unembedding.shape[0])
    ids = torch.randint(0, vocab, (patches, 10), generator=gen)
    return final_readings(lm, ids)[0]


def by_length(lm: LanguageModel, lengths: list[int], patches: int, repeats: int) -> None:
    """The query and its clean run against the prompt length."""
    shape = Shape.of(lm.config)
    values = _donor_values(lm, patches, 1)
    gen = torch.Generator().manual_seed(0)
    vocab = int(lm.unembedding.shape[0])
    print(f"\nlength: SmolLM2-135M, resample K={patches}, {1 + 2 * lm.n_layers * patches} runs")
    print(
        f"{'tokens':>7s} {'query s':>8s} {'clean s':>8s} {'ablation s':>11s} "
        f"{'ablation GFLOP':>15s}"
    )
    rows = []
    for t in lengths:
        ids = torch.randint(0, vocab, (1, t), generator=gen)

        def query(ids: torch.Tensor = ids) -> Any:
            hydra_model(lm).clear_cache()  # as in a sweep: the prompt's clean run is new
            return measure_prompt(lm, ids, 5, values)

        def clean(ids: torch.Tensor = ids) -> Any:
            hydra_model(lm).clear_cache()
            return final_readings(lm, ids)

        query()  # the probes of this length
        q, c = [], []
        for _ in range(repeats):  # interleaved
            q.append(median_time(query, 1))
            c.append(median_time(clean, 1))
        hydra_model(lm).clear_cache()
        query_s, clean_s = statistics.median(q), statistics.median(c)
        flops = protocol_flops(shape, t, patches)["ablated"]
        rows.append((t, query_s - clean_s, flops))
        print(
            f"{t:7d} {query_s:8.3f} {clean_s:8.3f} {query_s - clean_s:11.3f} {flops / 1e9:15.2f}",
            flush=True,
        )
    first, last = rows[0], rows[-1]
    print(
        f"ablation part from {first[0]} to {last[0]} tokens: time x{last[1] / first[1]:.2f}, "
        f"FLOPs x{last[2] / first[2]:.2f} (the prompt is {last[0] / first[0]:.0f}x longer)"
    )


def by_layers(layers: list[int], width: int, patches: int, tokens: int, repeats: int) -> None:
    """The query on random Llamas of one width and several depths, timed round-robin."""
    models = {n: random_llama(n, width, vocab=8000, seed=n) for n in layers}
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 8000, (1, tokens), generator=gen)
    runs: dict[int, Any] = {}
    for n, lm in models.items():
        hydra_model(lm)
        values = _donor_values(lm, patches, n)

        def query(lm: LanguageModel = lm, values: torch.Tensor = values) -> Any:
            hydra_model(lm).clear_cache()
            return measure_prompt(lm, ids, 0, values)

        query()  # the probes
        runs[n] = query
    times: dict[int, list[float]] = {n: [] for n in layers}
    for _ in range(repeats):
        for n in layers:
            times[n].append(median_time(runs[n], 1))
    print(
        f"\nlayers: random-weight Llamas, d_model {width}, d_ff {4 * width}, {tokens} tokens, "
        f"resample K={patches}"
    )
    print(
        f"{'layers':>7s} {'runs':>6s} {'prompt s':>9s} {'ms per layer-ablation':>22s} {'GFLOP':>7s}"
    )
    seconds, flops = [], []
    for n in layers:
        s = statistics.median(times[n])
        f = protocol_flops(Shape.of(models[n].config), tokens, patches)["total"]
        seconds.append(s)
        flops.append(f)
        per = s / (2 * n * patches) * 1e3
        print(f"{n:7d} {1 + 2 * n * patches:6d} {s:9.3f} {per:22.3f} {f / 1e9:7.3f}")
    print(
        f"log-log slope against layers: time {_slope(layers, seconds):.2f}, FLOPs "
        f"{_slope(layers, flops):.2f} (2 = quadratic: each ablation recomputes the layers "
        f"after it; per layer-ablation: time {_slope(layers, seconds) - 1:.2f})"
    )


def by_prompts(lm: LanguageModel, counts: list[int], pool: int) -> None:
    """run_sweep over N prompts, for each N of ``counts`` (increasing)."""
    prompts = builtin_prompts().limit(pool)
    clean_pass(lm, prompts)  # warm: the probes of the pool's lengths are made once
    print(f"\nprompts: run_sweep, resample K=15, donors from the first {pool} built-in prompts")
    print(f"{'prompts':>8s} {'sweep s':>8s} {'s per prompt':>13s} {'peak MiB':>9s}")
    seconds = []
    for n in sorted(counts):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            run_sweep(lm, prompts, Ablation(), Path(out), limit=n)
            seconds.append(time.perf_counter() - start)
        print(f"{n:8d} {seconds[-1]:8.2f} {seconds[-1] / n:13.3f} {_peak_mib():9.0f}", flush=True)
    b, a = np.polyfit(sorted(counts), seconds, 1)
    print(
        f"least squares: {a:.2f} s + {b:.3f} s per prompt (linear in N; a is the clean pass "
        f"of the {pool} prompts and set-up)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--part",
        nargs="+",
        default=["length", "layers", "prompts"],
        choices=["length", "layers", "prompts"],
    )
    parser.add_argument("--lengths", type=int, nargs="+", default=[10, 50, 200, 500])
    parser.add_argument("--layers", type=int, nargs="+", default=[4, 8, 16, 32])
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--pool", type=int, default=60)
    parser.add_argument("--patches", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory", action="store_true", help="run hydra_memory.py as well")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), float32")
    lm = load_model() if {"length", "prompts"} & set(args.part) else None
    if lm is not None:
        hydra_model(lm)
    if "length" in args.part and lm is not None:
        by_length(lm, args.lengths, args.patches, args.repeats)
    if "layers" in args.part:
        by_layers(args.layers, args.width, args.patches, 12, args.repeats)
    if "prompts" in args.part and lm is not None:
        by_prompts(lm, args.counts, args.pool)
    if args.memory:
        script = Path(__file__).resolve().parent / "hydra_memory.py"
        command = [sys.executable, str(script), "--lengths", *map(str, args.lengths)]
        command += ["--patches", str(args.patches), "--threads", str(args.threads)]
        print("\npeak memory against length (benchmarks/hydra_memory.py):", flush=True)
        subprocess.run(command, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})


if __name__ == "__main__":
    main()
