"""The protocol every causal model implements, and the functions written once against it.

A structural causal model M = <U, V, F, P(u)> (Definition 3.1 of the Hydra-effect paper) is,
for the purposes of the effect operators, four things:

* a causal graph (a :class:`networkx.DiGraph` with an edge X -> V for every parent X of V);
* the names of its exogenous variables U and endogenous variables V;
* evaluation in a context u under a set of interventions -- possibly many sets at once, which a
  neural network can run as one batched forward;
* draws of contexts from P(u), from an explicit seed.

A model may also evaluate many contexts ("units") at once: :class:`CausalModelBase` says
whether it does (:meth:`~CausalModelBase.evaluates_units`), draws the units of a population
stacked (:meth:`~CausalModelBase.draw_units`, a :class:`~scmnet.Units`) and says how it will
evaluate them (:meth:`~CausalModelBase.units_batching`). :class:`~scmnet.SCM` evaluates units
vectorised; the effect operators then average over P(u) in one batch per chunk of units.

:class:`CausalModel` states this as a :class:`typing.Protocol`. The plain :class:`~scmnet.SCM`
implements it with Python callables; a traced network implements it with its compute graph.
:func:`do` and the effect operators in :mod:`scmnet.effects` only use the protocol, so they
work unchanged on both.

What the two implementations do alike is written once, here: :func:`check_context` checks a
context against the exogenous variables, and :class:`CausalModelBase` keeps the interventions a
model carries, checks new ones, and builds the intervened model and its graph.
"""

from __future__ import annotations

import abc
import copy
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeAlias, TypeVar, cast, runtime_checkable

import networkx as nx

from scmnet.errors import (
    InvalidArgument,
    InvalidContext,
    InvalidIntervention,
    format_names,
    unknown_node,
)
from scmnet.interventions import Interventions, Site, normalize
from scmnet.units import UnitBatching, Units

__all__ = [
    "CausalModel",
    "CausalModelBase",
    "Context",
    "Output",
    "Terms",
    "causal_graph",
    "check_context",
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
        memory: int | None = None,
    ) -> list[dict[Any, Any]]:
        """:meth:`evaluate` for several intervention sets in the same context.

        A model that runs the sets as the rows of a batch runs at most ``chunk`` of them at a
        time, and keeps a batch's activations within ``memory`` bytes; others ignore both.
        """
        ...

    def sample_contexts(self, n: int, *, seed: int) -> list[dict[str, Any]]:
        """``n`` independent contexts drawn from P(u) with a generator seeded by ``seed``."""
        ...

    def intervene(self, interventions: Interventions | Mapping[Any, Any]) -> CausalModel:
        """The intervened model M_Z (a new object; this one is unchanged)."""
        ...


M = TypeVar("M", bound=CausalModel)


@dataclass(frozen=True)
class Terms:
    """How a kind of causal model names its exogenous variables in error messages.

    Attributes
    ----------
    exogenous : str
        Their plural name: ``"exogenous variables"``, or ``"inputs"`` for a traced network.
    one : str
        What one of them is: ``"exogenous"``, ``"an input (exogenous)"``.
    missing : str
        What a context misses, said before the names: ``"exogenous"``, ``"the input(s)"``.
    model : str
        The model: ``"this model"``, ``"the traced model"``.
    example : str
        A value in an example context: ``"0.0"``, ``"tensor"``.
    """

    exogenous: str = "exogenous variables"
    one: str = "exogenous"
    missing: str = "exogenous"
    model: str = "this model"
    example: str = "0.0"


def check_batching(chunk: object, memory: object) -> None:
    """Check the ``chunk`` (sets per batch) and ``memory`` (bytes) limits of a batched call.

    Raises
    ------
    InvalidArgument
        If either is given and is not a positive int.

    Examples
    --------
    >>> check_batching(None, 2**30)
    >>> check_batching(0, None)
    Traceback (most recent call last):
    ...
    scmnet.errors.InvalidArgument: chunk must be a positive int or None, got 0
    """
    for name, value, unit in (("chunk", chunk, ""), ("memory", memory, " (bytes)")):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise InvalidArgument(f"{name} must be a positive int{unit} or None, got {value!r}")


