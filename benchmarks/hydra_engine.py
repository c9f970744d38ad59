"""Benchmark: the Hydra protocol through the core's engine against a hooks loop, on SmolLM2.

On the embedded SmolLM2-135M, for each prompt: the clean run, every attention and MLP output at
the final position (60 sites) ablated with ``--patches`` values (Gaussian vectors of the scale
of a resample bank), and for every run the centred logit of the clean top-1 token (eq. 9) and
the direct effects of all 60 contributions with the final norm's scale frozen at that run's
value (eqs. 10, 13). Two ways compute it:

* **engine** -- what ``scmnet hydra`` runs (:func:`~scmnet.adapters.transformer.measures.
  measure_prompt`): the model traced once with the paper's variables (dynamic sizes, so every
  prompt reuses the trace), all runs as the rows of one ``evaluate_stacked`` query whose
  outputs are the final-position sites of the contributions, of sigma and of the final norm;
  the rows join where their ablation sits and only the final position is recomputed;
* **hooks loop** -- the naive way: one full Hugging Face forward of the prompt per run, a
  forward hook patching the final position of the ablated output, the centred logit read from
  the full vocabulary projection (it computes less than the engine: no direct effects).

Both run interleaved in one process with the thread count pinned; the engine's probes for a
prompt length are made before timing (the first prompt of each new length costs 2-4 s more in a
sweep). The script prints the time per prompt of each, their ratio, and the largest difference
of the ablation impacts.

Usage::

    python benchmarks/hydra_engine.py --prompts 2 --patches 15 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch

from scmnet.adapters.transformer.causal import hydra_model
from scmnet.adapters.transformer.families import Block
from scmnet.adapters.transformer.lm import LanguageModel, load_model
from scmnet.adapters.transformer.measures import measure_prompt

PROMPTS = (
    "The capital of France is",
    "The Eiffel Tower is located in the city of",
    "Water is made of hydrogen and",
    "The largest planet in the solar system is",
)


def hooks_loop(lm: LanguageModel, ids: torch.Tensor, token: int, values: torch.Tensor) -> Any:
    """Delta_ablate of every site and draw, one hooked full forward each: shape (2, L, K)."""
    n, k = lm.n_layers, values.shape[0]
    out = torch.zeros(2, n, k)
    with torch.no_grad():
        clean = lm.model(input_ids=ids, use_cache=False).logits[0, -1]
    base = float(clean[token] - clean.mean())
    for b in Block:
        for layer in range(n):
            module = lm.attention_out(layer) if b is Block.ATTN else lm.mlp_out(layer)
            for j in range(k):

                def hook(m: Any, a: Any, o: Any, value: torch.Tensor = values[j, b, layer]) -> Any:
                    x = (o[0] if isinstance(o, tuple) else o).clone()
                    x[:, -1] = value
                    return (x, *o[1:]) if isinstance(o, tuple) else x

                handle = module.register_forward_hook(hook)
                try:
                    with torch.no_grad():
                        logits = lm.model(input_ids=ids, use_cache=False).logits[0, -1]
                finally:
                    handle.remove()
                out[b, layer, j] = float(logits[token] - logits.mean()) - base
    return out.numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--patches", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="rounds of the hooks loop")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lm = load_model()
    gen = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    model = hydra_model(lm)  # traced once, for every prompt
    traced_s = time.perf_counter() - start
    n, k = lm.n_layers, args.patches
    print(
        f"SmolLM2-135M, {1 + 2 * n * k} runs per prompt (60 sites x {k} values + clean); "
        f"torch {torch.__version__}, {args.threads} thread(s); trace made once in "
        f"{traced_s:.1f} s"
    )
    print(
        f"{'prompt':45s} {'T':>3s} {'hooks s':>8s} {'engine s':>9s} {'ratio':>6s} {'max diff':>9s}"
    )
    totals = {"hooks": 0.0, "engine": 0.0}
    for text in PROMPTS[: args.prompts]:
        ids = lm.tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids
        with torch.no_grad():
            token = int(lm.model(input_ids=ids).logits[0, -1].argmax())
        values = torch.randn(k, 2, n, lm.d_model, generator=gen) * 0.5
        measure_prompt(lm, ids, token, values)  # the probes of this prompt length
        hooks_s, engine_s = [], []
        for _ in range(args.repeats):  # interleaved
            begin = time.perf_counter()
            fast = measure_prompt(lm, ids, token, values)
            engine_s.append(time.perf_counter() - begin)
            begin = time.perf_counter()
            slow = hooks_loop(lm, ids, token, values)
            hooks_s.append(time.perf_counter() - begin)
            begin = time.perf_counter()
            measure_prompt(lm, ids, token, values)
            engine_s.append(time.perf_counter() - begin)
        diff = float(abs(fast.ablate_per_draw - slow).max())
        h, e = statistics.median(hooks_s), statistics.median(engine_s)
        totals["hooks"] += h
        totals["engine"] += e
        print(f"{text:45s} {ids.shape[1]:3d} {h:8.2f} {e:9.3f} {h / e:6.1f} {diff:9.2e}")
    print(
        f"overall: engine {totals['hooks'] / totals['engine']:.1f}x the hooks loop's speed "
        f"(medians per prompt); engine positions: {model.info.batching.positions}"
    )


if __name__ == "__main__":
    main()
