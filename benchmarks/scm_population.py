"""Benchmark: averaging over P(u) on an SCM, vectorised against one context at a time.

The model is the binary-treatment SCM with an X*M interaction of issue 14
(x ~ Bernoulli(0.5), m = 1 + 2x + u_m, y = 0.5x + 2xm + m + u_y; ATE 8.5, pure NDE 2.5, pure
NIE 2.0). Three population queries, each with ``reference={"x": 0.0}``: the ATE
(``sn.total_effect``), and the direct and indirect effects (``sn.direct_effect``,
``sn.indirect_effect``: the pure natural direct and indirect effects). Each runs at 10^4, 10^5
and 10^6 draws:

* **vectorised** -- the default: every world evaluated once per chunk of units, on arrays;
* **per-context** -- the same model built with ``vectorize=False``: one context at a time. It
  runs up to ``--loop-max`` draws (default 10^5) and is extrapolated linearly beyond (it is
  linear in the draws: each context costs the same);
* **DoWhy gcm** ``average_causal_effect`` (the ATE only), where ``dowhy`` is importable (the
  ``bench`` extra), on the same mechanisms;
* **ChiRho** (the ATE only), where ``chirho`` and ``pyro`` are importable (the ``bench``
  extra): the same model as a Pyro program, its draws in one ``pyro.plate`` and both
  treatments in one run through ``MultiWorldCounterfactual`` and
  ``do(actions={"x": (0., 1.)})``, ChiRho's own ATE idiom; the best of ``--repeats`` runs,
  as for scmnet (DoWhy: one run).

All variants run in one process on the same machine. The script prints each time, the ratio
of the per-context time to the vectorised one, the growth of the vectorised time from 10^4 to
10^6 draws (100 would be linear), the largest difference between the two paths' estimates, and
the peak memory (``tracemalloc``) of a vectorised 10^6-draw query next to its chunk budget.

Usage::

    python benchmarks/scm_population.py --loop-max 100000 --repeats 3
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import scmnet as sn
from scmnet.population import DEFAULT_MEMORY

SIZES = (10**4, 10**5, 10**6)


def binary_model(vectorize: bool = True) -> sn.SCM:
    """The binary-treatment model with an X*M interaction."""
    return sn.SCM(
        {
            "x": lambda u_x: u_x,
            "m": lambda x, u_m: 1.0 + 2.0 * x + u_m,
            "y": lambda x, m, u_y: 0.5 * x + 2.0 * x * m + m + u_y,
        },
        exogenous={"u_x": sn.Bernoulli(0.5), "u_m": sn.Normal(), "u_y": sn.Normal()},
        vectorize=vectorize,
    )


QUERIES: dict[str, Callable[..., Any]] = {
    "ATE (total_effect)": sn.total_effect,
    "direct (pure NDE)": sn.direct_effect,
    "indirect (pure NIE)": sn.indirect_effect,
}


def run(query: Callable[..., Any], model: sn.SCM, n: int) -> tuple[float, float]:
    """The time of one query, and its estimate."""
    start = time.perf_counter()
    est = query(model, {"x": 1.0}, "y", reference={"x": 0.0}, samples=n, seed=0)
    return time.perf_counter() - start, float(est.value)


def best(query: Callable[..., Any], model: sn.SCM, n: int, repeats: int) -> tuple[float, float]:
    runs = [run(query, model, n) for _ in range(repeats)]
    return min(t for t, _ in runs), runs[0][1]


def dowhy_ate(n: int) -> float | None:
    """The time of DoWhy gcm's ``average_causal_effect`` on the same model, or None."""
    try:
        import networkx as nx
        import numpy as np
        from dowhy import gcm
        from dowhy.gcm.causal_models import PARENTS_DURING_FIT
        from dowhy.graph import get_ordered_predecessors
        from scipy import stats
    except ImportError:
        return None

    class Fixed(gcm.ml.PredictionModel):  # type: ignore[misc]
        def __init__(self, fn: Callable[[Any], Any]) -> None:
            self.fn = fn

        def fit(self, x: Any, y: Any) -> None:
            pass

        def predict(self, x: Any) -> Any:
            return np.asarray(self.fn(x)).reshape(-1, 1)

        def clone(self) -> Fixed:
            return Fixed(self.fn)

    g = nx.DiGraph([("x", "m"), ("x", "y"), ("m", "y")])
    model = gcm.StructuralCausalModel(g)
    model.set_causal_mechanism("x", gcm.ScipyDistribution(stats.bernoulli, p=0.5))
    normal = gcm.ScipyDistribution(stats.norm, loc=0.0, scale=1.0)
    model.set_causal_mechanism(
        "m", gcm.AdditiveNoiseModel(Fixed(lambda p: 1.0 + 2.0 * p[:, 0]), noise_model=normal)
    )
    order = list(get_ordered_predecessors(g, "y"))
    ix, im = order.index("x"), order.index("m")
    model.set_causal_mechanism(
        "y",
        gcm.AdditiveNoiseModel(
            Fixed(lambda p: 0.5 * p[:, ix] + 2.0 * p[:, ix] * p[:, im] + p[:, im]),
            noise_model=normal,
        ),
    )
    for node in g:  # the mechanisms are given, not fitted: record the parents they take
        model.graph.nodes[node][PARENTS_DURING_FIT] = get_ordered_predecessors(g, node)
    start = time.perf_counter()
    ate = gcm.average_causal_effect(
        model,
        "y",
        interventions_alternative={"x": lambda x: 1.0},
        interventions_reference={"x": lambda x: 0.0},
        num_samples_to_draw=n,
    )
    elapsed = time.perf_counter() - start
    print(f"    DoWhy gcm ATE estimate at {n:.0e}: {ate:.3f}")
    return elapsed


