"""Fitting intervention values to the tensors they replace.

An intervention on a traced variable must produce a tensor the rest of the network can read:
the variable's shape, dtype and device. This module checks and converts, before anything runs,
with messages that name the site:

* a :class:`~scmnet.Set` value may be a Python number, a numpy array or a tensor; it is
  converted to the variable's dtype and device if it is not a tensor (a tensor of another dtype
  is refused rather than silently cast), and must broadcast to the shape of the site
  (``value[index]`` for an indexed site). A whole-variable value is laid out like the natural
  value (same strides), as the eager module's output would be;
* a site's index must be valid for the variable's shape (``IndexError`` becomes
  :class:`~scmnet.InvalidIntervention`);
* a :class:`~scmnet.Transform` must return a tensor of the variable's shape and dtype.

Examples
--------
>>> import torch
>>> import scmnet as sn
>>> natural = torch.zeros(1, 3, 4)
>>> rule = fit_rule(sn.Site("mlp", index=(slice(None), -1)), sn.Set(1.0), natural)
>>> rule.value
tensor(1.)
>>> try:
...     fit_rule(sn.Site("mlp", index=(0, 5)), sn.Set(1.0), natural)
... except sn.InvalidIntervention as e:
...     print(e)  # doctest: +ELLIPSIS
the index of the site mlp[0, 5] does not fit the variable 'mlp' of shape (1, 3, 4): index 5 ...
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from scmnet.errors import InvalidIntervention
from scmnet.interventions import Interventions, Rule, Set, Site

__all__ = ["check_result", "fit", "fit_rule"]


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"


def _broadcasts(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """Whether a value of ``shape`` broadcasts to ``target`` (without changing ``target``)."""
    if len(shape) > len(target):
        return False
    return all(s in (1, t) for s, t in zip(reversed(shape), reversed(target), strict=False))


def fit_rule(site: Site, rule: Rule, natural: torch.Tensor) -> Rule:
    """Check ``rule`` against the natural value of its site and convert a :class:`Set` value.

    Parameters
    ----------
    site : Site
    rule : Rule
    natural : torch.Tensor
        The variable's value in the clean run of the same context.

    Returns
    -------
    Rule
        ``rule`` itself, or a :class:`Set` holding a tensor that fits the site.

    Raises
    ------
    InvalidIntervention
        If the index does not fit the variable, or the value has the wrong shape or dtype.
    """
    target = natural
    if site.index is not None:
        try:
            target = natural[site.index]
        except (IndexError, TypeError, ValueError, RuntimeError) as e:
            raise InvalidIntervention(
                f"the index of the site {site} does not fit the variable {site.node!r} of "
                f"shape {tuple(natural.shape)}: {e}"
            ) from e
    if not isinstance(rule, Set):
        return rule
    value = rule.value
    if isinstance(value, torch.Tensor):
        if value.dtype != natural.dtype:
            raise InvalidIntervention(
                f"the value set at {site} is {_describe(value)}, but {site.node!r} holds "
                f"{natural.dtype} values; convert it with .to({natural.dtype})"
            )
        tensor = value.to(natural.device)
    elif isinstance(value, int | float | bool | np.ndarray | np.generic):
        tensor = torch.as_tensor(value, dtype=natural.dtype, device=natural.device)
    else:
        raise InvalidIntervention(
            f"the value set at {site} is {_describe(value)}; give a tensor, an array or a number"
        )
    fits = _broadcasts(tuple(tensor.shape), tuple(target.shape))
    if not fits:
        raise InvalidIntervention(
            f"the value set at {site} has shape {tuple(tensor.shape)}, which does not fit the "
            f"site's shape {tuple(target.shape)} (variable {site.node!r} has shape "
            f"{tuple(natural.shape)}); give a tensor of shape {tuple(target.shape)} or one "
            f"that broadcasts to it"
        )
    if site.index is None and not (
        tensor.shape == natural.shape and tensor.stride() == natural.stride()
    ):
        tensor = torch.empty_like(natural).copy_(tensor)
    return rule if tensor is value else Set(tensor)


def fit(interventions: Interventions, naturals: dict[str, torch.Tensor]) -> Interventions:
    """:func:`fit_rule` for every intervention, given each node's natural value."""
    return Interventions(
        tuple((site, fit_rule(site, rule, naturals[site.node])) for site, rule in interventions)
    )


def check_result(site_node: str, value: Any, natural: torch.Tensor) -> torch.Tensor:
    """Check that the value an intervention produced can replace ``natural``.

    Raises
    ------
    InvalidIntervention
        If ``value`` is not a tensor of the natural value's shape and dtype.
    """
    if (
        not isinstance(value, torch.Tensor)
        or value.shape != natural.shape
        or value.dtype != natural.dtype
    ):
        raise InvalidIntervention(
            f"the interventions on {site_node!r} produced {_describe(value)}, but the variable "
            f"is {_describe(natural)}; a rule must keep the shape and dtype"
        )
    return value
