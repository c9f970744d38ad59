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

In Pearl's terms (Pearl 2001, "Direct and indirect effects"), with the reference x0 and the
treatment x1: the direct effect is the **pure natural direct effect** NDE_pure = Y(x1, M(x0)) -
Y(x0), and the indirect effect the **pure natural indirect effect** NIE_pure = Y(x0, M(x1)) -
Y(x0). With interactions they do not add up to the total effect; :func:`scmnet.mediation` gives
the complementary total natural effects (TE = NDE_pure + NIE_total = NDE_total + NIE_pure), and
:func:`scmnet.controlled_direct_effect` the controlled direct effect. Without a reference, x0 is
the unit's natural value, so that a population estimate is ``E[Y(x=x1)] - E[Y]`` (treated against
factual), not the average treatment effect ``E[Y(x=x1) - Y(x=x0)]``; pass ``reference=`` for
that. Each population :class:`Estimate` names its contrast (:attr:`Estimate.contrast`).

Each function is the one-row case of :func:`scmnet.effect_table`, which answers the same
question for many treatments at once (and batches them on traced networks).

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

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from scmnet.errors import InvalidIntervention
from scmnet.interventions import Interventions
from scmnet.model import CausalModel, Context
from scmnet.outcome import Outcome, OutcomeLike, as_outcome
from scmnet.query import DEFAULT_DRAWS, check_treatment, effect_table
from scmnet.reach import Unreached
from scmnet.results import EffectKind, Estimate

__all__ = [
    "DEFAULT_DRAWS",
    "Estimate",
    "Outcome",
    "OutcomeLike",
    "direct_effect",
    "indirect_effect",
    "total_effect",
]


def _check_mediators(
    model: CausalModel,
    treatment: Mapping[Any, Any] | Interventions,
    outcome: OutcomeLike,
    mediators: Collection[str] | None,
) -> None:
    """Refuse mediators that are the treatment or read by the outcome (one-effect form)."""
    if mediators is None or isinstance(mediators, str):
        return  # the default, or an error that effect_table words
    nodes = check_treatment(model, treatment).nodes
    excluded = nodes | set(as_outcome(model, outcome).variables)
    for v in mediators:
        if v in excluded and v in model.endogenous:
            raise InvalidIntervention(
                f"{v!r} is the treatment or read by the outcome and cannot also be a mediator; "
                f"mediators must be other endogenous variables"
            )