def chirho_ate(n: int) -> tuple[float, float] | None:
    """The time and estimate of ChiRho's ATE on the same model, or None if not importable."""
    try:
        import pyro
        import pyro.distributions as dist
        import torch
        from chirho.counterfactual.handlers import MultiWorldCounterfactual
        from chirho.indexed.ops import IndexSet, gather
        from chirho.interventional.handlers import do
    except ImportError:
        return None

    def model() -> Any:
        with pyro.plate("units", n, dim=-1):
            x = pyro.sample("x", dist.Bernoulli(0.5))
            m = pyro.sample("m", dist.Normal(1.0 + 2.0 * x, 1.0))
            return pyro.sample("y", dist.Normal(0.5 * x + 2.0 * x * m + m, 1.0))

    pyro.set_rng_seed(0)
    start = time.perf_counter()
    with torch.no_grad(), MultiWorldCounterfactual():
        with do(actions={"x": (torch.tensor(0.0), torch.tensor(1.0))}):
            y = model()
        # world 0 is the factual one, 1 and 2 the two actions in order
        y0 = gather(y, IndexSet(x={1}), event_dim=0)
        y1 = gather(y, IndexSet(x={2}), event_dim=0)
        ate = float((y1 - y0).mean())
    return time.perf_counter() - start, ate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop-max", type=int, default=10**5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peers-only", action="store_true", help="measure DoWhy/ChiRho only")
    args = parser.parse_args()
    if args.peers_only:
        peers(repeats=args.repeats)
        return
    fast, slow = binary_model(), binary_model(vectorize=False)
    ate_times: dict[int, float] = {}
    print(f"sizes {SIZES}; per-context path run up to {args.loop_max} draws, extrapolated above")
    for name, query in QUERIES.items():
        print(f"\n{name}")
        times: dict[int, float] = {}
        for n in SIZES:
            t_fast, v_fast = best(query, fast, n, args.repeats)
            times[n] = t_fast
            if n <= args.loop_max:
                t_slow, v_slow = run(query, slow, n)
                loop_note = f"{t_slow:8.3f} s measured"
                diff = f"{abs(v_fast - v_slow):.1e}"
                last_slow = (n, t_slow)
            else:
                t_slow = last_slow[1] * n / last_slow[0]
                loop_note = f"{t_slow:8.3f} s extrapolated"
                diff = "-"
            print(
                f"  {n:>8} draws: vectorised {t_fast:7.4f} s (estimate {v_fast:.4f}); "
                f"per-context {loop_note}; ratio {t_slow / t_fast:6.0f}x; difference {diff}"
            )
        if query is sn.total_effect:
            ate_times = times
        growth = times[SIZES[-1]] / times[SIZES[0]]
        print(f"  growth of the vectorised time 1e4 -> 1e6: {growth:.0f}x")
    tracemalloc.start()
    sn.indirect_effect(fast, {"x": 1.0}, "y", reference={"x": 0.0}, samples=10**6, seed=0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    draws = 10**6 * 3 * 8
    print(
        f"\npeak memory of a vectorised 1e6-draw indirect effect: {peak / 2**20:.0f} MiB "
        f"(chunk budget {DEFAULT_MEMORY / 2**20:.0f} MiB, plus the draws themselves, "
        f"{draws / 2**20:.0f} MiB)"
    )
    peers(ate_times, args.repeats)


def peers(ours: dict[int, float] | None = None, repeats: int = 3) -> None:
    """DoWhy gcm's and ChiRho's ATE at each size; ``ours``: scmnet's vectorised ATE times."""
    print("\nDoWhy gcm average_causal_effect (ATE):")
    for n in SIZES:
        try:
            t = dowhy_ate(n)
        except Exception as e:  # a peer's API change must not stop the benchmark
            print(f"  DoWhy gcm failed: {type(e).__name__}: {e}")
            break
        if t is None:
            print("  dowhy is not importable (pip install 'scmnet[bench]'); skipped")
            break
        ratio = f"; scmnet vectorised {t / ours[n]:.1f}x faster" if ours else ""
        print(f"  {n:>8} draws: {t:7.3f} s{ratio}")
    print("\nChiRho MultiWorldCounterfactual + do (ATE):")
    for n in SIZES:
        try:
            runs = [r for _ in range(repeats) if (r := chirho_ate(n)) is not None]
        except Exception as e:  # a peer's API change must not stop the benchmark
            print(f"  ChiRho failed: {type(e).__name__}: {e}")
            break
        if not runs:
            print("  chirho/pyro is not importable (pip install 'scmnet[bench]'); skipped")
            break
        t, ate = min(t for t, _ in runs), runs[0][1]  # the best time, as for scmnet
        ratio = f"; scmnet vectorised {t / ours[n]:.1f}x faster" if ours else ""
        print(f"  {n:>8} draws: {t:7.3f} s (estimate {ate:.4f}){ratio}")


if __name__ == "__main__":
    main()
