"""Benchmark: the Hydra protocol at the paper's scale, on a random-weight Llama (GPU script).

The paper's experiment is 1,209 prompts x 64 layers x 15 resample patches on a 7B model. This
script builds a Llama-architecture model with random weights from a config (presets ``1b``,
``3b``, ``7b`` with the shapes of Llama-3.2-1B, Llama-3.2-3B and Llama-2-7B; ``--layers`` and
``--d-model`` override them), traces it once (:func:`~scmnet.adapters.transformer.causal.
hydra_model`) and runs the real per-prompt query of ``scmnet hydra``
(:func:`~scmnet.adapters.transformer.measures.measure_prompt`: the clean run and every
attention and MLP output at the final position ablated with K values, read out as the centred
logit and the 2L direct effects of every run) on random prompts of the paper's length (10-20
tokens). The K values are resample-style: the final-position contributions of K other random
prompts (donors), read in one clean pass.

It prints

* the median time per prompt and of its clean run alone (the clean pass of the prompt);
* **tokens/s**: prompt tokens per second through the whole protocol, and the *forward-equivalent*
  tokens/s -- (1 + 2 L K) runs x T tokens per prompt, what a one-forward-per-ablation loop would
  push through the model in the same time;
* **achieved TFLOP/s**: the protocol's matmul FLOPs (:func:`benchmarks._common.protocol_flops`,
  which counts what the engine computes: the clean run, and each ablated row's final position
  from its ablated site on) over the measured time, next to a ``torch.matmul`` rate measured in
  the same process at the shape of the engine's widest product, (2 L K rows x d_model) @
  (d_model x d_ff), and their ratio;
* the **estimated wall time** of 1,209 prompts x 64 layers x 15 patches at this width.

The estimate. A prompt of T tokens costs, in matmul FLOPs (``protocol_flops``),

    clean(L) = L [T (P + M) + 2 d_q T (T + 1)]   (linear in L)
    ablated(L, K) = K [L M + L (L - 1) (P + M + 4 d_q T)]

where P and M are one position's attention projections and MLP: the row that ablates layer k
recomputes the L - 1 - k layers after it, and summing over the 2L sites gives L (L - 1) layers
per draw -- the ablation part grows with the **square** of the depth (a 64-layer model costs
(64 x 63) / (L (L - 1)) times an L-layer one per draw), the clean run linearly. The script
measures the time per prompt t at its own L, K and mean T, and scales it by the FLOP ratio:

    estimate = 1209 x t x total(64, 15) / total(L, K)

i.e. it assumes the achieved FLOP rate stays what it measured (a deeper model's larger batch of
rows runs at least as fast on a GPU, so this is, if anything, pessimistic). With ``--layers 64
--patches 15`` the ratio is 1 and the estimate is the measured time times 1,209.

``--dry-run`` runs a tiny config (4 layers, width 64) on the CPU in seconds and prints the same
lines; the tests run it. Usage, on a GPU::

    python benchmarks/paper_scale.py --preset 7b --prompts 8
    python benchmarks/paper_scale.py --preset 1b --layers 64   # the paper's depth at 1B width
    python benchmarks/paper_scale.py --preset smollm2 --hooks 3   # vs a hooks loop
    python benchmarks/paper_scale.py --dry-run
"""

from __future__ import annotations

import argparse
import math
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Shape, hooks_loop, matmul_rate, protocol_flops, random_llama

