"""``sn.effect_table``: many treatments against one outcome in one query.

Property tests first (random linear SCMs: every row equals a naive evaluation of its definition,
and the single-treatment operators), then known answers (the toys of Section 3.3), then parity on
a traced GPT written in plain PyTorch (the batched table equals a loop of single queries and the
eager model patched by hooks), then the tidy form, then errors.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import scmnet as sn
from scmnet.testing import assert_close
from tests.plain_models import TinyGPT
from tests.strategies import LinearCase, linear_scms, path_sum, reals

# -- a naive reference: each definition evaluated with sn.do and evaluate --------------------------


def naive(
    model: sn.SCM, kind: str, treatment: dict[str, float], y: str, u: dict[str, float]
) -> Any:
    """TE (eq. 14), DE (eqs. 19-20) or IE (eq. 29), natural reference, M = V \\ {Z, Y}."""
    clean = model.evaluate(u)
    treated = model.evaluate(u, treatment)
    mediators = [v for v in model.endogenous if v not in treatment and v != y]
    if kind == "total":
        return treated[y] - clean[y]
    if kind == "direct":
        held = {**treatment, **{v: clean[v] for v in mediators}}
        return model.evaluate(u, held)[y] - clean[y]
    held = {v: treated[v] for v in mediators}
    return model.evaluate(u, held)[y] - clean[y]


KINDS = ("total", "direct", "indirect")


@st.composite
def cases(draw: st.DrawFn) -> tuple[LinearCase, list[dict[str, float]], str]:
    case = draw(linear_scms(min_nodes=2, max_nodes=5))
    nodes = list(case.graph.nodes)
    y = draw(st.sampled_from(nodes))
    others = [v for v in nodes if v != y]
    treatments = draw(
        st.lists(
            st.dictionaries(st.sampled_from(others), reals, min_size=1, max_size=2),
            min_size=1,
            max_size=5,
        )
    )
    return case, treatments, y


@given(cases(), st.sampled_from(KINDS))
def test_rows_equal_the_definitions(
    case: tuple[LinearCase, list[dict[str, float]], str], kind: str
) -> None:
    lin, treatments, y = case
    table = sn.effect_table(
        lin.model, treatments, y, kind=kind, context=lin.context, unreached="zero"
    )  # type: ignore[arg-type]
    assert table.values.shape == (len(treatments),)
    for r, t in enumerate(treatments):
        assert_close(table.values[r], naive(lin.model, kind, t, y, lin.context))


@given(cases(), st.sampled_from(KINDS))
def test_rows_equal_the_single_treatment_operators(
    case: tuple[LinearCase, list[dict[str, float]], str], kind: str
) -> None:
    lin, treatments, y = case
    one = {"total": sn.total_effect, "direct": sn.direct_effect, "indirect": sn.indirect_effect}
    table = sn.effect_table(
        lin.model, treatments, y, kind=kind, context=lin.context, unreached="zero"
    )  # type: ignore[arg-type]
    for r, t in enumerate(treatments):
        assert table.result(r) == one[kind](lin.model, t, y, context=lin.context, unreached="zero")


@given(cases(), st.sampled_from(KINDS))
def test_levels_and_batched_outcomes(
    case: tuple[LinearCase, list[dict[str, float]], str], kind: str
) -> None:
    """treated - reference = the effect; a batched readout gives the run-by-run numbers."""
    lin, treatments, y = case
    table = sn.effect_table(
        lin.model, treatments, y, kind=kind, context=lin.context, unreached="zero"
    )  # type: ignore[arg-type]
    assert_close(table.treated - table.reference, table.values)
    clean = lin.model.evaluate(lin.context)[y]
    assert_close(table.reference, np.full(len(treatments), clean))
    twice = sn.Outcome((y,), lambda v: 2 * np.asarray(v), batched=True)
    batched = sn.effect_table(
        lin.model, treatments, twice, kind=kind, context=lin.context, unreached="zero"
    )  # type: ignore[arg-type]
    assert_close(batched.values, 2 * table.values)
    assert_close(batched.treated, 2 * table.treated)
    one = sn.total_effect(lin.model, treatments[0], twice, context=lin.context, unreached="zero")
    assert_close(
        one, 2 * sn.total_effect(lin.model, treatments[0], y, context=lin.context, unreached="zero")
    )


@given(linear_scms(min_nodes=2, max_nodes=5), st.data())
def test_linear_closed_forms(lin: LinearCase, data: st.DataObject) -> None:
    """TE = path sum, DE = direct edge weight, TE = DE + IE (no interactions), per unit change."""
    nodes = list(lin.graph.nodes)
    z, y = data.draw(st.sampled_from(nodes[:-1])), nodes[-1]
    clean = lin.model.evaluate(lin.context)[z]
    treatments = [{z: clean + 1.0}, {z: clean - 2.0}]
    te, de, ie = (
        sn.effect_table(
            lin.model, treatments, y, kind=k, context=lin.context, unreached="zero"
        ).values  # type: ignore[arg-type]
        for k in KINDS
    )
    change = np.array([1.0, -2.0])
    assert_close(te, change * path_sum(lin.graph, lin.weights, z, y), atol=1e-9)
    assert_close(de, change * lin.weights.get((z, y), 0.0), atol=1e-9)
    assert_close(te, de + ie, atol=1e-9)


def test_a_row_does_not_depend_on_the_other_rows() -> None:
    """Random ablations use the same stream per draw: a row alone equals the row in a table."""
    m = sn.toys.linear_mediation(a=2.0, b=3.0, c=0.5)
    treatments = [{"x": sn.resample()}, {"m": sn.resample()}, {"x": 1.0}]
    for kind in KINDS:
        table = sn.effect_table(m, treatments, "y", kind=kind, samples=20, seed=3, draws=4)  # type: ignore[arg-type]
        for r, t in enumerate(treatments):
            alone = sn.effect_table(m, [t], "y", kind=kind, samples=20, seed=3, draws=4)  # type: ignore[arg-type]
            assert table.row_values[r] == alone.row_values[0]
            assert table.row_stderr[r] == alone.row_stderr[0]
        assert table.draws == (4, 4, 1)


# -- known answers ---------------------------------------------------------------------------------


@given(st.floats(-5, 5), st.lists(st.floats(-5, 5), min_size=1, max_size=6))
def test_toy_tables(u: float, values: list[float]) -> None:
    """The erasure (eq. 31) and self-repair (eq. 32) identities, row by row."""
    treatments = [{"x": v} for v in values]
    ctx = {"u": u}
    erasure = sn.toys.erasure()
    x = np.array(values)
    assert_close(sn.effect_table(erasure, treatments, "y", context=ctx).values, 0 * x)
    assert_close(
        sn.effect_table(erasure, treatments, "y", kind="direct", context=ctx).values, x - u
    )
    assert_close(
        sn.effect_table(erasure, treatments, "y", kind="indirect", context=ctx).values, u - x
    )
    repair = sn.toys.self_repair()
    de = sn.effect_table(repair, treatments, "y", kind="direct", context=ctx).values
    assert_close(de, x - u)
    te = sn.effect_table(repair, [{"x": 0.0}], "y", context=ctx).values
    assert_close(te, np.zeros(1))


def test_population_rows_are_estimates() -> None:
    m = sn.toys.linear_mediation(a=2.0, b=3.0, c=0.5)
    table = sn.effect_table(m, [{"x": 1.0}, {"m": 0.0}], "y", samples=200, seed=1)
    assert table.population
    assert (table.contexts, table.seed) == (200, 1)
    est = table.result(0)
    assert isinstance(est, sn.Estimate)
    assert est == sn.total_effect(m, {"x": 1.0}, "y", samples=200, seed=1)
    assert table.stderr.shape == (2,)
    assert (table.stderr > 0).all()


def test_explicit_references_per_row() -> None:
    """With an explicit reference, DE(z -> z) = 0 and TE is linear in z' - z."""
    m = sn.toys.linear_mediation(a=2.0, b=3.0, c=0.5)
    u = {"u_x": 1.0, "u_m": 0.0, "u_y": 0.0}
    treatments = [{"x": 1.0}, {"x": 3.0}]
    shared = sn.effect_table(m, treatments, "y", reference={"x": 1.0}, context=u)
    assert shared.values.tolist() == [0.0, 13.0]
    per_row = sn.effect_table(m, treatments, "y", reference=[{"x": 0.0}, {"x": 2.0}], context=u)
    assert per_row.values.tolist() == [6.5, 6.5]


