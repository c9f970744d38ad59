"""Benchmark: the adapter's fast path against the naive hooked loop, on the embedded model.

For each prompt, every attention and MLP layer is ablated with ``--patches`` resample-style
values (random rows of the clean bank stand-in: Gaussian vectors of the right scale). The naive
loop runs one full hooked forward of the whole prompt per ablation and draw, reading the centred
logit from the full vocabulary projection; the fast path runs all of them as one staircase of
one-token forwards against the clean prefix cache. Both are timed in the same process, with the
thread count pinned and the variants interleaved, and the script prints their ratio and the
largest difference of their ablation impacts.

Usage::

    python benchmarks/hydra_fast_path.py --prompts 3 --patches 15 --threads 2
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

from scmnet.adapters.transformer.engine import Block
from scmnet.adapters.transformer.lm import load_model
from scmnet.adapters.transformer.measures import measure_prompt

PROMPTS = (
    "The capital of France is",
    "The Eiffel Tower is located in the city of",
    "Water is made of hydrogen and",
    "The largest planet in the solar system is",
)


def naive(lm: Any, ids: torch.Tensor, token: int, values: torch.Tensor) -> torch.Tensor:
    """Delta_ablate for every site and draw with one hooked full forward each: (2, L, K)."""
    n, k = lm.n_layers, values.shape[0]
    out = torch.zeros(2, n, k)
    with torch.no_grad():
        clean = lm.model(input_ids=ids, use_cache=False).logits[0, -1]
    base = float(clean[token] - clean.mean())
    for b in Block:
        for layer in range(n):
            module = lm.attention_out(layer) if b is Block.ATTN else lm.mlp_out(layer)
            for j in range(k):
                value = values[j, b, layer]

                def hook(m: Any, a: Any, o: Any, value: torch.Tensor = value) -> Any:
                    x = (o[0] if isinstance(o, tuple) else o).clone()
                    x[:, -1] = value
                    return (x, *o[1:]) if isinstance(o, tuple) else x

                h = module.register_forward_hook(hook)
                try:
                    with torch.no_grad():
                        logits = lm.model(input_ids=ids, use_cache=False).logits[0, -1]
                finally:
                    h.remove()
                out[b, layer, j] = float(logits[token] - logits.mean()) - base
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--patches", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lm = load_model()
    gen = torch.Generator().manual_seed(0)
    rows = []
    for text in PROMPTS[: args.prompts]:
        ids = lm.tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids
        with torch.no_grad():
            token = int(lm.model(input_ids=ids).logits[0, -1].argmax())
        values = torch.randn(args.patches, 2, lm.n_layers, lm.d_model, generator=gen) * 0.5
        fast_t, naive_t = [], []
        for _ in range(args.repeats):  # interleaved
            t = time.perf_counter()
            fast = measure_prompt(lm, ids, token, values).ablate_per_draw
            fast_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            slow = naive(lm, ids, token, values).numpy()
            naive_t.append(time.perf_counter() - t)
        diff = float(abs(fast - slow).max())
        rows.append((text, ids.shape[1], min(naive_t), min(fast_t), diff))
    runs = 2 * lm.n_layers * args.patches
    print(f"SmolLM2-135M-Instruct, {runs} ablation runs per prompt, {args.threads} threads")
    print(f"{'prompt':45s} {'T':>3s} {'naive s':>9s} {'fast s':>8s} {'ratio':>6s} {'max diff':>9s}")
    for text, t, slow_s, fast_s, diff in rows:
        print(f"{text:45s} {t:3d} {slow_s:9.2f} {fast_s:8.2f} {slow_s / fast_s:6.1f} {diff:9.2e}")
    total_naive = sum(r[2] for r in rows)
    total_fast = sum(r[3] for r in rows)
    print(f"overall speed-up: {total_naive / total_fast:.1f}x")


if __name__ == "__main__":
    main()
