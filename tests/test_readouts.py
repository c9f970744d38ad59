"""Linear readouts: read before the linear layer that computes them, with the same numbers.

A ``sn.linear_readout`` of a linear layer's output is folded through the layer's weights and
read from its input (``scmnet.tracing.engine.readouts``). Property test on random networks,
known answers on a plain-PyTorch GPT and a Hugging Face model, and the cases where the fold
must not happen (the read variable, or the layer's own output, is intervened on).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import scmnet as sn
from scmnet.interventions import normalize
from scmnet.testing import assert_close
from tests.plain_models import TinyGPT
from tests.tiny_models import VOCAB, tiny_model

KINDS = ("total", "direct", "indirect")


def _centred(vocab: int, token: int) -> torch.Tensor:
    """``e_token - 1/V``: the centred logit of eq. 9 as a readout direction."""
    w = torch.full((vocab,), -1.0 / vocab)
    w[token] += 1.0
    return w


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    width=st.integers(2, 6),
    out=st.integers(1, 5),
    k=st.sampled_from([None, 1, 3]),
    bias=st.booleans(),
)
def test_folded_readout_equals_the_layer_output_readout(
    seed: int, width: int, out: int, k: int | None, bias: bool
) -> None:
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(3, width), nn.Tanh(), nn.Linear(width, out, bias=bias)).eval()
    m = sn.trace(net, torch.zeros(2, 3))
    w = torch.randn((out,) if k is None else (out, k), generator=g)
    y = sn.linear_readout("2", w, constant=0.5)
    u = {"input": torch.randn(2, 3, generator=g)}
    assert m.plan_outcome(y, u, []).of == ("1",)
    treatments = [{sn.Site("0", index=(0, 1)): v} for v in (0.0, 2.0, -1.0)]
    direct = sn.Outcome(("2",), lambda v: v @ w + 0.5)  # read run by run, not folded
    for kind in KINDS:
        folded = sn.effect_table(m, treatments, y, kind=kind, context=u)  # type: ignore[arg-type]
        plain = sn.effect_table(m, treatments, direct, kind=kind, context=u)  # type: ignore[arg-type]
        assert_close(folded.values, plain.values, reordered=True)
        assert_close(folded.treated, plain.treated, reordered=True)


@pytest.fixture(scope="module")
def gpt() -> tuple[sn.TracedModel, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    model = TinyGPT(50, 32, 4, 3, context=8).eval()
    ids = torch.randint(0, 50, (1, 7), generator=torch.Generator().manual_seed(1))
    return sn.trace(model, torch.randint(0, 50, (2, 7))), {"idx": ids}


def test_gpt_centred_logit_is_read_from_the_final_norm(
    gpt: tuple[sn.TracedModel, dict[str, torch.Tensor]],
) -> None:
    traced, ctx = gpt
    last = (slice(None), -1)
    y = sn.linear_readout(sn.Site("lm_head", index=last), _centred(50, 7), name="centred")
    assert traced.plan_outcome(y, ctx, []).of == (sn.Site("ln_f", index=last),)
    blocks = [v for v in traced.endogenous if v.endswith((".attn", ".mlp"))]
    treatments = [{sn.Site(b, index=last): sn.zero()} for b in blocks]

    def centred(logits: torch.Tensor) -> Any:
        row = logits[0, -1]
        return row[7] - row.mean()

    per_run = sn.Outcome(("lm_head",), centred, "centred")
    for kind in KINDS:
        kw: dict[str, Any] = {"hold": blocks} if kind != "total" else {}
        folded = sn.effect_table(traced, treatments, y, kind=kind, context=ctx, **kw)  # type: ignore[arg-type]
        plain = sn.effect_table(traced, treatments, per_run, kind=kind, context=ctx, **kw)  # type: ignore[arg-type]
        assert_close(folded.values[:, 0], plain.values, reordered=True)


def test_no_fold_where_the_read_variable_is_set(
    gpt: tuple[sn.TracedModel, dict[str, torch.Tensor]],
) -> None:
    traced, ctx = gpt
    last = (slice(None), -1)
    w = _centred(50, 3)
    y = sn.linear_readout(sn.Site("lm_head", index=last), w)
    on_head = [normalize({sn.Site("lm_head", index=(0, -1, 3)): 10.0})]
    assert traced.plan_outcome(y, ctx, on_head).of == (sn.Site("lm_head", index=last),)
    effect = sn.total_effect(
        traced, {sn.Site("lm_head", index=(0, -1, 3)): sn.shift(10.0)}, y, context=ctx
    )
    assert_close(effect, [10.0 * (1 - 1 / 50)], reordered=True)  # the shift, read where it is
    intervened = sn.do(traced, {"lm_head": sn.zero()})
    assert intervened.plan_outcome(y, ctx, []).of == (sn.Site("lm_head", index=last),)
    whole_axis = sn.linear_readout(sn.Site("lm_head", index=(0, -1, slice(None))), w)
    assert traced.plan_outcome(whole_axis, ctx, []).of == whole_axis.of  # indexes the last axis


def test_hugging_face_unembedding_is_folded_through_its_slices() -> None:
    """An exported Llama: lm_head reads the final norm through ``logits_to_keep`` slices."""
    model = tiny_model("llama")
    ctx = {"input_ids": torch.randint(0, VOCAB, (1, 6), generator=torch.Generator().manual_seed(2))}
    traced = sn.trace(model, ctx)
    last = (slice(None), -1)
    y = sn.linear_readout(sn.Site("lm_head", index=last), _centred(VOCAB, 5))
    assert traced.plan_outcome(y, ctx, []).of == (sn.Site("model.norm", index=last),)
    layers = [v for v in traced.endogenous if v.endswith((".self_attn", ".mlp"))]
    treatments = [{sn.Site(v, index=last): sn.zero()} for v in layers]
    folded = sn.effect_table(traced, treatments, y, context=ctx)
    per_run = sn.Outcome(("lm_head",), lambda v: v[0, -1, 5] - v[0, -1].mean())
    plain = sn.effect_table(traced, treatments, per_run, context=ctx)
    assert_close(folded.values[:, 0], plain.values, reordered=True)


def test_bad_weights_are_refused() -> None:
    with pytest.raises(sn.InvalidOutcome, match="weight vector"):
        sn.linear_readout("y", 2.0)
    with pytest.raises(sn.InvalidOutcome, match="weight vector"):
        sn.linear_readout("y", torch.zeros(2, 2, 2))
