"""Benchmark: the Hydra protocol through the core's engine against a hooks loop, on SmolLM2.

On the embedded SmolLM2-135M, for each prompt: the clean run, every attention and MLP output at
the final position (60 sites) ablated, and for every run the centred logit of the clean top-1
token (eq. 9) and the direct effects of all 60 contributions with the final norm's scale frozen
at that run's value (eqs. 10, 13). The ablations are the sweep's own (``--ablation``):

* ``zero`` -- one draw, ``sn.zero()`` at every site: 61 runs per prompt;
* ``resample`` -- K draws (``--patches``, 15 by default): the final-position contributions of K
  donor prompts, drawn as ``scmnet hydra`` draws them (:func:`~scmnet.adapters.transformer.
  ablations.donors` over the prompts the model predicts correctly, from a clean pass over the
  first ``--pool`` built-in prompts), applied with ``sn.patch(donor)`` rules that read the clean
  pass's recorded readings (:func:`~scmnet.adapters.transformer.causal.recorded_readings`):
  1 + 60 K runs per prompt (901 at K = 15).

Two ways compute it:

* **engine** -- what ``scmnet hydra`` runs (:func:`~scmnet.adapters.transformer.measures.
  measure_prompt`): the model traced once with the paper's variables (dynamic sizes, so every
  prompt reuses the trace), all runs as the rows of one ``evaluate_stacked`` query whose
  outputs are the final-position sites of the contributions, of sigma and of the final norm;
  the rows join where their ablation sits and only the final position is recomputed;
* **hooks loop** -- the naive way: one full Hugging Face forward of the prompt per run, a
  forward hook writing the same value (zero, or the donor's contribution) at the final position
  of the ablated output, the centred logit read from the full vocabulary projection (it
  computes less than the engine: no direct effects).

Both run interleaved in one process with the thread count pinned (engine, hooks, engine for
every prompt and ablation), inside ``scmnet.heap.frozen_heap`` as a sweep's loop runs; the
engine's probes for a prompt length are made before timing (the first prompt of each new
length costs 2-4 s more in a sweep). The script prints the time per prompt of each, their
ratio, the median ratio over the prompts, and the largest difference of the ablation impacts
Delta_ablate (eq. 12) between the two.

Usage::

    python benchmarks/hydra_engine.py --prompts 3 --ablation zero resample --threads 2
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

import scmnet as sn
from scmnet.adapters.transformer.ablations import Ablation, AblationKind, donors
from scmnet.adapters.transformer.causal import hydra_model, recorded_readings
from scmnet.adapters.transformer.lm import LanguageModel, load_model
from scmnet.adapters.transformer.measures import PromptMeasures, measure_prompt
from scmnet.adapters.transformer.prompts import builtin_prompts
from scmnet.adapters.transformer.sweep import CleanRun, clean_pass
from scmnet.heap import frozen_heap

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import hooks_loop


class Protocol:
    """The sweep's ablation draws for one prompt of the clean pass, as rules and as values."""

    def __init__(self, lm: LanguageModel, clean: CleanRun, patches: int) -> None:
        self.lm, self.clean, self.patches = lm, clean, patches
        self.pool = [{"input_ids": ids} for ids in clean.donors]
        assert clean.donor_contributions is not None
        self.readings = recorded_readings(lm, self.pool, clean.donor_contributions)

    def draws(self, kind: AblationKind, prompt: int) -> tuple[list[Any], torch.Tensor]:
        """The engine's draws (rules) and the hooks loop's values, shape (K, 2, L, d)."""
        lm = self.lm
        if kind is AblationKind.ZERO:
            return [sn.zero()], torch.zeros(1, 2, lm.n_layers, lm.d_model)
        chosen = donors(
            prompt, len(self.pool), Ablation(AblationKind.RESAMPLE, patches=self.patches)
        )
        assert self.clean.donor_contributions is not None
        values = self.clean.donor_contributions[torch.as_tensor(chosen)]
        return [sn.patch(self.pool[d]) for d in chosen], values

    def query(self, prompt: int, rules: list[Any]) -> Callable[[], PromptMeasures]:
        """The engine's query of kept prompt ``prompt`` with the draws ``rules``, as a sweep runs
        it: the prompt's clean run is new (the model's cache cleared first)."""
        lm, ids, token = self.lm, self.clean.ids[prompt], self.clean.tokens[prompt]

        def run() -> PromptMeasures:
            hydra_model(lm).clear_cache()
            return measure_prompt(lm, ids, token, rules, values=self.readings)

        return run


