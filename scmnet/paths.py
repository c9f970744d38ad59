"""Path-specific effects: a change allowed to flow only along chosen edges.

The total, direct and indirect effects (Section 3.1 of the Hydra-effect paper) differ only in
which paths from the treatment Z to the outcome Y may carry the change. A path-specific effect
names those paths by their edges. Two worlds are evaluated in the same context u: the
*reference* world, under do(Z = z), and the *active* world, where Z = z' and every other
variable V is computed by its mechanism from its parents' values -- the active value of a
parent P when the edge P -> V is allowed, its reference value otherwise::

    PSE(z -> z', Y, u; E) = Y_active(u) - Y_reference(u)

With every edge allowed this is the total effect (eq. 14); with only the edges Z -> Y, the
direct effect with every other variable held (eqs. 19-20); with every edge but those, the
indirect effect (eq. 29). In a linear model it is the change times the sum, over the directed
paths from Z to Y made only of allowed edges, of the products of edge weights.

An :class:`~scmnet.SCM` computes any edge set exactly. Any other causal model (a traced
network) computes the edge sets that holding variables can express -- the direct and indirect
effects among them: a variable that the change reaches along an allowed edge must not also
have to ignore it along a blocked one.

Examples
--------
>>> import scmnet as sn
>>> m = sn.toys.linear_mediation(a=2.0, b=3.0, c=0.5)
>>> u = {"u_x": 1.0, "u_m": 0.0, "u_y": 0.0}
>>> sn.path_specific_effect(m, {"x": 2.0}, "y", edges=[("x", "m"), ("m", "y")], context=u)
6.0
>>> sn.path_specific_effect(m, {"x": 2.0}, "y", edges=[("x", "y")], context=u)
0.5
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from scmnet.errors import InvalidIntervention, format_names
from scmnet.interventions import Interventions
from scmnet.model import CausalModel, Context
from scmnet.outcome import OutcomeLike, as_outcome
from scmnet.query import RowSummary, check_reference, check_treatment, hold_values, run_query
from scmnet.reach import Unreached, check_reaches
from scmnet.results import difference, potential_outcome, world_label
from scmnet.scm import SCM

__all__ = ["path_specific_effect"]

Edge = tuple[str, str]


def _edges(model: CausalModel, edges: Collection[Edge]) -> frozenset[Edge]:
    if isinstance(edges, str) or not all(
        isinstance(e, tuple | list) and len(e) == 2 for e in edges
    ):
        raise InvalidIntervention(
            f"edges must be a collection of (parent, child) pairs, got {edges!r}; e.g. "
            f"[('x', 'm'), ('m', 'y')]"
        )
    chosen = frozenset((str(p), str(c)) for p, c in edges)
    missing = sorted(e for e in chosen if not model.graph.has_edge(*e))
    if missing:
        raise InvalidIntervention(
            f"the causal graph has no edge {missing[0][0]!r} -> {missing[0][1]!r}; "
            f"path-specific effects follow edges of the graph, such as "
            f"{format_names(f'{p} -> {c}' for p, c in list(model.graph.edges)[:6])}"
        )
    return chosen


def _two_worlds(
    model: SCM, u: Context, active: Interventions, ref: Interventions, allowed: frozenset[Edge]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Values of the reference world and of the active world of an SCM (edge-based)."""
    reference = model.evaluate(u, ref)
    carried = model.interventions.merged(active)
    values: dict[str, Any] = dict(u)
    for var in model.endogenous:

        def natural(var: str = var) -> Any:
            inputs = dict(values)
            for p in model.parents(var):
                if (p, var) not in allowed and p in reference:
                    inputs[p] = reference[p]
            return model.run_mechanism(var, inputs)

        values[var] = carried.apply_to(var, natural)
    return reference, values


