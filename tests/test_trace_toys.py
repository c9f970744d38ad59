"""The toy motifs written as networks and traced agree with the SCMs written as callables.

Section 3.3 of the Hydra-effect paper (eqs. 30-32): tracing ``ErasureNet`` and ``SelfRepairNet``
gives the graph of ``sn.toys.erasure()`` / ``sn.toys.self_repair()`` (input u; variables x, f,
y) and the same total, direct and indirect effects in every context.
"""

from __future__ import annotations

import networkx as nx
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import scmnet as sn
from scmnet.testing import assert_close, check_scm
from scmnet.tracing import TracedModel, trace
from tests.strategies import reals

EFFECTS = (sn.total_effect, sn.direct_effect, sn.indirect_effect)


def _traced(module: torch.nn.Module, **kwargs: object) -> TracedModel:
    return trace(module, torch.zeros((), dtype=torch.float64), **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def erasure() -> TracedModel:
    return _traced(sn.toys.erasure_module())


@pytest.fixture(scope="module")
def self_repair() -> TracedModel:
    return _traced(sn.toys.self_repair_module())


def _u(value: float) -> dict[str, torch.Tensor]:
    return {"u": torch.tensor(value, dtype=torch.float64)}


# -- properties ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "scm"), [("erasure", sn.toys.erasure), ("self_repair", sn.toys.self_repair)]
)
def test_traced_graph_has_the_shape_of_the_scm(
    name: str, scm: object, request: pytest.FixtureRequest
) -> None:
    traced: TracedModel = request.getfixturevalue(name)
    reference = scm()  # type: ignore[operator]
    assert isinstance(traced, sn.CausalModel)
    assert traced.exogenous == reference.exogenous == ("u",)
    assert traced.endogenous == reference.endogenous == ("x", "f", "y")
    assert set(traced.graph.edges) == set(reference.graph.edges)
    assert nx.is_frozen(traced.graph)
    for node in traced.graph:
        assert traced.graph.nodes[node]["kind"] == reference.graph.nodes[node]["kind"]
        assert traced.graph.nodes[node]["intervention"] is None


@given(u=reals, x=reals)
def test_erasure_effects_match_the_scm(erasure: TracedModel, u: float, x: float) -> None:
    scm = sn.toys.erasure()
    for effect in EFFECTS:
        got = effect(erasure, {"x": x}, "y", context=_u(u))
        assert float(got) == effect(scm, {"x": x}, "y", context={"u": u})


@given(u=reals, x=reals | st.just(0.0))
def test_self_repair_effects_match_the_scm(self_repair: TracedModel, u: float, x: float) -> None:
    scm = sn.toys.self_repair()
    for effect in EFFECTS:
        got = effect(self_repair, {"x": x}, "y", context=_u(u))
        assert float(got) == effect(scm, {"x": x}, "y", context={"u": u})


@given(u=reals, x=reals)
def test_erasure_closed_forms(erasure: TracedModel, u: float, x: float) -> None:
    """TE = 0, DE = x' - u, IE = u - x' (Section 3.3)."""
    context = _u(u)
    assert float(sn.total_effect(erasure, {"x": x}, "y", context=context)) == 0.0
    assert_close(sn.direct_effect(erasure, {"x": x}, "y", context=context), x - u)
    assert_close(sn.indirect_effect(erasure, {"x": x}, "y", context=context), u - x)


@given(u=reals)
def test_self_repair_repairs_the_zero_ablation(self_repair: TracedModel, u: float) -> None:
    assert float(sn.total_effect(self_repair, {"x": 0.0}, "y", context=_u(u))) == 0.0


@pytest.mark.parametrize("name", ["erasure", "self_repair"])
def test_traced_toys_pass_the_conformance_check(name: str, request: pytest.FixtureRequest) -> None:
    traced: TracedModel = request.getfixturevalue(name)
    check_scm(traced, contexts=[_u(-1.5), _u(0.0), _u(2.0)])


