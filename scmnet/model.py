"""The protocol every causal model implements, and the functions written once against it.

A structural causal model M = <U, V, F, P(u)> (Definition 3.1 of the Hydra-effect paper) is,
for the purposes of the effect operators, four things:

* a causal graph (a :class:`networkx.DiGraph` with an edge X -> V for every parent X of V);
* the names of its exogenous variables U and endogenous variables V;
* evaluation in a context u under a set of interventions -- possibly many sets at once, which a
  neural network can run as one batched forward;
* draws of contexts from P(u), from an explicit seed.

:class:`CausalModel` states this as a :class:`typing.Protocol`. The plain :class:`~scmnet.SCM`
implements it with Python callables; a traced network implements it with its compute graph.
:func:`do` and the effect operators in :mod:`scmnet.effects` only use the protocol, so they
work unchanged on both.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol, TypeAlias, TypeVar, cast, runtime_checkable

import networkx as nx

from scmnet.interventions import Interventions, Site

__all__ = [
    "CausalModel",
    "Context",
    "Output",
    "causal_graph",
    "do",
    "output_names",
    "pick_outputs",
    "removed_edges",
]

Context: TypeAlias = Mapping[str, Any]
"""A value u of the exogenous variables: a mapping from each exogenous name to its value."""


Output: TypeAlias = "str | Site"
"""What an evaluation returns: a whole variable (its name), or part of one (a
:class:`~scmnet.Site` with an index, returned under the site as key). A model may compute
only the part a site reads: a traced network whose interventions sit at the final position
does not rebuild a whole sequence of logits to return the last one."""


def output_names(outputs: Collection[Output]) -> tuple[str, ...]:
    """The variables that ``outputs`` read, in order, each once.

    Examples
    --------
    >>> import scmnet as sn
    >>> output_names(["y", sn.Site("x", index=0), sn.Site("y", index=1)])
    ('y', 'x')
    """
    return tuple(dict.fromkeys(o.node if isinstance(o, Site) else o for o in outputs))


def pick_outputs(values: Mapping[str, Any], outputs: Collection[Output]) -> dict[Any, Any]:
    """The requested outputs from whole values: names as they are, sites indexed.

    Examples
    --------
    >>> import scmnet as sn
    >>> pick_outputs({"x": [1.0, 2.0]}, ["x", sn.Site("x", index=1)])
    {'x': [1.0, 2.0], Site(node='x', index=1): 2.0}
    """
    return {
        o: (values[o.node] if o.index is None else values[o.node][o.index])
        if isinstance(o, Site)
        else values[o]
        for o in outputs
    }


@runtime_checkable
class CausalModel(Protocol):
    """What the effect operators need from a causal model."""

    @property
    def graph(self) -> nx.DiGraph:
        """The causal graph; nodes carry ``kind`` (``"exogenous"`` or ``"endogenous"``)."""
        ...

    @property
    def exogenous(self) -> tuple[str, ...]:
        """The exogenous variable names U."""
        ...

    @property
    def endogenous(self) -> tuple[str, ...]:
        """The endogenous variable names V, in a topological order."""
        ...

    @property
    def interventions(self) -> Interventions:
        """The interventions this model already carries (empty for an unintervened model)."""
        ...

    def evaluate(
        self,
        context: Context,
        interventions: Interventions | Mapping[Any, Any] | None = None,
        *,
        outputs: Collection[Output] | None = None,
    ) -> dict[Any, Any]:
        """Values of the variables in ``context`` under ``interventions``.

        ``outputs`` restricts the returned (and so the computed) variables; a
        :class:`~scmnet.Site` among them returns that part of its variable, keyed by the site.
        """
        ...

    def evaluate_many(
        self,
        context: Context,
        interventions: Sequence[Interventions],
        *,
        outputs: Collection[Output] | None = None,
        chunk: int | None = None,
    ) -> list[dict[Any, Any]]:
        """:meth:`evaluate` for several intervention sets in the same context.

        A model that runs the sets as the rows of a batch runs at most ``chunk`` of them at a
        time (bounding memory); others ignore ``chunk``.
        """
        ...

    def sample_contexts(self, n: int, *, seed: int) -> list[dict[str, Any]]:
        """``n`` independent contexts drawn from P(u) with a generator seeded by ``seed``."""
        ...

    def intervene(self, interventions: Interventions | Mapping[Any, Any]) -> CausalModel:
        """The intervened model M_Z (a new object; this one is unchanged)."""
        ...


M = TypeVar("M", bound=CausalModel)


def do(model: M, interventions: Interventions | Mapping[Any, Any]) -> M:
    """The intervened model ``do(Z = z')``, leaving ``model`` unchanged.

    In the returned model the mechanism of every hard-intervened node is replaced by a constant
    and its in-edges are removed from the graph (Section 3 and Figure 5 of the Hydra-effect
    paper). Soft interventions (:func:`~scmnet.shift`, :func:`~scmnet.scale`,
    :func:`~scmnet.apply`) keep the node's parents and transform its natural value.

    Parameters
    ----------
    model : CausalModel
        Any causal model: an :class:`~scmnet.SCM` or a traced network.
    interventions : mapping
        Node names (or :class:`~scmnet.Site` objects) to values or rules.

    Returns
    -------
    CausalModel
        A new model of the same type.

    Raises
    ------
    NodeNotFound
        If an intervention names a node the model does not have.
    InvalidIntervention
        If an intervention names an exogenous variable.

    See Also
    --------
    scmnet.total_effect, scmnet.direct_effect, scmnet.indirect_effect

    Examples
    --------
    >>> import scmnet as sn
    >>> m = sn.toys.erasure()
    >>> m2 = sn.do(m, {"x": 0.0})
    >>> sorted(m2.graph.predecessors("x")), sorted(m.graph.predecessors("x"))
    ([], ['u'])
    >>> m2.evaluate({"u": 2.0})["y"]
    0.0
    """
    return cast(M, model.intervene(interventions))


def causal_graph(model: CausalModel | nx.DiGraph) -> nx.DiGraph:
    """The causal graph of a model, or the graph itself when given one.

    Raises
    ------
    TypeError
        If ``model`` is neither a causal model nor a networkx DiGraph.

    Examples
    --------
    >>> import scmnet as sn
    >>> causal_graph(sn.toys.erasure()).number_of_nodes()
    4
    """
    if isinstance(model, nx.DiGraph):
        return model
    graph = getattr(model, "graph", None)
    if not isinstance(graph, nx.DiGraph):
        raise TypeError(
            f"expected a causal model (an object with a .graph networkx.DiGraph, such as "
            f"sn.SCM or a traced model) or a networkx.DiGraph, got {type(model).__name__}"
        )
    return graph


def removed_edges(model: CausalModel | nx.DiGraph) -> tuple[tuple[str, str], ...]:
    """The in-edges that a model's hard interventions removed (none for a plain graph).

    Examples
    --------
    >>> import scmnet as sn
    >>> removed_edges(sn.do(sn.toys.erasure(), {"f": 0.0}))
    (('x', 'f'),)
    """
    if isinstance(model, nx.DiGraph):
        return ()
    return tuple((str(u), str(v)) for u, v in getattr(model, "removed_edges", ()))
