"""Counterfactuals from observed data: abduction, action, prediction (Pearl, 2009, §7.1).

A context u fixes every value of an :class:`~scmnet.SCM`. To ask "what would ``y`` have been
for *this* unit had ``x`` been 0?" about an observed unit, its context must first be inferred:

1. **Abduction** -- :func:`abduct` finds the context(s) u consistent with the observation.
   A mechanism declared with :func:`~scmnet.additive` or :func:`~scmnet.invertible` gives its
   noise back exactly from the observed value and its parents; an exogenous variable with a
   discrete distribution (:class:`~scmnet.Bernoulli`, :class:`~scmnet.Choice`,
   :class:`~scmnet.Constant`) that no observation recovers is enumerated, and the result is a
   :class:`Weighted` set of contexts with weights P(u | observation).
2. **Action** -- :func:`~scmnet.do` replaces the mechanisms of the intervened variables.
3. **Prediction** -- the intervened model is evaluated in the abducted context(s).

:func:`counterfactual` does the three steps. An observed **table** (a mapping of equal-length
1-d arrays, or a pandas DataFrame) is abducted in one vectorised pass: the context's values are
then arrays with one entry per row, which :meth:`SCM.evaluate <scmnet.SCM.evaluate>` and the
effect operators accept as one context when the mechanisms are numpy-friendly (they then
return one value per row).

Examples
--------
>>> import scmnet as sn
>>> model = sn.SCM(
...     {
...         "x": sn.additive(lambda: 0.0, noise="u_x"),
...         "m": sn.additive(lambda x: 2.0 * x, noise="u_m"),
...         "y": sn.additive(lambda x, m: 0.5 * x + 3.0 * m, noise="u_y"),
...     },
...     exogenous={"u_x": sn.Normal(), "u_m": sn.Normal(), "u_y": sn.Normal()},
... )
>>> u = sn.abduct(model, {"x": 1.0, "m": 2.5, "y": 8.0})
>>> u
{'u_x': 1.0, 'u_m': 0.5, 'u_y': 0.0}
>>> sn.counterfactual(model, {"x": 1.0, "m": 2.5, "y": 8.0}, {"x": 0.0}, "y")
1.5
>>> sn.total_effect(model, {"x": 1.0}, "y", reference={"x": 0.0}, context=u)
6.5
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from scmnet import _values
from scmnet.distributions import Bernoulli, Choice, Constant
from scmnet.errors import (
    InvalidArgument,
    InvalidContext,
    InvalidMechanism,
    MechanismError,
    format_names,
    unknown_node,
)
from scmnet.mechanisms import Declared
from scmnet.model import do
from scmnet.scm import SCM

__all__ = ["MAX_ENUMERATED", "Weighted", "abduct", "counterfactual"]

#: The most combinations of discrete exogenous values :func:`abduct` enumerates.
MAX_ENUMERATED = 65536

#: Relative and absolute tolerance when an observed value is compared with its mechanism's.
_RTOL, _ATOL = 1e-9, 1e-9


@dataclass(frozen=True)
class Weighted:
    """A finite distribution: items (contexts or values) and their probabilities.

    For an observed table, each weight is an array with one probability per row; the weights
    of a row sum to one.

    Attributes
    ----------
    items : tuple
        The contexts (from :func:`abduct`) or values (from :func:`counterfactual`).
    weights : tuple
        The probability of each item: floats, or arrays of one per row.

    Examples
    --------
    >>> w = Weighted((0.0, 10.0), (0.75, 0.25))
    >>> w.mean()
    2.5
    >>> len(w), list(w)
    (2, [(0.0, 0.75), (10.0, 0.25)])
    """

    items: tuple[Any, ...]
    weights: tuple[Any, ...]

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        return iter(zip(self.items, self.weights, strict=True))

    def mean(self) -> Any:
        """The weighted mean of the items (numbers or arrays)."""
        return sum(w * v for v, w in self) if self.items else 0.0


@dataclass(frozen=True)
class _Plan:
    """How each exogenous variable is inferred: recovered by a mechanism, or enumerated."""

    recovers: dict[str, str]  # endogenous variable -> the noise its observation recovers
    enumerated: tuple[str, ...]


def abduct(model: SCM, observation: Mapping[str, Any] | Any) -> dict[str, Any] | Weighted:
    """The context(s) u of an :class:`~scmnet.SCM` consistent with an observed unit or table.

    Parameters
    ----------
    model : SCM
        A model without interventions (the factual world). Mechanisms of observed variables
        whose exogenous inputs are continuous must be declared with :func:`~scmnet.additive`
        or :func:`~scmnet.invertible`.
    observation : mapping or pandas.DataFrame
        Observed values by variable name (endogenous, or exogenous if known): numbers for one
        unit, or equal-length 1-d arrays (a table, one unit per row).

    Returns
    -------
    dict or Weighted
        The context (for a table, each value an array of one entry per row), or, when some
        discrete exogenous variables are enumerated, the :class:`Weighted` set of contexts with
        their posterior probabilities P(u | observation) (zero-probability contexts dropped).

    Raises
    ------
    InvalidMechanism
        If an observed variable's mechanism reads an exogenous variable that it does not say
        how to recover; the message names the variable and the declaration to add.
    InvalidContext
        If the observation is inconsistent with the model (zero posterior probability), or
        leaves a variable unobserved whose exogenous input cannot then be inferred.
    NodeNotFound
        If the observation names an unknown variable.
    InvalidArgument
        If the model carries interventions, is not an SCM, or the table is malformed.
    MechanismError
        If recovering a noise raises (e.g. a wrong inverse); the message names the variable.

    Examples
    --------
    A unit's noises, and a table's, in one pass:

    >>> import numpy as np
    >>> import scmnet as sn
    >>> model = sn.SCM(
    ...     {"x": sn.additive(lambda: 0.0, noise="u_x"),
    ...      "y": sn.additive(lambda x: 2.0 * x, noise="u_y")},
    ...     exogenous={"u_x": sn.Normal(), "u_y": sn.Normal()},
    ... )
    >>> sn.abduct(model, {"x": 1.0, "y": 2.5})
    {'u_x': 1.0, 'u_y': 0.5}
    >>> u = sn.abduct(model, {"x": np.array([0.0, 1.0]), "y": np.array([1.0, 1.0])})
    >>> u["u_y"].tolist()
    [1.0, -1.0]

    A discrete exogenous variable is enumerated: here ``y = x xor u`` with ``y`` unobserved,
    so ``u`` keeps its prior.

    >>> coin = sn.SCM(
    ...     {"x": sn.additive(lambda: 0.0, noise="u_x"), "y": lambda x, u: abs(x - u)},
    ...     exogenous={"u_x": sn.Normal(), "u": sn.Bernoulli(0.25)},
    ... )
    >>> post = sn.abduct(coin, {"x": 1.0})
    >>> [(c["u"], w) for c, w in post]
    [(0.0, 0.75), (1.0, 0.25)]
    """
    scm = _check_model(model)
    obs, rows = _observation(observation, scm)
    plan = _plan(scm, obs)
    solved: list[tuple[dict[str, Any], Any]] = []
    first_mismatch: str | None = None
    for assignment, prior in _assignments(scm, plan.enumerated):
        context, consistent, mismatch = _solve(scm, obs, plan, assignment, rows)
        first_mismatch = first_mismatch or mismatch
        solved.append((context, prior * consistent))
    total = sum(w for _, w in solved)
    dead = np.flatnonzero(np.atleast_1d(np.asarray(total)) <= 0)
    if dead.size:
        where = f" (row {int(dead[0])} of the table)" if rows is not None else ""
        raise InvalidContext(
            f"the observation{where} is inconsistent with the model: no value of the exogenous "
            f"variables produces it ({first_mismatch}); check the observed values and the "
            f"mechanisms"
        )
    if not plan.enumerated:
        return solved[0][0]
    kept = [(c, w / total) for c, w in solved if np.any(np.asarray(w) > 0)]
    return Weighted(tuple(c for c, _ in kept), tuple(_plain(w) for _, w in kept))


def counterfactual(
    model: SCM,
    observation: Mapping[str, Any] | Any,
    interventions: Mapping[Any, Any],
    outcome: str,
    *,
    distribution: bool = False,
) -> Any:
    """The value ``outcome`` would have taken for the observed unit(s) under ``interventions``.

    Abduction (:func:`abduct`), action (:func:`~scmnet.do`) and prediction
    (:meth:`SCM.evaluate <scmnet.SCM.evaluate>`) in one call.

    Parameters
    ----------
    model : SCM
        The factual model, as for :func:`abduct`.
    observation : mapping or pandas.DataFrame
        The observed unit, or a table of units, as for :func:`abduct`.
    interventions : mapping
        The action, as for :func:`~scmnet.do` (e.g. ``{"x": 0.0}``).
    outcome : str
        The variable whose counterfactual value is returned.
    distribution : bool
        Return the :class:`Weighted` distribution of the counterfactual value instead of its
        mean (one item of weight 1 when abduction gives a single context).

    Returns
    -------
    Any
        The counterfactual value (its posterior mean when discrete exogenous variables are
        enumerated); for a table, an array of one value per row.

    Raises
    ------
    NodeNotFound
        If ``outcome`` names no variable of the model.

    See :func:`abduct` for the errors of the abduction step.

    Examples
    --------
    >>> import scmnet as sn
    >>> model = sn.SCM(
    ...     {"x": sn.additive(lambda: 0.0, noise="u_x"),
    ...      "y": sn.additive(lambda x: 2.0 * x, noise="u_y")},
    ...     exogenous={"u_x": sn.Normal(), "u_y": sn.Normal()},
    ... )
    >>> sn.counterfactual(model, {"x": 1.0, "y": 2.5}, {"x": 3.0}, "y")
    6.5
    """
    scm = _check_model(model)
    if not isinstance(outcome, str) or outcome not in scm.graph:
        raise unknown_node(str(outcome), scm.graph.nodes, what="variables")
    posterior = abduct(scm, observation)
    world = do(scm, interventions)
    if isinstance(posterior, dict):
        value = world.evaluate(posterior, outputs=[outcome])[outcome]
        return Weighted((value,), (1.0,)) if distribution else value
    values = tuple(world.evaluate(c, outputs=[outcome])[outcome] for c in posterior.items)
    result = Weighted(values, posterior.weights)
    return result if distribution else result.mean()


# -- abduction, step by step ------------------------------------------------------------------


def _check_model(model: object) -> SCM:
    if not isinstance(model, SCM):
        raise InvalidArgument(
            f"abduction needs an sn.SCM whose mechanisms say how to recover their noise, got "
            f"{type(model).__name__}"
        )
    if model.interventions:
        raise InvalidArgument(
            f"abduct from the factual model, without interventions (this one carries "
            f"{format_names(model.interventions.nodes)}); the action is applied afterwards"
        )
    return model


def _observation(observation: object, scm: SCM) -> tuple[dict[str, Any], int | None]:
    """The observation as name -> scalar or 1-d array, and the number of rows (None: a unit)."""
    if type(observation).__module__.split(".")[0] == "pandas" and hasattr(observation, "columns"):
        frame: Any = observation
        observation = {str(c): frame[c].to_numpy() for c in frame.columns}
    if not isinstance(observation, Mapping):
        raise InvalidArgument(
            f"an observation must be a mapping of variable names to values (or a pandas "
            f"DataFrame), got {type(observation).__name__}"
        )
    obs: dict[str, Any] = {}
    lengths: dict[str, int] = {}
    for name, value in observation.items():
        if name not in scm.graph:
            raise unknown_node(str(name), scm.graph.nodes, what="variables")
        arr = np.asarray(value)
        if arr.ndim == 0:
            obs[name] = value.item() if isinstance(value, np.generic) else value
        elif arr.ndim == 1:
            obs[name] = arr
            lengths[name] = len(arr)
        else:
            raise InvalidArgument(
                f"observed {name!r} has shape {arr.shape}; give a number per variable, or a "
                f"1-d array (one entry per row of a table)"
            )
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{k}: {n}" for k, n in lengths.items())
        raise InvalidArgument(f"the columns of an observed table differ in length ({shown})")
    rows = next(iter(lengths.values()), None)
    return obs, rows


def _support(dist: object) -> list[tuple[Any, float]] | None:
    """The values and probabilities of a discrete distribution; None if not enumerable."""
    if isinstance(dist, Bernoulli):
        return [(0.0, 1.0 - dist.p), (1.0, dist.p)]
    if isinstance(dist, Choice):
        n = len(dist.values)
        probs = dist.probs if dist.probs is not None else [1.0 / n] * n
        return list(zip(dist.values, (float(p) for p in probs), strict=True))
    if isinstance(dist, Constant):
        return [(dist.value, 1.0)]
    return None


def _declaration_hint(noise: str) -> str:
    return (
        f"declare it as sn.additive(fn, noise={noise!r}) (the mechanism is fn(parents) + "
        f"{noise}) or sn.invertible(fn, inverse=..., noise={noise!r}), or give {noise!r} a "
        f"discrete distribution (sn.Bernoulli, sn.Choice) to enumerate"
    )


def _plan(scm: SCM, obs: Mapping[str, Any]) -> _Plan:
    """Which observation recovers each exogenous variable, and which are enumerated."""
    mechanisms: Mapping[str, Any] = scm._mechanisms
    known = {u for u in scm.exogenous if u in obs}
    recovers: dict[str, str] = {}
    enumerated: list[str] = []
    for var in scm.endogenous:
        mech = mechanisms[var]
        parents = scm.parents(var)
        if isinstance(mech, Declared):
            if mech.noise not in parents:
                raise InvalidMechanism(
                    f"the mechanism of {var!r} declares noise={mech.noise!r}, which is not one "
                    f"of its parents {list(parents)}; name the noise as an exogenous variable "
                    f"(and give explicit parents, if any, by the same names)"
                )
            if mech.noise not in scm.exogenous:
                raise InvalidMechanism(
                    f"the mechanism of {var!r} declares noise={mech.noise!r}, which is not an "
                    f"exogenous variable; the exogenous variables are "
                    f"{format_names(scm.exogenous)}"
                )
            unnamed = [p for p in mech.required if p not in parents]
            if unnamed:
                raise InvalidMechanism(
                    f"the mechanism of {var!r} is declared with parameters {list(unnamed)} that "
                    f"are not its parents {list(parents)}; abduction passes the parents by name, "
                    f"so name fn's parameters after the parent variables"
                )
            if var in obs and mech.noise not in known:
                recovers[var] = mech.noise
                known.add(mech.noise)
        for u in parents:
            if u not in scm.exogenous or u in known:
                continue
            if _support(scm.distributions[u]) is not None:
                enumerated.append(u)
                known.add(u)
            elif var in obs:
                raise InvalidMechanism(
                    f"cannot abduct: the mechanism of {var!r} reads exogenous {u!r} but does "
                    f"not say how to recover it from the observed {var!r}; "
                    f"{_declaration_hint(u)}"
                )
            else:
                raise InvalidContext(
                    f"cannot abduct from a partial observation: {var!r} is not observed, so its "
                    f"exogenous input {u!r} (distribution {scm.distributions[u]!r}) can be "
                    f"neither recovered nor enumerated; observe {var!r}, or give {u!r} a "
                    f"discrete distribution (sn.Bernoulli, sn.Choice) to enumerate"
                )
    unused = [u for u in scm.exogenous if u not in known]
    for u in unused:
        if _support(scm.distributions[u]) is None:
            raise InvalidContext(
                f"cannot abduct exogenous {u!r}: no mechanism reads it, so no observation "
                f"recovers it; give it in the observation or a discrete distribution"
            )
        enumerated.append(u)
    return _Plan(recovers, tuple(enumerated))


def _assignments(scm: SCM, enumerated: Sequence[str]) -> Iterator[tuple[dict[str, Any], float]]:
    """Every joint value of the enumerated exogenous variables, with its prior probability."""
    supports = []
    count = 1
    for u in enumerated:
        support = [(v, p) for v, p in _support(scm.distributions[u]) or [] if p > 0]
        supports.append(support)
        count *= len(support)
    if count > MAX_ENUMERATED:
        raise InvalidArgument(
            f"abduction would enumerate {count} joint values of {format_names(enumerated)} "
            f"(at most {MAX_ENUMERATED}); observe more variables or declare their mechanisms"
        )
    for combo in itertools.product(*supports):
        prior = 1.0
        for _, p in combo:
            prior *= p
        yield {u: v for u, (v, _) in zip(enumerated, combo, strict=True)}, prior


def _solve(
    scm: SCM,
    obs: Mapping[str, Any],
    plan: _Plan,
    assignment: Mapping[str, Any],
    rows: int | None,
) -> tuple[dict[str, Any], Any, str | None]:
    """The context for one assignment, whether each row is consistent, and the first clash."""
    mechanisms: Mapping[str, Any] = scm._mechanisms
    values: dict[str, Any] = {u: obs[u] for u in scm.exogenous if u in obs}
    values.update(assignment)
    consistent: Any = True
    mismatch: str | None = None
    for var in scm.endogenous:
        if var in plan.recovers:
            values[plan.recovers[var]] = _recover(mechanisms[var], var, values, obs[var])
            values[var] = obs[var]
            continue
        value = scm.run_mechanism(var, values)
        if var in obs:
            same = _same(value, obs[var])
            if mismatch is None and not np.all(same):
                mismatch = f"{var!r} is observed as {_shown(obs[var], same)} where its mechanism "
                mismatch += f"gives {_shown(value, same)}"
            consistent = consistent & same
            value = obs[var]
        values[var] = value
    context = {u: _column(values[u], rows) for u in scm.exogenous}
    return context, np.asarray(consistent, dtype=float) if rows else float(consistent), mismatch


def _recover(mech: Declared, var: str, values: Mapping[str, Any], observed: Any) -> Any:
    """The noise of ``var`` from its observed value; errors name the variable."""
    try:
        with np.errstate(all="ignore"):
            noise = mech.recover(values, observed)
    except Exception as e:
        raise MechanismError(
            f"recovering the noise {mech.noise!r} of {var!r} from its observed value raised "
            f"{type(e).__name__}: {e}"
        ) from e
    if not _values.is_finite(noise):
        raise InvalidContext(
            f"the observed {var!r} gives a noise {mech.noise!r} that is not finite: the value "
            f"lies outside what the mechanism of {var!r} can produce from its parents"
        )
    return noise


def _same(value: Any, observed: Any) -> Any:
    """Whether a computed value matches the observed one (numbers: up to rounding)."""
    try:
        return np.isclose(value, observed, rtol=_RTOL, atol=_ATOL)
    except TypeError:  # not numbers: labels, e.g. from sn.Choice(["a", "b"])
        return np.asarray(value == observed)


def _shown(value: Any, same: Any) -> str:
    arr = np.asarray(value)
    if arr.ndim == 0:
        return repr(value.item() if isinstance(value, np.generic) else value)
    bad = np.flatnonzero(~np.broadcast_to(same, arr.shape))
    i = int(bad[0]) if bad.size else 0
    return f"{arr[i].item()!r} (row {i})"


def _column(value: Any, rows: int | None) -> Any:
    """A context value: a scalar for a unit, an array of ``rows`` entries for a table."""
    if rows is None:
        return value.item() if isinstance(value, np.generic) else value
    arr = np.asarray(value)
    return np.full(rows, arr) if arr.ndim == 0 else arr


def _plain(weight: Any) -> Any:
    arr = np.asarray(weight)
    return float(arr) if arr.ndim == 0 else arr
