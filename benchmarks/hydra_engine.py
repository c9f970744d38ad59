"""Benchmark: the Hydra protocol through the generic engine against the adapter's fast path.

On the embedded SmolLM2-135M, for each prompt: the clean run, every attention and MLP output at
the final position (60 sites) ablated with ``--patches`` values (Gaussian vectors of the scale
of a resample bank), and for every run the centred logit of the clean top-1 token (eq. 9) and
the direct effects of all 60 contributions with the final norm's scale frozen at that run's
value (eqs. 10, 13). Two ways compute the same arrays:

* **fast path** -- the adapter's own engine (:func:`~scmnet.adapters.transformer.measures.
  measure_prompt`): forward hooks and a staircase of one-token decoder-layer calls against the
  Hugging Face prefix cache;
* **engine** -- the generic core (:func:`~scmnet.adapters.transformer.measures.
  measure_prompt_traced`): the model traced once with the paper's variables (dynamic sizes, so
  that every prompt reuses the trace), all runs as the rows of one ``evaluate_stacked`` call
  whose outputs are the final-position sites of the contributions, of sigma and of the final
  norm (the staircase and the suffix of :mod:`scmnet.tracing.staircase`); the readouts are the
  dot products of eqs. 9-10.

The variants run interleaved in one process with the thread count pinned; the script prints the
median time per prompt of each, their ratio, and the largest differences of the centred logits
and direct effects. The trace and the probes (once per prompt length) are made before timing.

Usage::

    python benchmarks/hydra_engine.py --prompts 2 --patches 15 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np
import torch

from scmnet.adapters.transformer.causal import hydra_model
from scmnet.adapters.transformer.lm import load_model
from scmnet.adapters.transformer.measures import measure_prompt, measure_prompt_traced

PROMPTS = (
    "The capital of France is",
    "The Eiffel Tower is located in the city of",
    "Water is made of hydrogen and",
    "The largest planet in the solar system is",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--patches", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lm = load_model()
    gen = torch.Generator().manual_seed(0)
    prompts = []
    for text in PROMPTS[: args.prompts]:
        ids = lm.tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids
        with torch.no_grad():
            token = int(lm.model(input_ids=ids).logits[0, -1].argmax())
        values = torch.randn(args.patches, 2, lm.n_layers, lm.d_model, generator=gen) * 0.5
        prompts.append((ids, token, values))
    start = time.perf_counter()
    model = hydra_model(lm)  # traced once, for every prompt
    traced_s = time.perf_counter() - start
    results: dict[str, list[Any]] = {"fast path": [], "engine": []}
    times: dict[str, list[float]] = {"fast path": [], "engine": []}
    for repeat in range(args.repeats + 1):  # the first round warms up (probes, allocator)
        for ids, token, values in prompts:
            for name in times:
                begin = time.perf_counter()
                if name == "fast path":
                    m = measure_prompt(lm, ids, token, values)
                    got: Any = (m.clean_logit, m.ablated_logit, m.unembed, m.ablated_unembed)
                else:
                    m = measure_prompt_traced(lm, ids, token, values)
                    got = (m.clean_logit, m.ablated_logit, m.unembed, m.ablated_unembed)
                seconds = time.perf_counter() - begin
                if repeat:
                    times[name].append(seconds)
                else:
                    results[name].append(got)
    n, k = lm.n_layers, args.patches
    d_logit = d_direct = 0.0
    for fast, core in zip(results["fast path"], results["engine"], strict=True):
        d_logit = max(d_logit, abs(fast[0] - core[0]), float(np.abs(fast[1] - core[1]).max()))
        d_direct = max(d_direct, float(np.abs(fast[2] - core[2]).max()))
        d_direct = max(d_direct, float(np.abs(fast[3] - core[3]).max()))
    rows = 1 + 2 * n * k
    print(
        f"SmolLM2-135M, {args.prompts} prompt(s), {rows} runs per prompt (60 sites x "
        f"{k} values + clean), centred logit and 60 direct effects per run; torch "
        f"{torch.__version__}, {args.threads} thread(s), median of {args.repeats} round(s); "
        f"trace made once in {traced_s:.1f} s; engine positions: "
        f"{model.info.batching.positions}"
    )
    fast_s = statistics.median(times["fast path"])
    engine_s = statistics.median(times["engine"])
    print(f"fast path {fast_s:7.3f} s/prompt")
    print(f"engine    {engine_s:7.3f} s/prompt  ({fast_s / engine_s:.2f}x the fast path's speed)")
    print(f"max |difference|: centred logit {d_logit:.2e}, direct effects {d_direct:.2e}")


if __name__ == "__main__":
    main()
