"""Mediation analysis: the natural direct and indirect effects, named as Pearl names them.

For a treatment X changed from the reference x0 to x1, an outcome Y, mediators M and a unit
(a context u), write ``Y(x)`` for Y under do(X = x) and ``Y(x, M(x'))`` for Y under do(X = x)
with M held at the values it takes under do(X = x') in the same unit. Then (Pearl 2001;
Robins and Greenland 1992; VanderWeele 2015):

* **TE** = Y(x1) - Y(x0), the total effect;
* **NDE_pure** = Y(x1, M(x0)) - Y(x0), the pure natural direct effect;
* **NIE_total** = Y(x1) - Y(x1, M(x0)), the total natural indirect effect;
* **NDE_total** = Y(x1) - Y(x0, M(x1)), the total natural direct effect;
* **NIE_pure** = Y(x0, M(x1)) - Y(x0), the pure natural indirect effect;
* **CDE(m)** = Y(x1, m) - Y(x0, m), the controlled direct effect with M set to m.

By construction, TE = NDE_pure + NIE_total = NDE_total + NIE_pure in every unit; with an
interaction between X and M, NDE_pure + NIE_pure differs from TE. :func:`mediation` computes all
four natural effects from one set of four worlds per context -- Y(x0) and Y(x1) with the
mediators' values, then Y(x1, M(x0)) and Y(x0, M(x1)) -- in two
:meth:`~scmnet.CausalModel.evaluate_many` calls, through the same query runner as
:func:`~scmnet.effect_table`. :func:`~scmnet.direct_effect` is NDE_pure and
:func:`~scmnet.indirect_effect` NIE_pure.

Without a reference, x0 is each unit's natural value: Y(x0) = Y(u) and M(x0) = M(u), so the
population contrasts compare the treated world with the factual one (``E[y(x=1.0)] - E[y]``),
not with another treatment value.

Examples
--------
The linear mediation model m = 2x + u_m, y = 0.5x + 3m + u_y, in one unit:

>>> import scmnet as sn
>>> m = sn.toys.linear_mediation(a=2.0, b=3.0, c=0.5)
>>> u = {"u_x": 0.0, "u_m": 0.5, "u_y": -0.25}
>>> res = sn.mediation(m, {"x": 1.0}, "y", reference={"x": 0.0}, context=u)
>>> res.te, res.nde_pure, res.nie_total, res.nde_total, res.nie_pure
(6.5, 0.5, 6.0, 0.5, 6.0)
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from scmnet.ablations import Resolvable
from scmnet.errors import InvalidIntervention, unknown_node
from scmnet.interventions import Interventions, normalize
from scmnet.model import CausalModel, Context
from scmnet.outcome import Outcome, OutcomeLike, as_outcome
from scmnet.query import RowSummary, check_reference, check_treatment, hold_values, run_query
from scmnet.reach import Unreached, check_reaches
from scmnet.results import (
    Estimate,
    difference,
    plain_value,
    potential_outcome,
    world_label,
)

__all__ = ["Mediation", "controlled_direct_effect", "mediation"]

#: The fields of :class:`Mediation` computed per unit, in the order of the query's rows.
_EFFECTS = ("te", "nde_pure", "nie_total", "nde_total", "nie_pure")


@dataclass(frozen=True)
class Mediation:
    """The total effect and its four natural components, for one unit or a population.

    Each effect is a value (one context) or an :class:`~scmnet.Estimate` (a population: the
    mean over contexts, with its standard error, 95% interval and the contrast it estimates).

    Attributes
    ----------
    te : value or Estimate
        The total effect Y(x1) - Y(x0).
    nde_pure : value or Estimate
        The pure natural direct effect Y(x1, M(x0)) - Y(x0): what
        :func:`~scmnet.direct_effect` returns.
    nie_total : value or Estimate
        The total natural indirect effect Y(x1) - Y(x1, M(x0)); ``te = nde_pure + nie_total``.
    nde_total : value or Estimate
        The total natural direct effect Y(x1) - Y(x0, M(x1)); ``te = nde_total + nie_pure``.
    nie_pure : value or Estimate
        The pure natural indirect effect Y(x0, M(x1)) - Y(x0): what
        :func:`~scmnet.indirect_effect` returns.
    outcome : str
        The outcome's label.
    treatment, reference : Interventions
        do(X = x1) and do(X = x0); an empty reference is each unit's natural value.
    mediators : tuple of str
        The mediators M.
    population : bool
        Whether the effects are averages over contexts.
    """

    te: Any
    nde_pure: Any
    nie_total: Any
    nde_total: Any
    nie_pure: Any
    outcome: str
    treatment: Interventions
    reference: Interventions
    mediators: tuple[str, ...]
    population: bool

    @property
    def proportion_mediated(self) -> Any:
        """NIE_total / TE, the share of the total effect that goes through the mediators.

        VanderWeele's proportion mediated, with the decomposition TE = NDE_pure + NIE_total.
        For a population it is the ratio of the two means (a plain value, without a standard
        error); NaN where the total effect is zero.

        Examples
        --------
        >>> import scmnet as sn
        >>> m = sn.toys.linear_mediation(a=2.0, b=3.0, c=0.5)
        >>> u = {"u_x": 0.0, "u_m": 0.0, "u_y": 0.0}
        >>> sn.mediation(m, {"x": 1.0}, "y", reference={"x": 0.0}, context=u).proportion_mediated
        0.9230769230769231
        """
        nie, te = (e.value if isinstance(e, Estimate) else e for e in (self.nie_total, self.te))
        if isinstance(te, int | float | np.generic) and te == 0:
            return float("nan")
        return plain_value(nie / te)

    def __str__(self) -> str:
        """One line per effect.

        Examples
        --------
        >>> import scmnet as sn
        >>> m = sn.toys.linear_mediation(a=2.0, b=3.0, c=0.5)
        >>> u = {"u_x": 0.0, "u_m": 0.0, "u_y": 0.0}
        >>> print(sn.mediation(m, {"x": 1.0}, "y", reference={"x": 0.0}, context=u))
        mediation of x=1.0 against x=0.0 on y, M = (m), one context
          te          6.5
          nde_pure    0.5
          nie_total   6
          nde_total   0.5
          nie_pure    6
        """
        against = world_label(self.reference) or "the natural value"
        where = "a population" if self.population else "one context"
        lines = [
            f"mediation of {world_label(self.treatment)} against {against} on {self.outcome}, "
            f"M = ({', '.join(self.mediators)}), {where}"
        ]
        for name in _EFFECTS:
            value = getattr(self, name)
            lines.append(f"  {name:<10}  {value if isinstance(value, Estimate) else _g(value)}")
        return "\n".join(lines)


def _g(value: Any) -> str:
    try:
        return f"{float(value):.6g}"
    except (TypeError, ValueError):
        return repr(value)


def _mediators(
    model: CausalModel,
    treatment: Interventions,
    y: Outcome,
    names: Collection[str] | None,
    argument: str,
) -> tuple[str, ...]:
    """The mediators: checked names, or every endogenous variable not treated nor read by Y."""
    excluded = set(treatment.nodes) | set(y.variables)
    if names is None:
        return tuple(v for v in model.endogenous if v not in excluded)
    if isinstance(names, str):
        raise InvalidIntervention(
            f"{argument} must be a collection of variable names, got the string {names!r}; "
            f"write [{names!r}]"
        )
    found = tuple(dict.fromkeys(names))
    for v in found:
        if v not in model.endogenous:
            if v in model.exogenous:
                raise InvalidIntervention(
                    f"{argument} names {v!r}, an exogenous variable; a mediator is an "
                    f"endogenous variable between the treatment and the outcome"
                )
            raise unknown_node(v, model.endogenous, what="endogenous nodes")
        if v in treatment.nodes:
            raise InvalidIntervention(
                f"{argument} names {v!r}, which is the treatment; a mediator is another "
                f"endogenous variable -- remove {v!r} from {argument}"
            )
        if v in y.variables:
            raise InvalidIntervention(
                f"{argument} names {v!r}, which the outcome {y.label!r} reads; a mediator lies "
                f"between the treatment and the outcome -- remove {v!r} from {argument}"
            )
    return found


def _deterministic(treatment: Interventions) -> None:
    if any(isinstance(rule, Resolvable) and rule.stochastic for _, rule in treatment):
        raise InvalidIntervention(
            "mediation needs a deterministic treatment (values, zero, mean, shift, ...); for "
            "random ablations (noise, resample) use sn.direct_effect and sn.indirect_effect, "
            "which average over draws"
        )


def mediation(
    model: CausalModel,
    treatment: Mapping[Any, Any],
    outcome: OutcomeLike,
    *,
    reference: Mapping[Any, Any] | None = None,
    mediators: Collection[str] | None = None,
    context: Context | Sequence[Context] | None = None,
    samples: int = 1000,
    seed: int = 0,
    unreached: Unreached = "raise",
) -> Mediation:
    """The total effect and the pure and total natural direct and indirect effects, at once.

    TE = Y(x1) - Y(x0), NDE_pure = Y(x1, M(x0)) - Y(x0), NIE_total = Y(x1) - Y(x1, M(x0)),
    NDE_total = Y(x1) - Y(x0, M(x1)) and NIE_pure = Y(x0, M(x1)) - Y(x0) (Pearl 2001), so that
    TE = NDE_pure + NIE_total = NDE_total + NIE_pure in every unit. All four come from the
    same four worlds per context (see :mod:`scmnet.mediation`).

    Parameters
    ----------
    model : CausalModel
        An :class:`~scmnet.SCM` or a traced network.
    treatment : mapping
        do(X = x1): node names or :class:`~scmnet.Site` objects to values or deterministic
        rules.
    outcome : str, Outcome or callable
        Y: a variable name, or a function of variables.
    reference : mapping, optional
        do(X = x0), on the same sites. Default: each unit's natural value, so that Y(x0) is the
        factual Y(u) and M(x0) the factual M(u).
    mediators : collection of str, optional
        M. Default: every endogenous variable neither treated nor read by the outcome, as for
        :func:`~scmnet.direct_effect`.
    context : mapping, sequence of mappings, or None
        One context u (the effects are values); a data set of contexts (their means, as
        :class:`~scmnet.Estimate`); or ``None`` to average over ``samples`` draws from P(u).
    samples : int
        Number of Monte Carlo draws of contexts when ``context`` is ``None``.
    seed : int
        Seed of those draws.
    unreached : {"raise", "zero"}
        As for :func:`~scmnet.total_effect`: a treated site that is not an ancestor of the
        outcome is refused by default (:class:`~scmnet.NoCausalPath`).

    Returns
    -------
    Mediation
        ``res.te``, ``res.nde_pure``, ``res.nde_total``, ``res.nie_pure``, ``res.nie_total``
        and ``res.proportion_mediated``.

    Raises
    ------
    NodeNotFound
        If the treatment, a mediator or the outcome names an unknown node.
    InvalidIntervention
        If a mediator is the treatment, exogenous or read by the outcome, the reference sets
        other sites than the treatment, or the treatment is random.
    InvalidContext
        If a context is incomplete.

    See Also
    --------
    controlled_direct_effect, scmnet.direct_effect, scmnet.indirect_effect

    Examples
    --------
    A binary treatment whose effect on y grows with the mediator (y = 0.5x + m + 2xm + u_y,
    m = 1 + 2x + u_m): the pure and total effects differ, and each pair adds up to TE.

    >>> import scmnet as sn
    >>> model = sn.SCM(
    ...     {"x": lambda u_x: u_x,
    ...      "m": lambda x, u_m: 1.0 + 2.0 * x + u_m,
    ...      "y": lambda x, m, u_y: 0.5 * x + m + 2.0 * x * m + u_y},
    ...     exogenous={"u_x": sn.Bernoulli(0.5), "u_m": sn.Normal(), "u_y": sn.Normal()},
    ... )
    >>> u = {"u_x": 0.0, "u_m": 0.0, "u_y": 0.0}
    >>> res = sn.mediation(model, {"x": 1.0}, "y", reference={"x": 0.0}, context=u)
    >>> res.te, res.nde_pure, res.nie_total, res.nde_total, res.nie_pure
    (8.5, 2.5, 6.0, 6.5, 2.0)

    Over P(u), each effect is an Estimate of a named contrast:

    >>> res = sn.mediation(model, {"x": 1.0}, "y", reference={"x": 0.0}, samples=2000)
    >>> res.nde_pure.contrast
    'E[y(x=1.0, M(x=0.0)) - y(x=0.0)], M = (m)'
    >>> abs(res.nde_pure.value - 2.5) < 4 * res.nde_pure.stderr
    True
    """
    iv = check_treatment(model, treatment)
    _deterministic(iv)
    ref = check_reference(iv, reference)
    y = as_outcome(model, outcome)
    check_reaches(model, [iv], y.variables, unreached, label=repr(y.label))
    held = _mediators(model, iv, y, mediators, "mediators")

    def per_context(
        u: Context, which: list[int], treated: list[Interventions], base: list[Interventions]
    ) -> list[tuple[Any, Any]]:
        t, b = treated[0], base[0]
        w0, w1 = model.evaluate_many(u, [b, t], outputs=(*y.of, *held))
        y10, y01 = (
            y(r)
            for r in model.evaluate_many(
                u, [t.merged(hold_values(w0, held)), b.merged(hold_values(w1, held))], outputs=y.of
            )
        )
        y0, y1 = y(w0), y(w1)
        pairs = {
            "te": (y1, y0),
            "nde_pure": (y10, y0),
            "nie_total": (y1, y10),
            "nde_total": (y1, y01),
            "nie_pure": (y01, y0),
        }
        return [pairs[_EFFECTS[r]] for r in which]

    t_, r_ = world_label(iv), world_label(ref)
    y1, y0 = potential_outcome(y.label, t_), potential_outcome(y.label, r_)
    y10, y01 = potential_outcome(y.label, t_, r_), potential_outcome(y.label, r_, t_)
    natural = not r_
    contrasts = {
        "te": difference(y1, y0, natural=natural),
        "nde_pure": difference(y10, y0, natural=natural, mediators=held),
        "nie_total": difference(y1, y10, mediators=held),
        "nde_total": difference(y1, y01, mediators=held),
        "nie_pure": difference(y01, y0, natural=natural, mediators=held),
    }

    def finish(found: RowSummary) -> Mediation:
        effects = {name: found.result(r, contrasts[name]) for r, name in enumerate(_EFFECTS)}
        return Mediation(
            **effects,
            outcome=y.label,
            treatment=iv,
            reference=ref,
            mediators=held,
            population=found.population,
        )

    return run_query(
        per_context,
        model,
        [iv] * len(_EFFECTS),
        [ref] * len(_EFFECTS),
        context=context,
        samples=samples,
        seed=seed,
        draws=None,
        finish=finish,
    )


def controlled_direct_effect(
    model: CausalModel,
    treatment: Mapping[Any, Any],
    outcome: OutcomeLike,
    *,
    at: Mapping[str, Any],
    reference: Mapping[Any, Any] | None = None,
    context: Context | Sequence[Context] | None = None,
    samples: int = 1000,
    seed: int = 0,
    unreached: Unreached = "raise",
) -> Any:
    """The controlled direct effect CDE(m) = Y(x1, m) - Y(x0, m): the mediators set to ``at``.

    Unlike the natural direct effect, the mediators take the same given values m in both
    worlds, in every unit.

    Parameters
    ----------
    model, treatment, outcome, reference, context, samples, seed, unreached
        As for :func:`mediation`. Without a reference, x0 is each unit's natural value, and
        the contrast is ``E[y(x=1.0, m=1.0)] - E[y(m=1.0)]``.
    at : mapping of str to value
        The mediators' values m: each a mediator (an endogenous variable neither treated nor
        read by the outcome) and its value.

    Returns
    -------
    value or Estimate
        The effect in the context, or the population :class:`~scmnet.Estimate`.

    Raises
    ------
    NodeNotFound
        If ``at`` names an unknown variable.
    InvalidIntervention
        If ``at`` is empty, names the treatment, an exogenous variable or a variable the
        outcome reads, or the reference sets other sites than the treatment.

    See Also
    --------
    mediation, scmnet.direct_effect

    Examples
    --------
    With y = 0.5x + m + 2xm + u_y, CDE(m) = 0.5 + 2m:

    >>> import scmnet as sn
    >>> model = sn.SCM(
    ...     {"x": lambda u_x: u_x,
    ...      "m": lambda x, u_m: 1.0 + 2.0 * x + u_m,
    ...      "y": lambda x, m, u_y: 0.5 * x + m + 2.0 * x * m + u_y},
    ...     exogenous={"u_x": sn.Bernoulli(0.5), "u_m": sn.Normal(), "u_y": sn.Normal()},
    ... )
    >>> u = {"u_x": 1.0, "u_m": 0.3, "u_y": -1.0}
    >>> sn.controlled_direct_effect(model, {"x": 1.0}, "y", at={"m": 1.0},
    ...                             reference={"x": 0.0}, context=u)
    2.5
    >>> est = sn.controlled_direct_effect(model, {"x": 1.0}, "y", at={"m": 3.0},
    ...                                   reference={"x": 0.0}, samples=100)
    >>> est.contrast, est.value
    ('E[y(x=1.0, m=3.0) - y(x=0.0, m=3.0)]', 6.5)
    """
    iv = check_treatment(model, treatment)
    _deterministic(iv)
    ref = check_reference(iv, reference)
    y = as_outcome(model, outcome)
    check_reaches(model, [iv], y.variables, unreached, label=repr(y.label))
    if not isinstance(at, Mapping) or not at:
        raise InvalidIntervention(
            f"at must be a non-empty mapping from mediators to their values (e.g. "
            f"at={{'m': 1.0}}), got {at!r}"
        )
    _mediators(model, iv, y, list(at), "at")
    fixed = normalize(dict(at))
    treated, base = iv.merged(fixed), ref.merged(fixed)

    def per_context(
        u: Context, which: list[int], treated_: list[Interventions], base_: list[Interventions]
    ) -> list[tuple[Any, Any]]:
        w1, w0 = model.evaluate_many(u, [treated_[0], base_[0]], outputs=y.of)
        return [(y(w1), y(w0))]

    text = difference(
        potential_outcome(y.label, world_label(treated)),
        potential_outcome(y.label, world_label(base)),
        natural=not ref,
    )

    def finish(found: RowSummary) -> Any:
        return found.result(0, text)

    return run_query(
        per_context,
        model,
        [treated],
        [base],
        context=context,
        samples=samples,
        seed=seed,
        draws=None,
        finish=finish,
    )
