"""Total, direct and indirect effects (Section 3.1 of the Hydra-effect paper).

For a treatment Z changed from a reference value z to a treatment value z', an outcome Y and a
context u (a value of the exogenous variables):

* **total effect** (Definition 3.2, eq. 14)::

      TE(z -> z', Y, u) = Y(u | do(Z = z')) - Y(u | do(Z = z))

* **direct effect** (Definition 3.3, eqs. 19-20): the change reaches Y only along the edges
  Z -> Y; every mediator M (by default every other endogenous variable, ``M = V \\ {Z, Y}``) is held
  at the value it takes under the reference::

      DE(z -> z', Y, u) = Y(u | do(Z = z', M = m_z(u))) - Y(u | do(Z = z))

* **indirect effect** (Definition 3.4, eq. 29): Z stays at z while the mediators take the values
  m~ they would take under do(Z = z')::

      IE(z -> z', Y, u) = Y(u | do(Z = z, M = m~)) - Y(u | do(Z = z))

The reference z defaults to the natural value z(u), in which case ``Y(u | do(Z = z)) = Y(u)``
(eqs. 17 and 20). With an explicit reference, the mediators are held at m_z(u), their values
under do(Z = z); for the natural reference this is exactly the paper's m(u), and it makes
DE(z -> z) = 0 for every z.

Without a context, each function averages over contexts drawn from P(u) with an explicit
seed (Monte Carlo) and returns an :class:`Estimate` with its standard error; a sequence of
contexts (a data set) is averaged exactly.

Examples
--------
The erasure toy of Section 3.3 (eq. 31), in the context u = 2:

>>> import scmnet as sn
>>> m = sn.toys.erasure()
>>> sn.total_effect(m, {"x": 0.0}, "y", context={"u": 2.0})
0.0
>>> sn.direct_effect(m, {"x": 0.0}, "y", context={"u": 2.0})
-2.0
>>> sn.indirect_effect(m, {"x": 0.0}, "y", context={"u": 2.0})
2.0
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np

from scmnet import _values
from scmnet.ablations import Resolvable, resolve
from scmnet.errors import (
    InvalidContext,
    InvalidIntervention,
    InvalidOutcome,
    did_you_mean,
    format_names,
)
from scmnet.errors import unknown_node as _unknown_node
from scmnet.interventions import Interventions, Set, normalize
from scmnet.model import CausalModel, Context

#: Ablation draws averaged per context for random ablations (Section 2.4: 15 patches).
DEFAULT_DRAWS = 15

__all__ = [
    "DEFAULT_DRAWS",
    "Estimate",
    "Outcome",
    "direct_effect",
    "indirect_effect",
    "total_effect",
]


@dataclass(frozen=True)
class Outcome:
    """An outcome that is a function of variables: ``fn(*values of of)``.

    Use it where variable names are not Python identifiers (network nodes such as
    ``"model.layers.3.mlp"``); otherwise a plain function whose parameter names are variables
    works too.

    Examples
    --------
    >>> import scmnet as sn
    >>> m = sn.toys.erasure()
    >>> sn.total_effect(m, {"x": 1.0}, sn.Outcome(("x",), lambda x: 2 * x), context={"u": 0.0})
    2.0
    """

    of: tuple[str, ...]
    fn: Callable[..., Any]

    def __post_init__(self) -> None:
        if isinstance(self.of, str):
            raise InvalidOutcome(
                f"Outcome.of must be a tuple of variable names, got the string {self.of!r}; "
                f"write ({self.of!r},)"
            )
        if not callable(self.fn):
            raise InvalidOutcome(f"Outcome.fn must be callable, got {self.fn!r}")

    def __call__(self, values: Mapping[str, Any]) -> Any:
        """Apply the readout to the values of its variables."""
        return self.fn(*(values[v] for v in self.of))


OutcomeLike: TypeAlias = "str | Outcome | Callable[..., Any]"
"""An outcome: a variable name, an :class:`Outcome`, or a function whose parameter names are
variable names."""


@dataclass(frozen=True)
class Estimate:
    """A population effect: the mean over contexts, with its Monte Carlo standard error.

    Attributes
    ----------
    value : float, array or tensor
        The average effect.
    stderr : float, array or tensor
        The standard error of the mean (zero for a single context).
    samples : int
        The number of contexts averaged.
    seed : int or None
        The seed the contexts were drawn with (``None`` for a given data set).
    """

    value: Any
    stderr: Any
    samples: int
    seed: int | None

    def __float__(self) -> float:
        return float(self.value)

    def __repr__(self) -> str:
        return (
            f"Estimate(value={self.value!r}, stderr={self.stderr!r}, samples={self.samples}, "
            f"seed={self.seed})"
        )


def _as_outcome(model: CausalModel, outcome: Any) -> Outcome:
    variables = (*model.exogenous, *model.endogenous)
    if isinstance(outcome, str):
        if outcome not in variables:
            raise _unknown_node(outcome, model.endogenous, what="endogenous nodes")
        return Outcome((outcome,), lambda v: v)
    if isinstance(outcome, Outcome):
        result = outcome
    elif callable(outcome):
        params = list(inspect.signature(outcome).parameters)
        result = Outcome(tuple(params), outcome)
    else:
        raise InvalidOutcome(
            f"an outcome must be a variable name, an sn.Outcome or a function of variables, "
            f"got {outcome!r}"
        )
    for v in result.of:
        if v not in variables:
            raise InvalidOutcome(
                f"the outcome reads {v!r}, which is not a variable of the model"
                f"{did_you_mean(v, variables)}; the variables are {format_names(variables)}"
            )
    if not result.of:
        raise InvalidOutcome("the outcome reads no variable; name at least one")
    return result


def _treatment(model: CausalModel, treatment: Mapping[Any, Any]) -> Interventions:
    iv = normalize(treatment)
    if not iv:
        raise InvalidIntervention("the treatment is empty; name at least one node and its value")
    model.intervene(iv)  # validates nodes; the result is discarded
    return iv


def _reference(treatment: Interventions, reference: Mapping[Any, Any] | None) -> Interventions:
    if reference is None:
        return Interventions()
    ref = normalize(reference)
    if set(ref.sites) != set(treatment.sites):
        raise InvalidIntervention(
            f"the reference must set the same sites as the treatment: treatment sets "
            f"{[str(s) for s in treatment.sites]}, reference sets {[str(s) for s in ref.sites]}"
        )
    return ref


def _mediators(
    model: CausalModel,
    treatment: Interventions,
    outcome: Outcome,
    mediators: Collection[str] | None,
) -> tuple[str, ...]:
    excluded = treatment.nodes | set(outcome.of)
    if mediators is None:
        return tuple(v for v in model.endogenous if v not in excluded)
    if isinstance(mediators, str):
        raise InvalidIntervention(
            f"mediators must be a collection of node names, got the string {mediators!r}; "
            f"write [{mediators!r}]"
        )
    for v in mediators:
        if v not in model.endogenous:
            raise _unknown_node(v, model.endogenous, what="endogenous nodes")
        if v in excluded:
            raise InvalidIntervention(
                f"{v!r} is the treatment or read by the outcome and cannot also be a mediator; "
                f"mediators must be other endogenous variables"
            )
    return tuple(mediators)


def _hold(values: Mapping[str, Any], nodes: Sequence[str]) -> Interventions:
    return normalize({v: Set(values[v]) for v in nodes})


def _contexts(
    model: CausalModel, context: Context | Sequence[Context] | None, samples: int, seed: int
) -> tuple[list[Context], bool, int | None]:
    """The contexts to evaluate, whether the result is a population estimate, and the seed."""
    if context is None:
        return list(model.sample_contexts(samples, seed=seed)), True, seed
    if isinstance(context, Mapping):
        return [context], False, None
    if isinstance(context, Sequence) and not isinstance(context, str):
        contexts = list(context)
        if not contexts:
            raise InvalidContext("the sequence of contexts is empty; give at least one context")
        return contexts, True, None
    raise InvalidContext(
        f"context must be a mapping (one context), a sequence of mappings (a data set) or None "
        f"(draw from P(u)), got {type(context).__name__}"
    )


def _stochastic(iv: Interventions) -> bool:
    return any(isinstance(rule, Resolvable) and rule.stochastic for _, rule in iv)


def _average(
    per_context: Callable[[Context, Interventions, Interventions], Any],
    model: CausalModel,
    treatment: Interventions,
    reference: Interventions,
    context: Context | Sequence[Context] | None,
    samples: int,
    seed: int,
    draws: int | None,
) -> Any:
    """Average ``per_context`` over contexts, and over ablation draws (eq. 39) where random."""
    if draws is not None and (not isinstance(draws, int) or draws < 1):
        raise InvalidIntervention(f"draws must be a positive int, got {draws!r}")
    if _stochastic(reference):
        raise InvalidIntervention(
            "the reference must be deterministic; put random ablations (noise, resample) in "
            "the treatment, whose effect is averaged over draws"
        )
    contexts, population, used_seed = _contexts(model, context, samples, seed)
    # Values that are the same in every context (mean, patch) are computed once.
    first = contexts[0]
    treatment = _resolve_context_free(model, treatment, first)
    reference = resolve(model, _resolve_context_free(model, reference, first), first)
    k = (draws or DEFAULT_DRAWS) if _stochastic(treatment) else 1
    effects = []
    for i, u in enumerate(contexts):
        per_draw = [
            per_context(
                u, resolve(model, treatment, u, np.random.default_rng([seed, i, j])), reference
            )
            for j in range(k)
        ]
        effects.append(per_draw[0] if k == 1 else _values.mean(per_draw))
    if not population:
        return _plain(effects[0])
    return Estimate(_values.mean(effects), _values.stderr(effects), len(effects), used_seed)


def _resolve_context_free(
    model: CausalModel, interventions: Interventions, context: Context
) -> Interventions:
    items = []
    for site, rule in interventions:
        if isinstance(rule, Resolvable) and rule.context_free:
            rule = Set(rule.value(model, site, context, np.random.default_rng(0)))
        items.append((site, rule))
    return Interventions(tuple(items))


def _plain(value: Any) -> Any:
    """Python scalars for 0-d numpy results, anything else unchanged."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value.item()
    return value


