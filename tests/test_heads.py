"""Attention heads as variables: the split is exact, heads sum to their layer, ablating every
head of a layer is ablating the layer, and self-repair per head decomposes (on a plain-PyTorch
GPT and on the tiny model of every family whose attention adds to the residual)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import scmnet as sn
from scmnet.adapters.transformer.causal import centred_logit, hydra_model
from scmnet.adapters.transformer.families import Block
from scmnet.adapters.transformer.head_measures import HeadMeasures, measure_heads
from scmnet.adapters.transformer.heads import head_layout, head_site, heads_path
from scmnet.adapters.transformer.measures import measure_prompt
from scmnet.adapters.transformer.output_folder import DamagedFile
from scmnet.errors import InvalidArgument, InvalidIntervention, UnsupportedModel
from scmnet.testing import assert_close
from scmnet.tracing.heads import HeadSplit, split_heads
from tests.plain_models import TinyGPT
from tests.protocol import tiny_lm
from tests.test_selfrepair import _constant_part

ADDITIVE = ("llama", "mistral", "qwen2", "gpt2", "gpt_neox", "phi")
IDS = torch.tensor([[5, 6, 7, 8, 9, 10, 11]])
TOKEN = 3


class Conv1D(nn.Module):
    """A transposed linear map, ``y = x W + b`` with W of shape (in, out), as GPT-2's."""

    def __init__(self, nf: int, nx: int) -> None:
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.randn(nx, nf))
        self.bias = nn.Parameter(torch.randn(nf))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight + self.bias