def _one_row(
    kind: EffectKind,
    model: CausalModel,
    treatment: Mapping[Any, Any],
    outcome: OutcomeLike,
    hold: Collection[str] | None,
    reference: Mapping[Any, Any] | None,
    context: Context | Sequence[Context] | None,
    samples: int,
    seed: int,
    draws: int | None,
    unreached: Unreached,
) -> Any:
    """One treatment's effect: row 0 of :func:`~scmnet.effect_table`."""
    table = effect_table(
        model,
        [treatment],
        outcome,
        kind=kind,
        hold=hold,
        reference=reference,
        context=context,
        samples=samples,
        seed=seed,
        draws=draws,
        unreached=unreached,
    )
    return table.result(0)


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
    unreached: Unreached = "raise",
) -> Any:
    """The total effect TE(z -> z', Y, u) = Y(u | do(Z = z')) - Y(u | do(Z = z)) (equation 14).

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
        the second term is Y(u) (eq. 17): a population estimate is then ``E[Y(z')] - E[Y]``,
        the treated world against the factual one. With a reference it is ``E[Y(z') - Y(z)]``,
        the average treatment effect of z' against z.
    context : mapping, sequence of mappings, or None
        One context u (returns a value); a data set of contexts (returns their mean as an
        :class:`Estimate`); or ``None`` to average over ``samples`` draws from P(u).
    samples : int
        Number of Monte Carlo draws of contexts when ``context`` is ``None``. On an
        :class:`~scmnet.SCM` whose mechanisms broadcast, the draws are evaluated together,
        every world once per chunk of units (:mod:`scmnet.population`): 10^6 draws take a
        fraction of a second, with the numbers of one context at a time (same seed, same
        draws); a mechanism that does not broadcast is evaluated one context at a time.
    seed : int
        Seed of those draws, and of the ablation draws.
    draws : int, optional
        For random ablations in the treatment (:func:`~scmnet.resample`,
        :func:`~scmnet.noise`): how many values to average the effect over, per context
        (eq. 39). Default 15, the paper's number of resample patches.
    unreached : {"raise", "zero"}
        A treated site that is not an ancestor of the outcome has a zero effect by
        construction, which usually means the wrong site: by default the query is refused;
        ``"zero"`` computes the zero effect.

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
    NoCausalPath
        If a treated site is not an ancestor of the outcome (unless ``unreached="zero"``).
    InvalidContext
        If the context is incomplete.

    See Also
    --------
    direct_effect, indirect_effect, scmnet.do
    scmnet.effect_table : Many treatments in one call; this is its one-row case.

    Examples
    --------
    The self-repair toy (eq. 32) repairs a zero ablation exactly:

    >>> import scmnet as sn
    >>> m = sn.toys.self_repair()
    >>> sn.total_effect(m, {"x": 0.0}, "y", context={"u": 1.5})
    0.0
    >>> sn.total_effect(m, {"x": 0.0}, "y").value  # averaged over P(u)
    0.0

    Averaged over P(u), the average treatment effect needs a reference; without one, each unit
    is compared with its own natural value. The estimate says which contrast it is:

    >>> lm = sn.toys.linear_mediation(a=2.0, b=3.0, c=0.5)
    >>> ate = sn.total_effect(lm, {"x": 1.0}, "y", reference={"x": 0.0}, samples=100)
    >>> ate.contrast, round(ate.value, 6)
    ('E[y(x=1.0) - y(x=0.0)]', 6.5)
    >>> sn.total_effect(lm, {"x": 1.0}, "y", samples=100).contrast
    'E[y(x=1.0)] - E[y]'
    """
    return _one_row(
        "total",
        model,
        treatment,
        outcome,
        None,
        reference,
        context,
        samples,
        seed,
        draws,
        unreached,
    )


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
    unreached: Unreached = "raise",
) -> Any:
    """The direct effect DE(z -> z', Y, u) = Y(u | do(Z = z', M = m_z(u))) - Y(u | do(Z = z)).

    Eqs. 19-20: the treatment is applied while every mediator is held at its value under the
    reference, so the change reaches Y only along direct edges. This is Pearl's **pure natural
    direct effect** NDE_pure = Y(x1, M(x0)) - Y(x0), with x1 the treatment and x0 the reference:
    "the change in Y when X goes from x0 to x1 while the mediators are kept at the values they
    would attain under x0". Without a reference, x0 is the unit's natural value and M(x0) its
    factual mediators, so a population estimate is ``E[Y(x=x1, M)] - E[Y]``.
    :func:`scmnet.mediation` gives it with the other natural effects. For a residual network whose
    final-norm scale is a held variable, this is the unembedding impact (eqs. 24-28).

    Parameters
    ----------
    model, treatment, outcome, reference, context, samples, seed, draws, unreached
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
    scmnet.effect_table : Many treatments in one call; this is its one-row case.

    Examples
    --------
    >>> import scmnet as sn
    >>> m = sn.toys.self_repair()
    >>> sn.direct_effect(m, {"x": 3.0}, "y", context={"u": 1.0})  # x' - u
    2.0
    """
    _check_mediators(model, treatment, outcome, mediators)
    return _one_row(
        "direct",
        model,
        treatment,
        outcome,
        mediators,
        reference,
        context,
        samples,
        seed,
        draws,
        unreached,
    )


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
    unreached: Unreached = "raise",
) -> Any:
    """The indirect effect IE(z -> z', Y, u) = Y(u | do(Z = z, M = m~)) - Y(u | do(Z = z)).

    Eq. 29: the treatment stays at its reference while the mediators take the values m~ they
    would take under do(Z = z'), so the change reaches Y only through the mediators. This is
    Pearl's **pure natural indirect effect** NIE_pure = Y(x0, M(x1)) - Y(x0): "the change in Y
    when X is kept at x0 while the mediators change to the values they would attain under x1".
    With an interaction it is not TE - NDE_pure; that is the total natural indirect effect
    NIE_total = Y(x1) - Y(x1, M(x0)), which :func:`scmnet.mediation` gives.

    Parameters
    ----------
    model, treatment, outcome, reference, mediators, context, samples, seed, draws, unreached
        As for :func:`direct_effect`.

    Returns
    -------
    value or Estimate

    See Also
    --------
    total_effect, direct_effect
    scmnet.effect_table : Many treatments in one call; this is its one-row case.

    Examples
    --------
    >>> import scmnet as sn
    >>> m = sn.toys.self_repair()
    >>> sn.indirect_effect(m, {"x": 3.0}, "y", context={"u": 1.0})  # u
    1.0
    """
    _check_mediators(model, treatment, outcome, mediators)
    return _one_row(
        "indirect",
        model,
        treatment,
        outcome,
        mediators,
        reference,
        context,
        samples,
        seed,
        draws,
        unreached,
    )
