"""Path patching: a sender's effect on the outcome carried only through named receivers.

Path patching (Wang et al. 2022, "Interpretability in the wild", Section 3.1; Goldowsky-Dill
et al. 2023, "Localizing model behavior with path patching") asks how much of a sender's effect
reaches the outcome through chosen receivers -- e.g. one attention head's effect through the
queries of a later head. In the notation of the Hydra-effect paper (Section 3.1), with the
treatment do(Z = z') on the sender, the receivers R, the frozen variables F and a context u,
it runs three worlds:

1. the **reference** world do(Z = z) (by default the natural run, eq. 17), giving Y(u | z) and
   the frozen variables' values f(u);
2. the **sender** world do(Z = z', F = f(u)): the sender changes while F is held, and the
   receivers take the values r~ = R(u | z', F = f(u));
3. the **receiver** world do(Z = z, R = r~): only the receivers carry the change to Y::

       PP(z -> z', Y, u; R, F) = Y(u | do(Z = z, R = r~)) - Y(u | do(Z = z))

Without frozen variables this is the indirect effect through the receivers (eq. 29 with the
mediators M = R); freezing every other variable keeps only the edges Z -> R, and freezing the
other heads of a transformer (not its MLPs and norms) is the original recipe. Freezing a
variable the sender's change must cross blocks that path, so the effect is restricted to the
paths that avoid F. Every row of a query is one sender, and the worlds of all rows of a context
run as batches (:meth:`~scmnet.CausalModel.evaluate_many`), so sweeping every head as a sender
costs three batched passes.

Examples
--------
In the linear mediation model x -> m -> y (with x -> y), the change of x reaches y through m
with weight a * b; freezing nothing, that is the indirect effect:

>>> import scmnet as sn
>>> m = sn.toys.linear_mediation(a=2.0, b=3.0, c=0.5)
>>> u = {"u_x": 1.0, "u_m": 0.0, "u_y": 0.0}
>>> sn.path_patching(m, [{"x": 2.0}], "y", receivers=["m"], context=u).values.tolist()
[6.0]
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from scmnet.ablations import SiteValues
from scmnet.errors import InvalidIntervention, unknown_node
from scmnet.interventions import Interventions, Set, Site, normalize
from scmnet.model import CausalModel, Context, check_batching, output_names
from scmnet.outcome import OutcomeLike, as_outcome
from scmnet.query import (
    Levels,
    TreatmentLike,
    Worlds,
    check_treatments,
    distinct_worlds,
    hold_values,
    row_references,
    run_query,
    tabulate,
    world_levels,
)
from scmnet.reach import Unreached, check_reaches
from scmnet.results import EffectTable

__all__ = ["path_patching"]

Receiver = str | Site
"""A receiver: a variable, or a :class:`~scmnet.Site` (a slice of one, e.g. one head's query)."""


def _receivers(
    model: CausalModel, receivers: Sequence[Receiver]
) -> tuple[tuple[Receiver, ...], Interventions]:
    """The receivers, and a placeholder intervention on them (validated against the model)."""
    if isinstance(receivers, str | Site) or not isinstance(receivers, Sequence) or not receivers:
        raise InvalidIntervention(
            f"receivers must be a non-empty sequence of variables or sites (e.g. ['m'] or "
            f"[sn.Site('layer.q', index=(..., slice(0, 8)))]), got {receivers!r}"
        )
    placeholder = normalize({r: Set(0.0) for r in receivers})
    model.intervene(placeholder)  # validates the nodes
    return tuple(receivers), placeholder


def _frozen(
    model: CausalModel,
    freeze: Collection[str] | None,
    rows: Sequence[Interventions],
    receivers: Sequence[str],
    outcome: Sequence[str],
) -> tuple[tuple[str, ...], ...]:
    """Each row's frozen variables: ``freeze`` less the row's own treated variables."""
    if freeze is None:
        return tuple(() for _ in rows)
    if isinstance(freeze, str):
        raise InvalidIntervention(
            f"freeze must be a collection of variable names, got the string {freeze!r}; "
            f"write [{freeze!r}]"
        )
    names = tuple(dict.fromkeys(freeze))
    endogenous = set(model.endogenous)
    for v in names:
        if v not in endogenous:
            raise unknown_node(v, model.endogenous, what="endogenous variables to freeze")
        if v in receivers or v in outcome:
            raise InvalidIntervention(
                f"{v!r} is a receiver or read by the outcome and cannot be frozen: a frozen "
                f"receiver would carry no change; freeze other variables"
            )
    return tuple(tuple(v for v in names if v not in iv.nodes) for iv in rows)


def path_patching(
    model: CausalModel,
    treatments: Sequence[TreatmentLike],
    outcome: OutcomeLike,
    *,
    receivers: Sequence[Receiver],
    freeze: Collection[str] | None = None,
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
    """Each sender's effect on the outcome carried only through ``receivers`` (see the module).

    Parameters
    ----------
    model : CausalModel
        An :class:`~scmnet.SCM` or a traced network.
    treatments : sequence of mappings
        The senders' treatments do(Z_r = z'_r), one row each (as for
        :func:`~scmnet.effect_table`).
    outcome : str, Outcome or callable
        Y.
    receivers : sequence of str or Site
        R: the variables (or sites of them) through which the change may reach Y.
    freeze : collection of str, optional
        F: variables held at their reference values in the sender world (a row's own treated
        variables never are). Default: none, which makes each row the indirect effect
        through the receivers.
    reference, context, samples, seed, draws, chunk, memory, values
        As for :func:`~scmnet.effect_table`.
    unreached : {"raise", "zero"}
        A sender from which no directed path leads to a receiver, or a receiver from which
        none leads to the outcome, has a zero effect by construction: by default the query is
        refused (:class:`~scmnet.NoCausalPath`); ``"zero"`` computes it.

    Returns
    -------
    EffectTable
        ``kind`` is ``"path"``; ``table.held[r]`` names the receivers; ``table.treated`` is Y
        in each receiver world and ``table.reference`` in the reference world.

    Raises
    ------
    InvalidIntervention
        If ``receivers`` is empty or names an unknown or exogenous node, or ``freeze`` names
        a receiver, the outcome's variables or a non-variable.
    NoCausalPath
        If a sender does not reach a receiver, or a receiver the outcome.

    See Also
    --------
    scmnet.indirect_effect : The effect through mediators, without frozen variables.
    scmnet.path_specific_effect : The effect along chosen edges.

    Examples
    --------
    The erasure toy (eq. 31: x = u, f = -x, y = x + f): through f alone, a change of x from
    its natural value u = 2 carries -(x' - 2):

    >>> import scmnet as sn
    >>> m = sn.toys.erasure()
    >>> t = sn.path_patching(m, [{"x": 0.0}, {"x": 5.0}], "y", receivers=["f"],
    ...                      context={"u": 2.0})
    >>> t.values.tolist(), t.kind, t.held
    ([2.0, -3.0], 'path', (('f',), ('f',)))
    """
    check_batching(chunk, memory)
    rows = check_treatments(model, treatments)
    refs = row_references(rows, reference)
    y = as_outcome(model, outcome)
    chosen, placeholder = _receivers(model, receivers)
    names = output_names(chosen)
    check_reaches(model, rows, names, unreached, label=f"receivers {list(names)!r}")
    check_reaches(model, [placeholder], y.variables, unreached, role="receivers")
    frozen = _frozen(model, freeze, rows, names, y.variables)

    def per_context(
        u: Context, which: list[int], treated: list[Interventions], base: list[Interventions]
    ) -> Levels:
        many = Worlds(model, u, chunk, memory)
        distinct, world = distinct_worlds(base)
        union = tuple(dict.fromkeys(v for r in which for v in frozen[r]))
        before, reference_values = world_levels(many, distinct, y, union)
        senders = [
            iv.merged(hold_values(reference_values[w], frozen[r]))
            for iv, w, r in zip(treated, world, which, strict=True)
        ]
        found = many(senders, chosen)
        patched = [distinct[w].merged(_patch(r, chosen)) for r, w in zip(found, world, strict=True)]
        after, _ = world_levels(many, patched, y)
        return [(a, before[w]) for a, w in zip(after, world, strict=True)]

    held = tuple(tuple(str(r) for r in chosen) for _ in rows)
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
        finish=lambda found: tabulate(found, "path", y.label, rows, refs, held),
    )


def _patch(found: Any, receivers: Sequence[Receiver]) -> Interventions:
    """Hard interventions setting each receiver to its value in the sender world."""
    return normalize({r: Set(found[r]) for r in receivers})
