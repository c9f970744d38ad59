"""Counterfactuals from observed data: sn.abduct, sn.counterfactual and the declarations."""

from __future__ import annotations

import inspect
from typing import Any

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scmnet as sn
from tests.strategies import dags, path_sum, reals, weights

TOL = {"rel": 1e-9, "abs": 1e-9}


class LinearFn:
    """sum_p w_p * p, with the parents as keyword parameters (for sn.additive)."""

    def __init__(self, parent_weights: dict[str, float]) -> None:
        self.weights = parent_weights
        params = [inspect.Parameter(p, inspect.Parameter.KEYWORD_ONLY) for p in parent_weights]
        self.__signature__ = inspect.Signature(params)

    def __call__(self, **parents: Any) -> Any:
        return sum((w * parents[p] for p, w in self.weights.items()), 0.0)


def additive_linear(graph: nx.DiGraph, w: dict[tuple[str, str], float]) -> sn.SCM:
    """A linear additive-noise SCM over ``graph``: v = sum_p w[p, v] * p + u_v."""
    mechanisms = {
        v: sn.additive(LinearFn({p: w[p, v] for p in graph.predecessors(v)}), noise=f"u_{v}")
        for v in graph.nodes
    }
    return sn.SCM(mechanisms, exogenous={f"u_{v}": sn.Normal() for v in graph.nodes})


@st.composite
def linear_units(draw: st.DrawFn) -> tuple[sn.SCM, nx.DiGraph, dict[Any, float], dict[str, Any]]:
    """A random linear additive-noise SCM and one unit's context."""
    g = draw(dags(2, 6))
    w = {e: draw(weights) for e in g.edges}
    model = additive_linear(g, w)
    context = {u: draw(reals) for u in model.exogenous}
    return model, g, w, context


def observe(model: sn.SCM, context: dict[str, Any]) -> dict[str, Any]:
    values = model.evaluate(context)
    return {v: values[v] for v in model.endogenous}


# -- properties on random linear additive-noise SCMs -------------------------------------------


@settings(max_examples=60, deadline=None)
@given(linear_units())
def test_abduct_then_evaluate_reproduces_the_observation(case: Any) -> None:
    model, _, _, context = case
    obs = observe(model, context)
    u = sn.abduct(model, obs)
    assert isinstance(u, dict)
    assert u == pytest.approx(context, rel=1e-6, abs=1e-6)
    assert observe(model, u) == pytest.approx(obs, **TOL)


@settings(max_examples=60, deadline=None)
@given(linear_units(), st.data())
def test_counterfactual_at_the_observed_value_is_the_observation(case: Any, data: Any) -> None:
    model, g, _, context = case
    obs = observe(model, context)
    x, y = data.draw(st.sampled_from(sorted(g.nodes))), data.draw(st.sampled_from(sorted(g.nodes)))
    assert sn.counterfactual(model, obs, {x: obs[x]}, y) == pytest.approx(obs[y], **TOL)


@settings(max_examples=60, deadline=None)
@given(linear_units(), st.data(), reals)
def test_counterfactuals_equal_the_closed_form(case: Any, data: Any, x_new: float) -> None:
    model, g, w, context = case
    obs = observe(model, context)
    x, y = data.draw(st.sampled_from(sorted(g.nodes))), data.draw(st.sampled_from(sorted(g.nodes)))
    # Each unit keeps its noises, so y moves by the path sum times the change of x.
    expected = x_new if y == x else obs[y] + path_sum(g, w, x, y) * (x_new - obs[x])
    got = sn.counterfactual(model, obs, {x: x_new}, y)
    assert got == pytest.approx(expected, rel=1e-6, abs=1e-6)


@settings(max_examples=30, deadline=None)
@given(dags(2, 5), st.data(), st.integers(1, 6))
def test_a_table_is_abducted_row_by_row_in_one_pass(g: nx.DiGraph, data: Any, n: int) -> None:
    w = {e: data.draw(weights) for e in g.edges}
    model = additive_linear(g, w)
    contexts = [{u: data.draw(reals) for u in model.exogenous} for _ in range(n)]
    rows = [observe(model, c) for c in contexts]
    table = {v: np.array([r[v] for r in rows]) for v in model.endogenous}
    u = sn.abduct(model, table)
    assert isinstance(u, dict)
    for i, row in enumerate(rows):
        assert sn.abduct(model, row) == pytest.approx({k: a[i] for k, a in u.items()}, **TOL)
    # the abducted arrays are one context: evaluation and effects give one value per row
    again = observe(model, u)
    for v, column in table.items():
        np.testing.assert_allclose(again[v], column, rtol=1e-9, atol=1e-9)