def _timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=3, help="prompts timed (>= 1)")
    parser.add_argument("--patches", type=int, default=15, help="K of the resample ablation")
    parser.add_argument(
        "--ablation", nargs="+", default=["zero", "resample"], choices=["zero", "resample"]
    )
    parser.add_argument("--pool", type=int, default=60, help="built-in prompts of the clean pass")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="rounds of the hooks loop")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lm = load_model()
    traced_s, _ = _timed(lambda: hydra_model(lm))  # traced once, for every prompt
    clean_s, clean = _timed(lambda: clean_pass(lm, builtin_prompts().limit(args.pool)))
    protocol = Protocol(lm, clean, args.patches)
    n = lm.n_layers
    print(
        f"SmolLM2-135M, torch {torch.__version__}, {args.threads} thread(s); trace made once "
        f"in {traced_s:.1f} s; clean pass of {args.pool} prompts ({clean.correct} correct, the "
        f"resample donors) in {clean_s:.1f} s"
    )
    header = f"{'ablation':9s} {'prompt':45s} {'T':>3s} {'runs':>5s} {'hooks s':>8s}"
    print(f"{header} {'engine s':>9s} {'ratio':>6s} {'max diff':>9s}")
    ratios: dict[str, list[float]] = {a: [] for a in args.ablation}
    diffs: dict[str, float] = dict.fromkeys(args.ablation, 0.0)
    totals = {a: [0.0, 0.0] for a in args.ablation}
    with frozen_heap():  # as in a sweep: the model and its graph out of full collections
        for j in range(min(args.prompts, len(clean))):
            ids, token = clean.ids[j], clean.tokens[j]
            text = builtin_prompts()[clean.kept[j]].text
            for name in args.ablation:
                rules, values = protocol.draws(AblationKind(name), j)
                run = protocol.query(j, rules)
                run()  # the probes of this prompt length
                hooks_s, engine_s = [], []
                for _ in range(args.repeats):  # interleaved: engine, hooks, engine
                    seconds, fast = _timed(run)
                    engine_s.append(seconds)
                    seconds, slow = _timed(lambda v=values: hooks_loop(lm, ids, token, v))  # noqa: B023
                    hooks_s.append(seconds)
                    engine_s.append(_timed(run)[0])
                diff = float(np.abs(fast.ablate_per_draw - slow).max())
                h, e = statistics.median(hooks_s), statistics.median(engine_s)
                ratios[name].append(h / e)
                diffs[name] = max(diffs[name], diff)
                totals[name][0] += h
                totals[name][1] += e
                runs = 1 + 2 * n * len(rules)
                print(
                    f"{name:9s} {text[:45]:45s} {ids.shape[1]:3d} {runs:5d} {h:8.2f} {e:9.3f} "
                    f"{h / e:6.1f} {diff:9.2e}",
                    flush=True,
                )
    for name in args.ablation:
        print(
            f"{name}: engine {statistics.median(ratios[name]):.1f}x the hooks loop's speed "
            f"(median over {len(ratios[name])} prompts; {totals[name][0] / totals[name][1]:.1f}x "
            f"in total time), max |difference| of Delta_ablate {diffs[name]:.1e}"
        )


if __name__ == "__main__":
    main()
