"""Path-specific effects: known answers on linear SCMs, the three classic effects as special
cases, the same answers on traced networks, and errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import scmnet as sn
from scmnet.testing import assert_close
from tests.strategies import LinearCase, linear_scms, path_sum, reals

TOL = {"rtol": 1e-9, "atol": 1e-9}


@given(case=linear_scms(min_nodes=3), dz=reals, data=st.data())
def test_linear_pse_sums_the_allowed_paths(
    case: LinearCase, dz: float, data: st.DataObject
) -> None:
    nodes = list(case.graph.nodes)
    z = data.draw(st.sampled_from(nodes[:-1]), label="z")
    y = data.draw(st.sampled_from(nodes[nodes.index(z) + 1 :]), label="y")
    edges = sorted(case.graph.edges)
    allowed = (
        set(data.draw(st.lists(st.sampled_from(edges), unique=True), label="allowed"))
        if (edges)
        else set()
    )
    z1 = case.model.evaluate(case.context)[z] + dz
    pse = sn.path_specific_effect(
        case.model, {z: z1}, y, edges=allowed, context=case.context, unreached="zero"
    )
    assert_close(pse, dz * path_sum(case.graph, case.weights, z, y, allowed), **TOL)


@given(case=linear_scms(), z1=reals, data=st.data())
def test_classic_effects_are_path_specific(
    case: LinearCase, z1: float, data: st.DataObject
) -> None:
    nodes = list(case.graph.nodes)
    z = data.draw(st.sampled_from(nodes), label="z")
    y = data.draw(st.sampled_from([v for v in nodes if v != z]), label="y")
    m, u = case.model, case.context
    every = list(m.graph.edges)
    direct = [(z, y)] if m.graph.has_edge(z, y) else []
    assert_close(
        sn.path_specific_effect(m, {z: z1}, y, edges=every, context=u, unreached="zero"),
        sn.total_effect(m, {z: z1}, y, context=u, unreached="zero"),
        **TOL,
    )
    assert_close(
        sn.path_specific_effect(m, {z: z1}, y, edges=direct, context=u, unreached="zero"),
        sn.direct_effect(m, {z: z1}, y, context=u, unreached="zero"),
        **TOL,
    )
    indirect = [e for e in every if e != (z, y)]
    assert_close(
        sn.path_specific_effect(m, {z: z1}, y, edges=indirect, context=u, unreached="zero"),
        sn.indirect_effect(m, {z: z1}, y, context=u, unreached="zero"),
        **TOL,
    )


@given(u=reals, x=reals)
def test_traced_network_gives_the_scm_answers(u: float, x: float) -> None:
    scm = sn.toys.erasure()
    net = sn.trace(sn.toys.erasure_module(), torch.zeros(()))
    for edges in ([("x", "y")], [("x", "f"), ("f", "y")], list(scm.graph.edges)):
        expected = sn.path_specific_effect(scm, {"x": x}, "y", edges=edges, context={"u": u})
        got = sn.path_specific_effect(
            net, {"x": x}, "y", edges=edges, context={"u": torch.tensor(u)}
        )
        assert_close(got, torch.tensor(expected, dtype=torch.float32))


def test_population_and_ablation_values() -> None:
    m = sn.toys.self_repair()
    est = sn.path_specific_effect(m, {"x": sn.zero()}, "y", edges=[("x", "y")], samples=200)
    ref = sn.direct_effect(m, {"x": sn.zero()}, "y", samples=200)
    assert (est.value, est.stderr, est.samples, est.seed) == (
        ref.value,
        ref.stderr,
        ref.samples,
        ref.seed,
    )
    assert est.contrast == "E[y(x=0 along (x->y))] - E[y]"


def test_errors() -> None:
    m = sn.toys.erasure()
    u = {"u": 1.0}
    with pytest.raises(sn.InvalidIntervention, match=r"no edge 'y' -> 'x'"):
        sn.path_specific_effect(m, {"x": 0.0}, "y", edges=[("y", "x")], context=u)
    with pytest.raises(sn.InvalidIntervention, match="pairs"):
        sn.path_specific_effect(m, {"x": 0.0}, "y", edges="x->y", context=u)  # type: ignore[arg-type]
    net = sn.trace(sn.toys.erasure_module(), torch.zeros(()))
    with pytest.raises(sn.InvalidIntervention, match=r"must ignore the change of 'f'"):
        sn.path_specific_effect(
            net, {"x": 0.0}, "y", edges=[("x", "f")], context={"u": torch.tensor(1.0)}
        )
    # The SCM computes the same edge set exactly: f changes, but y reads its reference value.
    assert sn.path_specific_effect(m, {"x": 0.0}, "y", edges=[("x", "f")], context=u) == 0.0