@settings(max_examples=60, deadline=None)
@given(
    heads=st.integers(1, 4),
    head_dim=st.integers(1, 5),
    out=st.integers(1, 6),
    transposed=st.booleans(),
    bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_a_split_projection_is_the_projection_and_its_heads_sum_to_it(
    heads: int, head_dim: int, out: int, transposed: bool, bias: bool, seed: int
) -> None:
    torch.manual_seed(seed)
    width = heads * head_dim
    projection = Conv1D(out, width) if transposed else nn.Linear(width, out, bias=bias)
    split = HeadSplit(projection, heads)
    x = torch.randn(2, 3, width, dtype=torch.float32)
    assert_close(split(x), projection(x), reordered=True)
    parts = split.heads(x, split.weight)
    assert parts.shape == (2, 3, heads, out)
    offset = split.bias if split.bias is not None else 0.0
    assert torch.equal(parts.sum(-2) + offset, split(x))
    one = x.unflatten(-1, (heads, head_dim))[..., 0, :]  # head 0 alone, through its columns
    w = projection.weight[:head_dim] if transposed else projection.weight[:, :head_dim].T
    assert_close(parts[..., 0, :], one @ w, reordered=True)


def _gpt() -> tuple[TinyGPT, torch.Tensor, dict[str, int]]:
    torch.manual_seed(0)
    gpt = TinyGPT(layers=2, heads=4).eval()
    return gpt, torch.randint(0, 50, (1, 6)), {f"h.{i}.attn.c_proj": 4 for i in range(2)}


def test_a_plain_gpts_heads_are_variables_that_sum_to_the_attention() -> None:
    gpt, ids, projections = _gpt()
    selector = sn.ByPath("h.*.attn") | sn.ByPath("h.*.attn.c_proj.heads") | sn.ByPath("lm_head")
    with split_heads(gpt, projections):
        traced = sn.trace(gpt, ids, variables=selector)
    assert type(gpt.h[0].attn.c_proj) is nn.Linear  # restored
    context = {"idx": ids}
    values = traced.evaluate(context, outputs=["h.1.attn", "h.1.attn.c_proj.heads", "lm_head"])
    heads = values["h.1.attn.c_proj.heads"]
    assert heads.shape == (1, 6, 4, 32)
    assert torch.equal(heads.sum(-2) + gpt.h[1].attn.c_proj.bias, values["h.1.attn"])
    with torch.no_grad():
        assert_close(values["lm_head"], gpt(ids), reordered=True)


def test_patching_every_head_of_a_plain_gpt_layer_is_patching_the_layer() -> None:
    gpt, ids, projections = _gpt()
    selector = sn.ByPath("h.*.attn") | sn.ByPath("h.*.attn.c_proj.heads")
    with split_heads(gpt, projections):
        traced = sn.trace(gpt, ids, variables=selector)
    donor = {"idx": ids.roll(2, 1)}
    out = sn.Outcome((traced.outputs[0],), lambda x: x[0, -1].double())
    last = (slice(None), -1)
    each = {sn.Site("h.0.attn.c_proj.heads", (*last, h)): sn.patch(donor) for h in range(4)}
    whole = {sn.Site("h.0.attn", last): sn.patch(donor)}
    context = {"idx": ids}
    by_heads = sn.total_effect(traced, each, out, context=context)
    by_layer = sn.total_effect(traced, whole, out, context=context)
    assert float(by_layer.abs().max()) > 1e-3  # the patch changes the logits
    assert_close(by_heads, by_layer, reordered=True)


@pytest.mark.parametrize("family", ADDITIVE)
def test_every_familys_heads_sum_to_its_attention_and_the_split_model_is_the_model(
    family: str,
) -> None:
    lm = tiny_lm(family)
    split, plain = hydra_model(lm, heads=True), hydra_model(lm)
    context = {"input_ids": IDS}
    n = lm.n_layers
    attention = [lm.module_path(layer, Block.ATTN.label) for layer in range(n)]
    heads = [heads_path(lm, layer) for layer in range(n)]
    with torch.no_grad():
        values = split.evaluate(context, outputs=[*attention, *heads, split.outputs[0]])
        reference = plain.evaluate(context, outputs=[plain.outputs[0]])[plain.outputs[0]]
    for layer in range(n):
        projection = lm.model.get_submodule(head_layout(lm, layer).projection)
        bias = projection.bias if getattr(projection, "bias", None) is not None else 0.0
        assert values[heads[layer]].shape[-2] == head_layout(lm, layer).n_heads
        assert torch.equal(values[heads[layer]].sum(-2) + bias, values[attention[layer]])
    assert_close(values[split.outputs[0]], reference, reordered=True)


@pytest.mark.parametrize("family", ADDITIVE)
def test_every_familys_heads_ablated_together_are_the_layer_ablated(family: str) -> None:
    """Patching every head of a layer from a donor is patching the layer (any bias is the
    donor's too); zeroing every head is zeroing the layer where the projection has no bias."""
    lm = tiny_lm(family)
    model = hydra_model(lm, heads=True)
    context = {"input_ids": IDS}
    outcome = centred_logit(model, TOKEN)
    n_heads = head_layout(lm, 1).n_heads
    donor = {"input_ids": IDS.roll(3, 1)}
    projection = lm.model.get_submodule(head_layout(lm, 1).projection)
    rules: list[Any] = [sn.patch(donor)]
    if getattr(projection, "bias", None) is None:
        rules.append(sn.zero())
    for rule in rules:
        each = {head_site(lm, 1, h): rule for h in range(n_heads)}
        whole = {sn.Site(lm.module_path(1, Block.ATTN.label), (slice(None), -1)): rule}
        by_heads = sn.total_effect(model, each, outcome, context=context)
        by_layer = sn.total_effect(model, whole, outcome, context=context)
        assert_close(float(by_heads), float(by_layer), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("family", ADDITIVE)
def test_the_heads_direct_effects_sum_to_their_layers(family: str) -> None:
    """sum_h DE_h + the projection bias's share = the layer's Delta_unembed (eq. 10)."""
    lm = tiny_lm(family)
    heads = measure_heads(lm, IDS, TOKEN, [sn.zero()])
    layers = measure_prompt(lm, IDS, TOKEN, [sn.zero()])
    assert_close(heads.clean_logit, layers.clean_logit, reordered=True)
    assert_close(heads.mlp_unembed, layers.unembed[Block.MLP], reordered=True)
    w = lm.unembedding.float()
    row = (w[TOKEN] - w.mean(0)) * lm.norm_gain * lm.readout.scale
    for layer in range(lm.n_layers):
        projection = lm.model.get_submodule(head_layout(lm, layer).projection)
        bias = getattr(projection, "bias", None)
        centred = row - row.mean() if lm.norm_kind.name == "LAYER" else row
        share = 0.0 if bias is None else float(bias.detach() @ centred) / heads.clean_sigma
        total = heads.unembed[layer].sum() + share
        assert_close(total, layers.unembed[Block.ATTN, layer], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("family", ADDITIVE)
def test_every_heads_self_repair_decomposes_with_the_norms_closed_form(family: str) -> None:
    """SR = SR_heads + SR_MLP + SR_norm, with SR_norm = (1 - sigma_a / sigma_c)(logit_a - B)
    for every head's ablation (zero and resample, one draw each)."""
    lm = tiny_lm(family)
    constant = _constant_part(lm, TOKEN)
    for rule, zeroed in ((sn.zero(), True), (sn.patch({"input_ids": IDS.roll(2, 1)}), False)):
        m = measure_heads(lm, IDS, TOKEN, [rule])
        sr = m.self_repair()
        assert_close(sr.total, sr.attn + sr.mlp + sr.norm, rtol=1e-9, atol=1e-9)
        ratio = m.ablated_sigma[..., 0] / m.clean_sigma
        expected = (1 - ratio) * (m.ablated_logit[..., 0] - constant)
        assert_close(sr.norm, expected, rtol=1e-4, atol=1e-5)
        assert_close(sr.total, sr.ablate - sr.own, rtol=1e-12, atol=1e-12)
        if zeroed:  # the head's own direct effect goes to 0
            assert_close(sr.own, -m.unembed, rtol=1e-6, atol=1e-6)


def test_head_measures_round_trip_and_refuse_a_damaged_file(tmp_path: Any) -> None:
    lm = tiny_lm("llama")
    m = measure_heads(lm, IDS, TOKEN, [sn.zero(), sn.patch({"input_ids": IDS.roll(1, 1)})])
    path = tmp_path / "00000.npz"
    m.save(path)
    back = HeadMeasures.load(path, prompt=0)
    for name in ("unembed", "ablated_heads", "ablated_mlps", "ablated_sigma"):
        np.testing.assert_array_equal(getattr(back, name), getattr(m, name))
    with pytest.raises(DamagedFile, match="holds prompt 0, not prompt 4"):
        HeadMeasures.load(path, prompt=4)
    np.savez(path, **{**{k: v for k, v in np.load(path).items()}, "unembed": np.zeros((2, 2))})
    with pytest.raises(DamagedFile, match="'unembed' of shape"):
        HeadMeasures.load(path)


def test_a_family_whose_attention_is_normed_before_the_residual_is_refused() -> None:
    with pytest.raises(UnsupportedModel, match="post_attention_layernorm"):
        head_layout(tiny_lm("gemma3"), 0)


def test_a_head_out_of_range_is_refused() -> None:
    with pytest.raises(InvalidIntervention, match="head 4 of layer 0: the layer has heads 0 to 3"):
        head_site(tiny_lm("llama"), 0, 4)


@pytest.mark.parametrize(
    ("projections", "error", "message"),
    [
        ({"h.0.attn.nope": 4}, InvalidArgument, r"'h\.0\.attn\.nope' names no module"),
        ({"h.0.attn.c_proj": 0}, InvalidArgument, "must be a positive int, got 0"),
        ({"h.0.attn.c_proj": 5}, UnsupportedModel, "input width 32 is not a multiple of 5"),
        ({"h.0.mlp.gelu": 1}, UnsupportedModel, "cannot split GELU"),
    ],
)
def test_split_heads_refuses_bad_paths_and_counts(
    projections: dict[str, int], error: type[Exception], message: str
) -> None:
    gpt, _, _ = _gpt()
    with (
        pytest.raises(error, match=message),
        split_heads(gpt, {"h.1.attn.c_proj": 4, **projections}),
    ):
        pass
    assert type(gpt.h[1].attn.c_proj) is nn.Linear  # nothing left replaced
