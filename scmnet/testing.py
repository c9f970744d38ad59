"""Testing helpers: one tolerance policy, and the conformance check every causal model passes.

:func:`assert_close` compares floats, numpy arrays and torch tensors with a tolerance chosen
by dtype (:func:`tolerance`), so that every comparison in scmnet's tests follows one policy.

:func:`check_scm` runs the invariant battery of the :class:`~scmnet.CausalModel` protocol
(in the spirit of scikit-learn's ``check_estimator``): the graph is a DAG whose exogenous nodes
have no parents; evaluation is deterministic and agrees with ``evaluate_many`` and with
restricted ``outputs``; ``do`` leaves the model unchanged and cuts in-edges; setting a variable
to its natural value changes nothing; intervening on Z never changes a non-descendant of Z;
the direct effect of Z on a variable that is not its child is zero, and so is the indirect
effect on a variable that is not its descendant, and by default such a query on a variable
that is not its descendant is refused (:class:`~scmnet.NoCausalPath`). Apply it to every toy
SCM and traced network.

Examples
--------
>>> import scmnet as sn
>>> from scmnet.testing import check_scm, assert_close
>>> check_scm(sn.toys.self_repair())
>>> assert_close(0.1 + 0.2, 0.3)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import networkx as nx
import numpy as np

from scmnet._values import is_tensor
from scmnet.effects import direct_effect, indirect_effect, total_effect
from scmnet.errors import NoCausalPath
from scmnet.model import CausalModel, Context, do

__all__ = ["REORDERED_FLOAT32", "assert_close", "check_scm", "tolerance"]

_TOLERANCES: dict[str, tuple[float, float]] = {
    "float64": (1e-9, 1e-12),
    "float32": (1e-5, 1e-6),
    "float16": (1e-3, 1e-3),
    "bfloat16": (1.6e-2, 1e-2),
}


#: The policy's allowance for float32 results computed with the same operations in another order
#: (rows batched together, a key/value cache instead of a full forward, an interpreter instead
#: of eager code): ``(rtol, atol)``.
REORDERED_FLOAT32: tuple[float, float] = (1e-4, 1e-4)


def tolerance(dtype: Any) -> tuple[float, float]:
    """The ``(rtol, atol)`` of the tolerance policy for a dtype.

    Exact types (integers, booleans) get ``(0, 0)``; unknown float types get float32's.

    >>> tolerance("float32")
    (1e-05, 1e-06)
    >>> tolerance(np.int64)
    (0.0, 0.0)
    """
    text = str(dtype)
    if text.startswith("torch."):
        name = text.removeprefix("torch.")
        if name in _TOLERANCES:
            return _TOLERANCES[name]
        return (0.0, 0.0) if ("int" in name or name == "bool") else _TOLERANCES["float32"]
    np_dtype = np.dtype(dtype)
    if np.issubdtype(np_dtype, np.floating) or np.issubdtype(np_dtype, np.complexfloating):
        return _TOLERANCES.get(np_dtype.name, _TOLERANCES["float32"])
    return (0.0, 0.0)


def _as_numpy(value: Any) -> np.ndarray:
    if is_tensor(value):
        return np.asarray(
            value.detach().cpu().double().numpy()
            if value.is_floating_point()
            else value.detach().cpu().numpy()
        )
    return np.asarray(value)


def _dtype_of(value: Any) -> Any:
    if is_tensor(value):
        return value.dtype
    if isinstance(value, float):
        return np.float64
    return np.asarray(value).dtype


def assert_close(
    actual: Any,
    expected: Any,
    *,
    rtol: float | None = None,
    atol: float | None = None,
    reordered: bool = False,
    msg: str = "",
) -> None:
    """Assert that two values are equal within the tolerance policy.

    The tolerance is that of the less precise of the two dtypes unless ``rtol`` and ``atol``
    are given; ``reordered=True`` allows :data:`REORDERED_FLOAT32` for two computations that
    do the same float32 operations in a different order. Shapes must match exactly.

    Raises
    ------
    AssertionError
        With the largest absolute difference, its position and the tolerance used.

    Examples
    --------
    >>> import numpy as np
    >>> assert_close(np.array([1.0, 2.0]), [1.0, 2.0 + 1e-13])
    >>> assert_close(1.0, 1.1)
    Traceback (most recent call last):
    ...
    AssertionError: values differ: max |actual - expected| = 0.1 at index (), rtol=1e-09, atol=1e-12
    """
    a, e = _as_numpy(actual), _as_numpy(expected)
    if a.shape != e.shape:
        raise AssertionError(f"{msg}{': ' if msg else ''}shapes differ: {a.shape} != {e.shape}")
    if reordered:
        rtol, atol = REORDERED_FLOAT32 if rtol is None else (rtol, atol or REORDERED_FLOAT32[1])
    if rtol is None or atol is None:
        tols = [tolerance(_dtype_of(actual)), tolerance(_dtype_of(expected))]
        r, t = max(x[0] for x in tols), max(x[1] for x in tols)
        rtol = r if rtol is None else rtol
        atol = t if atol is None else atol
    if np.issubdtype(a.dtype, np.number) and np.issubdtype(e.dtype, np.number):
        ok = np.isclose(a, e, rtol=rtol, atol=atol, equal_nan=True)
        if not ok.all():
            diff = np.abs(a.astype(float) - e.astype(float))
            diff = np.where(np.isnan(diff), np.inf, diff)
            where = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.ndim else ()
            raise AssertionError(
                f"{msg}{': ' if msg else ''}values differ: max |actual - expected| = "
                f"{diff.max():.3g} at index {tuple(int(i) for i in where)}, rtol={rtol}, "
                f"atol={atol}"
            )
    elif not np.array_equal(a, e):
        raise AssertionError(f"{msg}{': ' if msg else ''}values differ: {actual!r} != {expected!r}")


def _perturb(value: Any) -> Any:
    return value + 1


def check_scm(
    model: CausalModel,
    *,
    contexts: Sequence[Context] | None = None,
    seed: int = 0,
    n_contexts: int = 3,
    max_treatments: int | None = None,
    perturb: Callable[[Any], Any] = _perturb,
) -> None:
    """Run the invariant battery of the :class:`~scmnet.CausalModel` protocol on ``model``.

    Parameters
    ----------
    model : CausalModel
        The model to check.
    contexts : sequence of mappings, optional
        Contexts to check in. Default: ``n_contexts`` draws from P(u) with ``seed``.
    seed, n_contexts : int
        How to draw the default contexts.
    max_treatments : int, optional
        Check at most this many endogenous variables as treatments (evenly spread over the
        topological order); all by default. Useful for large traced networks.
    perturb : callable
        Maps a natural value to a different value of the same kind (default: ``v + 1``).

    Raises
    ------
    AssertionError
        Naming the invariant that failed, the treatment and the variable.

    Examples
    --------
    >>> import scmnet as sn
    >>> from scmnet.testing import check_scm
    >>> check_scm(sn.toys.linear_mediation())
    """
    graph = model.graph
    exo, endo = tuple(model.exogenous), tuple(model.endogenous)
    _check_graph(graph, exo, endo)
    if contexts is None:
        contexts = model.sample_contexts(n_contexts, seed=seed)
    treatments = list(endo)
    if max_treatments is not None and len(treatments) > max_treatments:
        step = len(treatments) / max_treatments
        treatments = [treatments[int(i * step)] for i in range(max_treatments)]
    for u in contexts:
        _check_context(model, u, treatments, perturb)


def _check_graph(graph: nx.DiGraph, exo: tuple[str, ...], endo: tuple[str, ...]) -> None:
    if not nx.is_directed_acyclic_graph(graph):
        raise AssertionError("the causal graph has a cycle")
    if set(graph.nodes) != set(exo) | set(endo) or set(exo) & set(endo):
        raise AssertionError(
            "the graph's nodes must be exactly the exogenous and endogenous variables, disjoint"
        )
    for u in exo:
        if graph.nodes[u].get("kind") != "exogenous":
            raise AssertionError(f"exogenous node {u!r} is not marked kind='exogenous'")
        if graph.in_degree(u):
            raise AssertionError(f"exogenous node {u!r} has parents {list(graph.predecessors(u))}")
    position = {v: i for i, v in enumerate(endo)}
    for v in endo:
        if graph.nodes[v].get("kind") != "endogenous":
            raise AssertionError(f"endogenous node {v!r} is not marked kind='endogenous'")
        for p in graph.predecessors(v):
            if p in position and position[p] >= position[v]:
                raise AssertionError(f"endogenous is not in topological order: {p!r} after {v!r}")


def _check_context(
    model: CausalModel, u: Context, treatments: list[str], perturb: Callable[[Any], Any]
) -> None:
    graph = model.graph
    endo = tuple(model.endogenous)
    clean = model.evaluate(u)
    again = model.evaluate(u)
    for v in endo:
        assert_close(again[v], clean[v], msg=f"evaluation is not deterministic at {v!r}")
    last = endo[-1]
    only = model.evaluate(u, outputs=[last])
    if set(only) != {last}:
        raise AssertionError(f"evaluate(outputs=[{last!r}]) returned {sorted(only)}")
    assert_close(only[last], clean[last], msg="evaluate(outputs=...) disagrees with evaluate")

    for z in treatments:
        natural, changed = clean[z], perturb(clean[z])
        many = model.evaluate_many(u, [model.interventions.merged(_set(z, natural))])
        for v in endo:
            assert_close(many[0][v], clean[v], msg=f"do({z} = {z}(u)) changed {v!r}")
        intervened = do(model, {z: changed})
        if set(model.graph.edges) != set(graph.edges):
            raise AssertionError(f"do({z} = ...) modified the original model's graph")
        if intervened.graph.in_degree(z):
            raise AssertionError(
                f"do({z} = ...) left in-edges {list(intervened.graph.in_edges(z))}"
            )
        after = intervened.evaluate(u)
        descendants = nx.descendants(graph, z)
        for v in endo:
            if v != z and v not in descendants:
                assert_close(after[v], clean[v], msg=f"do({z}) changed non-descendant {v!r}")
        assert_close(after[z], changed, msg=f"do({z} = z') did not set {z!r}")
        for y in endo:
            if y == z:
                continue
            te = total_effect(model, {z: natural}, y, context=u, unreached="zero")
            _assert_zero(te, f"TE({z} -> {z}(u), {y}) is not zero")
            if y not in descendants:
                _assert_zero(
                    total_effect(model, {z: changed}, y, context=u, unreached="zero"),
                    f"TE of {z!r} on non-descendant {y!r} is not zero",
                )
                _assert_zero(
                    indirect_effect(model, {z: changed}, y, context=u, unreached="zero"),
                    f"IE of {z!r} on non-descendant {y!r} is not zero",
                )
                _assert_refused(model, {z: changed}, y, u)
            if not graph.has_edge(z, y):
                _assert_zero(
                    direct_effect(model, {z: changed}, y, context=u, unreached="zero"),
                    f"DE of {z!r} on {y!r}, which is not its child, is not zero",
                )


def _set(node: str, value: Any) -> Any:
    from scmnet.interventions import Set, normalize

    return normalize({node: Set(value)})


def _assert_refused(model: CausalModel, treatment: dict[str, Any], y: str, u: Context) -> None:
    """The default query of a site on a non-descendant must raise NoCausalPath naming it."""
    (z,) = treatment
    try:
        total_effect(model, treatment, y, context=u)
    except NoCausalPath as e:
        if repr(z) not in str(e):
            raise AssertionError(f"NoCausalPath for {z!r} -> {y!r} does not name {z!r}: {e}") from e
    else:
        raise AssertionError(f"the effect of {z!r} on its non-descendant {y!r} was not refused")


def _assert_zero(value: Any, msg: str) -> None:
    assert_close(value, value * 0, msg=msg)