def test_population_effects_average_over_the_dataset() -> None:
    data = [_u(v) for v in (-2.0, -1.0, 0.5, 3.0)]
    traced = _traced(sn.toys.erasure_module(), dataset=data)
    estimate = sn.direct_effect(traced, {"x": 1.0}, "y", samples=64, seed=3)
    draws = traced.sample_contexts(64, seed=3)
    expected = sum(1.0 - float(c["u"]) for c in draws) / 64
    assert estimate.samples == 64
    assert estimate.seed == 3
    assert_close(estimate.value, expected)
    exact = sn.direct_effect(traced, {"x": 1.0}, "y", context=data)
    assert_close(exact.value, sum(1.0 - float(c["u"]) for c in data) / 4)


def test_sample_contexts_is_reproducible() -> None:
    data = [_u(float(v)) for v in range(6)]
    traced = _traced(sn.toys.self_repair_module(), dataset=data)
    first = [float(c["u"]) for c in traced.sample_contexts(10, seed=7)]
    assert first == [float(c["u"]) for c in traced.sample_contexts(10, seed=7)]
    assert set(first) <= set(range(6))


# -- examples ---------------------------------------------------------------------------------


def test_linear_mediation_total_effect_is_known() -> None:
    """y = c x + b (a x + u_m) + u_y, so TE(x -> x + dx) = (c + a b) dx."""
    net = sn.toys.linear_mediation_module(a=2.0, b=3.0, c=0.5)
    zero = torch.zeros((), dtype=torch.float64)
    traced = trace(net, (zero, zero, zero))
    assert traced.exogenous == ("u_x", "u_m", "u_y")
    assert traced.outputs == ("output",)
    context = {"u_x": 1.0, "u_m": 0.25, "u_y": -1.0}
    te = sn.total_effect(traced, {"x": sn.shift(2.0)}, "output", context=context)
    assert_close(te, (0.5 + 2.0 * 3.0) * 2.0)
    assert_close(traced.evaluate(context)["output"], 0.5 + 3.0 * (2.0 + 0.25) - 1.0)


def test_context_numbers_are_converted_to_tensors(erasure: TracedModel) -> None:
    values = erasure.evaluate({"u": 2.0})
    assert isinstance(values["x"], torch.Tensor)
    assert values["x"].dtype == torch.float64
    assert float(values["f"]) == -2.0


def test_do_cuts_in_edges_and_leaves_the_model_unchanged(self_repair: TracedModel) -> None:
    intervened = sn.do(self_repair, {"x": 0.0})
    assert isinstance(intervened, TracedModel)
    assert list(intervened.graph.predecessors("x")) == []
    assert sorted(self_repair.graph.predecessors("x")) == ["u"]
    assert intervened.graph.nodes["x"]["intervention"] == "x = 0.0"
    assert intervened.removed_edges == (("u", "x"),)
    assert float(intervened.evaluate(_u(4.0))["y"]) == 4.0
    assert float(self_repair.evaluate(_u(4.0))["y"]) == 4.0
    assert self_repair.interventions == sn.Interventions()


def test_soft_interventions_keep_in_edges(erasure: TracedModel) -> None:
    shifted = sn.do(erasure, {"f": sn.shift(1.0)})
    assert sorted(shifted.graph.predecessors("f")) == ["x"]
    assert float(shifted.evaluate(_u(3.0))["y"]) == 1.0


def test_records_describe_the_variables(self_repair: TracedModel) -> None:
    record = self_repair.records["f"]
    assert record.module_path == "f"
    assert record.module_type == "scmnet.toys.modules.Repair"
    assert record.parents == ("u", "x")
    assert record.shape == ()
    assert record.dtype == torch.float64
    assert self_repair.graph.nodes["f"]["record"] is record
    assert self_repair.records["u"].kind == "exogenous"
    assert self_repair.info.frontend == "fx"
    assert self_repair.info.max_abs_diff == 0.0
