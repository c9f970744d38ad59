"""Benchmark: ``TracedModel.evaluate_many`` batched against looped, on a tiny random Llama.

A random-weight Llama (hidden 64, 4 layers by default; nothing is downloaded) is traced with a
dynamic batch dimension. ``--n`` intervention sets each set the last position of one attention
or MLP output (cycling over the layers) to a random vector, and the logits are read. The same
sets are evaluated looped (``batched=False``: one incremental run per set), batched (one batch
of ``n`` rows) and batched in chunks (``--chunk`` rows at a time), in the same process, with the
thread count pinned and the variants interleaved. The script prints the best time of each, the
ratio to the looped time, and the largest difference from the looped logits.

Usage::

    python benchmarks/trace_batched.py --n 64 --threads 1 --repeats 5
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import torch

import scmnet as sn
from scmnet.tracing import TracedModel, trace


def tiny_llama(hidden: int, layers: int, vocab: int, seed: int) -> Any:
    """A random-weight ``LlamaForCausalLM`` in eval mode."""
    import transformers as tf

    config = tf.LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    torch.manual_seed(seed)
    return tf.AutoModelForCausalLM.from_config(config).eval()


def last_position_sets(model: TracedModel, n: int, seed: int) -> list[Any]:
    """``n`` sets, each setting the last position of one attention/MLP output."""
    blocks = [v for v in model.endogenous if v.endswith(("self_attn", "mlp"))]
    width = model.records[blocks[0]].shape[-1]
    gen = torch.Generator().manual_seed(seed)
    return [
        sn.interventions.normalize(
            {
                sn.Site(blocks[j % len(blocks)], index=(slice(None), -1)): torch.randn(
                    width, generator=gen
                )
            }
        )
        for j in range(n)
    ]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="intervention sets")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--seq", type=int, default=12, help="prompt length")
    parser.add_argument("--chunk", type=int, default=8, help="rows per batch, chunked variant")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    vocab = 101
    llama = tiny_llama(args.hidden, args.layers, vocab, seed=0)
    example = {"input_ids": torch.randint(0, vocab, (2, args.seq))}
    model = trace(llama, example, dynamic_shapes={"input_ids": {0: torch.export.Dim("batch")}})
    context = {"input_ids": torch.randint(0, vocab, (1, args.seq))}
    sets = last_position_sets(model, args.n, seed=1)
    variants: dict[str, Callable[[], list[dict[str, Any]]]] = {
        "looped": lambda: model.evaluate_many(context, sets, outputs=["lm_head"], batched=False),
        "batched": lambda: model.evaluate_many(context, sets, outputs=["lm_head"]),
        f"chunk={args.chunk}": lambda: model.evaluate_many(
            context, sets, outputs=["lm_head"], chunk=args.chunk
        ),
    }
    paths: dict[str, str] = {}
    results: dict[str, Any] = {}
    for name, fn in variants.items():  # warm up: the clean run, the probe, the allocator
        results[name] = fn()
        paths[name] = model.info.batching.path
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):  # interleaved
        for name, fn in variants.items():
            seconds, _ = timed(fn)
            times[name].append(seconds)
    reference = torch.stack([r["lm_head"] for r in results["looped"]])
    print(
        f"tiny Llama (hidden {args.hidden}, {args.layers} layers, {model.info.operations} ops), "
        f"{args.seq} tokens, {args.n} last-position interventions on attention/MLP outputs, "
        f"{args.threads} thread(s), best of {args.repeats}"
    )
    header = ("variant", "path", "best s", "median s", "speed-up", "max diff")
    print("{:12s} {:8s} {:>8s} {:>9s} {:>9s} {:>9s}".format(*header))
    best_loop = min(times["looped"])
    for name in variants:
        got = torch.stack([r["lm_head"] for r in results[name]])
        diff = float((got - reference).abs().max())
        best = min(times[name])
        median = sorted(times[name])[len(times[name]) // 2]
        print(
            f"{name:12s} {paths[name]:8s} {best:8.4f} {median:9.4f} {best_loop / best:8.1f}x "
            f"{diff:9.2e}"
        )


if __name__ == "__main__":
    main()
