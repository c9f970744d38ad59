"""Known-answer property tests on random linear SCMs over random DAGs.

In a linear SCM the total effect of a change dz of z on y is dz times the sum over directed
paths z -> ... -> y of the products of edge weights; the direct effect (all other variables
held) is dz times the weight of the edge z -> y; and TE = DE + IE.
"""

from __future__ import annotations

import networkx as nx
import pytest
from hypothesis import given
from hypothesis import strategies as st

import scmnet as sn
from scmnet.testing import assert_close
from tests.strategies import LinearCase, linear_scms, path_sum, reals

TOL = {"rtol": 1e-9, "atol": 1e-9}


def _pair(case: LinearCase, data: st.DataObject) -> tuple[str, str]:
    nodes = list(case.graph.nodes)
    z = data.draw(st.sampled_from(nodes), label="z")
    y = data.draw(st.sampled_from([v for v in nodes if v != z]), label="y")
    return z, y


@given(case=linear_scms(), dz=reals, data=st.data())
def test_total_effect_is_sum_over_paths(case: LinearCase, dz: float, data: st.DataObject) -> None:
    z, y = _pair(case, data)
    z1 = case.model.evaluate(case.context)[z] + dz
    te = sn.total_effect(case.model, {z: z1}, y, context=case.context, unreached="zero")
    assert_close(te, dz * path_sum(case.graph, case.weights, z, y), **TOL)


@given(case=linear_scms(), dz=reals, data=st.data())
def test_direct_effect_is_edge_weight(case: LinearCase, dz: float, data: st.DataObject) -> None:
    z, y = _pair(case, data)
    z1 = case.model.evaluate(case.context)[z] + dz
    de = sn.direct_effect(case.model, {z: z1}, y, context=case.context, unreached="zero")
    assert_close(de, dz * case.weights.get((z, y), 0.0), **TOL)


@given(case=linear_scms(), z0=reals, z1=reals, data=st.data())
def test_total_is_direct_plus_indirect(
    case: LinearCase, z0: float, z1: float, data: st.DataObject
) -> None:
    z, y = _pair(case, data)
    kw = {"context": case.context, "reference": {z: z0}}
    te = sn.total_effect(case.model, {z: z1}, y, **kw, unreached="zero")
    de = sn.direct_effect(case.model, {z: z1}, y, **kw, unreached="zero")
    ie = sn.indirect_effect(case.model, {z: z1}, y, **kw, unreached="zero")
    assert_close(te, de + ie, **TOL)
    assert_close(te, (z1 - z0) * path_sum(case.graph, case.weights, z, y), **TOL)


@given(case=linear_scms(), z1=reals, data=st.data())
def test_non_ancestors_have_no_effect(case: LinearCase, z1: float, data: st.DataObject) -> None:
    y = data.draw(st.sampled_from(list(case.graph.nodes)), label="y")
    others = [v for v in case.graph.nodes if v != y and v not in nx.ancestors(case.graph, y)]
    for z in others:
        for effect in (sn.total_effect, sn.direct_effect, sn.indirect_effect):
            assert effect(case.model, {z: z1}, y, context=case.context, unreached="zero") == 0.0
            with pytest.raises(sn.NoCausalPath, match=f"site {z!r} is not an ancestor"):
                effect(case.model, {z: z1}, y, context=case.context)


@given(case=linear_scms(), data=st.data())
def test_setting_the_natural_value_changes_nothing(case: LinearCase, data: st.DataObject) -> None:
    z = data.draw(st.sampled_from(list(case.graph.nodes)), label="z")
    clean = case.model.evaluate(case.context)
    assert case.model.evaluate(case.context, {z: clean[z]}) == clean
    assert sn.do(case.model, {z: clean[z]}).evaluate(case.context) == clean


@given(case=linear_scms(), delta=reals, data=st.data())
def test_shift_intervention_is_linear(case: LinearCase, delta: float, data: st.DataObject) -> None:
    z, y = _pair(case, data)
    te = sn.total_effect(
        case.model, {z: sn.shift(delta)}, y, context=case.context, unreached="zero"
    )
    assert_close(te, delta * path_sum(case.graph, case.weights, z, y), **TOL)


@given(case=linear_scms(min_nodes=3), dz=reals, data=st.data())
def test_chosen_mediators(case: LinearCase, dz: float, data: st.DataObject) -> None:
    # Holding no mediator at all makes the direct effect the total effect; holding all of them
    # makes the indirect effect TE - DE (the default mediator set).
    z, y = _pair(case, data)
    z1 = case.model.evaluate(case.context)[z] + dz
    te = sn.total_effect(case.model, {z: z1}, y, context=case.context, unreached="zero")
    de_none = sn.direct_effect(
        case.model, {z: z1}, y, context=case.context, mediators=[], unreached="zero"
    )
    assert_close(de_none, te, **TOL)
    ie_none = sn.indirect_effect(
        case.model, {z: z1}, y, context=case.context, mediators=[], unreached="zero"
    )
    assert ie_none == 0.0
