"""Mechanisms fitted from data: an SCM from a causal graph and a table.

:func:`fit` builds an additive-noise SCM from a DAG over the columns of a table: every
variable ``v`` becomes ``v = f_v(parents) + u_v`` (:func:`~scmnet.additive`), with ``f_v``
fitted to the rows -- a least-squares linear map by default, or a :class:`torch.nn.Module`
trained with torch (full batch, mean squared error, seeded) -- and ``u_v`` drawn from the
empirical residuals of the fit. Abduction is then exact on the fitted model
(:func:`~scmnet.abduct` recovers every row's noises), and every effect operator runs on it.
:func:`refit_interval` gives a bootstrap interval of any effect over refits on resampled rows.

The residual distributions are independent of each other, as the graph says (no hidden
confounders), and the fit says nothing about parts of the space the data do not cover.

Examples
--------
>>> import numpy as np
>>> import scmnet as sn
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=5000)
>>> m = 2 * x + rng.normal(size=5000)
>>> y = 0.5 * x + 3 * m + rng.normal(size=5000)
>>> model = sn.fit([("x", "m"), ("x", "y"), ("m", "y")], {"x": x, "m": m, "y": y})
>>> ate = sn.total_effect(model, {"x": 1.0}, "y", reference={"x": 0.0}, samples=1000)
>>> round(float(ate), 1)
6.5
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

import networkx as nx
import numpy as np

from scmnet.distributions import Empirical
from scmnet.errors import InvalidArgument, InvalidDataset, InvalidMechanism, NotADag
from scmnet.intervals import Interval, _check
from scmnet.mechanisms import additive
from scmnet.scm import SCM

__all__ = ["Graph", "MechanismSpec", "fit", "refit_interval"]

Graph: TypeAlias = "nx.DiGraph | Sequence[tuple[str, str]]"
"""A causal DAG: a :class:`networkx.DiGraph` or a list of ``(parent, child)`` edges."""

MechanismSpec: TypeAlias = "str | Mapping[str, Any]"
"""``"linear"``, or a mapping of variables to a :class:`torch.nn.Module` (trained) or a
callable of the parents by name (used as given); variables not in the mapping are linear."""


class _Fitted:
    """A fitted function of the parents, called by name like any mechanism."""

    def __init__(self, parents: Sequence[str], predict: Callable[[np.ndarray], Any], label: str):
        self._parents = tuple(parents)
        self._predict = predict
        self._label = label
        params = [inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in parents]
        self.__signature__ = inspect.Signature(params)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        bound = self.__signature__.bind(*args, **kwargs)
        values = [bound.arguments[p] for p in self._parents]
        if not values:  # a root: a constant
            return float(np.asarray(self._predict(np.empty((1, 0)))).reshape(()))
        shape = np.broadcast_shapes(*(np.shape(v) for v in values)) if values else ()
        columns = np.stack([np.broadcast_to(np.asarray(v, float), shape) for v in values], -1)
        out = self._predict(columns.reshape(-1, len(values)))
        out = np.asarray(out, dtype=float).reshape(shape)
        return float(out) if out.ndim == 0 else out

    def __repr__(self) -> str:
        return f"{self._label}({', '.join(self._parents)})"


def _linear(x: np.ndarray, y: np.ndarray, parents: Sequence[str]) -> _Fitted:
    design = np.column_stack([np.ones(len(y)), x])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    intercept, weights = float(coef[0]), coef[1:].copy()

    def predict(columns: np.ndarray) -> np.ndarray:
        return np.asarray(intercept + columns @ weights)

    terms = " + ".join(f"{w:.4g}*{p}" for w, p in zip(weights, parents, strict=True))
    return _Fitted(parents, predict, f"linear[{intercept:.4g}{' + ' if terms else ''}{terms}]")


def _network(
    module: Any, x: np.ndarray, y: np.ndarray, parents: Sequence[str], seed: int, epochs: int
) -> _Fitted:
    import torch

    inputs = torch.as_tensor(x, dtype=torch.float32)
    target = torch.as_tensor(y, dtype=torch.float32).reshape(-1, 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for p in module.parameters():  # a seeded start, whatever the module was before
            if p.dim() > 1:
                torch.nn.init.xavier_uniform_(p)
            else:
                torch.nn.init.zeros_(p)
        optimiser = torch.optim.Adam(module.parameters(), lr=1e-2)
        module.train()
        for _ in range(epochs):
            optimiser.zero_grad()
            loss = torch.nn.functional.mse_loss(module(inputs), target)
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
    module.eval()

    def predict(columns: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = module(torch.as_tensor(columns, dtype=torch.float32))
        return np.asarray(out.reshape(-1).double().numpy())

    return _Fitted(parents, predict, type(module).__name__)


def _given(fn: Callable[..., Any], parents: Sequence[str], var: str) -> _Fitted:
    names = list(inspect.signature(fn).parameters)
    if sorted(names) != sorted(parents):
        raise InvalidMechanism(
            f"the mechanism given for {var!r} takes {names}, but its parents in the graph are "
            f"{list(parents)}; give a function of exactly its parents, by name"
        )

    def predict(columns: np.ndarray) -> np.ndarray:
        values = dict(zip(parents, columns.T, strict=True))
        return np.broadcast_to(np.asarray(fn(**values), dtype=float), (len(columns),))

    return _Fitted(parents, predict, getattr(fn, "__name__", "fn"))


def _table(data: Any) -> dict[str, np.ndarray]:
    if type(data).__module__.split(".")[0] == "pandas" and hasattr(data, "columns"):
        data = {str(c): data[c].to_numpy() for c in data.columns}
    if not isinstance(data, Mapping) or not data:
        raise InvalidDataset(
            f"data must be a non-empty mapping of column names to 1-d arrays (or a pandas "
            f"DataFrame), got {type(data).__name__}"
        )
    table = {str(k): np.asarray(v, dtype=float) for k, v in data.items()}
    lengths = {k: v.shape for k, v in table.items()}
    if any(len(s) != 1 for s in lengths.values()) or len({s[0] for s in lengths.values()}) > 1:
        shown = ", ".join(f"{k}: {s}" for k, s in lengths.items())
        raise InvalidDataset(f"the columns must be 1-d arrays of one length; got {shown}")
    for k, v in table.items():
        if not np.isfinite(v).all():
            row = int(np.flatnonzero(~np.isfinite(v))[0])
            raise InvalidDataset(
                f"column {k!r} has a NaN or infinite value (row {row}); drop or impute such "
                f"rows before fitting"
            )
    return table


def _dag(graph: Any, table: Mapping[str, np.ndarray]) -> nx.DiGraph:
    dag = graph.copy() if isinstance(graph, nx.DiGraph) else nx.DiGraph(list(graph))
    if dag.number_of_nodes() == 0:
        raise InvalidArgument("the graph has no variables; give edges (parent, child)")
    if not nx.is_directed_acyclic_graph(dag):
        cycle = " -> ".join(str(u) for u, _ in nx.find_cycle(dag))
        raise NotADag(f"the graph has a cycle ({cycle}); a causal graph must be acyclic")
    missing = [str(v) for v in dag if str(v) not in table]
    if missing:
        raise InvalidDataset(
            f"the data have no column for {missing}; the columns are {sorted(table)}"
        )
    bad = [str(v) for v in dag if not str(v).isidentifier()]
    if bad:
        raise InvalidArgument(
            f"variable names must be Python identifiers (mechanisms read their parents by "
            f"name): rename {bad}, e.g. {bad[0]!r} -> {_identifier(bad[0])!r}"
        )
    return dag


def _identifier(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    return cleaned if cleaned.isidentifier() else f"v_{cleaned}"


def fit(
    graph: Graph,
    data: Any,
    *,
    mechanisms: MechanismSpec = "linear",
    seed: int = 0,
    epochs: int = 500,
    name: str = "fitted SCM",
) -> SCM:
    """An additive-noise SCM fitted to ``data`` over the causal graph ``graph``.

    Parameters
    ----------
    graph : networkx.DiGraph or sequence of (str, str)
        The causal DAG over the variables (every node a column of ``data``).
    data : mapping of str to 1-d array, or pandas.DataFrame
        One row per unit; columns not in the graph are ignored.
    mechanisms : "linear" or mapping
        ``"linear"`` (the default) fits every variable by least squares with an intercept.
        A mapping gives some variables a :class:`torch.nn.Module` or a callable; the others
        are linear. A module takes a ``(rows, parents)`` float tensor, the parents in the order
        ``model.parents(var)`` lists them, and returns ``(rows, 1)``; it is trained in place
        (its parameters re-initialised from ``seed``). A callable takes the parents by name and
        is used as given, not fitted. Either is a mechanism like any other: a fitted module
        can itself be traced (:func:`~scmnet.trace`).
    seed : int
        Seed of the networks' initialisation and training.
    epochs : int
        Full-batch Adam steps for a network.
    name : str
        The model's name.

    Returns
    -------
    SCM
        Variables ``v = f_v(parents) + u_v`` with exogenous ``u_v`` drawn from the residuals
        (:class:`~scmnet.Empirical`).

    Raises
    ------
    InvalidDataset
        If a graph variable has no column, the columns differ in length, or a value is not
        finite.
    NotADag
        If the graph has a cycle.
    InvalidArgument
        If a variable name is not a Python identifier, or ``mechanisms`` is unknown.
    InvalidMechanism
        If a given callable does not take exactly its variable's parents.

    Examples
    --------
    >>> import numpy as np
    >>> import scmnet as sn
    >>> x = np.array([0.0, 1.0, 2.0, 3.0])
    >>> model = sn.fit([("x", "y")], {"x": x, "y": 2 * x + 1 + np.array([0.1, -0.1, -0.1, 0.1])})
    >>> model.parents("y")
    ('x', 'u_y')
    >>> round(sn.total_effect(model, {"x": 1.0}, "y", reference={"x": 0.0}, context={
    ...     "u_x": 0.0, "u_y": 0.0}), 6)
    2.0
    """
    table = _table(data)
    dag = _dag(graph, table)
    if isinstance(mechanisms, str):
        if mechanisms != "linear":
            raise InvalidArgument(
                f"unknown mechanisms {mechanisms!r}; give 'linear' or a mapping of variables to "
                f"torch.nn.Module or callables"
            )
        given: Mapping[str, Any] = {}
    else:
        given = dict(mechanisms)
        unknown = [v for v in given if v not in dag]
        if unknown:
            raise InvalidArgument(f"mechanisms= names {unknown}, which are not in the graph")
    order = list(nx.lexicographical_topological_sort(dag, key=str))
    noises = {str(v): _noise_name(str(v), {str(n) for n in dag}) for v in order}
    fitted: dict[str, Any] = {}
    exogenous: dict[str, Empirical] = {}
    for var in map(str, order):
        parents = [str(p) for p in order if dag.has_edge(p, var)]
        x = (
            np.column_stack([table[p] for p in parents])
            if parents
            else np.empty((len(table[var]), 0))
        )
        y = table[var]
        spec = given.get(var)
        if spec is None:
            fn = _linear(x, y, parents)
        elif _is_module(spec):
            fn = _network(spec, x, y, parents, seed, epochs)
        elif callable(spec):
            fn = _given(spec, parents, var)
        else:
            raise InvalidArgument(
                f"the mechanism for {var!r} must be a torch.nn.Module or a callable, got {spec!r}"
            )
        residuals = y - (fn(**dict(zip(parents, x.T, strict=True))) if parents else fn())
        fitted[var] = additive(fn, noise=noises[var])
        exogenous[noises[var]] = Empirical(np.asarray(residuals, dtype=float).reshape(-1).tolist())
    return SCM(fitted, exogenous, name=name)


def _noise_name(var: str, taken: set[str]) -> str:
    found = f"u_{var}"
    while found in taken:
        found = f"u_{found}"
    return found


def _is_module(value: Any) -> bool:
    try:
        from torch import nn
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return isinstance(value, nn.Module)


def refit_interval(
    effect: Callable[[SCM], Any],
    graph: Graph,
    data: Any,
    *,
    mechanisms: MechanismSpec = "linear",
    resamples: int = 200,
    level: float = 0.95,
    seed: int = 0,
    epochs: int = 500,
) -> Interval:
    """A percentile bootstrap interval of ``effect(model)`` over models refitted to resampled
    rows of ``data``.

    Parameters
    ----------
    effect : callable
        Maps a fitted SCM to a number (e.g. ``lambda m: float(sn.total_effect(m, ...))``); it
        is called right after each refit (a network given in ``mechanisms`` is retrained in
        place by the next one).
    graph, data, mechanisms, epochs
        As for :func:`fit`.
    resamples : int
        Refits (each on ``len(data)`` rows drawn with replacement).
    level : float
        The interval's confidence level.
    seed : int
        Seed of the resampling (and of each refit's networks, ``seed + b``).

    Returns
    -------
    Interval
        ``method`` is ``"percentile bootstrap over refits"``.

    Examples
    --------
    >>> import numpy as np
    >>> import scmnet as sn
    >>> rng = np.random.default_rng(1)
    >>> x = rng.normal(size=400)
    >>> data = {"x": x, "y": 3 * x + rng.normal(size=400)}
    >>> slope = lambda m: sn.total_effect(m, {"x": 1.0}, "y", reference={"x": 0.0},
    ...                                   context={"u_x": 0.0, "u_y": 0.0})
    >>> iv = sn.refit_interval(slope, [("x", "y")], data, resamples=100, seed=0)
    >>> bool(iv.low < 3.0 < iv.high), iv.method
    (True, 'percentile bootstrap over refits')
    """
    _check(level, resamples)
    table = _table(data)
    rows = len(next(iter(table.values())))
    draws = np.random.default_rng(seed).integers(0, rows, size=(resamples, rows))
    found = []
    for b, picked in enumerate(draws):
        model = fit(
            graph,
            {k: v[picked] for k, v in table.items()},
            mechanisms=mechanisms,
            seed=seed + b,
            epochs=epochs,
        )
        found.append(float(effect(model)))
    tail = (1 - level) / 2
    low, high = np.quantile(np.asarray(found), [tail, 1 - tail])
    return Interval(
        float(low), float(high), level, resamples, seed, method="percentile bootstrap over refits"
    )
