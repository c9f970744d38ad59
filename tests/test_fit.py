"""Mechanisms fitted from data (:func:`scmnet.fit`) and intervals over refits.

Known answers: on 20,000 rows of the linear mediation model (ATE 6.5, NDE 0.5, NIE 6.0) the
fitted model's effects are within 0.05; abduction on a fitted model reproduces every row
exactly; a network mechanism is trained reproducibly and can be traced. Property: on random
linear SCMs, the fit recovers the path-sum total effect. Errors name the bad value and the fix.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from torch import nn

import scmnet as sn
from scmnet.testing import assert_close
from tests.strategies import LinearCase, linear_scms, path_sum


def _mediation_data(rows: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    m = 2 * x + rng.normal(size=rows)
    y = 0.5 * x + 3 * m + rng.normal(size=rows)
    return {"x": x, "m": m, "y": y}


EDGES = [("x", "m"), ("x", "y"), ("m", "y")]


def test_a_linear_fit_recovers_the_mediation_effects() -> None:
    model = sn.fit(EDGES, _mediation_data(20_000, seed=0))
    kw = {"reference": {"x": 0.0}, "samples": 20_000, "seed": 1}
    res = sn.mediation(model, {"x": 1.0}, "y", **kw)  # type: ignore[arg-type]
    assert abs(float(res.te) - 6.5) < 0.05
    assert abs(float(res.nde_pure) - 0.5) < 0.05
    assert abs(float(res.nie_total) - 6.0) < 0.05


def test_abduction_on_a_fitted_model_reproduces_every_row() -> None:
    data = _mediation_data(500, seed=2)
    model = sn.fit(nx.DiGraph(EDGES), data)
    contexts = sn.abduct(model, data)
    assert isinstance(contexts, dict)
    values = model.evaluate(contexts)
    for var in ("x", "m", "y"):
        assert_close(values[var], data[var])
    # a counterfactual of one row: the observed y plus the effect of changing x
    row = {k: float(v[0]) for k, v in data.items()}
    moved = sn.counterfactual(model, row, {"x": row["x"] + 1.0}, "y")
    slope = sn.total_effect(model, {"x": 1.0}, "y", reference={"x": 0.0}, context=contexts)
    assert_close(moved, row["y"] + float(np.asarray(slope)[0]))


@settings(max_examples=15, deadline=None)
@given(case=linear_scms(min_nodes=2, max_nodes=5))
def test_a_linear_fit_recovers_path_sums(case: LinearCase) -> None:
    model = case.model
    sample = model.sample(4000, seed=0)
    names = list(model.endogenous)
    edges = [(u, v) for u, v in model.graph.edges if u in names and v in names]
    graph = nx.DiGraph(edges)
    graph.add_nodes_from(names)
    fitted = sn.fit(graph, {v: np.asarray(sample[v], dtype=float) for v in names})
    source, target = names[0], names[-1]
    expected = path_sum(case.graph, case.weights, source, target)
    found = sn.total_effect(
        fitted,
        {source: 1.0},
        target,
        reference={source: 0.0},
        samples=200,
        seed=0,
        unreached="zero",
    )
    assert abs(float(found) - expected) < 0.1 + 0.05 * abs(expected)


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Linear(16, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # type: ignore[no-any-return]


def test_a_network_mechanism_is_trained_reproducibly_and_can_be_traced() -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(-2, 2, size=800)
    data = {"x": x, "y": np.sin(2 * x) + 0.05 * rng.normal(size=800)}
    first, second = _Net(), _Net()
    a = sn.fit([("x", "y")], data, mechanisms={"y": first}, seed=4, epochs=400)
    y_a = a.evaluate({"u_x": 0.7, "u_y": 0.0})["y"]
    b = sn.fit([("x", "y")], data, mechanisms={"y": second}, seed=4, epochs=400)
    assert y_a == b.evaluate({"u_x": 0.7, "u_y": 0.0})["y"]  # the same seed, the same net
    residual = data["y"] - np.asarray(a.evaluate(sn.abduct(a, data))["y"]) + 0  # exact
    assert_close(residual, np.zeros_like(residual))
    mean = float(np.mean(data["x"]))
    assert abs(y_a - np.sin(2 * (mean + 0.7))) < 0.15  # it learnt the curve
    traced = sn.trace(first, torch.zeros(1, 1))  # a fitted network is a mechanism to trace
    point = torch.tensor([[0.3]])
    out = traced.outputs[0]
    with torch.no_grad():
        assert_close(traced.evaluate({"x": point}, outputs=[out])[out], first(point))


def test_a_given_callable_is_used_as_is() -> None:
    data = _mediation_data(300, seed=5)
    model = sn.fit(EDGES, data, mechanisms={"m": lambda x: 2 * x})
    assert_close(
        sn.total_effect(
            model,
            {"x": 1.0},
            "m",
            reference={"x": 0.0},
            context={"u_x": 0.0, "u_m": 0.0, "u_y": 0.0},
        ),
        2.0,
    )


def test_refit_intervals_cover_the_truth_and_follow_the_seed() -> None:
    data = _mediation_data(400, seed=6)

    def ate(model: sn.SCM) -> float:
        context = {"u_x": 0.0, "u_m": 0.0, "u_y": 0.0}
        return float(sn.total_effect(model, {"x": 1.0}, "y", reference={"x": 0.0}, context=context))

    iv = sn.refit_interval(ate, EDGES, data, resamples=60, seed=0)
    assert iv.low < 6.5 < iv.high
    assert iv.high - iv.low < 1.0
    again = sn.refit_interval(ate, EDGES, data, resamples=60, seed=0)
    assert (again.low, again.high) == (iv.low, iv.high)


def test_bad_input_is_refused_with_the_fix() -> None:
    data = _mediation_data(50, seed=7)
    with pytest.raises(sn.InvalidDataset, match=r"no column for \['z'\]"):
        sn.fit([("x", "z")], data)
    with pytest.raises(sn.NotADag, match="cycle"):
        sn.fit([("x", "m"), ("m", "x")], data)
    with pytest.raises(sn.InvalidArgument, match=r"rename \['a-b'\], e.g. 'a-b' -> 'a_b'"):
        sn.fit([("x", "a-b")], {**data, "a-b": data["y"]})
    with pytest.raises(sn.InvalidArgument, match="unknown mechanisms 'quadratic'"):
        sn.fit(EDGES, data, mechanisms="quadratic")
    with pytest.raises(sn.InvalidDataset, match="one length"):
        sn.fit(EDGES, {**data, "y": data["y"][:10]})
    bad = data["m"].copy()
    bad[3] = np.nan
    with pytest.raises(
        sn.InvalidDataset, match=r"column 'm' has a NaN or infinite value \(row 3\)"
    ):
        sn.fit(EDGES, {**data, "m": bad})
    with pytest.raises(sn.InvalidMechanism, match=r"its parents in the graph are \['x'\]"):
        sn.fit(EDGES, data, mechanisms={"m": lambda z: z})
    with pytest.raises(sn.InvalidArgument, match="not in the graph"):
        sn.fit(EDGES, data, mechanisms={"w": lambda x: x})
