"""Benchmark: attribution patching (AtP) against the exact sweep, on the embedded SmolLM2.

For the first ``--prompts`` prompts the model predicts correctly (of the built-in facts), and
for each ablation of ``--ablation`` (the sweep's own draws, as in ``hydra_engine.py``):

* **exact** -- :func:`~scmnet.adapters.transformer.measures.measure_prompt`, the sweep's query:
  every attention and MLP layer ablated at the final position, Delta_ablate (eq. 12) averaged
  over the K draws;
* **AtP** -- :func:`~scmnet.adapters.transformer.attribution.attribution_impacts`: one forward
  and one backward run of the traced model, the estimate (a~ - a) . dy/da of every layer at
  once, at the draws' mean.

It prints both times per prompt and their ratio, and the agreement over the 60 layers of each
prompt (:func:`~scmnet.adapters.transformer.attribution.agreement`): the mean rank correlation
of |AtP| with |exact| (and signed), and, of the exact top ``--top`` layers by |Delta_ablate|,
the share a prefilter keeping AtP's top m misses, for m = 5, 10, 20.

Usage::

    python benchmarks/attribution.py --prompts 50 --ablation zero resample --threads 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from scmnet.adapters.transformer.ablations import AblationKind
from scmnet.adapters.transformer.attribution import agreement, attribution_impacts
from scmnet.adapters.transformer.causal import hydra_model
from scmnet.adapters.transformer.lm import load_model
from scmnet.adapters.transformer.measures import measure_prompt
from scmnet.adapters.transformer.prompts import builtin_prompts
from scmnet.adapters.transformer.sweep import clean_pass

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hydra_engine import Protocol


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=20, help="prompts compared (>= 1)")
    parser.add_argument("--patches", type=int, default=15, help="K of the resample ablation")
    parser.add_argument(
        "--ablation", nargs="+", default=["zero", "resample"], choices=["zero", "resample"]
    )
    parser.add_argument("--pool", type=int, default=100, help="built-in prompts of the clean pass")
    parser.add_argument("--top", type=int, default=5, help="k: the exact top layers to keep")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lm = load_model()
    hydra_model(lm)
    clean = clean_pass(lm, builtin_prompts().limit(args.pool))
    protocol = Protocol(lm, clean, args.patches)
    count = min(args.prompts, len(clean))
    print(
        f"SmolLM2-135M, torch {torch.__version__}, {args.threads} thread(s); {count} prompts "
        f"of {clean.correct} correct in the first {args.pool}; 60 layers each"
    )
    for name in args.ablation:
        kind = AblationKind(name)
        exact, estimate, exact_s, atp_s = [], [], 0.0, 0.0
        for j in range(count):
            ids, token = clean.ids[j], clean.tokens[j]
            rules, values = protocol.draws(kind, j)
            measure_prompt(lm, ids, token, rules, values=protocol.readings)  # the probes
            hydra_model(lm).clear_cache()
            start = time.perf_counter()
            m = measure_prompt(lm, ids, token, rules, values=protocol.readings)
            exact_s += time.perf_counter() - start
            hydra_model(lm).clear_cache()
            start = time.perf_counter()
            estimate.append(attribution_impacts(lm, ids, token, values).reshape(-1))
            atp_s += time.perf_counter() - start
            exact.append(m.ablate.reshape(-1))
        found = agreement(np.stack(estimate), np.stack(exact), top=args.top, keep=(5, 10, 20))
        missed = ", ".join(f"top {m}: {v:.0%}" for m, v in found.missed.items())
        print(
            f"{name}: exact {exact_s / count:.2f} s a prompt, AtP {atp_s / count:.3f} s "
            f"({exact_s / atp_s:.1f}x faster); rank correlation of |AtP| and |exact| "
            f"{found.spearman:.2f} (signed {found.spearman_signed:.2f}); of the exact top "
            f"{found.top} layers a prefilter keeping AtP's misses {missed}",
            flush=True,
        )


if __name__ == "__main__":
    main()