def check_context(context: object, exogenous: Collection[str], terms: Terms = Terms()) -> Context:
    """``context``, checked to be a mapping with a value for each exogenous variable and no other.

    Parameters
    ----------
    context : object
        What was given as a context.
    exogenous : collection of str
        The exogenous variable names, in order (a mapping's keys will do).
    terms : Terms
        How the messages name the exogenous variables.

    Raises
    ------
    InvalidContext
        If ``context`` is not a mapping, misses an exogenous variable or names another one.

    Examples
    --------
    >>> check_context({"u": 1.0}, ["u"])
    {'u': 1.0}
    >>> check_context({"u": 1.0, "w": 0.0}, ["u"])
    Traceback (most recent call last):
    ...
    scmnet.errors.InvalidContext: the context names 'w', which are not exogenous variables of \
this model; unknown node 'w'; the exogenous variables are 'u'
    """
    if not isinstance(context, Mapping):
        first = next(iter(exogenous), None)
        example = f"; e.g. {{{first!r}: {terms.example}}}" if first is not None else ""
        raise InvalidContext(
            f"a context must be a mapping from the names of the {terms.exogenous} to values, "
            f"got {type(context).__name__}{example}"
        )
    missing = [u for u in exogenous if u not in context]
    if missing:
        raise InvalidContext(
            f"the context misses {terms.missing} {format_names(missing)}; it must give a value "
            f"for each of {format_names(exogenous)}"
        )
    unknown = [k for k in context if k not in exogenous]
    if unknown:
        raise InvalidContext(
            f"the context names {format_names(unknown)}, which are not {terms.exogenous} of "
            f"{terms.model}; {unknown_node(unknown[0], exogenous, what=terms.exogenous)}"
        )
    return context


B = TypeVar("B", bound="CausalModelBase")