def total_effect(
    model: CausalModel,
    treatment: Mapping[Any, Any],
    outcome: OutcomeLike,
    *,
    reference: Mapping[Any, Any] | None = None,
    context: Context | Sequence[Context] | None = None,
    samples: int = 1000,
    seed: int = 0,
    draws: int | None = None,
) -> Any:
    """The total effect TE(z -> z', Y, u) = Y(u | do(Z = z')) - Y(u | do(Z = z)) (eq. 14).

    Parameters
    ----------
    model : CausalModel
        An :class:`~scmnet.SCM` or a traced network.
    treatment : mapping
        The intervention do(Z = z'): node names or :class:`~scmnet.Site` objects to values or
        rules (:func:`~scmnet.shift`, ...).
    outcome : str, Outcome or callable
        Y: a variable name, or a function of variables.
    reference : mapping, optional
        The reference do(Z = z), on the same sites. Default: the natural value z(u), so that
        the second term is Y(u) (eq. 17).
    context : mapping, sequence of mappings, or None
        One context u (returns a value); a data set of contexts (returns their mean as an
        :class:`Estimate`); or ``None`` to average over ``samples`` draws from P(u).
    samples : int
        Number of Monte Carlo draws of contexts when ``context`` is ``None``.
    seed : int
        Seed of those draws, and of the ablation draws.
    draws : int, optional
        For random ablations in the treatment (:func:`~scmnet.resample`,
        :func:`~scmnet.noise`): how many values to average the effect over, per context
        (eq. 39). Default 15, the paper's number of resample patches.

    Returns
    -------
    value or Estimate
        The effect in the context, or the population estimate.

    Raises
    ------
    NodeNotFound
        If the treatment or the outcome names an unknown node.
    InvalidIntervention
        If the treatment names an exogenous variable or the reference sets other sites.
    InvalidContext
        If the context is incomplete.

    See Also
    --------
    direct_effect, indirect_effect, scmnet.do

    Examples
    --------
    The self-repair toy (eq. 32) repairs a zero ablation exactly:

    >>> import scmnet as sn
    >>> m = sn.toys.self_repair()
    >>> sn.total_effect(m, {"x": 0.0}, "y", context={"u": 1.5})
    0.0
    >>> sn.total_effect(m, {"x": 0.0}, "y").value  # averaged over P(u)
    0.0
    """
    iv = _treatment(model, treatment)
    ref = _reference(iv, reference)
    y = _as_outcome(model, outcome)

    def per_context(u: Context, iv: Interventions, ref: Interventions) -> Any:
        before, after = model.evaluate_many(u, [ref, iv], outputs=y.of)
        return y(after) - y(before)

    return _average(per_context, model, iv, ref, context, samples, seed, draws)


