"""Example tests of SCM construction, evaluation, do, and values of several kinds."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch

import scmnet as sn
from scmnet.testing import assert_close, check_scm


def test_parents_from_signature_and_explicit() -> None:
    m = sn.SCM(
        {"a": lambda u: u, "b": lambda a, k=3.0: k * a, "c.out": lambda *xs: sum(xs)},
        exogenous={"u": sn.Normal()},
        parents={"c.out": ["a", "b"]},
    )
    assert m.parents("b") == ("a",)
    assert m.parents("c.out") == ("a", "b")
    assert m.evaluate({"u": 1.0}) == {"u": 1.0, "a": 1.0, "b": 3.0, "c.out": 4.0}


def test_parents_from_graph() -> None:
    g = nx.DiGraph([("u", "a"), ("a", "b")])
    m = sn.SCM({"a": lambda v: v + 1, "b": lambda v: 2 * v}, exogenous=["u"], parents=g)
    assert m.evaluate({"u": 1.0})["b"] == 4.0


def test_graph_is_frozen_and_marked() -> None:
    m = sn.toys.erasure()
    assert nx.is_frozen(m.graph)
    with pytest.raises(nx.NetworkXError):
        m.graph.add_edge("y", "x")
    assert {v: d["kind"] for v, d in m.graph.nodes(data=True)} == {
        "u": "exogenous",
        "x": "endogenous",
        "f": "endogenous",
        "y": "endogenous",
    }


def test_do_leaves_original_unchanged_and_composes() -> None:
    m = sn.toys.self_repair()
    before = m.evaluate({"u": 2.0})
    m1 = sn.do(m, {"x": 0.0})
    m2 = sn.do(m1, {"f": 5.0})
    assert m.evaluate({"u": 2.0}) == before
    assert m.interventions.sites == ()
    assert m2.evaluate({"u": 2.0}) == {"u": 2.0, "x": 0.0, "f": 5.0, "y": 5.0}
    assert m2.removed_edges == (("x", "f"), ("u", "f"), ("u", "x"))
    assert m2.graph.nodes["x"]["intervention"] == "x = 0.0"
    assert "do(x, f)" in repr(m2)
    # A later intervention on the same site replaces the earlier one.
    assert sn.do(m1, {"x": 1.0}).evaluate({"u": 2.0})["x"] == 1.0


def test_soft_interventions_keep_parents() -> None:
    m = sn.toys.linear_mediation()
    u = {"u_x": 1.0, "u_m": 0.5, "u_y": 0.0}
    shifted = sn.do(m, {"m": sn.shift(1.0)})
    assert shifted.removed_edges == ()
    assert set(shifted.graph.in_edges("m")) == set(m.graph.in_edges("m"))
    assert_close(shifted.evaluate(u)["m"], m.evaluate(u)["m"] + 1.0)
    assert_close(sn.do(m, {"m": sn.scale(2.0)}).evaluate(u)["m"], 2 * m.evaluate(u)["m"])
    negated = sn.do(m, {"m": sn.apply(lambda v: -v, "negate")})
    assert negated.graph.nodes["m"]["intervention"] == "m negate"
    assert_close(negated.evaluate(u)["m"], -m.evaluate(u)["m"])


def test_hard_intervention_does_not_run_the_mechanism() -> None:
    def boom(x: float) -> float:
        raise ZeroDivisionError("never called")

    m = sn.SCM({"x": lambda u: u, "y": boom}, exogenous=["u"])
    assert m.evaluate({"u": 1.0}, {"y": 3.0})["y"] == 3.0
    with pytest.raises(sn.MechanismError, match=r"mechanism of 'y' raised ZeroDivisionError"):
        m.evaluate({"u": 1.0})


def test_outputs_restrict_computation() -> None:
    calls: list[str] = []

    def track(name: str):  # type: ignore[no-untyped-def]
        def f(u: float) -> float:
            calls.append(name)
            return u

        return f

    m = sn.SCM({"a": track("a"), "b": track("b")}, exogenous=["u"])
    assert m.evaluate({"u": 1.0}, outputs=["a"]) == {"a": 1.0}
    assert calls == ["a"]


def test_numpy_mechanisms_and_indexed_sites() -> None:
    m = sn.SCM(
        {"h": lambda u: np.tanh(u), "y": lambda h: h.sum(-1)},
        exogenous={"u": sn.Normal(shape=(3,))},
    )
    u = {"u": np.array([0.1, -0.2, 0.3])}
    te = sn.total_effect(m, {sn.Site("h", index=1): 0.0}, "y", context=u)
    assert_close(te, -np.tanh(-0.2))
    check_scm(m)
    est = sn.total_effect(m, {sn.Site("h", index=1): 0.0}, "y", samples=20, seed=0)
    assert isinstance(est.value, float)


def test_torch_mechanisms() -> None:
    m = sn.SCM(
        {"h": lambda u: torch.relu(u), "y": lambda h: (h * torch.arange(3.0)).sum(-1)},
        exogenous={"u": sn.Constant(torch.tensor([1.0, -1.0, 2.0]))},
    )
    u = m.sample_contexts(1, seed=0)[0]
    site = sn.Site("h", index=(slice(1, None),))
    te = sn.total_effect(m, {site: torch.zeros(2)}, "y", context=u)
    assert_close(te, torch.tensor(-4.0))
    de = sn.direct_effect(m, {"h": sn.scale(2.0)}, "y", context=u)
    assert_close(de, torch.tensor(4.0))
    est = sn.total_effect(m, {"h": torch.zeros(3)}, "y", samples=4, seed=0)
    assert isinstance(est.value, torch.Tensor)
    assert_close(est.value, torch.tensor(-4.0))


def test_outcome_functions() -> None:
    m = sn.toys.erasure()
    u = {"u": 2.0}
    assert sn.total_effect(m, {"x": 0.0}, lambda x, f: x - f, context=u) == -4.0
    assert sn.total_effect(m, {"x": 0.0}, sn.Outcome(("f",), abs), context=u) == -2.0
    # x is read by the outcome, so it is not a mediator; only f is held.
    assert sn.direct_effect(m, {"x": 0.0}, lambda x, y: x + y, context=u) == -4.0


def test_reference_value() -> None:
    m = sn.toys.self_repair()
    u = {"u": 2.0}
    assert sn.total_effect(m, {"x": 3.0}, "y", reference={"x": 0.0}, context=u) == 3.0
    assert sn.direct_effect(m, {"x": 0.0}, "y", reference={"x": 0.0}, context=u) == 0.0


def test_sample_stacks_values() -> None:
    s = sn.toys.linear_mediation().sample(5, seed=0, interventions={"x": 1.0})
    assert s["x"].tolist() == [1.0] * 5
    assert s["y"].shape == (5,)


def test_distributions_are_seeded() -> None:
    rng = np.random.default_rng
    for d in (
        sn.Normal(1.0, 2.0),
        sn.Uniform(-1.0, 1.0),
        sn.Bernoulli(0.3),
        sn.Choice(["a", "b"], [0.2, 0.8]),
        sn.Empirical([{"t": 1}, {"t": 2}]),
    ):
        assert list(d.sample(rng(0), 5)) == list(d.sample(rng(0), 5))
        assert len(d.sample(rng(0), 5)) == 5