class CausalModelBase(abc.ABC):
    """What every causal model of scmnet does alike, written once.

    A subclass passes its unintervened causal graph (frozen; each node carries ``kind``,
    ``"exogenous"`` or ``"endogenous"``, and ``intervention``, ``None``) to ``__init__``, names
    its exogenous variables in ``_terms``, and implements the rest of :class:`CausalModel`:
    :attr:`exogenous`, :attr:`endogenous`, ``evaluate``, ``evaluate_many`` and
    ``sample_contexts``. This class keeps the interventions
    the model carries, checks new ones against the graph (``_merged``), and builds the
    intervened model (:meth:`intervene`, a shallow copy carrying more interventions) and its
    graph. :class:`~scmnet.SCM` and :class:`~scmnet.TracedModel` derive from it.

    Parameters
    ----------
    graph : networkx.DiGraph
        The unintervened causal graph.
    interventions : Interventions, optional
        The interventions the model carries (checked by the caller).

    Examples
    --------
    >>> import networkx as nx
    >>> import scmnet as sn
    >>> class Pair(CausalModelBase):
    ...     exogenous, endogenous = ("u",), ("x",)
    >>> g = nx.DiGraph([("u", "x")])
    >>> g.add_nodes_from([("u", {"kind": "exogenous"}), ("x", {"kind": "endogenous"})],
    ...                  intervention=None)
    >>> m = Pair(nx.freeze(g)).intervene({"x": 1.0})
    >>> m.removed_edges, m.graph.nodes["x"]["intervention"]
    ((('u', 'x'),), 'x = 1.0')
    >>> m.intervene({"u": 0.0})
    Traceback (most recent call last):
    ...
    scmnet.errors.InvalidIntervention: 'u' is exogenous and cannot be intervened on; intervene \
on an endogenous variable ('x'), or pass a value of 'u' in the context
    """

    _terms: ClassVar[Terms] = Terms()
    """How error messages name the exogenous variables."""

    def __init__(self, graph: nx.DiGraph, interventions: Interventions | None = None) -> None:
        self._base_graph = graph
        self._interventions = interventions if interventions is not None else Interventions()
        self._graph: nx.DiGraph | None = None if self._interventions else graph

    @property
    @abc.abstractmethod
    def exogenous(self) -> tuple[str, ...]:
        """The exogenous variable names U."""

    @property
    @abc.abstractmethod
    def endogenous(self) -> tuple[str, ...]:
        """The endogenous variable names V, in topological order."""

    @property
    def graph(self) -> nx.DiGraph:
        """The causal graph (frozen): an edge X -> V for every parent X of V.

        Nodes carry ``kind`` (``"exogenous"`` or ``"endogenous"``) and ``intervention`` (the
        label of the rules acting on the node, or ``None``). Hard interventions remove
        in-edges.
        """
        if self._graph is None:  # built when first read: checking a treatment needs none
            g = nx.DiGraph(self._base_graph)
            g.remove_edges_from(self.removed_edges)
            for site, rule in self._interventions:
                label = f"{site} {rule.label()}"
                old = g.nodes[site.node]["intervention"]
                g.nodes[site.node]["intervention"] = label if old is None else f"{old}; {label}"
            self._graph = nx.freeze(g)
        return self._graph

    @property
    def interventions(self) -> Interventions:
        """The interventions this model carries (empty unless made by :func:`~scmnet.do`)."""
        return self._interventions

    @property
    def removed_edges(self) -> tuple[tuple[str, str], ...]:
        """The in-edges that this model's hard interventions cut from the unintervened graph."""
        base = self._base_graph
        return tuple(
            (p, v) for v in sorted(self._interventions.hard_nodes()) for p in base.predecessors(v)
        )

    def intervene(self: B, interventions: Interventions | Mapping[Any, Any]) -> B:
        """The intervened model: a new object of the same type; see :func:`scmnet.do`."""
        new = copy.copy(self)
        new._interventions = self._merged(interventions)
        new._graph = None
        return new

    # -- many contexts at once (optional: a model that does not evaluate units needs none) ----

    def evaluates_units(self) -> bool:
        """Whether ``evaluate`` takes :class:`~scmnet.Units` (many contexts stacked).

        ``False`` here: the effect operators then evaluate one context at a time. A model that
        returns ``True`` gives every value stacked along a leading axis of units.
        """
        return False

    def draw_units(self, n: int, *, seed: int) -> Units:
        """The ``n`` contexts that ``sample_contexts(n, seed=seed)`` draws, stacked as units.

        Raises
        ------
        InvalidContext
            If the contexts do not stack into numeric arrays or tensors.
        """
        sample = getattr(self, "sample_contexts")  # noqa: B009 -- subclasses implement it
        return Units.stack(sample(n, seed=seed))

    def units_batching(self, units: Units) -> UnitBatching:
        """How ``evaluate`` runs ``units``: here one at a time (a model that vectorises says so,
        or why it does not)."""
        return UnitBatching("looped", f"{type(self).__name__} evaluates one context at a time")

    def _merged(self, interventions: Interventions | Mapping[Any, Any] | None) -> Interventions:
        """The interventions this model carries, then ``interventions``, checked.

        Raises
        ------
        NodeNotFound
            If an intervention names a node the model does not have.
        InvalidIntervention
            If an intervention names an exogenous variable.
        """
        iv = normalize(interventions)
        base = self._base_graph
        for site in iv.sites:
            if site.node not in base:
                raise unknown_node(site.node, self.endogenous, what="endogenous nodes")
            if base.nodes[site.node]["kind"] == "exogenous":
                raise InvalidIntervention(
                    f"{site.node!r} is {self._terms.one} and cannot be intervened on; intervene "
                    f"on an endogenous variable ({format_names(self.endogenous)}), or pass a "
                    f"value of {site.node!r} in the context"
                )
        return self._interventions.merged(iv)

    def _do_label(self) -> str:
        """``", do(x, v[1])"`` for the interventions carried, ``""`` for none (for reprs)."""
        if not self._interventions:
            return ""
        return f", do({', '.join(str(s) for s in self._interventions.sites)})"


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
