"""Averaging over P(u) in one batch: the vectorised population path of an SCM.

The vectorised path (every world once per chunk of units, on arrays) must give the numbers of
the per-context loop (``SCM(..., vectorize=False)``) to rounding, fall back to that loop -- with
a note -- where a mechanism or an outcome does not broadcast, and refuse, naming the variable,
a mechanism whose batch is not its units' values stacked.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scmnet as sn
from scmnet.testing import assert_close
from tests.strategies import LinearCase, linear_scms


def looped(model: sn.SCM) -> sn.SCM:
    """The same model, evaluated one context at a time (the reference path)."""
    twin = copy.copy(model)
    twin._vectorize = False
    return twin


def assert_same_tables(fast: sn.EffectTable, slow: sn.EffectTable) -> None:
    assert fast.batching is not None
    assert fast.batching.path == "vectorised"
    assert slow.batching is not None
    assert slow.batching.path == "looped"
    assert_close(fast.values, slow.values)
    assert_close(fast.stderr, slow.stderr)
    assert_close(fast.treated, slow.treated)
    assert_close(fast.reference, slow.reference)
    assert (fast.contexts, fast.seed, fast.draws) == (slow.contexts, slow.seed, slow.draws)


@settings(max_examples=40, deadline=None)
@given(
    case=linear_scms(min_nodes=2, max_nodes=5),
    data=st.data(),
    kind=st.sampled_from(["total", "direct", "indirect"]),
    with_reference=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_vectorised_matches_loop_on_random_linear_scms(
    case: LinearCase, data: st.DataObject, kind: str, with_reference: bool, seed: int
) -> None:
    m = case.model
    z, y = data.draw(st.permutations(m.endogenous))[:2]
    treatments = [{z: 1.5}, {z: -0.5}]
    reference = {z: 0.25} if with_reference else None
    args: dict[str, Any] = {"kind": kind, "reference": reference, "samples": 64, "seed": seed}
    fast = sn.effect_table(m, treatments, y, **args, unreached="zero")
    slow = sn.effect_table(looped(m), treatments, y, **args, unreached="zero")
    assert_same_tables(fast, slow)


def test_effect_operators_take_the_vectorised_path() -> None:
    m = sn.toys.linear_mediation()
    for op in (sn.total_effect, sn.direct_effect, sn.indirect_effect):
        for reference in (None, {"x": 0.0}):
            fast = op(m, {"x": 1.0}, "y", reference=reference, samples=500, seed=7)
            slow = op(looped(m), {"x": 1.0}, "y", reference=reference, samples=500, seed=7)
            assert_close(fast.value, slow.value)
            assert_close(fast.stderr, slow.stderr)
            assert (fast.samples, fast.seed) == (slow.samples, slow.seed)


def linear_mediation() -> sn.SCM:
    return sn.SCM(
        {
            "x": lambda u_x: u_x,
            "m": lambda x, u_m: 2.0 * x + u_m,
            "y": lambda x, m, u_y: 0.5 * x + 3.0 * m + u_y,
        },
        exogenous={"u_x": sn.Normal(), "u_m": sn.Normal(), "u_y": sn.Normal()},
    )


def binary_interaction() -> sn.SCM:
    """Binary treatment with an X*M interaction: ATE 8.5, pure NDE 2.5, pure NIE 2.0."""
    return sn.SCM(
        {
            "x": lambda u_x: u_x,
            "m": lambda x, u_m: 1.0 + 2.0 * x + u_m,
            "y": lambda x, m, u_y: 0.5 * x + 2.0 * x * m + m + u_y,
        },
        exogenous={"u_x": sn.Bernoulli(0.5), "u_m": sn.Normal(), "u_y": sn.Normal()},
    )


def within(est: sn.Estimate, expected: float) -> None:
    assert abs(est.value - expected) <= 4 * est.stderr + 1e-9, (est, expected)


@pytest.mark.parametrize(
    ("model", "ate", "nde", "nie"),
    [(linear_mediation, 6.5, 0.5, 6.0), (binary_interaction, 8.5, 2.5, 2.0)],
)
def test_closed_forms_at_1e5_draws(model: Any, ate: float, nde: float, nie: float) -> None:
    m = model()
    kw: dict[str, Any] = {"reference": {"x": 0.0}, "samples": 10**5, "seed": 1}
    within(sn.total_effect(m, {"x": 1.0}, "y", **kw), ate)
    within(sn.direct_effect(m, {"x": 1.0}, "y", **kw), nde)
    within(sn.indirect_effect(m, {"x": 1.0}, "y", **kw), nie)
    table = sn.effect_table(m, [{"x": 1.0}], "y", **kw)
    assert table.batching is not None
    assert table.batching.path == "vectorised"


def test_non_broadcasting_mechanism_falls_back_with_a_note() -> None:
    m = sn.SCM(
        {
            "x": lambda u_x: u_x,
            "m": lambda x, u_m: math.exp(0.5 * x) + u_m,
            "y": lambda x, m: m if x > 0 else 2.0 * m,
        },
        exogenous={"u_x": sn.Normal(), "u_m": sn.Normal()},
    )
    t = sn.effect_table(m, [{"x": 1.0}], "y", kind="direct", samples=200, seed=3)
    assert t.batching is not None
    assert t.batching.path == "looped"
    assert "the mechanism of 'm' does not take a batch of units" in t.batching.reason
    single = sn.direct_effect(m, {"x": 1.0}, "y", samples=200, seed=3)  # the note travels
    assert single.note.startswith("the units were evaluated one at a time: the mechanism of 'm'")
    broadcasting = sn.SCM(
        {"x": lambda u_x: u_x, "y": lambda x: 2.0 * x}, exogenous={"u_x": sn.Normal()}
    )
    vectorised = sn.total_effect(broadcasting, {"x": 1.0}, "y", samples=20, seed=3)
    assert vectorised.batching is not None
    assert (vectorised.batching.path, vectorised.note) == ("vectorised", "")
    slow = sn.effect_table(looped(m), [{"x": 1.0}], "y", kind="direct", samples=200, seed=3)
    assert_close(t.values, slow.values)
    assert_close(t.stderr, slow.stderr)
    # units given directly: one at a time, then stacked
    units = m.draw_units(4, seed=0)
    rows = [m.evaluate(c) for c in m.sample_contexts(4, seed=0)]
    assert_close(m.evaluate(units)["y"], np.array([r["y"] for r in rows]))


def test_non_broadcasting_outcome_falls_back_with_a_note() -> None:
    m = sn.toys.linear_mediation()
    t = sn.effect_table(m, [{"x": 1.0}], lambda y: math.tanh(y), samples=100, seed=0)
    assert t.batching is not None
    assert t.batching.path == "looped"
    assert "a batch of units raised" in t.batching.reason
    slow = sn.effect_table(looped(m), [{"x": 1.0}], lambda y: math.tanh(y), samples=100, seed=0)
    assert_close(t.values, slow.values)


def test_reducing_mechanism_is_an_error_naming_the_variable() -> None:
    m = sn.SCM(
        {"h": lambda u: np.tanh(u), "y": lambda h: h.sum()},
        exogenous={"u": sn.Normal(shape=(3,))},
    )
    with pytest.raises(sn.UnitShapeError, match=r"mechanism of 'y' returned shape \(\)"):
        sn.total_effect(m, {"h": np.zeros(3)}, "y", samples=50)
    # one context still works, and so does the loop
    assert sn.total_effect(m, {"h": np.zeros(3)}, "y", context={"u": np.ones(3)}) != 0.0
    est = sn.total_effect(looped(m), {"h": np.zeros(3)}, "y", samples=50)
    assert np.isfinite(est.value)


def test_mechanism_mixing_units_is_an_error_naming_the_variable() -> None:
    m = sn.SCM(
        {"x": lambda u: u, "y": lambda x: x - np.mean(x)},
        exogenous={"u": sn.Normal()},
    )
    with pytest.raises(sn.UnitShapeError, match="mechanism of 'y' gives other values"):
        sn.total_effect(m, {"x": 1.0}, "y", samples=50)


def test_constants_are_broadcast() -> None:
    m = sn.SCM(
        {"c": lambda: 2.0, "x": lambda u: u, "y": lambda x, c: c * x},
        exogenous={"u": sn.Normal()},
    )
    for outcome in ("y", "c"):
        fast = sn.effect_table(m, [{"x": 1.0}], outcome, samples=100, seed=0, unreached="zero")
        slow = sn.effect_table(
            looped(m), [{"x": 1.0}], outcome, samples=100, seed=0, unreached="zero"
        )
        assert_same_tables(fast, slow)
    # the treated variable as the outcome: a constant in both worlds
    fast = sn.effect_table(
        m, [{"x": 1.0}], "x", reference={"x": 0.0}, samples=100, unreached="zero"
    )
    assert fast.values.tolist() == [1.0]
    assert fast.stderr.tolist() == [0.0]


def test_tiny_memory_budget_gives_the_same_numbers() -> None:
    m = binary_interaction()
    kw: dict[str, Any] = {"kind": "indirect", "reference": {"x": 0.0}, "samples": 5000, "seed": 2}
    whole = sn.effect_table(m, [{"x": 1.0}], "y", **kw)
    chunked = sn.effect_table(m, [{"x": 1.0}], "y", memory=2000, **kw)
    assert whole.batching is not None
    assert chunked.batching is not None
    assert whole.batching.chunks == 1
    assert chunked.batching.chunks > 100
    assert chunked.batching.chunk * chunked.batching.unit_bytes <= 2000
    assert_close(chunked.values, whole.values)
    assert_close(chunked.stderr, whole.stderr)
    assert_close(chunked.treated, whole.treated)


def test_given_contexts_stack_or_loop() -> None:
    m = sn.toys.linear_mediation()
    contexts = m.sample_contexts(30, seed=4)
    fast = sn.effect_table(m, [{"x": 2.0}], "y", kind="direct", context=contexts)
    slow = sn.effect_table(looped(m), [{"x": 2.0}], "y", kind="direct", context=contexts)
    assert_same_tables(fast, slow)
    assert fast.seed is None
    ragged = sn.SCM({"y": lambda u: np.sum(u, axis=-1)}, exogenous=["u"])
    t = sn.effect_table(ragged, [{"y": 0.0}], "y", context=[{"u": np.ones(2)}, {"u": np.ones(3)}])
    assert t.batching is not None
    assert t.batching.path == "looped"
    assert "do not stack" in t.batching.reason
    assert t.values.tolist() == [-2.5]


def test_one_context_and_random_ablations_keep_the_loop() -> None:
    m = sn.toys.linear_mediation()
    one = sn.effect_table(m, [{"x": 1.0}], "y", context={"u_x": 0.0, "u_m": 0.0, "u_y": 0.0})
    assert one.batching is None
    t = sn.effect_table(m, [{"x": sn.resample()}], "y", samples=5, draws=2)
    assert t.batching is None


def test_draw_units_are_the_contexts_drawn() -> None:
    m = binary_interaction()
    units = m.draw_units(6, seed=9)
    contexts = m.sample_contexts(6, seed=9)
    assert [units.unit(i) for i in range(6)] == contexts
    assert m.units_batching(units).path == "vectorised"
    assert looped(m).units_batching(units).reason == "the SCM was built with vectorize=False"


def test_torch_mechanisms_vectorise() -> None:
    torch = pytest.importorskip("torch")
    m = sn.SCM(
        {
            "x": lambda u: torch.as_tensor(u, dtype=torch.float64),
            "y": lambda x: torch.tanh(x) * 3.0 + x,
        },
        exogenous={"u": sn.Normal()},
    )
    fast = sn.effect_table(m, [{"x": torch.tensor(1.0, dtype=torch.float64)}], "y", samples=300)
    slow = sn.effect_table(
        looped(m), [{"x": torch.tensor(1.0, dtype=torch.float64)}], "y", samples=300
    )
    assert_same_tables(fast, slow)
    assert isinstance(fast.values, torch.Tensor)


def test_carried_interventions_vectorise() -> None:
    m = sn.do(binary_interaction(), {"m": sn.shift(1.0)})
    kw: dict[str, Any] = {"kind": "direct", "reference": {"x": 0.0}, "samples": 400, "seed": 5}
    fast = sn.effect_table(m, [{"x": 1.0}], "y", **kw)
    slow = sn.effect_table(looped(m), [{"x": 1.0}], "y", **kw)
    assert_same_tables(fast, slow)


def test_a_failing_unit_is_reported_as_one_context_at_a_time() -> None:
    m = sn.SCM({"x": lambda u: np.log(u), "y": lambda x: 2.0 * x}, exogenous={"u": sn.Uniform()})
    contexts = [{"u": 1.0}, {"u": 2.0}, {"u": 3.0}, {"u": 4.0}, {"u": -1.0}]
    with (
        pytest.warns(RuntimeWarning),
        pytest.raises(sn.NonFiniteValue, match=r"mechanism of 'x'.*u=-1\.0"),
    ):
        sn.total_effect(m, {"x": 0.0}, "y", context=contexts)
