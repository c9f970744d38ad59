"""Benchmark: ``sn.effect_table`` against a loop of ``sn.total_effect`` and a hooks loop.

The model is the GPT written in plain PyTorch in ``tests/plain_models.py`` (no Hugging Face, no
family spec), traced with ``torch.fx``, with random weights. The query is the ablation part of the
Hydra protocol: every attention and MLP output at the final position (2L sites), each ablated
with zero and with resample (K draws from a set of donor prompts, averaged as in eq. 39 of the
paper), read on the centred logit of the clean top-1 token (a ``sn.linear_readout``, which the
engine reads from the final norm, folded through the unembedding). Four ways compute the same
2L x 2 effects:

* **hooks loop** -- what a user writes without scmnet: one full forward per (site, value) with a
  hook that patches the final position, the donors' activations captured once beforehand (the
  bank of a sweep's clean pass);
* **total_effect loop** -- one ``sn.total_effect`` call per (site, ablation), its K resample
  draws batched inside the call;
* **single-run loop** -- one ``sn.total_effect`` call per ablated run (the zero value, and each
  drawn donor as ``sn.patch``): a loop of single interventions on the traced graph;
* **effect_table** -- one ``sn.effect_table`` call: every (site, draw) is a row of one batched
  execution of the traced graph.

The donors' clean runs are cached for all variants (a sweep collects them once, in its clean
pass). The variants run in one process, interleaved, with the thread count pinned; the script
prints the median time of each, the ratios to ``effect_table`` and the largest difference from
the hooks loop. Usage::

    python benchmarks/effect_table.py --layers 8 --d 256 --seq 32 --draws 15 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import scmnet as sn
from scmnet.testing import assert_close
from tests.plain_models import TinyGPT


def centred(logits: torch.Tensor, token: int) -> torch.Tensor:
    """The centred logit of ``token`` at the final position (eq. 9), in float64."""
    last = logits[0, -1].double()
    return last[token] - last.mean()


def bank(
    model: nn.Module, sites: list[str], donors: list[torch.Tensor]
) -> dict[tuple[int, str], torch.Tensor]:
    """The final-position activations of every site on every donor prompt (one forward each)."""
    captured: dict[tuple[int, str], torch.Tensor] = {}

    def capture(d: int, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, output: torch.Tensor) -> None:
            captured[(d, name)] = output[0, -1].clone()

        return hook

    with torch.no_grad():
        for d, donor in enumerate(donors):
            handles = [model.get_submodule(s).register_forward_hook(capture(d, s)) for s in sites]
            try:
                model(donor)
            finally:
                for h in handles:
                    h.remove()
    return captured


def hooks_loop(
    model: nn.Module,
    ids: torch.Tensor,
    token: int,
    sites: list[str],
    captured: dict[tuple[int, str], torch.Tensor],
    donor_of_draw: list[int],
) -> np.ndarray:
    """Zero and resample effects by patched full forwards: shape (sites, 2)."""
    with torch.no_grad():
        clean = float(centred(model(ids), token))
        out = np.zeros((len(sites), 2))
        for i, site in enumerate(sites):
            values = [torch.zeros_like(captured[(donor_of_draw[0], site)])]
            values += [captured[(d, site)] for d in donor_of_draw]
            effects = []
            for value in values:

                def patch(
                    module: nn.Module, args: Any, output: torch.Tensor, v: Any = value
                ) -> Any:
                    output = output.clone()
                    output[:, -1] = v
                    return output

                handle = model.get_submodule(site).register_forward_hook(patch)
                try:
                    effects.append(float(centred(model(ids), token)) - clean)
                finally:
                    handle.remove()
            out[i] = effects[0], float(np.mean(effects[1:]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--d", type=int, default=256, help="width of the residual stream")
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=2048)
    parser.add_argument("--seq", type=int, default=32, help="prompt length")
    parser.add_argument("--draws", type=int, default=15, help="resample draws K")
    parser.add_argument("--donors", type=int, default=32, help="prompts to resample from")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    gpt = TinyGPT(args.vocab, args.d, args.heads, args.layers, context=args.seq).eval()
    ids = torch.randint(0, args.vocab, (1, args.seq))
    donors = [torch.randint(0, args.vocab, (1, args.seq)) for _ in range(args.donors)]
    # the clean runs of the prompt and its donors stay cached, as a sweep's bank would
    traced = sn.trace(gpt, torch.randint(0, args.vocab, (2, args.seq)), cache_size=args.donors + 2)
    sites = [v for v in traced.endogenous if v.endswith((".attn", ".mlp"))]
    with torch.no_grad():
        token = int(gpt(ids)[0, -1].argmax())
    context = {"idx": ids}
    pool = [{"idx": d} for d in donors]
    seed = 0
    # the donor that sn.resample draws for draw j (the stream of eq. 39's draws; see sn.query)
    donor_of_draw = [
        int(np.random.default_rng([seed, 0, j]).integers(len(pool))) for j in range(args.draws)
    ]
    # the centred logit is linear in the logits (eq. 9): logits @ (e_i - 1/V); a linear readout
    # of the final position, which the engine reads from ln_f, folded through lm_head
    last_logits = sn.Site("lm_head", index=(slice(None), -1))
    direction = torch.full((args.vocab,), -1.0 / args.vocab)
    direction[token] += 1.0
    outcome = sn.linear_readout(last_logits, direction, name="centred logit")
    last = (slice(None), -1)
    treatments = [{sn.Site(s, index=last): sn.zero()} for s in sites]
    treatments += [{sn.Site(s, index=last): sn.resample(pool)} for s in sites]

    def table() -> np.ndarray:
        t = sn.effect_table(traced, treatments, outcome, context=context, draws=args.draws)
        return t.values.numpy().reshape(2, len(sites)).T

    def loop() -> np.ndarray:
        return np.array(
            [
                [
                    float(sn.total_effect(traced, t, outcome, context=context, draws=args.draws))
                    for t in (treatments[i], treatments[len(sites) + i])
                ]
                for i in range(len(sites))
            ]
        )

    def single_runs() -> np.ndarray:
        """One sn.total_effect call per ablated run: the zero value, then each drawn donor."""
        out = np.zeros((len(sites), 2))
        for i, s in enumerate(sites):
            where = sn.Site(s, index=last)
            out[i, 0] = float(sn.total_effect(traced, {where: sn.zero()}, outcome, context=context))
            out[i, 1] = np.mean(
                [
                    float(
                        sn.total_effect(
                            traced, {where: sn.patch(pool[d])}, outcome, context=context
                        )
                    )
                    for d in donor_of_draw
                ]
            )
        return out

    captured = bank(gpt, sites, donors)

    def hooks() -> np.ndarray:
        return hooks_loop(gpt, ids, token, sites, captured, donor_of_draw)

    variants: dict[str, Callable[[], np.ndarray]] = {
        "effect_table": table,
        "total_effect loop": loop,
        "single-run loop": single_runs,
        "hooks loop": hooks,
    }
    results = {name: fn() for name, fn in variants.items()}  # warm up: clean runs, the probe
    path = (table(), traced.info.batching)[1]
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):  # interleaved
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    rows = len(sites) * (1 + args.draws)
    print(
        f"GPT in plain PyTorch ({args.layers} layers, d {args.d}, {args.heads} heads, vocab "
        f"{args.vocab}), {args.seq} tokens, {len(sites)} sites x (zero + {args.draws} resample) "
        f"= {rows} ablated runs; torch {torch.__version__}, {args.threads} thread(s), median of "
        f"{args.repeats}; effect_table path: {path.path} ({path.runs} batched run(s))"
    )
    base = statistics.median(times["effect_table"])
    print(f"{'variant':20s} {'median s':>9s} {'vs effect_table':>16s} {'max |diff| to hooks':>20s}")
    for name in variants:
        median = statistics.median(times[name])
        diff = float(np.abs(results[name] - results["hooks loop"]).max())
        print(f"{name:20s} {median:9.3f} {median / base:15.1f}x {diff:20.2e}")
    assert_close(results["effect_table"], results["hooks loop"], reordered=True)


if __name__ == "__main__":
    main()