def direct_effect(
    model: CausalModel,
    treatment: Mapping[Any, Any],
    outcome: OutcomeLike,
    *,
    reference: Mapping[Any, Any] | None = None,
    mediators: Collection[str] | None = None,
    context: Context | Sequence[Context] | None = None,
    samples: int = 1000,
    seed: int = 0,
    draws: int | None = None,
) -> Any:
    """The direct effect DE(z -> z', Y, u) = Y(u | do(Z = z', M = m_z(u))) - Y(u | do(Z = z)).

    Eqs. 19-20: the treatment is applied while every mediator is held at its value under the
    reference, so the change reaches Y only along direct edges. For a residual network whose
    final-norm scale is a held variable, this is the unembedding impact (eqs. 24-28).

    Parameters
    ----------
    model, treatment, outcome, reference, context, samples, seed, draws
        As for :func:`total_effect`.
    mediators : collection of str, optional
        The variables M to hold. Default: every endogenous variable that is neither treated nor
        read by the outcome (``M = V \\ {Z, Y}``, as in the paper).

    Returns
    -------
    value or Estimate

    Raises
    ------
    InvalidIntervention
        If a mediator is also the treatment or read by the outcome.

    See Also
    --------
    total_effect, indirect_effect

    Examples
    --------
    >>> import scmnet as sn
    >>> m = sn.toys.self_repair()
    >>> sn.direct_effect(m, {"x": 3.0}, "y", context={"u": 1.0})  # x' - u
    2.0
    """
    iv = _treatment(model, treatment)
    ref = _reference(iv, reference)
    y = _as_outcome(model, outcome)
    held = _mediators(model, iv, y, mediators)

    def per_context(u: Context, iv: Interventions, ref: Interventions) -> Any:
        (before,) = model.evaluate_many(u, [ref], outputs=(*y.of, *held))
        (after,) = model.evaluate_many(u, [iv.merged(_hold(before, held))], outputs=y.of)
        return y(after) - y(before)

    return _average(per_context, model, iv, ref, context, samples, seed, draws)