def _emulation(
    model: CausalModel, treated: frozenset[str], outcome: Sequence[str], allowed: frozenset[Edge]
) -> tuple[tuple[str, ...], bool]:
    """How holding variables reproduces the edge set on a model without mechanism access.

    Returns the variables the change reaches along allowed edges (computed in the active world
    with everything else held at its reference value) and whether the outcome reads the
    treatment's active value. Raises if some variable would need the active value of one
    parent and the reference value of another changed parent.
    """
    graph = model.graph
    changed: set[str] = set()
    frontier = list(treated)
    while frontier:
        v = frontier.pop()
        for c in graph.successors(v):
            if (v, c) in allowed and c not in changed and c not in treated and c not in outcome:
                changed.add(c)
                frontier.append(c)
    for v in sorted(changed):
        blocked = [
            p
            for p in graph.predecessors(v)
            if (p in changed or p in treated) and (p, v) not in allowed
        ]
        if blocked:
            raise InvalidIntervention(
                f"{v!r} receives the change along allowed edges but must ignore it from "
                f"{format_names(blocked)}; holding variables cannot express that on a "
                f"{type(model).__name__}: allow those edges too, or build the model as an sn.SCM"
            )
    reads_active: set[bool] = set()
    for y in outcome:
        for p in graph.predecessors(y):
            if p in changed and (p, y) not in allowed:
                raise InvalidIntervention(
                    f"the outcome {y!r} must ignore the change of {p!r}, which it also reaches "
                    f"along other edges; on a {type(model).__name__} allow {p!r} -> {y!r} or "
                    f"build the model as an sn.SCM"
                )
            if p in treated:
                reads_active.add((p, y) in allowed)
    if len(reads_active) > 1:
        raise InvalidIntervention(
            "the outcome's variables read the treatment along both allowed and blocked edges; "
            "split the outcome, or build the model as an sn.SCM"
        )
    ordered = tuple(v for v in model.endogenous if v in changed)
    return ordered, reads_active == {True}


def path_specific_effect(
    model: CausalModel,
    treatment: Mapping[Any, Any],
    outcome: OutcomeLike,
    *,
    edges: Collection[Edge],
    reference: Mapping[Any, Any] | None = None,
    context: Context | Sequence[Context] | None = None,
    samples: int = 1000,
    seed: int = 0,
    draws: int | None = None,
    unreached: Unreached = "raise",
) -> Any:
    """The effect of do(Z = z') on Y carried only along the given edges.

    Parameters
    ----------
    model, treatment, outcome, reference, context, samples, seed, draws, unreached
        As for :func:`~scmnet.total_effect`.
    edges : collection of (parent, child)
        The edges along which the change may flow; edges of the causal graph.

    Returns
    -------
    value or Estimate

    Raises
    ------
    InvalidIntervention
        If an edge is not in the graph, or (for a model that is not an :class:`~scmnet.SCM`)
        the edge set cannot be expressed by holding variables.

    See Also
    --------
    scmnet.total_effect, scmnet.direct_effect, scmnet.indirect_effect

    Examples
    --------
    The erasure motif (eq. 31): the path x -> y alone carries x' - u, the path through f
    carries u - x', and together they cancel.

    >>> import scmnet as sn
    >>> m = sn.toys.erasure()
    >>> [sn.path_specific_effect(m, {"x": 0.0}, "y", edges=e, context={"u": 2.0})
    ...  for e in ([("x", "y")], [("x", "f"), ("f", "y")], list(m.graph.edges))]
    [-2.0, 2.0, 0.0]
    """
    iv = check_treatment(model, treatment)
    ref = check_reference(iv, reference)
    y = as_outcome(model, outcome)
    check_reaches(model, [iv], y.variables, unreached, label=repr(y.label))
    allowed = _edges(model, edges)

    if isinstance(model, SCM):

        def one(u: Context, active: Interventions, base: Interventions) -> Any:
            before, after = _two_worlds(model, u, active, base, allowed)
            return y(after), y(before)

    else:
        changed, outcome_reads_active = _emulation(model, iv.nodes, y.variables, allowed)
        others = tuple(
            v
            for v in model.endogenous
            if v not in changed and v not in iv.nodes and v not in y.variables
        )

        def one(u: Context, active: Interventions, base: Interventions) -> Any:
            (before,) = model.evaluate_many(u, [base], outputs=(*y.of, *others))
            fixed = hold_values(before, others)
            (moved,) = model.evaluate_many(u, [active.merged(fixed)], outputs=changed)
            final = (active if outcome_reads_active else base).merged(fixed)
            (after,) = model.evaluate_many(
                u, [final.merged(hold_values(moved, changed))], outputs=y.of
            )
            return y(after), y(before)

    def per_context(
        u: Context, which: list[int], treated: list[Interventions], base: list[Interventions]
    ) -> list[tuple[Any, Any]]:
        return [one(u, t, b) for t, b in zip(treated, base, strict=True)]

    def finish(found: RowSummary) -> Any:
        if found.population:
            along = ", ".join(f"{a}->{b}" for a, b in sorted(allowed))
            treated = f"{world_label(iv)} along ({along})"
            text = difference(
                potential_outcome(y.label, treated),
                potential_outcome(y.label, world_label(ref)),
                natural=not ref,
            )
            return found.result(0, text)
        return found.result(0)

    return run_query(
        per_context,
        model,
        [iv],
        [ref],
        context=context,
        samples=samples,
        seed=seed,
        draws=draws,
        finish=finish,
    )
