"""Reference SCMs written with Python callables.

The two motifs of Section 3.3 of the Hydra-effect paper (Figure 6) share one exogenous variable
u and the structure x(u) = u, y = x + f(x, u) (eq. 30), with f an explicit variable so that it
can be held (direct effect) or changed (indirect effect):

* :func:`erasure` -- f(x, u) = -x (eq. 31): y is always 0, so no intervention on x changes it.
* :func:`self_repair` -- f(x, u) = 0 if x = u else u (eq. 32): y = u whenever x is set to 0.

The textbook models have closed-form effects: :func:`linear_mediation` (x -> m -> y and
x -> y) and :func:`linear_gaussian`, a linear SCM over any DAG given by its edge weights, whose
total effect is the sum over directed paths of the products of edge weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import networkx as nx

from scmnet.distributions import Distribution, Normal
from scmnet.errors import InvalidMechanism
from scmnet.scm import SCM

__all__ = ["erasure", "linear_gaussian", "linear_mediation", "self_repair"]


def erasure(distribution: Distribution | None = None) -> SCM:
    """The erasure motif (equation 31): x = u, f = -x, y = x + f.

    For every u and x': TE(x -> x') = 0, DE = x' - u (f held at -u), IE = u - x'.

    Parameters
    ----------
    distribution : Distribution, optional
        P(u); default ``Normal(0, 1)``.

    Examples
    --------
    >>> import scmnet as sn
    >>> m = sn.toys.erasure()
    >>> m.evaluate({"u": 2.0})
    {'u': 2.0, 'x': 2.0, 'f': -2.0, 'y': 0.0}
    >>> sn.direct_effect(m, {"x": 0.5}, "y", context={"u": 2.0})
    -1.5
    """
    return SCM(
        {
            "x": lambda u: u,
            "f": lambda x: -x,
            "y": lambda x, f: x + f,
        },
        exogenous={"u": distribution or Normal()},
        name="erasure",
    )


def _repair(x: Any, u: Any) -> Any:
    """f(x, u) = 0 if x = u else u, elementwise for arrays and tensors (eq. 32)."""
    return (x != u) * u


def self_repair(distribution: Distribution | None = None) -> SCM:
    """The self-repair motif (equation 32): x = u, f = 0 if x = u else u, y = x + f.

    TE(x -> 0) = 0 for every u; for x' != u: TE = x', DE = x' - u (f held at 0), IE = u.

    Parameters
    ----------
    distribution : Distribution, optional
        P(u); default ``Normal(0, 1)``.

    Examples
    --------
    >>> import scmnet as sn
    >>> m = sn.toys.self_repair()
    >>> sn.total_effect(m, {"x": 0.0}, "y", context={"u": -3.0})
    0.0
    >>> sn.indirect_effect(m, {"x": 0.0}, "y", context={"u": -3.0})
    -3.0
    """
    return SCM(
        {
            "x": lambda u: u,
            "f": _repair,
            "y": lambda x, f: x + f,
        },
        exogenous={"u": distribution or Normal()},
        name="self-repair",
    )


def linear_mediation(a: float = 2.0, b: float = 3.0, c: float = 0.5) -> SCM:
    """The linear mediation model x -> m -> y, x -> y with independent Gaussian noise.

    x = u_x, m = a x + u_m, y = c x + b m + u_y. For a change dx of x: TE = (c + a b) dx,
    DE = c dx, IE = a b dx, in every context.

    Examples
    --------
    >>> import scmnet as sn
    >>> m = sn.toys.linear_mediation(a=2.0, b=3.0, c=0.5)
    >>> u = {"u_x": 1.0, "u_m": 0.0, "u_y": 0.0}
    >>> [sn.total_effect(m, {"x": 2.0}, "y", context=u),
    ...  sn.direct_effect(m, {"x": 2.0}, "y", context=u),
    ...  sn.indirect_effect(m, {"x": 2.0}, "y", context=u)]
    [6.5, 0.5, 6.0]
    """
    return SCM(
        {
            "x": lambda u_x: u_x,
            "m": lambda x, u_m: a * x + u_m,
            "y": lambda x, m, u_y: c * x + b * m + u_y,
        },
        exogenous={"u_x": Normal(), "u_m": Normal(), "u_y": Normal()},
        name="linear mediation",
    )


def linear_gaussian(
    weights: Mapping[tuple[str, str], float],
    *,
    noise: float = 1.0,
    nodes: list[str] | None = None,
) -> SCM:
    """A linear SCM over a DAG: v = sum over parents p of w[p, v] * p + u_v, u_v ~ N(0, noise^2).

    Every endogenous variable v gets its own exogenous noise ``u_v`` (named ``"u_" + v``).

    Parameters
    ----------
    weights : mapping of (parent, child) to float
        The edge weights; the edges must form a DAG.
    noise : float
        Standard deviation of each noise term.
    nodes : list of str, optional
        All endogenous nodes, in a preferred order (default: those named by the edges, in
        order of appearance). Use it to include nodes without edges.

    Examples
    --------
    >>> import scmnet as sn
    >>> m = sn.toys.linear_gaussian({("a", "b"): 2.0, ("b", "c"): -1.0, ("a", "c"): 0.5})
    >>> u = dict.fromkeys(m.exogenous, 0.0)
    >>> sn.total_effect(m, {"a": 1.0}, "c", context=u)  # 2 * -1 + 0.5
    -1.5
    """
    order: list[str] = list(nodes or [])
    for p, c in weights:
        for v in (p, c):
            if v not in order:
                order.append(v)
    graph = nx.DiGraph()
    graph.add_nodes_from(order)
    graph.add_edges_from(weights)
    if not nx.is_directed_acyclic_graph(graph):
        raise InvalidMechanism(f"the edges of a linear SCM must form a DAG, got {sorted(weights)}")
    parents = {v: [*graph.predecessors(v), f"u_{v}"] for v in order}

    def mechanism(v: str) -> Any:
        w = [weights[(p, v)] for p in graph.predecessors(v)]

        def f(*values: Any) -> Any:
            total = values[-1]
            for wi, x in zip(w, values[:-1], strict=False):
                total = total + wi * x
            return total

        return f

    return SCM(
        {v: mechanism(v) for v in order},
        exogenous={f"u_{v}": Normal(0.0, noise) for v in order},
        parents=parents,
        name="linear Gaussian",
    )
