"""No silent NaN: a non-finite value stops the run where it first appears, naming it.

A model with an infinite weight, activations that overflow, an intervention that drives a
model out of range, or a custom mechanism that returns NaN or ``None`` would otherwise give NaN
effects (or exact zeros behind a norm) without a word.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import scmnet as sn
from tests.plain_models import TinyGPT


@given(bad=st.sampled_from([math.nan, math.inf, -math.inf]), u=st.floats(-5, 5))
def test_a_mechanism_returning_nan_or_inf_is_named(bad: float, u: float) -> None:
    m = sn.SCM(
        {"x": lambda u: u, "z": lambda x: x + bad, "y": lambda z: 2 * z},
        exogenous={"u": sn.Normal(0.0, 1.0)},
    )
    with pytest.raises(sn.NonFiniteValue, match="mechanism of 'z' returned a value that is not"):
        m.evaluate({"u": u})
    with pytest.raises(sn.NonFiniteValue, match="'z'"):
        sn.total_effect(m, {"x": 1.0}, "y", context={"u": u})


def test_a_mechanism_returning_none_or_a_nan_array_is_named() -> None:
    def forgot(x: float) -> None:
        _ = x + 1  # the missing return this test is about

    m = sn.SCM({"x": lambda u: u, "y": forgot}, exogenous={"u": sn.Normal(0.0, 1.0)})
    with pytest.raises(sn.NonFiniteValue, match=r"'y' returned None.*return statement missing"):
        m.evaluate({"u": 1.0})
    arrays = sn.SCM(
        {"x": lambda u: np.array([u, np.nan]), "y": lambda x: x.sum()},
        exogenous={"u": sn.Normal(0.0, 1.0)},
    )
    with pytest.raises(sn.NonFiniteValue, match="mechanism of 'x'"):
        arrays.evaluate({"u": 1.0})
    tensors = sn.SCM({"x": lambda u: torch.tensor([u, math.inf])}, exogenous={"u": sn.Normal()})
    with pytest.raises(sn.NonFiniteValue, match="mechanism of 'x'"):
        tensors.evaluate({"u": 1.0})


def _gpt() -> tuple[TinyGPT, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    model = TinyGPT(50, 32, 4, 3, context=8).eval()
    ids = torch.randint(0, 50, (1, 7), generator=torch.Generator().manual_seed(1))
    return model, {"idx": ids}


def test_an_infinite_weight_stops_the_clean_run_at_its_layer() -> None:
    model, ctx = _gpt()
    traced = sn.trace(model, torch.randint(0, 50, (2, 7)))
    with torch.no_grad():
        model.get_submodule("h.1.mlp.c_fc").weight[0, 0] = math.inf
    with pytest.raises(sn.NonFiniteValue, match=r"clean run .* first at the variable 'h\.1\.mlp'"):
        traced.evaluate(ctx, outputs=["lm_head"])
    with pytest.raises(sn.NonFiniteValue, match=r"'h\.1\.mlp'"):
        sn.effect_table(traced, [{"h.0.mlp": sn.zero()}], "lm_head", context=ctx)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("row", [0, 1, 2])
def test_one_non_finite_element_names_its_row_of_a_batch(bad: float, row: int) -> None:
    """A single NaN or infinite element in one row of a batch (set at one position of one
    feature, the rest of the batch finite) is found and named: the per-row check reads each
    row's largest magnitude, which NaN and infinity both become."""
    model, ctx = _gpt()
    traced = sn.trace(model, torch.randint(0, 50, (2, 7)))
    where = (slice(None), -1, 3)
    treatments = [{sn.Site(f"h.{j}.attn", index=where): 0.5} for j in range(3)]
    treatments[row] = {sn.Site(f"h.{row}.attn", index=where): bad}
    named = rf"'h\.{row}\.attn' is NaN or infinite in the run of intervention set {row} \("
    with pytest.raises(sn.NonFiniteValue, match=named):
        sn.effect_table(traced, treatments, "lm_head", context=ctx)


def test_an_intervention_out_of_range_names_its_row() -> None:
    model, ctx = _gpt()
    traced = sn.trace(model, torch.randint(0, 50, (2, 7)))
    last = (slice(None), -1)
    treatments = [
        {sn.Site("h.0.attn", index=last): 0.0},
        {sn.Site("h.1.attn", index=last): 3e38},  # overflows float32 in the MLP after it
        {sn.Site("h.2.attn", index=last): 1.0},
    ]
    with pytest.raises(sn.NonFiniteValue, match=r"intervention set 1 \(h\.1\.attn\["):
        sn.effect_table(traced, treatments, "lm_head", context=ctx)
    with pytest.raises(sn.NonFiniteValue, match="intervention set 0"):  # the single-set path
        sn.total_effect(traced, {sn.Site("h.2.mlp", index=last): math.nan}, "lm_head", context=ctx)
    fine = sn.effect_table(traced, [treatments[0], treatments[2]], "lm_head", context=ctx)
    assert bool(torch.isfinite(fine.values).all())