# -- the mediation example of the issue ---------------------------------------------------------


def mediation() -> sn.SCM:
    return sn.SCM(
        {
            "x": sn.additive(lambda: 0.0, noise="u_x"),
            "m": sn.additive(lambda x: 2.0 * x, noise="u_m"),
            "y": sn.additive(lambda x, m: 0.5 * x + 3.0 * m, noise="u_y"),
        },
        exogenous={"u_x": sn.Normal(), "u_m": sn.Normal(), "u_y": sn.Normal()},
    )


def test_unit_and_table_counterfactuals_and_unit_effects() -> None:
    model = mediation()
    unit = {"x": 1.0, "m": 2.5, "y": 8.3}
    u = sn.abduct(model, unit)
    assert u == pytest.approx({"u_x": 1.0, "u_m": 0.5, "u_y": 0.3})
    # do(x = 0): m = 0 + 0.5, y = 0 + 3 * 0.5 + 0.3
    assert sn.counterfactual(model, unit, {"x": 0.0}, "y") == pytest.approx(1.8)
    assert sn.total_effect(model, {"x": 1.0}, "y", reference={"x": 0.0}, context=u) == (
        pytest.approx(6.5)
    )
    table = {"x": np.array([1.0, 0.0]), "m": np.array([2.5, 1.0]), "y": np.array([8.3, 3.0])}
    cf = sn.counterfactual(model, table, {"x": 0.0}, "y")
    np.testing.assert_allclose(cf, [1.8, 3.0])
    effects = sn.total_effect(
        model, {"x": 1.0}, "y", reference={"x": 0.0}, context=sn.abduct(model, table)
    )
    np.testing.assert_allclose(effects, [6.5, 6.5])


def test_a_pandas_table_is_accepted() -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"x": [1.0, 0.0], "m": [2.5, 1.0], "y": [8.3, 3.0]})
    u = sn.abduct(mediation(), frame)
    assert isinstance(u, dict)
    np.testing.assert_allclose(u["u_y"], [0.3, 0.0], atol=1e-12)


class _Column:
    def __init__(self, values: list[float]) -> None:
        self.values = values

    def to_numpy(self) -> np.ndarray:
        return np.array(self.values)


class FakeFrame:
    """What abduct reads of a pandas DataFrame (its columns and .to_numpy()), without pandas."""

    __module__ = "pandas.core.frame"

    def __init__(self, data: dict[str, list[float]]) -> None:
        self.data = data
        self.columns = list(data)

    def __getitem__(self, name: str) -> _Column:
        return _Column(self.data[name])


def test_a_data_frame_is_read_by_its_columns() -> None:
    u = sn.abduct(mediation(), FakeFrame({"x": [1.0, 0.0], "m": [2.5, 1.0], "y": [8.3, 3.0]}))
    assert isinstance(u, dict)
    np.testing.assert_allclose(u["u_m"], [0.5, 1.0])


def test_invertible_mechanisms_are_abducted_exactly() -> None:
    model = sn.SCM(
        {
            "x": sn.additive(lambda: 1.0, noise="u_x"),
            "y": sn.invertible(
                lambda x, u_y: x * np.exp(u_y), inverse=lambda x, y: np.log(y / x), noise="u_y"
            ),
        },
        exogenous={"u_x": sn.Normal(), "u_y": sn.Normal()},
    )
    u = sn.abduct(model, {"x": 2.0, "y": 2.0 * np.exp(0.25)})
    assert u == pytest.approx({"u_x": 1.0, "u_y": 0.25})
    assert sn.counterfactual(model, {"x": 2.0, "y": 2.0}, {"x": 3.0}, "y") == pytest.approx(3.0)


# -- DoWhy's counterfactual known-answer tests ---------------------------------------------------
# Reproduced from py-why/dowhy, tests/gcm/test_whatif.py
# (test_counterfactual_samples_with_observed_samples and ..._with_noise_samples, the 7th and 8th
# known-answer tests there). DoWhy fits its linear additive-noise mechanisms to 10,000 draws of
# X0 ~ U(-1, 1), X1 = 2 X0 + N1, X2 = 0.5 X0 + N2, X3 = 0.5 X2 + N3 and accepts answers within
# 0.05; here the mechanisms are the true ones, so the answers are exact. DoWhy's X0..X3 are
# x0..x3 here, and their noises n0..n3.


