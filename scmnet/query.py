"""The effect query: many treatments against one outcome, in one call.

:func:`effect_table` is where every effect is computed. Given treatments do(Z_r = z'_r), an
outcome Y and the kind of effect, it returns one row per treatment:

* **total** (Definition 3.2, eq. 14): ``Y(u | do(Z_r = z'_r)) - Y(u | do(Z_r = z_r))``;
* **direct** (Definition 3.3, eqs. 19-20): the treatment applied while the held variables M_r
  keep their values under the reference, ``Y(u | do(Z_r = z'_r, M_r = m_z(u))) - Y(u | do(Z_r =
  z_r))``;
* **indirect** (Definition 3.4, eq. 29): the treatment at its reference while M_r takes the
  values it has under the treatment, ``Y(u | do(Z_r = z_r, M_r = m~)) - Y(u | do(Z_r = z_r))``.

:func:`~scmnet.total_effect`, :func:`~scmnet.direct_effect` and :func:`~scmnet.indirect_effect`
are its one-row case. The reference z defaults to the natural value z(u) (eq. 17), so that the
second term is Y(u); for that reference, M_r is held at the paper's m(u).

How it runs. In each context, every row's interventions -- and, for random ablations
(:func:`~scmnet.resample`, :func:`~scmnet.noise`), every draw of the ablation value (eq. 39) --
go to the model in **one** :meth:`~scmnet.CausalModel.evaluate_many` call per stage (one stage
for total effects; the reference world, then the held-fixed world, for direct and indirect
ones). A traced network evaluates such a call as the rows of one batched execution of the
graph, recomputing only what the interventions change
(:mod:`scmnet.tracing.engine.batched`); a plain :class:`~scmnet.SCM` loops over the sets. Over a
population (``samples=N`` draws, or contexts that stack), an :class:`~scmnet.SCM` evaluates the
contexts themselves at once: each stage runs once per chunk of units, on arrays
(:mod:`scmnet.population`), with the same numbers as one context at a time. Rows draw their
ablation values from the same random streams (draw j of every row uses the generator seeded by
``(seed, context, j)``), so the rows of one draw compare like with like, and a row's numbers do
not depend on which other rows are in the table.

Examples
--------
The erasure motif of Section 3.3 (eq. 31), in the context u = 2, for three treatment values:

>>> import scmnet as sn
>>> m = sn.toys.erasure()
>>> treatments = [{"x": 0.0}, {"x": 1.0}, {"x": 5.0}]
>>> u = {"u": 2.0}
>>> sn.effect_table(m, treatments, "y", context=u).values.tolist()
[0.0, 0.0, 0.0]
>>> sn.effect_table(m, treatments, "y", kind="direct", context=u).values.tolist()
[-2.0, -1.0, 3.0]
>>> sn.effect_table(m, treatments, "y", kind="indirect", context=u).values.tolist()
[2.0, 1.0, -3.0]
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from scmnet import _values
from scmnet.ablations import Resolvable, SiteValues, resolve
from scmnet.errors import (
    InvalidArgument,
    InvalidContext,
    InvalidIntervention,
    InvalidOutcome,
    unknown_node,
)
from scmnet.interventions import Interventions, Set, Site, normalize
from scmnet.model import CausalModel, CausalModelBase, Context, Output, check_batching
from scmnet.outcome import Outcome, OutcomeLike, as_outcome
from scmnet.population import UnitSummary, run_units, units_of
from scmnet.reach import Unreached, check_reaches
from scmnet.results import EffectKind, EffectTable, Estimate, plain_value
from scmnet.units import UnitBatching

#: Ablation draws averaged per context for random ablations (Section 2.4: 15 patches).
DEFAULT_DRAWS = 15

__all__ = [
    "DEFAULT_DRAWS",
    "Levels",
    "RowSummary",
    "TreatmentLike",
    "Worlds",
    "check_reference",
    "check_treatment",
    "check_treatments",
    "distinct_worlds",
    "effect_table",
    "hold_values",
    "row_references",
    "run_query",
    "tabulate",
    "world_levels",
]

TreatmentLike = Interventions | Mapping[Any, Any]
"""One treatment: a mapping from node names or :class:`~scmnet.Site` objects to values or
rules, or an :class:`~scmnet.Interventions`."""


def effect_table(
    model: CausalModel,
    treatments: Sequence[TreatmentLike],
    outcome: OutcomeLike,
    *,
    kind: EffectKind = "total",
    hold: Collection[str] | None = None,
    reference: TreatmentLike | Sequence[TreatmentLike] | None = None,
    context: Context | Sequence[Context] | None = None,
    samples: int = 1000,
    seed: int = 0,
    draws: int | None = None,
    chunk: int | None = None,
    memory: int | None = None,
    values: SiteValues | None = None,
    unreached: Unreached = "raise",
) -> EffectTable:
    """The effects of many treatments on one outcome, one row per treatment, in one query.

    Parameters
    ----------
    model : CausalModel
        An :class:`~scmnet.SCM` or a traced network.
    treatments : sequence of mappings
        The treatments do(Z_r = z'_r): each a mapping from node names or
        :class:`~scmnet.Site` objects to values or rules (:func:`~scmnet.zero`,
        :func:`~scmnet.resample`, :func:`~scmnet.shift`, ...).
    outcome : str, Outcome or callable
        Y: a variable name, or a function of variables.
    kind : {"total", "direct", "indirect"}
        Which effect: eq. 14, eqs. 19-20 or eq. 29.
    hold : collection of str, optional
        For direct and indirect effects, the variables M held fixed (the mediators). Default:
        every endogenous variable that is not the row's treatment and not read by the outcome
        (``M = V \\ {Z, Y}``, as in the paper). A row's own treated variables are never held,
        so one ``hold`` serves every row (e.g. every layer's output, each layer ablated in
        turn).
    reference : mapping, or sequence of mappings, optional
        The reference do(Z = z): one mapping for every row (it must set the same sites as each
        treatment), or one per row. Default: the natural value z(u) (eq. 17).
    context : mapping, sequence of mappings, or None
        One context u; a data set of contexts (rows are their means); or ``None`` to average
        over ``samples`` draws from P(u).
    samples : int
        Number of Monte Carlo draws of contexts when ``context`` is ``None``. On an
        :class:`~scmnet.SCM` the draws (and a data set of contexts that stack) are evaluated
        as arrays, every world once per chunk of units (:mod:`scmnet.population`), where the
        mechanisms broadcast; otherwise one context at a time. Both give the same numbers;
        ``table.batching`` says which ran, and why.
    seed : int
        Seed of those draws, and of the ablation draws.
    draws : int, optional
        For random ablations (:func:`~scmnet.resample`, :func:`~scmnet.noise`): how many values
        each row averages its effect over, per context (eq. 39). Default 15, the paper's number
        of resample patches.
    chunk : int, optional
        At most this many intervention sets per batched execution (bounds memory on traced
        networks, whose batch holds ``chunk`` copies of every recomputed activation). Default:
        all at once.
    memory : int, optional
        A budget in bytes for the activations one batched execution holds at once on a
        traced network: a first chunk measures what a row holds, and the rest are cut to fit
        (see :meth:`~scmnet.TracedModel.evaluate_many`). Default: no budget. On an
        :class:`~scmnet.SCM` averaging over a population, the budget of one chunk of units
        (default :data:`scmnet.population.DEFAULT_MEMORY`, 64 MiB).
    values : SiteValues, optional
        Values of sites in other contexts that are already known -- a sweep's clean pass over
        its data set, recorded with :meth:`SiteValues.record` -- from which
        :func:`~scmnet.mean`, :func:`~scmnet.resample` and :func:`~scmnet.patch` read their
        ablation values instead of running those contexts again. Pass the same memo to
        several queries to run each source context once for all of them.
    unreached : {"raise", "zero"}
        A treatment's site that is not an ancestor of the outcome in the causal graph has a
        zero effect by construction, which usually means the wrong site: by default the query
        is refused (:class:`~scmnet.NoCausalPath`); ``"zero"`` computes the zero effect.

    Returns
    -------
    EffectTable
        ``table.values`` has shape ``(len(treatments), *outcome shape)``; ``table.treated``
        and ``table.reference`` are the outcome's values in the treated and reference worlds
        (``values`` is their difference); ``table.rows()`` is the tidy form;
        ``table.result(r)`` is row ``r`` as :func:`~scmnet.total_effect` (or the
        direct/indirect operator) returns it; ``table.batching`` says how a population's
        units ran on an SCM (vectorised, or one at a time and why).

    Raises
    ------
    NodeNotFound
        If a treatment, ``hold`` or the outcome names an unknown node.
    InvalidIntervention
        If a treatment is empty or names an exogenous variable, a reference sets other sites
        than its treatment or is random, or ``draws`` is not a positive int.
    NoCausalPath
        If a treatment's site is not an ancestor of the outcome (unless ``unreached="zero"``).
    InvalidOutcome
        If ``hold`` holds a variable the outcome reads.
    InvalidArgument
        If ``kind`` or ``chunk`` is not valid, or ``treatments`` is not a sequence.
    InvalidContext
        If a context is incomplete or the sequence of contexts is empty.

    See Also
    --------
    scmnet.total_effect, scmnet.direct_effect, scmnet.indirect_effect

    Examples
    --------
    Direct effects of every variable of the linear mediation model on y, holding the others
    (eqs. 19-20): the coefficient of each direct edge times the change.

    >>> import scmnet as sn
    >>> m = sn.toys.linear_mediation(a=2.0, b=3.0, c=0.5)
    >>> u = {"u_x": 1.0, "u_m": 0.0, "u_y": 0.0}
    >>> t = sn.effect_table(m, [{"x": 0.0}, {"m": 0.0}], "y", kind="direct", context=u)
    >>> t.values.tolist(), t.held
    ([-0.5, -6.0], (('m',), ('x',)))

    Random ablations average over draws (eq. 39), with a standard error:

    >>> t = sn.effect_table(m, [{"x": sn.resample()}], "y", context=u, draws=4, seed=0)
    >>> t.draws, t.stderr.shape
    ((4,), (1,))
    """
    if kind not in _STAGES:
        raise InvalidArgument(
            f"kind must be one of {', '.join(map(repr, _STAGES))}, got {kind!r}; for path "
            f"patching through receivers, use sn.path_patching"
        )
    check_batching(chunk, memory)
    rows = check_treatments(model, treatments)
    refs = row_references(rows, reference)
    y = as_outcome(model, outcome)
    check_reaches(model, rows, y.variables, unreached, label=repr(y.label))
    held = _held(model, rows, y, hold) if kind != "total" else tuple(() for _ in rows)
    stage = _STAGES[kind]

    def per_context(
        u: Context, which: list[int], treated: list[Interventions], base: list[Interventions]
    ) -> Levels:
        return stage(Worlds(model, u, chunk, memory), treated, base, y, [held[r] for r in which])

    return run_query(
        per_context,
        model,
        rows,
        refs,
        context=context,
        samples=samples,
        seed=seed,
        draws=draws,
        values=values,
        memory=memory,
        finish=lambda found: tabulate(found, kind, y.label, rows, refs, held),
    )


def tabulate(
    found: RowSummary,
    kind: EffectKind,
    outcome: str,
    rows: Sequence[Interventions],
    refs: Sequence[Interventions],
    held: tuple[tuple[str, ...], ...],
) -> EffectTable:
    """The :class:`EffectTable` of what :func:`run_query` found for ``rows``."""
    return EffectTable(
        kind=kind,
        outcome=outcome,
        treatments=tuple(rows),
        references=tuple(refs),
        held=held,
        row_values=tuple(found.values),
        row_stderr=tuple(found.errors),
        contexts=found.contexts,
        draws=tuple(found.draws),
        seed=found.seed,
        population=found.population,
        row_treated=tuple(found.treated),
        row_reference=tuple(found.reference),
        batching=found.batching,
    )


# -- the stages of each kind of effect ------------------------------------------------------------


class Worlds:
    """``evaluate_many`` in one context, passing ``chunk`` and ``memory`` only where asked."""

    def __init__(
        self, model: CausalModel, context: Context, chunk: int | None, memory: int | None = None
    ) -> None:
        self.model, self.context = model, context
        # models that predate these limits in the protocol work too
        self.limits = {k: v for k, v in (("chunk", chunk), ("memory", memory)) if v is not None}

    def __call__(self, sets: Sequence[Interventions], outputs: Collection[Output]) -> list[Any]:
        if not sets:
            return []
        return self.model.evaluate_many(self.context, list(sets), outputs=outputs, **self.limits)

    def stacked(self, sets: Sequence[Interventions], outputs: Collection[Output]) -> dict[Any, Any]:
        """Each output's values in every world of ``sets``, stacked along a leading axis.

        A model with ``evaluate_stacked`` (a traced network) reads them straight from the
        batch that computed them; any other model stacks its per-world results.
        """
        stacked = getattr(self.model, "evaluate_stacked", None)
        if stacked is not None:
            found: dict[Any, Any] = stacked(
                self.context, list(sets), outputs=outputs, **self.limits
            )
            return found
        results = self(sets, outputs)
        return {o: _values.stack([r[o] for r in results]) for o in outputs}


def world_levels(
    many: Worlds, sets: Sequence[Interventions], y: Outcome, extra: Sequence[str] = ()
) -> tuple[list[Any], list[Mapping[Any, Any]]]:
    """Y in each world of ``sets``, and each world's values of ``extra`` (held variables).

    A batched outcome reads every world at once (:meth:`Outcome.over_runs`); a model that
    plans outcomes (a traced network folds linear readouts) may read it elsewhere.
    """
    if not sets:
        return [], []
    plan = getattr(many.model, "plan_outcome", None)
    if plan is not None:  # e.g. a linear readout read before the layer that computes it
        y = plan(y, many.context, sets)
    if not y.batched:
        results = many(sets, (*y.of, *extra))
        return [y(r) for r in results], results
    if extra:
        results = many(sets, (*y.of, *extra))
        stacked = {o: _values.stack([r[o] for r in results]) for o in y.of}
    else:
        results, stacked = [{} for _ in sets], many.stacked(sets, y.of)
    out = y.over_runs(stacked, runs=len(sets))
    return [out[i] for i in range(len(sets))], results


def distinct_worlds(sets: Sequence[Interventions]) -> tuple[list[Interventions], list[int]]:
    """The distinct sets (by identity) and, for each entry, the index of its distinct set."""
    distinct: list[Interventions] = []
    where: dict[int, int] = {}
    index = []
    for s in sets:
        if id(s) not in where:
            where[id(s)] = len(distinct)
            distinct.append(s)
        index.append(where[id(s)])
    return distinct, index


def _reference_worlds(
    base: Sequence[Interventions], held: Sequence[tuple[str, ...]]
) -> tuple[list[Interventions], list[int], tuple[str, ...]]:
    """The distinct reference worlds, each row's world, and every variable some row holds."""
    refs, which = distinct_worlds(base)
    return refs, which, tuple(dict.fromkeys(v for h in held for v in h))


def hold_values(values: Mapping[str, Any], nodes: Sequence[str]) -> Interventions:
    """Hard interventions that hold ``nodes`` at their ``values`` (a world's mediators)."""
    return normalize({v: Set(values[v]) for v in nodes})


Levels = list[tuple[Any, Any]]
"""Y in each row's treated world and in its reference world, one pair per row."""


def _total(
    many: Worlds,
    treated: list[Interventions],
    base: list[Interventions],
    y: Outcome,
    held: list[tuple[str, ...]],
) -> Levels:
    refs, which = distinct_worlds(base)
    ys, _ = world_levels(many, [*refs, *treated], y)
    before, after = ys[: len(refs)], ys[len(refs) :]
    return [(a, before[w]) for a, w in zip(after, which, strict=True)]


def _direct(
    many: Worlds,
    treated: list[Interventions],
    base: list[Interventions],
    y: Outcome,
    held: list[tuple[str, ...]],
) -> Levels:
    refs, which, union = _reference_worlds(base, held)
    before, worlds = world_levels(many, refs, y, union)
    fixed = [
        iv.merged(hold_values(worlds[w], h)) for iv, w, h in zip(treated, which, held, strict=True)
    ]
    after, _ = world_levels(many, fixed, y)
    return [(a, before[w]) for a, w in zip(after, which, strict=True)]


def _indirect(
    many: Worlds,
    treated: list[Interventions],
    base: list[Interventions],
    y: Outcome,
    held: list[tuple[str, ...]],
) -> Levels:
    refs, which, union = _reference_worlds(base, held)
    ys, worlds = world_levels(many, [*refs, *treated], y, union)
    before, moved = ys[: len(refs)], worlds[len(refs) :]
    fixed = [refs[w].merged(hold_values(m, h)) for m, w, h in zip(moved, which, held, strict=True)]
    after, _ = world_levels(many, fixed, y)
    return [(a, before[w]) for a, w in zip(after, which, strict=True)]


_Stage = Callable[
    [Worlds, list[Interventions], list[Interventions], Outcome, list[tuple[str, ...]]], Levels
]
_STAGES: dict[str, _Stage] = {"total": _total, "direct": _direct, "indirect": _indirect}


# -- the arguments ---------------------------------------------------------------------------------


def check_treatment(
    model: CausalModel, treatment: TreatmentLike, row: int | None = None
) -> Interventions:
    """A treatment normalised and validated against ``model`` (nodes, exogenous variables)."""
    iv = _normalized(treatment, row)
    model.intervene(iv)  # validates nodes; the result is discarded
    return iv


def _normalized(treatment: TreatmentLike, row: int | None) -> Interventions:
    """``treatment`` normalised, refused if empty (naming ``row``, where there are several)."""
    iv = normalize(treatment)
    if not iv:
        which = "the treatment" if row is None else f"treatment {row}"
        raise InvalidIntervention(f"{which} is empty; name at least one node and its value")
    return iv


def check_treatments(
    model: CausalModel, treatments: Sequence[TreatmentLike]
) -> list[Interventions]:
    """The rows' treatments normalised and validated (:func:`check_treatment`), or an error
    naming the row."""
    if isinstance(treatments, Mapping | Interventions) or not isinstance(treatments, Sequence):
        raise InvalidArgument(
            f"treatments must be a sequence of treatments (e.g. [{{'x': 0.0}}, {{'x': 1.0}}]), "
            f"got {type(treatments).__name__}; for one treatment, wrap it in a list or use "
            f"sn.total_effect"
        )
    if not treatments:
        raise InvalidArgument("treatments is empty; give at least one treatment")
    many = len(treatments) > 1
    found = [_normalized(t, r if many else None) for r, t in enumerate(treatments)]
    # the base class's check reads sites and kinds of rule only: rows alike are checked once
    alike = getattr(type(model), "intervene", None) is CausalModelBase.intervene
    checked: set[tuple[tuple[Site, type], ...]] = set()
    for iv in found:
        kinds = tuple((site, type(rule)) for site, rule in iv)
        if kinds not in checked:
            model.intervene(iv)  # validates nodes; the result is discarded
            if alike:
                checked.add(kinds)
    return found


def check_reference(treatment: Interventions, reference: TreatmentLike | None) -> Interventions:
    """The reference of ``treatment``: empty for the natural value, else on the same sites."""
    if reference is None:
        return Interventions()
    ref = normalize(reference)
    if set(ref.sites) != set(treatment.sites):
        raise InvalidIntervention(
            f"the reference must set the same sites as the treatment: treatment sets "
            f"{[str(s) for s in treatment.sites]}, reference sets {[str(s) for s in ref.sites]}"
        )
    return ref


def row_references(
    rows: list[Interventions], reference: TreatmentLike | Sequence[TreatmentLike] | None
) -> list[Interventions]:
    """Each row's reference: one for every row, or one per row (:func:`check_reference`)."""
    if reference is None or isinstance(reference, Mapping | Interventions):
        shared = None if reference is None else normalize(reference)
        checked = [check_reference(iv, shared) for iv in rows]
        # one object for equal references, so that each distinct reference world runs once
        first: dict[frozenset[Any], Interventions] = {}
        return [first.setdefault(frozenset(r.sites), r) for r in checked]
    if not isinstance(reference, Sequence) or isinstance(reference, str):
        raise InvalidIntervention(
            f"reference must be a mapping, a sequence of mappings (one per treatment) or None, "
            f"got {type(reference).__name__}"
        )
    if len(reference) != len(rows):
        raise InvalidIntervention(
            f"got {len(reference)} references for {len(rows)} treatments; give one reference "
            f"per treatment, or one mapping for all"
        )
    return [check_reference(iv, ref) for iv, ref in zip(rows, reference, strict=True)]


def _held(
    model: CausalModel, rows: list[Interventions], y: Outcome, hold: Collection[str] | None
) -> tuple[tuple[str, ...], ...]:
    if hold is None:
        return tuple(
            tuple(v for v in model.endogenous if v not in iv.nodes and v not in y.variables)
            for iv in rows
        )
    if isinstance(hold, str):
        raise InvalidIntervention(
            f"hold must be a collection of node names, got the string {hold!r}; write [{hold!r}]"
        )
    names = list(dict.fromkeys(hold))
    for v in names:
        if v not in model.endogenous:
            raise unknown_node(v, model.endogenous, what="endogenous nodes")
        if v in y.variables:
            raise InvalidOutcome(
                f"{v!r} is read by the outcome and cannot also be held; hold other variables"
            )
    return tuple(tuple(v for v in names if v not in iv.nodes) for iv in rows)


# -- contexts and draws ----------------------------------------------------------------------------


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


def _resolve_context_free(
    model: CausalModel, interventions: Interventions, context: Context, memo: SiteValues
) -> Interventions:
    if not any(isinstance(rule, Resolvable) and rule.context_free for _, rule in interventions):
        return interventions
    items = []
    for site, rule in interventions:
        if isinstance(rule, Resolvable) and rule.context_free:
            rule = Set(rule.value(model, site, context, np.random.default_rng(0), memo))
        items.append((site, rule))
    return Interventions(tuple(items))


def _resolvable(interventions: Interventions) -> bool:
    """Whether any rule is still to be resolved in each context (else the row is its own
    resolution, and draws no generator)."""
    return any(isinstance(rule, Resolvable) for _, rule in interventions)


PerContext = Callable[[Context, list[int], list[Interventions], list[Interventions]], Levels]
R = TypeVar("R")


@dataclass(frozen=True)
class RowSummary:
    """What :func:`run_query` found, one entry per row (averaged over draws, then contexts).

    Attributes
    ----------
    values, errors : list
        Each row's effect and its standard error.
    treated, reference : list
        Each row's mean outcome in its treated world and in its reference world (``values``
        is their difference).
    contexts : int
        How many contexts were evaluated.
    draws : list of int
        How many ablation values each row averaged.
    seed : int or None
        The seed of what was drawn (contexts from P(u), random ablation values).
    population : bool
        Whether the rows are averages over contexts.
    batching : UnitBatching or None
        How a population's units ran on a model that evaluates units (an SCM): vectorised,
        or one at a time and why; ``None`` otherwise.
    """

    values: list[Any]
    errors: list[Any]
    treated: list[Any]
    reference: list[Any]
    contexts: int
    draws: list[int]
    seed: int | None
    population: bool
    batching: UnitBatching | None = None

    def result(self, row: int, contrast: str = "") -> Any:
        """Row ``row`` as an effect operator returns it: an :class:`Estimate` of ``contrast``
        (with how its units ran) for a population, the plain value otherwise."""
        if not self.population:
            return plain_value(self.values[row])
        return Estimate(
            self.values[row],
            self.errors[row],
            self.contexts,
            self.seed,
            contrast,
            self.batching,
        )


def run_query(
    per_context: PerContext,
    model: CausalModel,
    rows: list[Interventions],
    refs: list[Interventions],
    *,
    context: Context | Sequence[Context] | None,
    samples: int,
    seed: int,
    draws: int | None,
    finish: Callable[[RowSummary], R],
    values: SiteValues | None = None,
    memory: int | None = None,
) -> R:
    """Evaluate rows in every context and draw, and average (eq. 39, then over contexts).

    ``per_context(u, which, treated, base)`` returns the outcome in the world of each resolved
    treatment in ``treated`` (a draw of row ``which[n]``) and in the world of the matching
    reference in ``base``. ``finish`` builds the result from the :class:`RowSummary`.
    ``values`` is a memo of sites' values in other contexts that ablation values read
    (:class:`~scmnet.SiteValues`); by default one is made for the query. Over a population
    of units that the model evaluates at once (an SCM), deterministic rows run vectorised,
    chunked to ``memory`` bytes (:func:`scmnet.population.run_units`).
    """
    if draws is not None and (isinstance(draws, bool) or not isinstance(draws, int) or draws < 1):
        raise InvalidIntervention(f"draws must be a positive int, got {draws!r}")
    if any(_stochastic(ref) for ref in refs):
        raise InvalidIntervention(
            "the reference must be deterministic; put random ablations (noise, resample) in "
            "the treatment, whose effect is averaged over draws"
        )
    units, batching = None, None
    if not any(_stochastic(iv) for iv in rows):  # random ablations draw per context
        units, batching = units_of(model, context, samples, seed)
    if units is None:
        contexts, population, used_seed = _contexts(model, context, samples, seed)
        first = contexts[0]
    else:
        population, used_seed = True, seed if context is None else None
        first = units.unit(0)
    memo = values if values is not None else SiteValues(model)  # each source context runs once
    # Values that are the same in every context (mean, patch) are computed once.
    rows = [_resolve_context_free(model, iv, first, memo) for iv in rows]
    resolved_refs: dict[int, Interventions] = {}
    for ref in refs:
        if id(ref) not in resolved_refs:
            free = _resolve_context_free(model, ref, first, memo)
            resolved_refs[id(ref)] = resolve(model, free, first, values=memo)
    base_of = [resolved_refs[id(ref)] for ref in refs]
    ks = [(draws or DEFAULT_DRAWS) if _stochastic(iv) else 1 for iv in rows]
    pending = [_resolvable(iv) for iv in rows]
    if units is not None:
        vectorised = run_units(per_context, model, units, rows, base_of, memory=memory)
        if isinstance(vectorised, UnitSummary):
            return finish(_unit_summary(vectorised, units.n, len(rows), used_seed))
        batching = vectorised  # looped, and why
        contexts, _, _ = _contexts(model, context, samples, seed)
    if any(k > 1 for k in ks) and used_seed is None:
        used_seed = seed
    # each row's (effect, treated level, reference level) in each context, and its draws' effects
    per_row: list[list[tuple[Any, Any, Any]]] = [[] for _ in rows]
    draws_of: list[list[Any]] = [[] for _ in rows]  # each row's draws in the last context
    for i, u in enumerate(contexts):
        which: list[int] = []
        treated: list[Interventions] = []
        for j in range(max(ks)):  # draw j of every row from the same stream
            for r, iv in enumerate(rows):
                if j < ks[r]:
                    which.append(r)
                    if not pending[r]:
                        treated.append(iv)
                        continue
                    rng = np.random.default_rng([seed, i, j])
                    treated.append(resolve(model, iv, u, rng, values=memo))
        levels = per_context(u, which, treated, [base_of[r] for r in which])
        by_row: list[list[tuple[Any, Any]]] = [[] for _ in rows]
        for r, pair in zip(which, levels, strict=True):
            by_row[r].append(pair)
        for r, found in enumerate(by_row):
            effects = [a - b for a, b in found]
            if len(found) == 1:
                per_row[r].append((effects[0], *found[0]))
            else:
                after = _values.mean([a for a, _ in found])
                per_row[r].append((_values.mean(effects), after, found[0][1]))
            draws_of[r] = effects
    summary = RowSummary([], [], [], [], len(contexts), ks, used_seed, population, batching)
    for r in range(len(rows)):
        found_effects, after, before = zip(*per_row[r], strict=True)
        if population:
            summary.values.append(_values.mean(found_effects))
            summary.errors.append(_values.stderr(found_effects))
            summary.treated.append(_values.mean(after))
            summary.reference.append(_values.mean(before))
        else:
            summary.values.append(found_effects[0])
            summary.errors.append(  # an exact effect has no error; one random draw, an unknown one
                _values.stderr(draws_of[r])
                if _stochastic(rows[r])
                else _values.zeros_like(found_effects[0])
            )
            summary.treated.append(after[0])
            summary.reference.append(before[0])
    return finish(summary)


def _unit_summary(found: UnitSummary, n: int, rows: int, seed: int | None) -> RowSummary:
    return RowSummary(
        found.values,
        found.errors,
        found.treated,
        found.reference,
        n,
        [1] * rows,
        seed,
        True,
        found.batching,
    )