def test_hold_is_shared_and_excludes_each_rows_treatment() -> None:
    m = sn.toys.linear_mediation(a=2.0, b=3.0, c=0.5)
    u = {"u_x": 1.0, "u_m": 0.0, "u_y": 0.0}
    table = sn.effect_table(
        m, [{"x": 0.0}, {"m": 0.0}], "y", kind="direct", hold=["x", "m"], context=u
    )
    assert table.held == (("m",), ("x",))
    assert table.values.tolist() == [-0.5, -6.0]


# -- a traced GPT written in plain PyTorch ---------------------------------------------------------


@pytest.fixture(scope="module")
def gpt() -> tuple[nn.Module, sn.TracedModel, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    model = TinyGPT(vocab=50, d=32, heads=4, layers=3).eval()
    data = [{"idx": torch.randint(0, 50, (1, 7))} for _ in range(4)]
    traced = sn.trace(model, torch.randint(0, 50, (2, 7)), dataset=data)
    return model, traced, data[0]


def _blocks(traced: sn.TracedModel) -> list[str]:
    return [v for v in traced.endogenous if v.endswith((".attn", ".mlp"))]


def _last(node: str) -> sn.Site:
    return sn.Site(node, index=(slice(None), -1))


def _centred_logit(token: int) -> sn.Outcome:
    def read(logits: torch.Tensor) -> torch.Tensor:
        last = logits[0, -1].double()
        return last[token] - last.mean()

    return sn.Outcome(("lm_head",), read, "centred logit")


def test_gpt_table_equals_a_loop_of_single_queries(
    gpt: tuple[nn.Module, sn.TracedModel, dict[str, torch.Tensor]],
) -> None:
    _, traced, ctx = gpt
    blocks = _blocks(traced)
    treatments = [{_last(b): sn.zero()} for b in blocks]
    treatments += [{_last(b): sn.resample()} for b in blocks]
    y = _centred_logit(7)
    for kind in KINDS:
        kw: dict[str, Any] = {"hold": blocks} if kind != "total" else {}
        table = sn.effect_table(traced, treatments, y, kind=kind, context=ctx, draws=3, **kw)  # type: ignore[arg-type]
        assert traced.info.batching.path == "batched", traced.info.batching.reason
        assert table.values.shape == (len(treatments),)
        for r, t in enumerate(treatments):
            one = sn.effect_table(traced, [t], y, kind=kind, context=ctx, draws=3, **kw)  # type: ignore[arg-type]
            assert_close(table.values[r], one.values[0], reordered=True)


def test_gpt_total_effects_equal_hooked_eager_runs(
    gpt: tuple[nn.Module, sn.TracedModel, dict[str, torch.Tensor]],
) -> None:
    model, traced, ctx = gpt
    blocks = _blocks(traced)
    values = torch.randn(len(blocks), 32, generator=torch.Generator().manual_seed(1))
    table = sn.effect_table(
        traced, [{_last(b): v} for b, v in zip(blocks, values, strict=True)], "lm_head", context=ctx
    )
    with torch.no_grad():
        clean = model(ctx["idx"])
    for r, (b, v) in enumerate(zip(blocks, values, strict=True)):

        def patch(module: nn.Module, args: Any, output: torch.Tensor, v: Any = v) -> Any:
            out = output.clone()
            out[:, -1] = v
            return out

        handle = model.get_submodule(b).register_forward_hook(patch)
        try:
            with torch.no_grad():
                hooked = model(ctx["idx"])
        finally:
            handle.remove()
        assert_close(table.values[r], hooked - clean, reordered=True)


def test_gpt_batched_readout_equals_the_row_by_row_readout(
    gpt: tuple[nn.Module, sn.TracedModel, dict[str, torch.Tensor]],
) -> None:
    """A batched outcome reads the stacked runs at once, with the same numbers."""
    _, traced, ctx = gpt
    blocks = _blocks(traced)
    treatments = [{_last(b): sn.zero()} for b in blocks]
    last = sn.Site("lm_head", index=(0, -1))
    token = 7

    def centred(logits: torch.Tensor) -> torch.Tensor:  # (runs, vocab) -> (runs,)
        rows = logits.double()
        return rows[:, token] - rows.mean(-1)

    batched = sn.Outcome((last,), centred, "centred logit", batched=True)
    for kind in KINDS:
        kw: dict[str, Any] = {"hold": blocks} if kind != "total" else {}
        one_by_one = sn.effect_table(
            traced, treatments, _centred_logit(token), kind=kind, context=ctx, **kw
        )  # type: ignore[arg-type]
        at_once = sn.effect_table(traced, treatments, batched, kind=kind, context=ctx, **kw)  # type: ignore[arg-type]
        assert_close(at_once.values, one_by_one.values, reordered=True)
        assert_close(at_once.treated - at_once.reference, at_once.values)


def test_recorded_values_are_read_not_recomputed(
    gpt: tuple[nn.Module, sn.TracedModel, dict[str, torch.Tensor]],
) -> None:
    """Patch and mean values come from a SiteValues memo filled by a clean pass."""
    _, traced, ctx = gpt
    donors = [
        {"idx": torch.randint(0, 50, (1, 7), generator=torch.Generator().manual_seed(s))}
        for s in range(3)
    ]
    site = _last(_blocks(traced)[1])
    memo = sn.SiteValues(traced)
    for d in donors:
        memo.record(d, site, traced.evaluate(d, outputs=[site])[site])
    treatments = [{site: sn.patch(d)} for d in donors] + [{site: sn.mean(donors)}]
    fresh = sn.effect_table(traced, treatments, "lm_head", context=ctx)
    evaluated: list[Any] = []
    original = traced.evaluate

    def counting(*args: Any, **kwargs: Any) -> Any:
        evaluated.append(args)
        return original(*args, **kwargs)

    traced.evaluate = counting  # type: ignore[method-assign]
    try:
        recorded = sn.effect_table(traced, treatments, "lm_head", context=ctx, values=memo)
    finally:
        del traced.evaluate
    assert evaluated == []
    assert_close(recorded.values, fresh.values)
    # a value recorded for a context is what the patch reads, whatever the model says
    memo.record(donors[0], site, torch.zeros(1, 32))
    zeroed = sn.effect_table(traced, [{site: sn.zero()}], "lm_head", context=ctx)
    patched = sn.effect_table(traced, treatments[:1], "lm_head", context=ctx, values=memo)
    assert_close(patched.values, zeroed.values)


def test_gpt_memory_budget_cuts_the_batch_and_keeps_the_numbers(
    gpt: tuple[nn.Module, sn.TracedModel, dict[str, torch.Tensor]],
) -> None:
    _, traced, ctx = gpt
    blocks = _blocks(traced)
    treatments = [{_last(b): v} for b in blocks for v in (0.0, 1.0, -1.0, 2.0)]
    whole = sn.effect_table(traced, treatments, _centred_logit(3), context=ctx)
    assert traced.info.batching.runs == 1
    sets = [sn.interventions.normalize(t) for t in treatments]
    batches: list[Any] = []
    traced._run_sets(ctx, sets, ["lm_head"], True, None, None, batches)
    per_row = batches[0][1].peak_bytes / len(sets)
    budget = int(per_row * 5)
    cut = sn.effect_table(traced, treatments, _centred_logit(3), context=ctx, memory=budget)
    assert traced.info.batching.runs > 2  # a first chunk of 8 rows, then about 5 a chunk
    assert_close(cut.values, whole.values, reordered=True)
    batches.clear()
    traced._run_sets(ctx, sets, ["lm_head"], True, None, budget, batches)
    assert all(run.peak_bytes <= budget for _, run in batches[1:])
    tiny = sn.effect_table(traced, treatments, _centred_logit(3), context=ctx, memory=1)
    info = traced.info.batching  # one row a chunk after the first: each runs alone
    assert (info.batched, info.looped) == (8, len(sets) - 8)
    assert_close(tiny.values, whole.values, reordered=True)


def test_gpt_chunked_equals_unchunked(
    gpt: tuple[nn.Module, sn.TracedModel, dict[str, torch.Tensor]],
) -> None:
    _, traced, ctx = gpt
    treatments = [{_last(b): sn.zero()} for b in _blocks(traced)]
    whole = sn.effect_table(traced, treatments, _centred_logit(3), context=ctx)
    chunked = sn.effect_table(traced, treatments, _centred_logit(3), context=ctx, chunk=2)
    assert traced.info.batching.runs == 3
    assert_close(chunked.values, whole.values, reordered=True)


# -- the tidy form ---------------------------------------------------------------------------------


def test_rows_and_text() -> None:
    m = sn.toys.erasure()
    table = sn.effect_table(
        m, [{"x": 0.0}, {sn.Site("f"): sn.shift(1.0)}], "y", kind="direct", context={"u": 2.0}
    )
    rows = table.rows()
    assert [r["treatment"] for r in rows] == ["x = 0.0", "f += 1.0"]
    assert rows[0] == {
        "treatment": "x = 0.0",
        "sites": ("x",),
        "kind": "direct",
        "outcome": "y",
        "value": -2.0,
        "stderr": 0.0,
        "treated": -2.0,
        "reference": 0.0,
        "contexts": 1,
        "draws": 1,
        "held": 1,
    }
    assert str(table).splitlines()[0] == "direct effect on y, 1 context"
    assert "rows=2" in repr(table)


# -- errors ----------------------------------------------------------------------------------------


def test_errors_name_the_bad_value() -> None:
    m = sn.toys.erasure()
    u = {"u": 1.0}
    scalar = sn.Outcome(("y",), lambda y: np.float64(1.0), "one", batched=True)
    with pytest.raises(sn.InvalidOutcome, match="one result per run"):
        sn.effect_table(m, [{"x": 0.0}, {"x": 1.0}], scalar, context=u)
    with pytest.raises(sn.InvalidOutcome, match="batched must be True or False"):
        sn.Outcome(("y",), abs, batched="yes")  # type: ignore[arg-type]
    with pytest.raises(sn.InvalidArgument, match="memory must be a positive int \\(bytes\\)"):
        sn.effect_table(m, [{"x": 0.0}], "y", context=u, memory="1GB")  # type: ignore[arg-type]
    with pytest.raises(sn.InvalidIntervention, match="SiteValues\\(model\\)"):
        sn.SiteValues().record(u, "x", 1.0)
    with pytest.raises(sn.InvalidArgument, match="kind must be one of"):
        sn.effect_table(m, [{"x": 0.0}], "y", kind="natural", context=u)  # type: ignore[arg-type]
    with pytest.raises(sn.InvalidArgument, match="wrap it in a list"):
        sn.effect_table(m, {"x": 0.0}, "y", context=u)  # type: ignore[arg-type]
    with pytest.raises(sn.InvalidArgument, match="treatments is empty"):
        sn.effect_table(m, [], "y", context=u)
    with pytest.raises(sn.InvalidIntervention, match="treatment 1 is empty"):
        sn.effect_table(m, [{"x": 0.0}, {}], "y", context=u)
    with pytest.raises(sn.NodeNotFound, match="'q'"):
        sn.effect_table(m, [{"x": 0.0}], "y", kind="direct", hold=["q"], context=u)
    with pytest.raises(sn.InvalidOutcome, match="read by the outcome"):
        sn.effect_table(m, [{"x": 0.0}], "y", kind="direct", hold=["y"], context=u)
    with pytest.raises(sn.InvalidIntervention, match="the string 'f'"):
        sn.effect_table(m, [{"x": 0.0}], "y", kind="direct", hold="f", context=u)
    with pytest.raises(sn.InvalidIntervention, match="2 references for 1 treatments"):
        sn.effect_table(m, [{"x": 0.0}], "y", reference=[{"x": 1.0}, {"x": 2.0}], context=u)
    with pytest.raises(sn.InvalidIntervention, match="same sites"):
        sn.effect_table(m, [{"x": 0.0}, {"f": 0.0}], "y", reference={"x": 1.0}, context=u)
    with pytest.raises(sn.InvalidArgument, match="chunk must be a positive int"):
        sn.effect_table(m, [{"x": 0.0}], "y", context=u, chunk=0)
    with pytest.raises(sn.InvalidIntervention, match="draws must be a positive int"):
        sn.effect_table(m, [{"x": sn.resample()}], "y", context=u, draws=0)
    with pytest.raises(sn.InvalidIntervention, match="reference must be deterministic"):
        sn.effect_table(m, [{"x": 0.0}], "y", reference={"x": sn.resample()}, context=u)


def test_one_sample_has_an_undefined_standard_error() -> None:
    """One context, or one draw of a random ablation, gives no estimate of the spread."""
    m = sn.toys.erasure()
    est = sn.total_effect(m, {"x": 0.0}, "f", samples=1, seed=3)
    assert np.isnan(est.stderr)
    assert "undefined" in est.note
    assert sn.total_effect(m, {"x": 0.0}, "f", samples=2).note == ""
    table = sn.effect_table(m, [{"x": 0.0}], "f", context=[{"u": 1.0}])
    assert np.isnan(table.stderr[0])
    assert "± undefined (one sample)" in str(table)
    one_draw = sn.effect_table(m, [{"x": sn.resample()}], "f", context={"u": 1.0}, draws=1)
    assert np.isnan(one_draw.stderr[0])
    exact = sn.effect_table(m, [{"x": 0.0}], "f", context={"u": -1.0})
    assert exact.row_stderr[0] == 0.0
    assert str(np.float64(exact.row_stderr[0])) == "0.0"  # not -0.0