def dowhy_chain() -> sn.SCM:
    return sn.SCM(
        {
            "x0": sn.additive(lambda: 0.0, noise="n0"),
            "x1": sn.additive(lambda x0: 2.0 * x0, noise="n1"),
            "x2": sn.additive(lambda x0: 0.5 * x0, noise="n2"),
            "x3": sn.additive(lambda x2: 0.5 * x2, noise="n3"),
        },
        exogenous={
            "n0": sn.Uniform(-1.0, 1.0),
            "n1": sn.Normal(0.0, 0.1),
            "n2": sn.Normal(0.0, 0.1),
            "n3": sn.Normal(0.0, 0.1),
        },
    )


def test_dowhy_counterfactual_from_observed_samples() -> None:
    model = dowhy_chain()
    observed = {"x0": 1.0, "x1": 3.0, "x2": 3.0, "x3": 4.0}
    world = sn.do(model, {"x2": 2.0}).evaluate(sn.abduct(model, observed))
    assert {v: world[v] for v in model.endogenous} == pytest.approx(
        {"x0": 1.0, "x1": 3.0, "x2": 2.0, "x3": 3.5}
    )
    assert sn.counterfactual(model, observed, {"x2": 2.0}, "x3") == pytest.approx(3.5)


def test_dowhy_counterfactual_from_noise_samples() -> None:
    # Given the noises themselves, there is nothing to abduct: the context is the noise table.
    model = dowhy_chain()
    world = sn.do(model, {"x2": 2.0}).evaluate({"n0": 1.0, "n1": 2.0, "n2": 3.0, "n3": 4.0})
    assert {v: world[v] for v in model.endogenous} == pytest.approx(
        {"x0": 1.0, "x1": 4.0, "x2": 2.0, "x3": 5.0}
    )


# -- enumeration of discrete exogenous variables -------------------------------------------------


def binary_or() -> sn.SCM:
    """x = u_x, y = x or u_y, with u_x ~ Bernoulli(0.5) and u_y ~ Bernoulli(0.3)."""
    return sn.SCM(
        {"x": lambda u_x: u_x, "y": lambda x, u_y: max(x, u_y)},
        exogenous={"u_x": sn.Bernoulli(0.5), "u_y": sn.Bernoulli(0.3)},
    )


def test_enumeration_gives_the_weighted_posterior() -> None:
    model = binary_or()
    post = sn.abduct(model, {"x": 1.0, "y": 1.0})
    assert isinstance(post, sn.Weighted)
    assert [(c, pytest.approx(w)) for c, w in post] == [
        ({"u_x": 1.0, "u_y": 0.0}, 0.7),
        ({"u_x": 1.0, "u_y": 1.0}, 0.3),
    ]
    # had x been 0, y = u_y: 1 with posterior probability 0.3
    assert sn.counterfactual(model, {"x": 1.0, "y": 1.0}, {"x": 0.0}, "y") == pytest.approx(0.3)
    dist = sn.counterfactual(model, {"x": 1.0, "y": 1.0}, {"x": 0.0}, "y", distribution=True)
    assert dist.items == (0.0, 1.0)
    assert dist.weights == pytest.approx((0.7, 0.3))
    # x = 0, y = 1 pins u_y = 1: a single context of weight one
    one = sn.abduct(model, {"x": 0.0, "y": 1.0})
    assert isinstance(one, sn.Weighted)
    assert list(one) == [({"u_x": 0.0, "u_y": 1.0}, 1.0)]


def test_enumeration_resolves_a_partial_observation_and_a_table() -> None:
    model = binary_or()
    post = sn.abduct(model, {"y": 1.0})  # x unobserved: u_x is enumerated too
    assert isinstance(post, sn.Weighted)
    # P(u | y = 1): (0, 1) 0.15, (1, 0) 0.35, (1, 1) 0.15, over P(y = 1) = 0.65
    assert dict(zip((tuple(c.values()) for c in post.items), post.weights, strict=True)) == (
        pytest.approx({(0.0, 1.0): 0.15 / 0.65, (1.0, 0.0): 0.35 / 0.65, (1.0, 1.0): 0.15 / 0.65})
    )
    vec = sn.SCM(
        {"x": lambda u_x: u_x, "y": lambda x, u_y: np.maximum(x, u_y)},
        exogenous={"u_x": sn.Bernoulli(0.5), "u_y": sn.Bernoulli(0.3)},
    )
    table = {"x": np.array([1.0, 0.0]), "y": np.array([1.0, 1.0])}
    np.testing.assert_allclose(sn.counterfactual(vec, table, {"x": 0.0}, "y"), [0.3, 1.0])


