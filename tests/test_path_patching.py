"""Path patching: known answers on linear SCMs (path sums through the receivers), its special
case the indirect effect, rows against one-row queries, a traced transformer against a naive
three-run reference, and errors."""

from __future__ import annotations

import networkx as nx
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import scmnet as sn
from scmnet.testing import assert_close
from scmnet.tracing.heads import split_heads
from tests.plain_models import TinyGPT
from tests.strategies import LinearCase, linear_scms, path_sum, reals

TOL = {"rtol": 1e-9, "atol": 1e-9}


def _without(graph: nx.DiGraph, blocked: set[str], keep: set[str]) -> nx.DiGraph:
    """The graph with the nodes in ``blocked`` (other than ``keep``) removed."""
    g = nx.DiGraph(graph)
    g.remove_nodes_from(blocked - keep)
    return g


def _query(case: LinearCase, data: st.DataObject) -> tuple[str, str, list[str]]:
    """A sender z, an outcome y and receivers drawn from the other variables."""
    nodes = list(case.graph.nodes)
    z = data.draw(st.sampled_from(nodes), label="z")
    y = data.draw(st.sampled_from([v for v in nodes if v != z]), label="y")
    others = [v for v in nodes if v not in (z, y)]
    receivers = data.draw(st.lists(st.sampled_from(others), min_size=1, unique=True), label="R")
    return z, y, receivers


@given(case=linear_scms(min_nodes=3), dz=reals, data=st.data())
def test_linear_path_patching_sums_the_paths_through_the_receivers(
    case: LinearCase, dz: float, data: st.DataObject
) -> None:
    z, y, receivers = _query(case, data)
    rest = [v for v in case.graph.nodes if v not in (z, y, *receivers)]
    freeze = data.draw(st.lists(st.sampled_from(rest), unique=True), label="F") if rest else []
    z1 = case.model.evaluate(case.context)[z] + dz
    table = sn.path_patching(
        case.model,
        [{z: z1}],
        y,
        receivers=receivers,
        freeze=freeze,
        context=case.context,
        unreached="zero",
    )
    # the sender world moves each receiver along the paths that avoid F; the receiver world
    # carries each receiver's change to y along the paths that avoid the other receivers
    sender_graph = _without(case.graph, set(freeze), {z})
    expected = 0.0
    for r in receivers:
        moved = dz * path_sum(sender_graph, case.weights, z, r) if r in sender_graph else 0.0
        receiver_graph = _without(case.graph, set(receivers) | {z}, {r})
        expected += moved * path_sum(receiver_graph, case.weights, r, y)
    assert_close(table.values[0], expected, **TOL)


@given(case=linear_scms(min_nodes=3), dz=reals, data=st.data())
def test_without_frozen_variables_it_is_the_indirect_effect(
    case: LinearCase, dz: float, data: st.DataObject
) -> None:
    z, y, receivers = _query(case, data)
    z1 = case.model.evaluate(case.context)[z] + dz
    pp = sn.path_patching(
        case.model, [{z: z1}], y, receivers=receivers, context=case.context, unreached="zero"
    )
    ie = sn.indirect_effect(
        case.model, {z: z1}, y, mediators=receivers, context=case.context, unreached="zero"
    )
    assert_close(pp.values[0], ie, **TOL)


def test_rows_equal_one_row_queries_and_averages_carry_errors() -> None:
    m = sn.toys.linear_mediation(a=2.0, b=3.0, c=0.5)
    rows = [{"x": 0.0}, {"x": 1.0}, {"x": sn.shift(2.0)}]
    table = sn.path_patching(m, rows, "y", receivers=["m"], samples=50, seed=4)
    for r, t in enumerate(rows):
        one = sn.path_patching(m, [t], "y", receivers=["m"], samples=50, seed=4)
        assert_close(table.values[r], one.values[0], **TOL)
    assert_close(table.values[2], 6.0 * 2.0, **TOL)  # a * b times the shift, in every unit
    assert table.kind == "path"
    assert table.held[0] == ("m",)
    assert table.stderr.shape == (3,)


def test_a_plain_gpt_matches_three_runs_of_the_naive_reference() -> None:
    """Head 0 of layer 0 as the sender, layer 1's attention input at the last position as the
    receiver, layer 0's MLP frozen: each row equals the three worlds run one by one."""
    torch.manual_seed(0)
    gpt = TinyGPT(layers=2, heads=4).eval()
    ids = torch.randint(0, 50, (1, 6))
    selector = (
        sn.ByPath("h.*.attn") | sn.ByPath("h.*.attn.c_proj.heads") | sn.ByPath("h.*.ln_1")
    ) | (sn.ByPath("h.*.mlp") | sn.ByPath("lm_head"))
    with split_heads(gpt, {"h.0.attn.c_proj": 4, "h.1.attn.c_proj": 4}):
        traced = sn.trace(gpt, ids, variables=selector)
    u = {"idx": torch.randint(0, 50, (1, 6), generator=torch.Generator().manual_seed(3))}
    last = (slice(None), -1)
    sender = sn.Site("h.0.attn.c_proj.heads", (*last, 0))
    receiver = sn.Site("h.1.ln_1", last)
    frozen = ["h.0.mlp"]
    treatments = [{sender: sn.zero()}, {sender: sn.scale(2.0)}]
    table = sn.path_patching(
        traced, treatments, "lm_head", receivers=[receiver], freeze=frozen, context=u
    )
    clean = traced.evaluate(u)
    for r, treatment in enumerate(treatments):
        held = {f: clean[f] for f in frozen}
        sender_world = traced.evaluate(u, {**treatment, **held})
        patched = traced.evaluate(u, {receiver: sender_world[receiver.node][last]})
        assert_close(table.values[r], patched["lm_head"] - clean["lm_head"], reordered=True)
    assert float(table.values[0].abs().max()) > 1e-4  # the path carries a change
    unfrozen = sn.path_patching(traced, treatments, "lm_head", receivers=[receiver], context=u)
    assert float((unfrozen.values - table.values).abs().max()) > 1e-6  # freezing the MLP matters


def test_errors_name_the_bad_receiver_freeze_or_sender() -> None:
    m = sn.toys.linear_mediation()
    u = {"u_x": 1.0, "u_m": 0.0, "u_y": 0.0}
    with pytest.raises(sn.InvalidIntervention, match="non-empty sequence"):
        sn.path_patching(m, [{"x": 0.0}], "y", receivers=[], context=u)
    with pytest.raises(sn.InvalidIntervention, match="non-empty sequence"):
        sn.path_patching(m, [{"x": 0.0}], "y", receivers="m", context=u)  # type: ignore[arg-type]
    with pytest.raises(sn.NodeNotFound, match="'q'"):
        sn.path_patching(m, [{"x": 0.0}], "y", receivers=["q"], context=u)
    with pytest.raises(sn.InvalidIntervention, match="'m' is a receiver"):
        sn.path_patching(m, [{"x": 0.0}], "y", receivers=["m"], freeze=["m"], context=u)
    with pytest.raises(sn.InvalidIntervention, match=r"write \['x'\]"):
        sn.path_patching(m, [{"m": 0.0}], "y", receivers=["m"], freeze="x", context=u)  # type: ignore[arg-type]
    with pytest.raises(sn.NoCausalPath, match="'m' is not an ancestor of the outcome receivers"):
        sn.path_patching(m, [{"m": 0.0}], "y", receivers=["x"], context=u)
    with pytest.raises(sn.InvalidArgument, match=r"sn\.path_patching"):
        sn.effect_table(m, [{"x": 0.0}], "y", kind="path", context=u)
