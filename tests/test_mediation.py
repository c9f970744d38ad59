"""Named estimands: sn.mediation, sn.controlled_direct_effect and Estimate's contrast/interval."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scmnet as sn
from scmnet.testing import assert_close
from tests.strategies import LinearCase, linear_scms, path_sum, reals

FIELDS = ("te", "nde_pure", "nie_total", "nde_total", "nie_pure")


def binary_model() -> sn.SCM:
    """Binary treatment with an X*M interaction: m = 1 + 2x + u_m, y = 0.5x + m + 2xm + u_y.

    ATE 8.5, CDE(m) = 0.5 + 2m, NDE pure/total 2.5/6.5, NIE pure/total 2.0/6.0, in every unit
    with u_m = 0 and on average over u_m ~ N(0, 1).
    """
    return sn.SCM(
        {
            "x": lambda u_x: u_x,
            "m": lambda x, u_m: 1.0 + 2.0 * x + u_m,
            "y": lambda x, m, u_y: 0.5 * x + m + 2.0 * x * m + u_y,
        },
        exogenous={"u_x": sn.Bernoulli(0.5), "u_m": sn.Normal(), "u_y": sn.Normal()},
    )


def binary_unit(u_m: float) -> dict[str, float]:
    """Per-unit closed forms of the binary model: M(0) = 1 + u_m, M(1) = 3 + u_m."""
    m0, m1 = 1.0 + u_m, 3.0 + u_m
    return {
        "te": 0.5 + 2.0 * m1 + (m1 - m0),
        "nde_pure": 0.5 + 2.0 * m0,
        "nie_total": 3.0 * (m1 - m0),
        "nde_total": 0.5 + 2.0 * m1,
        "nie_pure": m1 - m0,
    }


def assert_identities(res: sn.Mediation) -> None:
    assert_close(res.te, res.nde_pure + res.nie_total, msg="TE = NDE_pure + NIE_total")
    assert_close(res.te, res.nde_total + res.nie_pure, msg="TE = NDE_total + NIE_pure")


# -- the decomposition, per unit -------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(case=linear_scms(min_nodes=3), data=st.data())
def test_identities_on_random_linear_dags(case: LinearCase, data: st.DataObject) -> None:
    nodes = list(case.model.endogenous)
    x = data.draw(st.sampled_from(nodes[:-1]))
    y = data.draw(st.sampled_from([v for v in nodes if v != x]))
    x1, x0 = data.draw(reals), data.draw(reals)
    with_ref = data.draw(st.booleans())
    ref = {x: x0} if with_ref else None
    res = sn.mediation(
        case.model, {x: x1}, y, reference=ref, context=case.context, unreached="zero"
    )
    assert_identities(res)
    # the pure effects are today's direct and indirect effects
    de = sn.direct_effect(
        case.model, {x: x1}, y, reference=ref, context=case.context, unreached="zero"
    )
    ie = sn.indirect_effect(
        case.model, {x: x1}, y, reference=ref, context=case.context, unreached="zero"
    )
    te = sn.total_effect(
        case.model, {x: x1}, y, reference=ref, context=case.context, unreached="zero"
    )
    assert_close(res.nde_pure, de)
    assert_close(res.nie_pure, ie)
    assert_close(res.te, te)
    # linear closed forms: TE is the path sum, the NDE (every other variable a mediator) the
    # weight of the edge x -> y, times the change of x from its reference (or natural) value
    dx = x1 - (x0 if with_ref else case.model.evaluate(case.context)[x])
    assert_close(res.te, path_sum(case.graph, case.weights, x, y) * dx, atol=1e-9)
    assert_close(res.nde_pure, case.weights.get((x, y), 0.0) * dx, atol=1e-9)
    assert_close(res.nde_total, res.nde_pure, atol=1e-9)  # no interaction: pure = total


@settings(max_examples=40, deadline=None)
@given(u_x=st.sampled_from([0.0, 1.0]), u_m=reals, u_y=reals, swap=st.booleans())
def test_binary_model_per_unit(u_x: float, u_m: float, u_y: float, swap: bool) -> None:
    model = binary_model()
    u = {"u_x": u_x, "u_m": u_m, "u_y": u_y}
    res = sn.mediation(model, {"x": 1.0}, "y", reference={"x": 0.0}, context=u)
    assert_identities(res)
    for name, expected in binary_unit(u_m).items():
        assert_close(getattr(res, name), expected, msg=name)
    assert_close(
        res.nde_pure, sn.direct_effect(model, {"x": 1.0}, "y", reference={"x": 0.0}, context=u)
    )
    assert_close(
        res.nie_pure, sn.indirect_effect(model, {"x": 1.0}, "y", reference={"x": 0.0}, context=u)
    )
    # the total NIE is minus the pure NIE with treatment and reference swapped
    back = sn.indirect_effect(model, {"x": 0.0}, "y", reference={"x": 1.0}, context=u)
    assert_close(res.nie_total, -back)
    # CDE(m) = 0.5 + 2m for any m, in every unit
    m = u_y if swap else u_m
    cde = sn.controlled_direct_effect(
        model, {"x": 1.0}, "y", at={"m": m}, reference={"x": 0.0}, context=u
    )
    assert_close(cde, 0.5 + 2.0 * m)


def test_linear_mediation_closed_form() -> None:
    model = sn.toys.linear_mediation(a=2.0, b=3.0, c=0.5)
    u = {"u_x": 0.7, "u_m": -1.2, "u_y": 2.0}
    res = sn.mediation(model, {"x": 1.0}, "y", reference={"x": 0.0}, context=u)
    for name, expected in zip(FIELDS, (6.5, 0.5, 6.0, 0.5, 6.0), strict=True):
        assert_close(getattr(res, name), expected, msg=name)
    assert_close(res.proportion_mediated, 6.0 / 6.5)
    assert res.mediators == ("m",)
    assert not res.population


# -- populations -----------------------------------------------------------------------------------


@pytest.mark.parametrize("samples", [2000, pytest.param(100_000, marks=pytest.mark.slow, id="1e5")])
def test_binary_model_population_within_four_standard_errors(samples: int) -> None:
    model = binary_model()
    res = sn.mediation(model, {"x": 1.0}, "y", reference={"x": 0.0}, samples=samples, seed=3)
    assert res.population
    expected = {"te": 8.5, "nde_pure": 2.5, "nie_total": 6.0, "nde_total": 6.5, "nie_pure": 2.0}
    for name, value in expected.items():
        est = getattr(res, name)
        assert isinstance(est, sn.Estimate)
        assert (est.samples, est.seed) == (samples, 3)
        assert abs(est.value - value) <= 4 * est.stderr + 1e-12, (name, est)
    cde = sn.controlled_direct_effect(
        model, {"x": 1.0}, "y", at={"m": 2.0}, reference={"x": 0.0}, samples=samples, seed=3
    )
    assert abs(cde.value - 4.5) <= 4 * cde.stderr + 1e-12
    assert_close(res.proportion_mediated, res.nie_total.value / res.te.value)


def test_natural_reference_is_half_the_ate_on_the_binary_model() -> None:
    # without a reference each unit is compared with its factual world: E[Y(x=1)] - E[Y]
    model = binary_model()
    res = sn.mediation(model, {"x": 1.0}, "y", samples=2000, seed=1)
    assert abs(res.te.value - 4.25) <= 4 * res.te.stderr
    assert res.te.contrast == "E[y(x=1.0)] - E[y]"
    assert res.nde_pure.contrast == "E[y(x=1.0, M)] - E[y], M = (m)"
    assert res.nie_total.contrast == "E[y(x=1.0) - y(x=1.0, M)], M = (m)"
    assert res.nie_pure.contrast == "E[y(M(x=1.0))] - E[y], M = (m)"
    de = sn.direct_effect(model, {"x": 1.0}, "y", samples=2000, seed=1)
    assert_close(res.nde_pure.value, de.value)


def test_a_data_set_of_contexts_is_averaged_exactly() -> None:
    model = binary_model()
    units = [{"u_x": 0.0, "u_m": float(u), "u_y": 0.0} for u in (-1.0, 0.0, 2.0)]
    res = sn.mediation(model, {"x": 1.0}, "y", reference={"x": 0.0}, context=units)
    for name in FIELDS:
        expected = np.mean([binary_unit(u["u_m"])[name] for u in units])
        assert_close(getattr(res, name).value, expected, msg=name)
    assert_identities(
        sn.Mediation(
            *(getattr(res, f).value for f in FIELDS),
            outcome="y",
            treatment=res.treatment,
            reference=res.reference,
            mediators=res.mediators,
            population=True,
        )
    )


def test_mediators_can_be_chosen() -> None:
    # x -> a -> b -> y and x -> y: holding only b is the same as holding both
    model = sn.toys.linear_gaussian(
        {("x", "a"): 2.0, ("a", "b"): 3.0, ("b", "y"): 1.0, ("x", "y"): 0.5}
    )
    u = dict.fromkeys(model.exogenous, 0.1)
    res = sn.mediation(model, {"x": 1.0}, "y", reference={"x": 0.0}, mediators=["b"], context=u)
    assert res.mediators == ("b",)
    assert_close(res.nde_pure, 0.5)
    assert_close(res.nie_pure, 6.0)


# -- Estimate: contrast and interval ---------------------------------------------------------------


def test_estimate_contrasts_of_the_effect_functions() -> None:
    model = sn.toys.linear_mediation()
    x1, x0 = {"x": 1.0}, {"x": 0.0}
    assert sn.total_effect(model, x1, "y", samples=10).contrast == "E[y(x=1.0)] - E[y]"
    assert (
        sn.total_effect(model, x1, "y", reference=x0, samples=10).contrast
        == "E[y(x=1.0) - y(x=0.0)]"
    )
    assert (
        sn.direct_effect(model, x1, "y", reference=x0, samples=10).contrast
        == "E[y(x=1.0, M(x=0.0)) - y(x=0.0)], M = (m)"
    )
    assert (
        sn.indirect_effect(model, x1, "y", reference=x0, samples=10).contrast
        == "E[y(x=0.0, M(x=1.0)) - y(x=0.0)], M = (m)"
    )
    assert sn.direct_effect(model, x1, "y", samples=10).contrast == "E[y(x=1.0, M)] - E[y], M = (m)"
    cde = sn.controlled_direct_effect(model, x1, "y", at={"m": 2.0}, samples=10)
    assert cde.contrast == "E[y(x=1.0, m=2.0)] - E[y(m=2.0)]"
    table = sn.effect_table(model, [x1, {"m": sn.shift(1.0)}], "y", samples=10)
    assert table.result(1).contrast == "E[y(m+=1.0)] - E[y]"


def test_estimate_interval_and_text() -> None:
    est = sn.Estimate(2.0, 0.5, 100, 0)  # positional construction still works
    assert est.contrast == ""
    low, high = est.interval
    assert_close(low, 2.0 - 1.959963984540054 * 0.5)
    assert_close(high, 2.0 + 1.959963984540054 * 0.5)
    model = sn.toys.linear_mediation()
    est = sn.total_effect(model, {"x": 1.0}, "y", reference={"x": 0.0}, samples=50)
    assert "E[y(x=1.0) - y(x=0.0)]" in repr(est)
    assert "95% interval" in str(est)
    assert "normal approximation" in str(est)
    one = sn.total_effect(model, {"x": 1.0}, "y", samples=1)
    assert all(math.isnan(end) for end in one.interval)
    assert "undefined" in str(one)
    arrays = sn.Estimate(np.array([1.0, 2.0]), np.array([0.0, 1.0]), 10, None)
    assert_close(arrays.interval[1], np.array([1.0, 2.0 + 1.959963984540054]))


# -- errors ----------------------------------------------------------------------------------------


def test_mediators_naming_the_treatment_or_outcome_are_refused() -> None:
    model = binary_model()
    u = {"u_x": 0.0, "u_m": 0.0, "u_y": 0.0}
    with pytest.raises(sn.InvalidIntervention, match=r"'x'.*treatment.*remove 'x'"):
        sn.mediation(model, {"x": 1.0}, "y", mediators=["x", "m"], context=u)
    with pytest.raises(sn.InvalidIntervention, match=r"'y'.*outcome.*remove 'y'"):
        sn.mediation(model, {"x": 1.0}, "y", mediators=["y"], context=u)
    with pytest.raises(sn.InvalidIntervention, match=r"exogenous"):
        sn.mediation(model, {"x": 1.0}, "y", mediators=["u_m"], context=u)
    with pytest.raises(sn.InvalidIntervention, match=r"write \['m'\]"):
        sn.mediation(model, {"x": 1.0}, "y", mediators="m", context=u)
    with pytest.raises(sn.NodeNotFound, match=r"'mm'.*did you mean 'm'"):
        sn.mediation(model, {"x": 1.0}, "y", mediators=["mm"], context=u)
    with pytest.raises(sn.InvalidIntervention, match="same sites"):
        sn.mediation(model, {"x": 1.0}, "y", reference={"m": 0.0}, context=u)
    with pytest.raises(sn.InvalidIntervention, match="deterministic"):
        sn.mediation(model, {"x": sn.resample()}, "y", context=u)


def test_controlled_direct_effect_refuses_non_mediators() -> None:
    model = binary_model()
    u = {"u_x": 0.0, "u_m": 0.0, "u_y": 0.0}
    kw = {"reference": {"x": 0.0}, "context": u}
    with pytest.raises(sn.InvalidIntervention, match=r"at names 'x'.*treatment"):
        sn.controlled_direct_effect(model, {"x": 1.0}, "y", at={"x": 1.0}, **kw)
    with pytest.raises(sn.InvalidIntervention, match=r"at names 'y'.*outcome"):
        sn.controlled_direct_effect(model, {"x": 1.0}, "y", at={"y": 1.0}, **kw)
    with pytest.raises(sn.NodeNotFound, match=r"'q'"):
        sn.controlled_direct_effect(model, {"x": 1.0}, "y", at={"q": 1.0}, **kw)
    with pytest.raises(sn.InvalidIntervention, match=r"non-empty mapping.*at=\{'m': 1.0\}"):
        sn.controlled_direct_effect(model, {"x": 1.0}, "y", at={}, **kw)


def test_traced_network_gives_the_scm_answers() -> None:
    torch = pytest.importorskip("torch")
    scm = sn.toys.self_repair()
    net = sn.trace(sn.toys.self_repair_module(), torch.zeros(()))
    for x1, ref in ((0.0, None), (3.0, {"x": 0.5})):
        expected = sn.mediation(scm, {"x": x1}, "y", reference=ref, context={"u": 1.5})
        got = sn.mediation(net, {"x": x1}, "y", reference=ref, context={"u": torch.tensor(1.5)})
        for name in FIELDS:
            value = getattr(got, name)
            assert torch.is_tensor(value)
            assert_close(value, torch.tensor(getattr(expected, name)))
        assert_identities(got)