def test_discrete_and_declared_noises_combine() -> None:
    model = sn.SCM(
        {
            "x": sn.additive(lambda: 0.0, noise="u_x"),
            "y": sn.additive(lambda x, s: s * x, noise="u_y"),
        },
        exogenous={"u_x": sn.Normal(), "u_y": sn.Normal(), "s": sn.Choice([-1.0, 1.0], [0.2, 0.8])},
    )
    post = sn.abduct(model, {"x": 2.0, "y": 1.0})
    assert isinstance(post, sn.Weighted)
    assert [c["u_y"] for c in post.items] == [3.0, -1.0]
    assert post.weights == pytest.approx((0.2, 0.8))
    # do(x = 0): y = u_y, so 0.2 * 3 + 0.8 * (-1)
    assert sn.counterfactual(model, {"x": 2.0, "y": 1.0}, {"x": 0.0}, "y") == pytest.approx(-0.2)


class ParityFn:
    """(sum of the parents + the noise) mod 2, with the parents as keyword parameters."""

    def __init__(self, names: list[str]) -> None:
        params = [inspect.Parameter(p, inspect.Parameter.KEYWORD_ONLY) for p in names]
        self.__signature__ = inspect.Signature(params)

    def __call__(self, **parents: Any) -> Any:
        return sum(parents.values(), 0.0) % 2


@settings(max_examples=40, deadline=None)
@given(dags(2, 5), st.data())
def test_enumerated_posteriors_reproduce_the_observation(g: nx.DiGraph, data: Any) -> None:
    probs = {v: data.draw(st.sampled_from([0.1, 0.5, 0.8])) for v in g.nodes}
    model = sn.SCM(
        {v: ParityFn([*g.predecessors(v), f"u_{v}"]) for v in g.nodes},
        exogenous={f"u_{v}": sn.Bernoulli(probs[v]) for v in g.nodes},
    )
    truth = observe(model, {u: data.draw(st.sampled_from([0.0, 1.0])) for u in model.exogenous})
    seen = data.draw(st.lists(st.sampled_from(sorted(g.nodes)), unique=True))
    obs = {v: truth[v] for v in seen}
    post = sn.abduct(model, obs)
    assert isinstance(post, sn.Weighted)
    assert sum(post.weights) == pytest.approx(1.0)
    for context, weight in post:
        assert weight > 0
        assert {v: observe(model, context)[v] for v in seen} == obs
    if seen:
        y = data.draw(st.sampled_from(seen))
        x = data.draw(st.sampled_from(seen))
        assert sn.counterfactual(model, obs, {x: obs[x]}, y) == pytest.approx(obs[y])


def test_labels_are_enumerated_and_compared() -> None:
    model = sn.SCM(
        {"weather": lambda sky: sky, "umbrella": lambda weather: weather == "rain"},
        exogenous={"sky": sn.Choice(["sun", "rain"], [0.6, 0.4])},
    )
    post = sn.abduct(model, {"umbrella": True})
    assert isinstance(post, sn.Weighted)
    assert list(post) == [({"sky": "rain"}, 1.0)]
    assert sn.counterfactual(model, {"umbrella": True}, {"weather": "sun"}, "umbrella") == 0.0


# -- errors -------------------------------------------------------------------------------------


def test_an_undeclared_mechanism_is_named_with_the_fix() -> None:
    model = sn.SCM(
        {"x": sn.additive(lambda: 0.0, noise="u_x"), "y": lambda x, u_y: 2.0 * x + u_y},
        exogenous={"u_x": sn.Normal(), "u_y": sn.Normal()},
    )
    with pytest.raises(sn.InvalidMechanism, match=r"mechanism of 'y'.*sn\.additive\(fn, noise="):
        sn.abduct(model, {"x": 1.0, "y": 2.0})


