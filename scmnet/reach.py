"""Interventions that can act: every intervened site must be an ancestor of the outcome.

An intervention on a variable from which no directed path of the causal graph leads to the
outcome changes nothing the outcome reads: every effect of it (total, direct, indirect,
path-specific) is zero by construction. In interpretability work that is the most common
silent failure -- a hook on a module whose output is never used, a site named after the
readout -- so the effect operators refuse such a query
with :class:`~scmnet.NoCausalPath`, naming the site, unless the zero answer is what was meant
(``unreached="zero"``, as a conformance check of the graph does). The check is on variables:
a site that is an ancestor of the outcome but changes a position the outcome does not read
still passes it.

Examples
--------
In the linear mediation model x -> m -> y, y is read by nothing, so an intervention on it
cannot move m:

>>> import scmnet as sn
>>> m = sn.toys.linear_mediation()
>>> u = {"u_x": 1.0, "u_m": 0.0, "u_y": 0.0}
>>> sn.total_effect(m, {"y": 0.0}, "m", context=u)
Traceback (most recent call last):
...
scmnet.errors.NoCausalPath: the treatment's site 'y' is not an ancestor of the outcome 'm': no \
directed path of the causal graph carries its change, so its effect is 0 by construction; \
intervene on an ancestor of the outcome such as its parents ('x'), or pass unreached='zero' for \
the zero effect
>>> sn.total_effect(m, {"y": 0.0}, "m", context=u, unreached="zero")
0.0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TypeAlias, get_args

import networkx as nx

from scmnet.errors import InvalidArgument, NoCausalPath, format_names
from scmnet.interventions import Interventions
from scmnet.model import CausalModel

__all__ = ["Unreached", "check_reaches", "upstream_of"]

Unreached: TypeAlias = Literal["raise", "zero"]
"""What to do with an intervened site that is not an ancestor of the outcome: refuse the query
(``"raise"``, the default) or compute its zero effect (``"zero"``)."""


def upstream_of(model: CausalModel, variables: Sequence[str]) -> frozenset[str]:
    """The variables and all their ancestors in ``model.graph``.

    Examples
    --------
    >>> import scmnet as sn
    >>> sorted(upstream_of(sn.toys.erasure(), ["f"]))
    ['f', 'u', 'x']
    """
    graph = model.graph
    found = set(variables)
    for v in variables:
        found |= nx.ancestors(graph, v)
    return frozenset(found)


def check_reaches(
    model: CausalModel,
    treatments: Sequence[Interventions],
    outcome: Sequence[str],
    unreached: Unreached = "raise",
    *,
    label: str | None = None,
    role: str = "treatment",
) -> None:
    """Refuse a treatment with a site from which no directed path leads to the outcome.

    Parameters
    ----------
    model : CausalModel
        The model the query runs on (its graph, with the in-edges its own hard interventions
        removed).
    treatments : sequence of Interventions
        The rows' treatments.
    outcome : sequence of str
        The variables the outcome reads.
    unreached : {"raise", "zero"}
        ``"zero"`` accepts such sites (their effect is computed, and is zero).
    label : str, optional
        How the message names the outcome (default: its variables).
    role : str
        How the message names the intervened sites' set (``"receivers"`` for path patching).

    Raises
    ------
    NoCausalPath
        Naming the first such site, its row, and the ancestors of the outcome.
    InvalidArgument
        If ``unreached`` is not one of the two choices.

    Examples
    --------
    >>> import scmnet as sn
    >>> m = sn.toys.erasure()
    >>> from scmnet.interventions import normalize
    >>> check_reaches(m, [normalize({"x": 0.0})], ["y"])  # x -> y: accepted
    >>> check_reaches(m, [normalize({"y": 0.0})], ["f"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    scmnet.errors.NoCausalPath: the treatment's site 'y' is not an ancestor of the outcome 'f': ...
    """
    if unreached not in get_args(Unreached):
        raise InvalidArgument(
            f"unreached must be 'raise' or 'zero', got {unreached!r}; 'zero' computes the zero "
            f"effect of a site that is not an ancestor of the outcome"
        )
    if unreached == "zero":
        return
    upstream = upstream_of(model, outcome)
    for row, iv in enumerate(treatments):
        for node in iv.nodes:
            if node in upstream:
                continue
            which = f"the {role}'" + ("" if role.endswith("s") else "s")
            which = which if len(treatments) == 1 else f"{role} {row}'s"
            named = label if label is not None else format_names(outcome)
            cut = (
                " (the model's own hard interventions remove in-edges)"
                if model.interventions
                else ""
            )
            endogenous = set(model.endogenous)
            parents = {p for v in outcome for p in model.graph.predecessors(v)} & endogenous
            such = f" such as its parents ({format_names(parents, limit=6)})" if parents else ""
            raise NoCausalPath(
                f"{which} site {node!r} is not an ancestor of the outcome {named}: no directed "
                f"path of the causal graph{cut} carries its change, so its effect is 0 by "
                f"construction; intervene on an ancestor of the outcome{such}, or pass "
                f"unreached='zero' for the zero effect"
            )
