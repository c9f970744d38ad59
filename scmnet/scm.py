"""Custom structural causal models written with Python callables.

An :class:`SCM` is built from one **mechanism** per endogenous variable and a
**distribution** per exogenous variable. A mechanism's parents are, by default, the names of
its parameters -- ``lambda x, u: x + u`` reads ``x`` and ``u`` -- so the causal graph is
written once, in the code of the mechanisms. Where names are not valid Python identifiers, or a
mechanism takes ``*args``, give the parents explicitly with ``parents=`` (a mapping or a
:class:`networkx.DiGraph`); the mechanism is then called with the parents' values in that
order.

Mechanisms may return floats, numpy arrays or torch tensors. The model is immutable:
:func:`~scmnet.do` returns a new model, and :attr:`SCM.graph` is a frozen graph.

Averaging over P(u) (``samples=N`` in the effect operators) evaluates the N units at once
where the mechanisms broadcast: each exogenous variable's N draws are stacked into one array
(:class:`~scmnet.Units`) and every world is evaluated once per chunk of units, vectorised. A
shape probe checks this once per model and falls back to one unit at a time where a mechanism
does not take a batch (:mod:`scmnet.scm_units`).

Examples
--------
A linear mediation model, x -> m -> y and x -> y:

>>> import scmnet as sn
>>> m = sn.SCM(
...     {
...         "x": lambda u_x: u_x,
...         "m": lambda x, u_m: 2.0 * x + u_m,
...         "y": lambda x, m: 0.5 * x + 3.0 * m,
...     },
...     exogenous={"u_x": sn.Normal(), "u_m": sn.Normal()},
... )
>>> m.endogenous
('x', 'm', 'y')
>>> m.evaluate({"u_x": 1.0, "u_m": 0.0})["y"]
6.5
>>> sn.total_effect(m, {"x": 2.0}, "y", context={"u_x": 1.0, "u_m": 0.0})
6.5
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Collection, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import networkx as nx
import numpy as np

from scmnet import _values
from scmnet.distributions import Distribution
from scmnet.errors import (
    InvalidContext,
    InvalidMechanism,
    MechanismError,
    NonFiniteValue,
    NotADag,
    did_you_mean,
    format_names,
    unknown_node,
)
from scmnet.interventions import Interventions
from scmnet.model import CausalModelBase, Context, Output, check_context, output_names, pick_outputs
from scmnet.scm_units import UnitProbe, evaluate_units, probe
from scmnet.units import UnitBatching, Units

__all__ = ["SCM"]

EXOGENOUS = "exogenous"
ENDOGENOUS = "endogenous"


def _signature_parents(
    name: str, fn: Callable[..., Any], variables: Collection[str]
) -> tuple[str, ...]:
    """Parents of a mechanism read from its parameter names."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as e:
        raise InvalidMechanism(
            f"cannot read the parameters of the mechanism of {name!r} ({fn!r}); "
            f"give its parents explicitly with parents={{{name!r}: [...]}}"
        ) from e
    parents: list[str] = []
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise InvalidMechanism(
                f"the mechanism of {name!r} takes *{p.name}; its parents cannot be read from "
                f"its signature, so give them with parents={{{name!r}: [...]}}"
            )
        if p.name in variables:
            parents.append(p.name)
        elif p.default is p.empty:
            raise InvalidMechanism(
                f"the mechanism of {name!r} takes a parameter {p.name!r}, which names no "
                f"variable{did_you_mean(p.name, variables)}; the variables are "
                f"{format_names(variables)}. Rename the parameter, give it a default value, "
                f"or pass parents={{{name!r}: [...]}}"
            )
    return tuple(parents)


