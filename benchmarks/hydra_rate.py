"""Benchmark: the arithmetic rate the Hydra query achieves, against a matmul rate, on SmolLM2.

For each prompt, on the embedded SmolLM2-135M with the sweep's resample ablation (K donors'
contributions through ``sn.patch`` rules, as ``benchmarks/hydra_engine.py`` and ``scmnet
hydra`` run it), the script times the per-prompt query
(:func:`~scmnet.adapters.transformer.measures.measure_prompt`: 1 + 60 K runs), counts the matrix
FLOPs it does (:func:`_common.protocol_flops`: the clean run over the T tokens and, for each of
the 60 K ablated rows, the final position recomputed from the ablated site on, attending to
the T cached keys -- K (L MLP + L (L - 1) layer(T)) in all -- plus the readouts' dot products;
see its docstring), and divides. Interleaved with each query, in the same process and at the
same thread count, it times ``torch.matmul`` at the shape of the query's widest product: the
60 K rows x d_model times d_model x d_ff (the MLP's up-projection with every row joined). It
prints both rates, their ratio (achieved / matmul), the FLOPs torch's profiler counts for one
query (a check of the count: it sees every matmul the engine really runs, the ablated
mechanisms and clean prefix included) and the operators that take the query's time. Usage::

    python benchmarks/hydra_rate.py --prompts 3 --patches 15 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

import torch
from _common import Shape, matmul_rate, median_time, protocol_flops
from hydra_engine import Protocol
from torch.profiler import ProfilerActivity, profile

from scmnet.adapters.transformer.ablations import AblationKind
from scmnet.adapters.transformer.causal import final_readings, hydra_model
from scmnet.adapters.transformer.lm import load_model
from scmnet.adapters.transformer.prompts import builtin_prompts
from scmnet.adapters.transformer.sweep import clean_pass
from scmnet.heap import frozen_heap


def profiled(run: Any, top: int) -> tuple[float, list[tuple[str, float]]]:
    """The matmul FLOPs torch's profiler counts in ``run()`` and the ``top`` operators by self
    CPU time (name, share of the total)."""
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        run()
    events = prof.key_averages()
    flops = float(sum(e.flops for e in events))
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    ranked = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return flops, [(e.key, e.self_cpu_time_total / total) for e in ranked]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=3)
    parser.add_argument("--patches", type=int, default=15)
    parser.add_argument("--pool", type=int, default=60, help="built-in prompts of the clean pass")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lm = load_model()
    hydra_model(lm)
    clean = clean_pass(lm, builtin_prompts().limit(args.pool))
    protocol = Protocol(lm, clean, args.patches)
    shape = Shape.of(lm.config)
    rows = 2 * shape.layers * args.patches
    print(
        f"SmolLM2-135M ({shape.layers} layers, d_model {shape.d_model}, d_ff {shape.d_ff}), "
        f"resample K={args.patches}: {1 + rows} runs per prompt; torch {torch.__version__}, "
        f"{args.threads} thread(s), float32; matmul ({rows} x {shape.d_model}) @ "
        f"({shape.d_model} x {shape.d_ff})"
    )
    print(
        f"{'T':>3s} {'GFLOP':>7s} {'query s':>8s} {'clean s':>8s} {'GFLOP/s':>8s} "
        f"{'matmul GFLOP/s':>15s} {'ratio':>6s} {'ablated part GFLOP/s':>21s}"
    )
    ratios, parts = [], []
    checked: tuple[float, float, list[tuple[str, float]]] | None = None
    with frozen_heap():  # as in a sweep: the model and its graph out of full collections
        for j in range(min(args.prompts, len(clean))):
            ids = clean.ids[j]
            rules, _ = protocol.draws(AblationKind.RESAMPLE, j)

            run = protocol.query(j, rules)

            def clean_run(ids: torch.Tensor = ids) -> Any:
                hydra_model(lm).clear_cache()
                return final_readings(lm, ids)

            run()  # the probes of this prompt length
            t = int(ids.shape[1])
            flops = protocol_flops(shape, t, args.patches)
            rate_before = matmul_rate(
                rows, shape.d_model, shape.d_ff, dtype=torch.float32, device="cpu"
            )
            seconds = median_time(run, args.repeats)
            clean_s = median_time(clean_run, args.repeats)
            rate_after = matmul_rate(
                rows, shape.d_model, shape.d_ff, dtype=torch.float32, device="cpu"
            )
            rate = (rate_before + rate_after) / 2
            achieved = flops["total"] / seconds
            ablated = (flops["ablated"] + flops["readouts"]) / max(seconds - clean_s, 1e-9)
            ratios.append(achieved / rate)
            parts.append(ablated / rate)
            print(
                f"{t:3d} {flops['total'] / 1e9:7.2f} {seconds:8.3f} {clean_s:8.3f} "
                f"{achieved / 1e9:8.2f} {rate / 1e9:15.2f} {achieved / rate:6.3f} "
                f"{ablated / 1e9:21.2f}",
                flush=True,
            )
            if checked is None:
                counted, top = profiled(run, 10)
                checked = (flops["total"], counted, top)
    print(
        f"achieved / matmul rate: median {statistics.median(ratios):.3f} over {len(ratios)} "
        f"prompts (the ablated part alone, query minus clean run: "
        f"{statistics.median(parts):.3f})"
    )
    if checked is not None:
        ours, counted, top = checked
        print(
            f"FLOPs of the first query: {ours / 1e9:.2f} G counted here, {counted / 1e9:.2f} G "
            f"counted by torch's profiler (every matmul it runs)"
        )
        print("operators by self CPU time in that query (profiled):")
        for name, share in top:
            print(f"  {share:6.1%}  {name}")


if __name__ == "__main__":
    main()
