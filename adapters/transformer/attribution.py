"""Attribution patching: a first-order estimate of every layer's ablation impact, and how well it
agrees with the exact sweep.

Attribution patching (AtP; Nanda 2023, Syed, Rager & Conmy 2023, arXiv 2310.10348; Kramár et
al. 2024, arXiv 2403.00745) replaces each exact ablation run by the first-order term of its
Taylor expansion around the clean run. For the centred logit y of the clean top-1 token
(eq. 9) and the ablation do(A^k_t = a~) of eq. 12,

    Delta_ablate,k  ~  (a~ - a^k_t) . d y / d a^k_t,

with the gradient taken in the clean run with every other variable free: one forward and one
backward run give the estimate for every layer at once (:meth:`scmnet.TracedModel.gradients`).
A random ablation averages its K draws (eq. 39); the estimate is linear in a~, so it is the
estimate at the draws' mean.

The estimate is exact where y is linear in the unit along the way to the logit, and misses what
is not: the final norm's rescaling and every later layer's nonlinear reaction, the self-repair
of the Hydra effect among them. :func:`agreement` measures that against the exact sweep: the
rank correlation over units, per prompt, and the units among the exact top k that a prefilter
keeping the AtP top m would miss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats

import scmnet as sn
from scmnet.errors import InvalidArgument

from .causal import hydra_model
from .families import Block
from .lm import LanguageModel
from .measures import readout_rows

__all__ = ["Agreement", "agreement", "attribution_impacts"]


def attribution_impacts(
    lm: LanguageModel, ids: torch.Tensor, token: int, values: torch.Tensor
) -> np.ndarray:
    """AtP's estimate of Delta_ablate of every layer of one prompt: shape (2, L).

    Parameters
    ----------
    lm : LanguageModel
        The model (a linear readout: no softcap).
    ids : tensor, shape (1, T)
        The prompt's token ids.
    token : int
        i, the token read out.
    values : tensor, shape (2, L, d_model) or (K, 2, L, d_model)
        The ablation value a~ of every contribution (attention first), or K draws of it
        (averaged: the estimate is linear in a~); zeros for zero ablation.

    Raises
    ------
    InvalidArgument
        If ``values`` does not have the contributions' shape.
    """
    n = lm.n_layers
    values = values.double()
    if values.dim() == 4:
        values = values.mean(0)
    if tuple(values.shape) != (2, n, lm.d_model):
        raise InvalidArgument(
            f"values must have shape (2, {n}, {lm.d_model}) or (K, 2, {n}, {lm.d_model}), one "
            f"value per contribution, got {tuple(values.shape)}"
        )
    model = hydra_model(lm)
    w_bar, _ = readout_rows(lm, token)
    bias, scale = lm.centred_bias(token), lm.readout.scale
    normed = sn.Site(lm.spec.final_norm.path, (0, -1))
    outcome = sn.Outcome((normed,), lambda z: (z.float() @ w_bar + bias) * scale)
    paths = [lm.module_path(layer, b.label) for b in Block for layer in range(n)]
    _, grads = model.gradients({"input_ids": ids.to(lm.device)}, outcome, paths)
    with torch.no_grad():
        clean = model.evaluate(
            {"input_ids": ids.to(lm.device)},
            outputs=[sn.Site(p, (0, -1)) for p in paths],
        )
    model.clear_cache()
    rows = values.reshape(2 * n, -1).to(lm.device)
    estimate = [  # in float64: (a~ - a) . d y / d a
        float((rows[u] - clean[sn.Site(p, (0, -1))].double()) @ grads[p][0, -1].double())
        for u, p in enumerate(paths)
    ]
    return np.asarray(estimate).reshape(2, n)


@dataclass(frozen=True)
class Agreement:
    """How AtP's estimates rank the units against the exact ablation impacts, over prompts.

    Attributes
    ----------
    spearman : float
        The mean over prompts of the rank correlation of the estimates' and the exact impacts'
        absolute values over units.
    spearman_signed : float
        The same for the signed values.
    top : int
        k: the units of largest absolute exact impact per prompt that a prefilter must keep.
    missed : dict of int to float
        For a prefilter keeping the m units of largest absolute estimate, the mean over prompts of
        the fraction of the exact top k it misses (its false negatives), for each m.
    """

    spearman: float
    spearman_signed: float
    top: int
    missed: dict[int, float]


def agreement(
    estimate: np.ndarray, exact: np.ndarray, *, top: int = 5, keep: Sequence[int] = (5, 10, 20)
) -> Agreement:
    """Compare AtP's estimates with the exact impacts: arrays of shape (P, units).

    Examples
    --------
    >>> exact = np.array([[3.0, -2.0, 1.0, 0.5]])
    >>> a = agreement(exact * 0.5, exact, top=2, keep=(1, 2))
    >>> a.spearman, a.missed
    (1.0, {1: 0.5, 2: 0.0})
    """
    estimate, exact = np.asarray(estimate, dtype=float), np.asarray(exact, dtype=float)
    if estimate.shape != exact.shape or estimate.ndim != 2 or exact.shape[1] < 2:
        raise InvalidArgument(
            f"estimate and exact must be arrays of shape (prompts, units) with 2 units or "
            f"more, of one shape, got {estimate.shape} and {exact.shape}"
        )
    if not 1 <= top <= exact.shape[1]:
        raise InvalidArgument(f"top must be in 1..{exact.shape[1]} (the units), got {top}")
    pairs = list(zip(estimate, exact, strict=True))
    rho = [stats.spearmanr(np.abs(e), np.abs(x)).statistic for e, x in pairs]
    signed = [stats.spearmanr(e, x).statistic for e, x in pairs]
    missed: dict[int, float] = {}
    for m in keep:
        fractions = []
        for e, x in zip(estimate, exact, strict=True):
            wanted = set(np.argsort(-np.abs(x), kind="stable")[:top].tolist())
            kept = set(np.argsort(-np.abs(e), kind="stable")[:m].tolist())
            fractions.append(len(wanted - kept) / top)
        missed[int(m)] = float(np.mean(fractions))
    return Agreement(float(np.nanmean(rho)), float(np.nanmean(signed)), int(top), missed)
