"""Define your own structural causal model: smoking, tar and cancer (a front-door model).

A hidden genotype makes people both more likely to smoke and more likely to get cancer; smoking
acts on cancer only through the tar it deposits in the lungs. As an SCM M = <U, V, F, P(u)>:

* exogenous U: ``genotype`` ~ Bernoulli(0.3), and noise ``u_smoke``, ``u_tar`` ~ N(0, 1);
* endogenous V, one mechanism each:
  ``smoking = 1 if 0.8 genotype + u_smoke > 0.6 else 0``,
  ``tar = 0.2 + 2 smoking + 0.3 u_tar``,
  ``cancer = sigmoid(-3 + 1.2 tar + 1.5 genotype)`` (a risk, between 0 and 1).

The script shows the parts of the API a new model uses: mechanisms whose parameter names are
their parents, explicit ``parents=`` for a mechanism with other parameter names, effects in one
context and averaged over P(u) with a seed, a soft intervention (:func:`scmnet.shift`), the
intervened model :func:`scmnet.do`, and (with matplotlib) a picture of do(smoking = 1) written to
``--out``.

Run it with::

    python examples/custom_scm.py [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

import scmnet as sn

SEED = 0
SAMPLES = 4000


def cancer_risk(t: Any, g: Any) -> Any:
    """The cancer mechanism: a logistic risk in tar ``t`` and genotype ``g``."""
    return 1.0 / (1.0 + np.exp(-(-3.0 + 1.2 * t + 1.5 * g)))


def build_model() -> sn.SCM:
    """The smoking -> tar -> cancer model, with a genotype confounding smoking and cancer."""
    return sn.SCM(
        {
            # Parents are read from the parameter names: smoking <- genotype, u_smoke.
            "smoking": lambda genotype, u_smoke: 1.0 * (0.8 * genotype + u_smoke > 0.6),
            "tar": lambda smoking, u_tar: 0.2 + 2.0 * smoking + 0.3 * u_tar,
            # Parameters t and g name no variable, so the parents are given explicitly
            # below, in the order the mechanism takes them.
            "cancer": cancer_risk,
        },
        exogenous={"genotype": sn.Bernoulli(0.3), "u_smoke": sn.Normal(), "u_tar": sn.Normal()},
        parents={"cancer": ["tar", "genotype"]},
        name="smoking and cancer",
    )


def main(argv: list[str] | None = None) -> None:
    """Build the model, intervene on it, and print its effects."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="folder for the picture")
    args = parser.parse_args(argv)
    out: Path = args.out or Path(tempfile.mkdtemp(prefix="scmnet-custom-scm-"))
    out.mkdir(parents=True, exist_ok=True)

    model = build_model()
    print(model)
    for v in model.endogenous:
        print(f"  parents of {v}: {', '.join(model.parents(v))}")

    # One context u: a carrier of the genotype, with no noise.
    u = {"genotype": 1.0, "u_smoke": 0.0, "u_tar": 0.0}
    values = model.evaluate(u)
    print()
    print(f"In the context {u}:")
    print("  " + ", ".join(f"{k} = {float(v):.4f}" for k, v in values.items() if k not in u))

    smoke, no_smoke = {"smoking": 1.0}, {"smoking": 0.0}
    te = sn.total_effect(model, smoke, "cancer", reference=no_smoke, context=u)
    de = sn.direct_effect(model, smoke, "cancer", reference=no_smoke, context=u)
    ie = sn.indirect_effect(model, smoke, "cancer", reference=no_smoke, context=u)
    print()
    print("Effect of smoking (do(smoking = 0) -> do(smoking = 1)) on the cancer risk here:")
    print(f"  TE = {te:.4f}")
    print(f"  DE = {de:.4f}  (tar held at its value without smoking; no edge smoking -> cancer)")
    print(f"  IE = {ie:.4f}  (all of the effect goes through tar, so IE = TE)")

    # A soft intervention keeps the mechanism and changes its result: a filter that
    # removes one unit of tar, whatever the smoking.
    filtered = sn.total_effect(model, {"tar": sn.shift(-1.0)}, "cancer", context=u)
    print()
    print(f"A tar filter, do(tar += -1.0), changes the risk here by {filtered:.4f}")

    # Averages over P(u): Monte Carlo with an explicit seed, with a standard error.
    ate = sn.total_effect(model, smoke, "cancer", reference=no_smoke, samples=SAMPLES, seed=SEED)
    soft = sn.total_effect(model, {"tar": sn.shift(-1.0)}, "cancer", samples=SAMPLES, seed=SEED)
    print()
    print(f"Averaged over P(u) ({ate.samples} draws, seed {ate.seed}):")
    print(f"  average effect of smoking     E[TE] = {ate.value:.4f} +- {ate.stderr:.4f}")
    print(f"  average effect of the filter  E[TE] = {soft.value:.4f} +- {soft.stderr:.4f}")

    # Observational data mix the effect of smoking with that of the genotype behind it.
    data = model.sample(SAMPLES, seed=SEED)
    smokers = data["smoking"] == 1.0
    observed = data["cancer"][smokers].mean() - data["cancer"][~smokers].mean()
    print(f"  observed difference E[cancer | smoker] - E[cancer | non-smoker] = {observed:.4f}")
    print("  (larger than the causal effect: smokers carry the genotype more often)")

    # The intervened models themselves: new models whose graphs have lost the in-edges of
    # smoking (the original is unchanged). Evaluated in the same draws of u as above, the
    # difference of their mean risks is the average total effect.
    everyone, no_one = sn.do(model, smoke), sn.do(model, no_smoke)
    cut = sorted(set(model.graph.edges) - set(everyone.graph.edges))
    contexts = model.sample_contexts(SAMPLES, seed=SEED)
    risk = np.mean([everyone.evaluate(c)["cancer"] for c in contexts])
    risk_none = np.mean([no_one.evaluate(c)["cancer"] for c in contexts])
    print()
    print(f"do(smoking = 1): {everyone}")
    print(f"  removed edges: {', '.join(f'{a} -> {b}' for a, b in cut)}")
    print(f"  mean cancer risk if everyone smoked: {risk:.4f}, if no one did: {risk_none:.4f}")
    print(f"  their difference, {risk - risk_none:.4f}, is the average effect E[TE] above")

    try:
        from scmnet.draw import draw_intervention

        path = out / "smoking_do_smoking.png"
        draw_intervention(model, smoke, path, layout="tb")
        print(f"  picture: {path}")
    except sn.MissingDependency as e:
        print(f"  (no picture: {e})")


if __name__ == "__main__":
    main()