PRESETS: dict[str, dict[str, int]] = {
    # Llama-3.2-1B, Llama-3.2-3B (grouped-query attention, 128k vocabulary), Llama-2-7B.
    "1b": {
        "layers": 16,
        "d_model": 2048,
        "d_ff": 8192,
        "heads": 32,
        "kv_heads": 8,
        "vocab": 128256,
    },
    "3b": {
        "layers": 28,
        "d_model": 3072,
        "d_ff": 8192,
        "heads": 24,
        "kv_heads": 8,
        "vocab": 128256,
    },
    "7b": {
        "layers": 32,
        "d_model": 4096,
        "d_ff": 11008,
        "heads": 32,
        "kv_heads": 32,
        "vocab": 32000,
    },
    # SmolLM2-135M, the embedded model's shapes (its weights are not needed to time it).
    "smollm2": {
        "layers": 30,
        "d_model": 576,
        "d_ff": 1536,
        "heads": 9,
        "kv_heads": 3,
        "vocab": 49152,
    },
    "tiny": {"layers": 4, "d_model": 64, "d_ff": 128, "heads": 4, "kv_heads": 2, "vocab": 1000},
}
PAPER = {"prompts": 1209, "layers": 64, "patches": 15}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def config_of(preset: str, layers: int | None, d_model: int | None) -> dict[str, int]:
    """The preset's sizes with the overrides; a new width keeps the preset's d_ff / d_model
    ratio and head size (64 for the tiny preset, 128 otherwise)."""
    found = dict(PRESETS[preset])
    if layers is not None:
        found["layers"] = layers
    if d_model is not None:
        head = found["d_model"] // found["heads"]
        groups = found["heads"] // found["kv_heads"]
        found["d_ff"] = found["d_ff"] * d_model // found["d_model"]
        found["heads"] = max(1, d_model // head)
        found["kv_heads"] = max(1, found["heads"] // groups)
        found["d_model"] = d_model
    return found


def _peak_mib(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn: Any, device: str) -> tuple[float, Any]:
    """The wall time of ``fn()`` (the device synchronised before and after) and its result."""
    _sync(device)
    begin = time.perf_counter()
    result = fn()
    _sync(device)
    return time.perf_counter() - begin, result


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build, trace and time; returns the figures printed."""
    from scmnet.adapters.transformer.causal import final_readings, hydra_model
    from scmnet.adapters.transformer.measures import measure_prompt

    device, dtype = args.device, DTYPES[args.dtype]
    sizes = config_of(args.preset, args.layers, args.d_model)
    begin = time.perf_counter()
    lm = random_llama(
        sizes["layers"],
        sizes["d_model"],
        d_ff=sizes["d_ff"],
        heads=sizes["heads"],
        kv_heads=sizes["kv_heads"],
        vocab=sizes["vocab"],
        seed=args.seed,
        dtype=dtype,
        device=device,
    )
    built_s = time.perf_counter() - begin
    shape = Shape.of(lm.config)
    begin = time.perf_counter()
    hydra_model(lm)
    traced_s = time.perf_counter() - begin
    gen = torch.Generator().manual_seed(args.seed)
    low, high = args.tokens
    lengths = torch.randint(low, high + 1, (args.prompts,), generator=gen).tolist()
    prompts = [torch.randint(0, sizes["vocab"], (1, t), generator=gen) for t in lengths]
    donors = [
        torch.randint(0, sizes["vocab"], (1, int(t)), generator=gen)
        for t in torch.randint(low, high + 1, (args.patches,), generator=gen).tolist()
    ]
    # The K donors' final-position contributions: the resample values, shape (K, 2, L, d).
    values = torch.cat([final_readings(lm, ids)[0] for ids in donors]).to(device, dtype)
    probes_s = 0.0
    for t in sorted(set(lengths)):  # the engine's probes, once per prompt length (untimed)
        ids = next(p for p in prompts if p.shape[1] == t)
        begin = time.perf_counter()
        measure_prompt(lm, ids, 0, values)
        _sync(device)
        probes_s += time.perf_counter() - begin
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    prompt_s, clean_s, flops, tokens_of = [], [], [], []
    for ids in prompts:
        _sync(device)
        begin = time.perf_counter()
        hydra_model(lm).clear_cache()  # as in a sweep: nothing of this prompt is cached
        _, logits = final_readings(lm, ids)
        _sync(device)
        clean_s.append(time.perf_counter() - begin)
        token = int(logits[0].argmax())
        tokens_of.append(token)
        begin = time.perf_counter()
        measure_prompt(lm, ids, token, values)
        _sync(device)
        prompt_s.append(time.perf_counter() - begin)
        hydra_model(lm).clear_cache()
        flops.append(protocol_flops(shape, int(ids.shape[1]), args.patches)["total"])
    rows = 2 * shape.layers * args.patches
    rate = matmul_rate(rows, shape.d_model, shape.d_ff, dtype=dtype, device=device)
    mean_t = statistics.mean(lengths)
    tokens, runs = sum(lengths), 1 + rows
    total_s = sum(prompt_s)
    scale = protocol_flops(_paper_shape(shape), round(mean_t), PAPER["patches"])["total"]
    scale /= protocol_flops(shape, round(mean_t), args.patches)["total"]
    estimate_s = PAPER["prompts"] * statistics.median(prompt_s) * scale
    versus = hooks_versus_engine(lm, prompts[: args.hooks], tokens_of, values, device)
    return {
        **versus,
        "sizes": sizes,
        "built_s": built_s,
        "traced_s": traced_s,
        "probes_s": probes_s,
        "lengths": lengths,
        "prompt_s": statistics.median(prompt_s),
        "clean_s": statistics.median(clean_s),
        "tokens_per_s": tokens / total_s,
        "forward_tokens_per_s": tokens * runs / total_s,
        "achieved": sum(flops) / total_s,
        "matmul": rate,
        "rows": rows,
        "scale": scale,
        "estimate_s": estimate_s,
        "peak_mib": _peak_mib(device),
    }


def hooks_versus_engine(
    lm: Any, prompts: list[torch.Tensor], tokens: list[int], values: torch.Tensor, device: str
) -> dict[str, Any]:
    """The engine against a one-forward-per-ablation hooks loop on ``prompts``, interleaved.

    Each side computes a prompt from nothing (the engine's clean run included, as in
    ``benchmarks/hydra_engine.py``); returns the median ratio of their times, both medians and
    the largest difference of their Delta_ablate and the largest Delta_ablate, its scale (empty
    if there are no prompts).
    """
    from scmnet.adapters.transformer.causal import hydra_model
    from scmnet.adapters.transformer.measures import measure_prompt

    if not prompts:
        return {}
    engine_s, hooks_s, diffs, scales = [], [], [], []
    for ids, token in zip(prompts, tokens, strict=False):
        ids = ids.to(device)
        hydra_model(lm).clear_cache()  # the engine computes the clean run too
        seconds, fast = _timed(lambda: measure_prompt(lm, ids, token, values), device)  # noqa: B023
        engine_s.append(seconds)
        seconds, slow = _timed(lambda: hooks_loop(lm, ids, token, values), device)  # noqa: B023
        hooks_s.append(seconds)
        diffs.append(float(abs(fast.ablate_per_draw - slow).max()))
        scales.append(float(abs(slow).max()))
    ratios = [h / e for h, e in zip(hooks_s, engine_s, strict=True)]
    return {
        "hooks_prompts": len(prompts),
        "hooks_s": statistics.median(hooks_s),
        "engine_s": statistics.median(engine_s),
        "hooks_ratio": statistics.median(ratios),
        "hooks_diff": max(diffs),
        "hooks_scale": max(scales),
    }


def _paper_shape(shape: Shape) -> Shape:
    return Shape(
        layers=PAPER["layers"],
        d_model=shape.d_model,
        d_ff=shape.d_ff,
        d_q=shape.d_q,
        d_kv=shape.d_kv,
        vocab=shape.vocab,
        gated=shape.gated,
    )


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h ({seconds / 86400:.2f} days)"


def report(args: argparse.Namespace, r: dict[str, Any]) -> None:
    """Print the figures, one ``name: value`` line each."""
    s = r["sizes"]
    print(
        f"model: random-weight Llama ({args.preset}), {s['layers']} layers, d_model "
        f"{s['d_model']}, d_ff {s['d_ff']}, {s['heads']} heads ({s['kv_heads']} key-value), "
        f"vocabulary {s['vocab']}; {args.dtype} on {args.device}; torch {torch.__version__}"
    )
    print(
        f"protocol: {args.prompts} random prompts of {min(r['lengths'])}-{max(r['lengths'])} "
        f"tokens, {args.patches} resample patches, {1 + r['rows']} runs per prompt; built in "
        f"{r['built_s']:.1f} s, traced in {r['traced_s']:.1f} s, probes {r['probes_s']:.1f} s"
    )
    print(f"seconds per prompt (median): {r['prompt_s']:.4f}")
    print(f"clean run seconds per prompt (median): {r['clean_s']:.4f}")
    print(f"tokens/s: {r['tokens_per_s']:.1f}")
    print(f"forward-equivalent tokens/s: {r['forward_tokens_per_s']:.1f}")
    print(f"achieved TFLOP/s: {r['achieved'] / 1e12:.4g}")
    print(
        f"matmul TFLOP/s: {r['matmul'] / 1e12:.4g} (({r['rows']} x {s['d_model']}) @ "
        f"({s['d_model']} x {s['d_ff']}))"
    )
    print(f"achieved / matmul: {r['achieved'] / r['matmul']:.3g}")
    print(f"peak memory MiB: {r['peak_mib']:.0f}")
    if "hooks_ratio" in r:
        print(
            f"engine vs hooks loop: {r['hooks_ratio']:.1f}x (median over {r['hooks_prompts']} "
            f"prompts; hooks {r['hooks_s']:.3f} s, engine {r['engine_s']:.3f} s a prompt, its "
            f"clean run included), max |difference| of Delta_ablate {r['hooks_diff']:.1e}"
            f" (largest |Delta_ablate| {r['hooks_scale']:.3g})"
        )
    print(
        f"estimated wall time for {PAPER['prompts']} prompts x {PAPER['layers']} layers x "
        f"{PAPER['patches']} patches: {_hours(r['estimate_s'])} (the median prompt time x "
        f"{r['scale']:.2f}, the FLOP ratio of 64 layers and 15 patches to this run's)"
    )


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; ``--dry-run`` replaces the sizes and device by a tiny CPU run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="7b")
    parser.add_argument("--layers", type=int, default=None, help="override the preset's depth")
    parser.add_argument("--d-model", type=int, default=None, help="override the preset's width")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default=None)
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--patches", type=int, default=PAPER["patches"])
    parser.add_argument("--tokens", type=int, nargs=2, default=[10, 20], metavar=("MIN", "MAX"))
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (torch default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--hooks", type=int, default=0, help="also time a hooks loop on the first N prompts"
    )
    parser.add_argument("--dry-run", action="store_true", help="a tiny config on the CPU")
    args = parser.parse_args(argv)
    if args.dry_run:
        args.preset, args.device = "tiny", "cpu"
        args.prompts, args.patches, args.tokens = min(args.prompts, 2), 3, [6, 8]
        args.hooks = min(args.hooks, 1)
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.dtype is None:
        args.dtype = "bfloat16" if args.device.startswith("cuda") else "float32"
    for name in ("prompts", "patches"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if not 1 <= args.tokens[0] <= args.tokens[1]:
        parser.error(f"--tokens {args.tokens[0]} {args.tokens[1]}: need 1 <= MIN <= MAX")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    figures = run(args)
    report(args, figures)
    if not all(math.isfinite(v) for v in figures.values() if isinstance(v, float)):
        sys.exit("paper_scale: a figure is not finite")


if __name__ == "__main__":
    main()
