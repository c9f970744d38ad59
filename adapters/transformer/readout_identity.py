"""The readout identity every Hydra run must satisfy: the units add up to the centred logit.

With the final norm's scale sigma of the run, the centred logit of token i (eq. 9) is linear in
the residual stream h^L, and h^L is the sum of the embedding's contribution h^0 and of every
unit's (eqs. 3-6). So, before any softcap (the logit scale s included)::

    pi^_i = sum_units DE_unit + DE(h^0) + B

where DE_unit is a unit's direct effect with sigma held (eq. 10: the unit times
``s G (W_U[i] - mean W_U)`` over sigma), and B = s (beta . (W_U[i] - mean W_U) + b_i - mean b)
collects the final norm's bias beta and the unembedding's bias b. The Hydra readouts take
each DE_unit from the unit's own value, but the centred logit from the final norm's output;
the two sides meet only if the units really are the residual stream's contributions, the scale
read is the one the norm divided by, and the readout rows are right. A family mapped wrongly
-- a unit read before a post-norm, a parallel block's shared input added twice -- breaks it.

h^0 is read as the first layer's output less that layer's units (``h^0 = h^1 - a^0 - m^0``,
the first layer's input), which serves every family (GPT-2 adds position embeddings, Gemma
scales the token embedding). The identity is then a check of every later layer: the readouts
return, for every run, the gap between the two sides and a bound on its rounding error
(:func:`identity_columns`), and :func:`check_identity` raises, naming the run's intervened site,
where a gap exceeds its bound.

Examples
--------
>>> import torch
>>> gap, bound = identity_columns(
...     first=torch.ones(1, 2), later=[torch.ones(1, 2)], rows=torch.tensor([1.0, 0.0]),
...     sigma=torch.ones(1), logit=torch.tensor([2.5], dtype=torch.float64), constant=0.5)
>>> float(gap[0]), float(bound[0]) > 0
(0.0, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from scmnet import Site
from scmnet.errors import MechanismError

from .lm import LanguageModel

__all__ = [
    "check_identity",
    "constant_part",
    "first_layer_site",
    "identity_columns",
    "rounding",
]


def first_layer_site(lm: LanguageModel, index: Any) -> Site:
    """The first decoder layer's output h^1, read at ``index``."""
    return Site(f"{lm.spec.layers}.0", index=index)


def constant_part(lm: LanguageModel, w_bar: torch.Tensor, token: int) -> torch.Tensor:
    """B: the centred logit's part that no residual contribution carries, the final norm's
    bias and the unembedding's bias through the readout row, times the logit scale (a float64
    scalar on ``w_bar``'s device: no wait for the device)."""
    b = torch.zeros((), dtype=torch.float64, device=w_bar.device)
    beta = getattr(lm.final_norm, "bias", None)
    if isinstance(beta, torch.Tensor):
        b = b + (beta.detach().float().to(w_bar.device) @ w_bar).double()
    return (b + lm.centred_bias(token)) * lm.readout.scale


def rounding(lm: LanguageModel, terms: int) -> float:
    """The relative bound of the gap: a few roundings per added term, of the model's compute
    dtype or of float32 (in which the readouts add), whichever is coarser."""
    eps = max(torch.finfo(lm.dtype).eps, torch.finfo(torch.float32).eps)
    return (4 * terms + 16) * eps


def identity_columns(
    *,
    first: torch.Tensor,
    later: Sequence[torch.Tensor],
    rows: torch.Tensor,
    sigma: torch.Tensor,
    logit: torch.Tensor,
    constant: float | torch.Tensor,
    relative: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The gap between the centred logit and the sum of its parts, and the bound of the gap.

    Parameters
    ----------
    first : tensor, shape (runs, d_model)
        h^1, each run's first layer output at the final position.
    later : sequence of tensors, shape (runs, d_model)
        The units of every later layer (with any bias a split of the layer leaves out).
    rows : tensor, shape (d_model,)
        ``s G (W_U[i] - mean W_U)`` (centred for a LayerNorm).
    sigma : tensor, shape (runs,)
        Each run's final-norm scale.
    logit : tensor, shape (runs,), float64
        Each run's centred logit before any softcap, read off the final norm's output.
    constant : float or tensor
        B: the final norm's and the unembedding's bias terms.
    relative : float
        The bound relative to the terms' size.

    Returns
    -------
    gap, bound : tensors, shape (runs,), float64
        ``logit - (h^1 + sum later) . rows / sigma - B``, and ``relative`` times the sum of the
        terms' sizes (Cauchy-Schwarz) plus the logit's.
    """
    total = first.float() + sum((u.float() for u in later), torch.zeros_like(first.float()))
    s = sigma.reshape(-1).float()
    parts = (total @ rows).double() / s.double() + constant
    norm = rows.norm().double()
    size = first.float().norm(dim=-1).double()
    for u in later:
        size = size + u.float().norm(dim=-1).double()
    bound = relative * (size * norm / s.double() + logit.abs() + abs(constant))
    return logit - parts, bound


def check_identity(
    gap: Any, bound: Any, treatments: Sequence[Any], *, prompt: int, what: str = "layers"
) -> None:
    """Raise if a run's units do not add up to its centred logit (see the module docs).

    Parameters
    ----------
    gap, bound : arrays, shape (1 + len(treatments),)
        From :func:`identity_columns`: the clean run first, then one run per treatment.
    treatments : sequence of mappings
        Each run's interventions (named in the message).
    prompt : int
        The prompt's index (named in the message).
    what : str
        The units, for the message.

    Raises
    ------
    MechanismError
        Naming the prompt, the run's intervened site, the gap and its bound.

    Examples
    --------
    >>> import numpy as np
    >>> check_identity(np.array([1e-9]), np.array([1e-6]), [], prompt=0)
    >>> check_identity(np.array([0.0, 0.5]), np.array([1e-6, 1e-6]), [{"layer 3": 0}], prompt=7)
    Traceback (most recent call last):
    ...
    scmnet.errors.MechanismError: prompt 7, the run intervening on 'layer 3': the direct \
effects of the layers, the embedding's and the bias terms sum to 0.5 less than the centred \
logit (rounding bound 1e-06); the units are not the residual stream's contributions for this \
model, so its Hydra measures would be wrong
    """
    for r in range(len(gap)):
        if not abs(float(gap[r])) <= float(bound[r]):  # also refuses NaN
            run = (
                "the clean run" if r == 0 else f"the run intervening on {_sites(treatments[r - 1])}"
            )
            raise MechanismError(
                f"prompt {prompt}, {run}: the direct effects of the {what}, the embedding's and "
                f"the bias terms sum to {float(gap[r]):.3g} less than the centred logit "
                f"(rounding bound {float(bound[r]):.3g}); the units are not the residual "
                f"stream's contributions for this model, so its Hydra measures would be wrong"
            )


def _sites(treatment: Any) -> str:
    return ", ".join(repr(str(site)) for site in treatment)