class SCM(CausalModelBase):
    """A structural causal model M = <U, V, F, P(u)> with Python callables as mechanisms.

    Parameters
    ----------
    mechanisms : mapping of str to callable
        One mechanism f_i per endogenous variable V_i, in any order. Parameters with default
        values that name no variable are constants of the mechanism.
    exogenous : mapping of str to Distribution (or None), or a sequence of str
        The exogenous variables U and their distributions P(u). A variable without a
        distribution can only be given in a context, not sampled.
    parents : mapping of str to sequence of str, or networkx.DiGraph, optional
        Explicit parents for some or all endogenous variables (a graph gives them as
        predecessors). A mechanism with explicit parents is called positionally with their
        values in this order.
    name : str, optional
        A name used in pictures and reprs.
    vectorize : bool
        Whether averaging over P(u) may evaluate many units at once on arrays (default). The
        mechanisms must then compute each unit's value elementwise along a leading axis of
        units (numpy or torch arithmetic does); a shape probe checks this once, falls back to
        one unit at a time where a mechanism does not take a batch (``math.exp``, ``if``), and
        raises :class:`~scmnet.UnitShapeError` where a batch would hide a mistake (``x.sum()``).
        ``False`` always evaluates one unit at a time.

    Raises
    ------
    InvalidMechanism
        If a mechanism is not callable, or reads a parameter that names no variable.
    NotADag
        If the parents form a cycle.

    Examples
    --------
    >>> import scmnet as sn
    >>> m = sn.SCM({"x": lambda u: u, "y": lambda x: x**2}, exogenous={"u": sn.Normal()})
    >>> sorted(m.graph.edges)
    [('u', 'x'), ('x', 'y')]
    >>> m.graph.nodes["u"]["kind"]
    'exogenous'

    Many units at once: a :class:`~scmnet.Units` context holds each exogenous variable's values
    stacked along a leading axis, and every variable comes back stacked the same way.

    >>> m.evaluate(sn.Units.stack([{"u": 1.0}, {"u": 2.0}]))["y"].tolist()
    [1.0, 4.0]
    """

    def __init__(
        self,
        mechanisms: Mapping[str, Callable[..., Any]],
        exogenous: Mapping[str, Distribution | None] | Sequence[str],
        *,
        parents: Mapping[str, Sequence[str]] | nx.DiGraph | None = None,
        name: str | None = None,
        vectorize: bool = True,
    ) -> None:
        if isinstance(exogenous, Mapping):
            distributions = dict(exogenous)
        else:
            distributions = dict.fromkeys(exogenous)
        clash = set(distributions) & set(mechanisms)
        if clash:
            raise InvalidMechanism(
                f"{format_names(clash)} given both as exogenous and endogenous; a variable is "
                f"one or the other"
            )
        if not mechanisms:
            raise InvalidMechanism("an SCM needs at least one endogenous variable (mechanism)")
        for var, dist in distributions.items():
            if dist is not None and not isinstance(dist, Distribution):
                raise InvalidContext(
                    f"the distribution of exogenous {var!r} must have a sample(rng, n) method "
                    f"(e.g. sn.Normal()), got {dist!r}"
                )
        variables = [*distributions, *mechanisms]
        explicit = self._explicit_parents(parents, mechanisms, variables)
        parent_map: dict[str, tuple[str, ...]] = {}
        for var, fn in mechanisms.items():
            if not callable(fn):
                raise InvalidMechanism(f"the mechanism of {var!r} must be callable, got {fn!r}")
            parent_map[var] = (
                explicit[var] if var in explicit else _signature_parents(var, fn, variables)
            )

        graph = nx.DiGraph(name=name or "SCM")
        for var in distributions:
            graph.add_node(var, kind=EXOGENOUS, intervention=None)
        for var in mechanisms:
            graph.add_node(var, kind=ENDOGENOUS, intervention=None)
        for var, pa in parent_map.items():
            graph.add_edges_from((p, var) for p in pa)
        if not nx.is_directed_acyclic_graph(graph):
            cycle = nx.find_cycle(graph)
            path = " -> ".join([*(u for u, _ in cycle), cycle[0][0]])
            raise NotADag(
                f"the mechanisms form a cycle, {path}; an SCM's graph must be acyclic, so "
                f"remove one of these parents"
            )
        rank = {v: i for i, v in enumerate(variables)}
        order = nx.lexicographical_topological_sort(graph, key=rank.__getitem__)

        super().__init__(nx.freeze(graph))
        self._name = name or "SCM"
        self._distributions = MappingProxyType(distributions)
        self._mechanisms = MappingProxyType(dict(mechanisms))
        self._parents = MappingProxyType(parent_map)
        self._explicit = frozenset(explicit)
        self._order = tuple(v for v in order if v in mechanisms)
        self._vectorize = bool(vectorize)
        self._unit_probes: dict[Any, UnitProbe] = {}  # shared with intervened copies

    @staticmethod
    def _explicit_parents(
        parents: Mapping[str, Sequence[str]] | nx.DiGraph | None,
        mechanisms: Mapping[str, Any],
        variables: Sequence[str],
    ) -> dict[str, tuple[str, ...]]:
        if parents is None:
            return {}
        if isinstance(parents, nx.DiGraph):
            given = {v: tuple(parents.predecessors(v)) for v in parents if v in mechanisms}
            extra = set(parents) - set(variables)
        else:
            given = {v: tuple(pa) for v, pa in parents.items()}
            extra = set(given) - set(mechanisms)
        if extra:
            raise unknown_node(sorted(extra)[0], mechanisms, what="endogenous variables")
        for var, pa in given.items():
            if isinstance(pa, str):
                raise InvalidMechanism(
                    f"parents of {var!r} must be a sequence of names, got the string {pa!r}; "
                    f"write [{pa!r}]"
                )
            for p in pa:
                if p not in variables:
                    raise InvalidMechanism(
                        f"{var!r} is given a parent {p!r}, which names no variable"
                        f"{did_you_mean(p, variables)}; the variables are "
                        f"{format_names(variables)}"
                    )
        return given

    # -- the CausalModel protocol (graph, interventions and intervene: CausalModelBase) --------

    @property
    def exogenous(self) -> tuple[str, ...]:
        """The exogenous variable names U."""
        return tuple(self._distributions)

    @property
    def endogenous(self) -> tuple[str, ...]:
        """The endogenous variable names V, in topological order."""
        return self._order

    @property
    def name(self) -> str:
        """The model's name."""
        return self._name

    @property
    def distributions(self) -> Mapping[str, Distribution | None]:
        """P(u): the distribution of each exogenous variable (``None`` if not given)."""
        return self._distributions

    def parents(self, node: str) -> tuple[str, ...]:
        """The parents of ``node`` in the unintervened model, in mechanism-argument order."""
        self._check_node(node)
        return self._parents.get(node, ())

    def evaluate(
        self,
        context: Context,
        interventions: Interventions | Mapping[Any, Any] | None = None,
        *,
        outputs: Collection[Output] | None = None,
    ) -> dict[Any, Any]:
        """All values (exogenous and endogenous) in ``context`` under ``interventions``.

        Parameters
        ----------
        context : mapping or Units
            A value for every exogenous variable; or :class:`~scmnet.Units`, many contexts
            stacked, whose every value comes back stacked the same way (vectorised where the
            mechanisms broadcast, see :mod:`scmnet.scm_units`).
        interventions : mapping, optional
            Extra interventions, applied on top of those the model carries.
        outputs : collection of str or Site, optional
            Only compute and return these variables (and what they need); a
            :class:`~scmnet.Site` returns ``value[index]`` under the site as key.

        Returns
        -------
        dict
            Variable name (or site) to value.

        Raises
        ------
        InvalidContext
            If the context misses an exogenous variable or names an unknown one.
        MechanismError
            If a mechanism raises; the message names the variable.
        UnitShapeError
            For units, if a mechanism's value for the batch is not the units' values stacked.

        Examples
        --------
        >>> import scmnet as sn
        >>> sn.toys.self_repair().evaluate({"u": 2.0}, {"x": 0.0})
        {'u': 2.0, 'x': 0.0, 'f': 2.0, 'y': 2.0}
        """
        if isinstance(context, Units):
            return evaluate_units(self, context, interventions, outputs)
        iv = self._merged(interventions)
        values: dict[str, Any] = dict(check_context(context, self._distributions))
        needed = self._needed(iv, None if outputs is None else output_names(outputs))
        for var in self._order:
            if var not in needed:
                continue
            values[var] = iv.apply_to(var, functools.partial(self.run_mechanism, var, values))
        if outputs is not None:
            return pick_outputs(values, outputs)
        return values

    def evaluate_many(
        self,
        context: Context,
        interventions: Sequence[Interventions],
        *,
        outputs: Collection[Output] | None = None,
        chunk: int | None = None,
        memory: int | None = None,
    ) -> list[dict[Any, Any]]:
        """:meth:`evaluate` once per intervention set, in the same context.

        ``chunk`` and ``memory`` (the batch limits of models that batch) have no effect: the
        sets run one by one.
        """
        return [self.evaluate(context, iv, outputs=outputs) for iv in interventions]

    def sample_contexts(self, n: int, *, seed: int) -> list[dict[str, Any]]:
        """Draw ``n`` contexts from P(u).

        Parameters
        ----------
        n : int
            Number of contexts.
        seed : int
            Seed of the :func:`numpy.random.default_rng` generator used for all draws.

        Raises
        ------
        InvalidContext
            If an exogenous variable has no distribution.

        Examples
        --------
        >>> import scmnet as sn
        >>> m = sn.toys.erasure()
        >>> m.sample_contexts(2, seed=0) == m.sample_contexts(2, seed=0)
        True
        """
        draws = self._draws(n, seed)
        return [{u: _item(draw[i]) for u, draw in draws.items()} for i in range(n)]

    def draw_units(self, n: int, *, seed: int) -> Units:
        """The ``n`` contexts of :meth:`sample_contexts` (the same draws), stacked as units.

        Raises
        ------
        InvalidContext
            If ``n`` is not a positive int, an exogenous variable has no distribution, or its
            draws do not stack into a numeric array or tensor.

        Examples
        --------
        >>> import scmnet as sn
        >>> m = sn.toys.erasure()
        >>> m.draw_units(3, seed=0)["u"].tolist() == [c["u"] for c in m.sample_contexts(3, seed=0)]
        True
        """
        return Units.from_draws(self._draws(n, seed), n)

    def evaluates_units(self) -> bool:
        """``True``: :meth:`evaluate` takes :class:`~scmnet.Units` (vectorised where it can)."""
        return True

    def units_batching(self, units: Units) -> UnitBatching:
        """Whether :meth:`evaluate` runs ``units`` vectorised, and why not (the shape probe).

        Raises
        ------
        UnitShapeError
            If a mechanism's value for a batch is not the units' values stacked.

        Examples
        --------
        >>> import math
        >>> import scmnet as sn
        >>> m = sn.toys.erasure()
        >>> m.units_batching(m.draw_units(10, seed=0)).path
        'vectorised'
        """
        found = probe(self, units)
        if found.reason:
            return UnitBatching("looped", found.reason, units.n)
        return UnitBatching("vectorised", "", units.n, unit_bytes=found.unit_bytes)

    def _draws(self, n: int, seed: int) -> dict[str, Any]:
        if not isinstance(n, int | np.integer) or n < 1:
            raise InvalidContext(f"the number of contexts must be a positive int, got {n!r}")
        missing = [u for u, d in self._distributions.items() if d is None]
        if missing:
            raise InvalidContext(
                f"exogenous {format_names(missing)} has no distribution, so contexts cannot be "
                f"sampled; give one (e.g. exogenous={{{missing[0]!r}: sn.Normal()}}) or pass "
                f"context=..."
            )
        rng = np.random.default_rng(seed)
        return {u: d.sample(rng, n) for u, d in self._distributions.items() if d is not None}

    def sample(
        self,
        n: int,
        *,
        seed: int,
        interventions: Interventions | Mapping[Any, Any] | None = None,
    ) -> dict[str, Any]:
        """Draw ``n`` contexts from P(u) and return every variable's values, stacked.

        Parameters
        ----------
        n : int
            Number of contexts (samples).
        seed : int
            Seed of the :func:`numpy.random.default_rng` generator used for all draws, as for
            :meth:`sample_contexts`.
        interventions : mapping, optional
            Extra interventions, applied on top of those the model carries, as for
            :meth:`evaluate`.

        Returns
        -------
        dict
            Variable name (exogenous and endogenous) to its ``n`` values stacked along a new
            leading axis: a :class:`numpy.ndarray`, or a ``torch.Tensor`` for tensor values.

        Raises
        ------
        InvalidContext
            If ``n`` is not a positive int, or an exogenous variable has no distribution.
        NodeNotFound
            If an intervention names a node the model does not have.
        InvalidIntervention
            If an intervention names an exogenous variable.
        MechanismError
            If a mechanism raises; the message names the variable.

        See Also
        --------
        sample_contexts : The contexts alone.
        evaluate : The values in one context.

        Examples
        --------
        >>> import scmnet as sn
        >>> s = sn.toys.erasure().sample(4, seed=0)
        >>> s["y"].tolist()
        [0.0, 0.0, 0.0, 0.0]
        """
        from scmnet._values import stack

        rows = [self.evaluate(c, interventions) for c in self.sample_contexts(n, seed=seed)]
        return {k: stack([r[k] for r in rows]) for k in rows[0]}

    # -- helpers ------------------------------------------------------------------------------

    def __repr__(self) -> str:
        return (
            f"SCM({self._name!r}, exogenous={list(self.exogenous)}, "
            f"endogenous={list(self._order)}{self._do_label()})"
        )

    def _check_node(self, node: str) -> None:
        if node not in self._base_graph:
            raise unknown_node(node, self._base_graph.nodes, what="nodes")

    def _needed(self, iv: Interventions, outputs: Collection[str] | None) -> frozenset[str]:
        if outputs is None:
            return frozenset(self._order)
        for o in outputs:
            self._check_node(o)
        cut = iv.constant_nodes()
        needed: set[str] = set()
        stack = list(outputs)
        while stack:
            v = stack.pop()
            if v in needed or v in self._distributions:
                continue
            needed.add(v)
            if v not in cut:
                stack.extend(self._parents[v])
        return frozenset(needed)

    def run_mechanism(self, var: str, values: Mapping[str, Any]) -> Any:
        """Apply the mechanism f_var to its parents' values taken from ``values``.

        No intervention is applied; :meth:`evaluate` is the usual entry point. Path-specific
        effects use this to feed a mechanism parents from two different worlds.

        Raises
        ------
        MechanismError
            If the mechanism raises; the message names the variable and the parents' values.
        NonFiniteValue
            If it returns ``None``, NaN or an infinity (a subclass of MechanismError).

        Examples
        --------
        >>> import scmnet as sn
        >>> sn.toys.erasure().run_mechanism("y", {"x": 2.0, "f": 0.5})
        2.5
        """
        self._check_node(var)
        fn = self._mechanisms[var]
        args = [values[p] for p in self._parents[var]]
        try:
            if var in self._explicit:
                value = fn(*args)
            else:
                value = fn(**dict(zip(self._parents[var], args, strict=True)))
        except Exception as e:
            raise MechanismError(
                f"the mechanism of {var!r} raised {type(e).__name__}: {e} (parents: "
                f"{self._shown_parents(var, values)})"
            ) from e
        if value is None:
            raise NonFiniteValue(
                f"the mechanism of {var!r} returned None (parents: "
                f"{self._shown_parents(var, values)}); a mechanism must return the variable's "
                f"value: is a return statement missing?"
            )
        if not _values.is_finite(value):
            raise NonFiniteValue(
                f"the mechanism of {var!r} returned a value that is not finite "
                f"({_short(value)}; parents: {self._shown_parents(var, values)}); an effect "
                f"through NaN or infinity is meaningless: check the mechanism and its inputs"
            )
        return value

    def _shown_parents(self, var: str, values: Mapping[str, Any]) -> str:
        return ", ".join(f"{p}={_short(values[p])}" for p in self._parents[var]) or "none"


def _item(value: Any) -> Any:
    """A 0-d numpy value as a Python scalar; anything else unchanged."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"<{type(value).__name__}>"
