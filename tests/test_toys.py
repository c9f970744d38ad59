"""Property tests of the reference models of Section 3.3 (eqs. 30-32)."""

from __future__ import annotations

import pytest
from hypothesis import assume, given

import scmnet as sn
from scmnet.testing import assert_close, check_scm
from tests.strategies import reals

erasure = sn.toys.erasure()
self_repair = sn.toys.self_repair()


@given(u=reals, x=reals)
def test_erasure_effects(u: float, x: float) -> None:
    ctx = {"u": u}
    assert_close(sn.total_effect(erasure, {"x": x}, "y", context=ctx), 0.0)
    assert_close(sn.direct_effect(erasure, {"x": x}, "y", context=ctx), x - u)
    assert_close(sn.indirect_effect(erasure, {"x": x}, "y", context=ctx), u - x)


@given(u=reals)
def test_self_repair_zero_ablation_is_repaired(u: float) -> None:
    assert sn.total_effect(self_repair, {"x": 0.0}, "y", context={"u": u}) == 0.0


@given(u=reals, x=reals)
def test_self_repair_effects(u: float, x: float) -> None:
    assume(x != u)
    ctx = {"u": u}
    assert_close(sn.total_effect(self_repair, {"x": x}, "y", context=ctx), x)
    assert_close(sn.direct_effect(self_repair, {"x": x}, "y", context=ctx), x - u)
    assert_close(sn.indirect_effect(self_repair, {"x": x}, "y", context=ctx), u)


@given(u=reals)
def test_natural_treatment_has_no_effect(u: float) -> None:
    for m in (erasure, self_repair):
        for effect in (sn.total_effect, sn.direct_effect, sn.indirect_effect):
            assert effect(m, {"x": u}, "y", context={"u": u}) == 0.0


def test_issue_call_form() -> None:
    m = sn.toys.erasure()
    assert sn.total_effect(m, {"x": 0.0}, "y", context={"u": 2.0}) == 0.0
    assert sn.direct_effect(m, {"x": 0.0}, "y", context={"u": 2.0}) == -2.0
    assert sn.indirect_effect(m, {"x": 0.0}, "y", context={"u": 2.0}) == 2.0
    m2 = sn.do(m, {"x": 0.0})
    assert m2 is not m
    assert set(m.graph.edges) == {("u", "x"), ("x", "f"), ("x", "y"), ("f", "y")}
    assert set(m2.graph.edges) == {("x", "f"), ("x", "y"), ("f", "y")}


def test_population_effects_match_closed_forms() -> None:
    # E[DE(x -> 0)] = -E[u] and E[IE(x -> 0)] = E[u] for both motifs; u ~ N(0, 1).
    for m in (erasure, self_repair):
        te = sn.total_effect(m, {"x": 0.0}, "y", samples=2000, seed=1)
        de = sn.direct_effect(m, {"x": 0.0}, "y", samples=2000, seed=1)
        ie = sn.indirect_effect(m, {"x": 0.0}, "y", samples=2000, seed=1)
        us = [c["u"] for c in m.sample_contexts(2000, seed=1)]
        mean_u = sum(us) / len(us)
        assert te.value == 0.0
        assert_close(de.value, -mean_u)
        assert_close(ie.value, mean_u)
        assert abs(de.value) < 4 * de.stderr + 1e-12  # E[u] = 0 within 4 standard errors
        assert (de.samples, de.seed) == (2000, 1)


def test_population_estimate_is_reproducible() -> None:
    a = sn.direct_effect(self_repair, {"x": 1.0}, "y", samples=50, seed=7)
    b = sn.direct_effect(self_repair, {"x": 1.0}, "y", samples=50, seed=7)
    c = sn.direct_effect(self_repair, {"x": 1.0}, "y", samples=50, seed=8)
    assert a == b
    assert a.value != c.value


def test_dataset_of_contexts_is_averaged_exactly() -> None:
    data = [{"u": 1.0}, {"u": 3.0}]
    est = sn.indirect_effect(erasure, {"x": 0.0}, "y", context=data)
    assert est.value == 2.0
    assert est.samples == 2
    assert est.seed is None
    assert_close(est.stderr, 1.0)


@pytest.mark.parametrize(
    "model",
    [
        sn.toys.erasure(),
        sn.toys.self_repair(),
        sn.toys.linear_mediation(),
        sn.toys.linear_gaussian({("a", "b"): 1.5, ("b", "c"): -0.5, ("a", "c"): 2.0}),
        sn.do(sn.toys.self_repair(), {"f": 0.0}),
    ],
    ids=lambda m: repr(m),
)
def test_zoo_passes_conformance(model: sn.SCM) -> None:
    check_scm(model)


def test_linear_mediation_closed_form() -> None:
    m = sn.toys.linear_mediation(a=2.0, b=3.0, c=0.5)
    for u in m.sample_contexts(5, seed=3):
        dx = 1.7
        x = m.evaluate(u)["x"] + dx
        assert_close(sn.total_effect(m, {"x": x}, "y", context=u), (0.5 + 6.0) * dx)
        assert_close(sn.direct_effect(m, {"x": x}, "y", context=u), 0.5 * dx)
        assert_close(sn.indirect_effect(m, {"x": x}, "y", context=u), 6.0 * dx)