def test_an_inconsistent_observation_is_an_error() -> None:
    model = sn.SCM(
        {"x": sn.additive(lambda: 0.0, noise="u_x"), "y": lambda x: 2.0 * x},
        exogenous={"u_x": sn.Normal()},
    )
    with pytest.raises(sn.InvalidContext, match=r"inconsistent.*'y' is observed as 5\.0"):
        sn.abduct(model, {"x": 1.0, "y": 5.0})
    with pytest.raises(sn.InvalidContext, match=r"row 1 of the table"):
        sn.abduct(model, {"x": np.array([1.0, 1.0]), "y": np.array([2.0, 5.0])})
    with pytest.raises(sn.InvalidContext, match="inconsistent"):
        sn.abduct(binary_or(), {"x": 1.0, "y": 0.0})


def test_a_partial_observation_without_enumeration_is_refused() -> None:
    with pytest.raises(sn.InvalidContext, match=r"partial observation: 'm' is not observed"):
        sn.abduct(mediation(), {"x": 1.0, "y": 2.0})


def test_unknown_names_and_bad_inputs() -> None:
    model = mediation()
    with pytest.raises(sn.NodeNotFound, match="unknown node 'z'"):
        sn.abduct(model, {"x": 1.0, "m": 1.0, "y": 1.0, "z": 0.0})
    with pytest.raises(sn.NodeNotFound, match=r"unknown node 'yy' \(did you mean 'y'"):
        sn.counterfactual(model, {"x": 1.0, "m": 1.0, "y": 1.0}, {"x": 0.0}, "yy")
    with pytest.raises(sn.InvalidArgument, match="differ in length"):
        sn.abduct(model, {"x": np.zeros(2), "m": np.zeros(3), "y": np.zeros(2)})
    with pytest.raises(sn.InvalidArgument, match="without interventions"):
        sn.abduct(sn.do(model, {"x": 0.0}), {"x": 0.0, "m": 1.0, "y": 1.0})
    with pytest.raises(sn.InvalidMechanism, match="noise="):
        sn.additive(lambda x, u: x + u, noise="u")
    with pytest.raises(sn.InvalidMechanism, match="needs fn to take the noise"):
        sn.invertible(lambda x: x, inverse=lambda x, y: y, noise="u")


def test_an_observation_outside_an_inverse_is_an_error() -> None:
    model = sn.SCM(
        {
            "x": sn.additive(lambda: 1.0, noise="u_x"),
            "y": sn.invertible(
                lambda x, u_y: x * np.exp(u_y), inverse=lambda x, y: np.log(y / x), noise="u_y"
            ),
        },
        exogenous={"u_x": sn.Normal(), "u_y": sn.Normal()},
    )
    with pytest.raises(sn.InvalidContext, match="observed 'y' gives a noise 'u_y' that is not fin"):
        sn.abduct(model, {"x": 1.0, "y": -1.0})
    broken = sn.SCM(
        {
            "x": sn.additive(lambda: 1.0, noise="u_x"),
            "y": sn.invertible(lambda x, u_y: x + u_y, inverse=lambda x, y: 1 / 0, noise="u_y"),
        },
        exogenous={"u_x": sn.Normal(), "u_y": sn.Normal()},
    )
    with pytest.raises(sn.MechanismError, match=r"noise 'u_y' of 'y'.*ZeroDivisionError"):
        sn.abduct(broken, {"x": 1.0, "y": 1.0})


def test_declared_parameters_must_name_the_parents() -> None:
    model = sn.SCM(
        {"a": sn.additive(lambda: 0.0, noise="u_a"), "b": sn.additive(lambda z: z, noise="u_b")},
        exogenous={"u_a": sn.Normal(), "u_b": sn.Normal()},
        parents={"b": ["a", "u_b"]},
    )
    assert model.evaluate({"u_a": 1.0, "u_b": 0.5})["b"] == 1.5
    with pytest.raises(sn.InvalidMechanism, match=r"parameters \['z'\] that are not its parents"):
        sn.abduct(model, {"a": 1.0, "b": 1.5})


def test_declarations_are_plain_mechanisms() -> None:
    f = sn.additive(lambda x, scale=2.0: scale * x, noise="u")
    model = sn.SCM({"x": lambda: 1.0, "y": f}, exogenous={"u": sn.Normal()})
    assert model.parents("y") == ("x", "u")
    assert model.evaluate({"u": 0.5})["y"] == 2.5
    assert f(1.0, u=1.0) == 3.0
    assert "sn.additive" in repr(f)