def indirect_effect(
    model: CausalModel,
    treatment: Mapping[Any, Any],
    outcome: OutcomeLike,
    *,
    reference: Mapping[Any, Any] | None = None,
    mediators: Collection[str] | None = None,
    context: Context | Sequence[Context] | None = None,
    samples: int = 1000,
    seed: int = 0,
    draws: int | None = None,
) -> Any:
    """The indirect effect IE(z -> z', Y, u) = Y(u | do(Z = z, M = m~)) - Y(u | do(Z = z)).

    Eq. 29: the treatment stays at its reference while the mediators take the values m~ they
    would take under do(Z = z'), so the change reaches Y only through the mediators.

    Parameters
    ----------
    model, treatment, outcome, reference, mediators, context, samples, seed, draws
        As for :func:`direct_effect`.

    Returns
    -------
    value or Estimate

    See Also
    --------
    total_effect, direct_effect

    Examples
    --------
    >>> import scmnet as sn
    >>> m = sn.toys.self_repair()
    >>> sn.indirect_effect(m, {"x": 3.0}, "y", context={"u": 1.0})  # u
    1.0
    """
    iv = _treatment(model, treatment)
    ref = _reference(iv, reference)
    y = _as_outcome(model, outcome)
    held = _mediators(model, iv, y, mediators)

    def per_context(u: Context, iv: Interventions, ref: Interventions) -> Any:
        before, treated = model.evaluate_many(u, [ref, iv], outputs=(*y.of, *held))
        (after,) = model.evaluate_many(u, [ref.merged(_hold(treated, held))], outputs=y.of)
        return y(after) - y(before)

    return _average(per_context, model, iv, ref, context, samples, seed, draws)
