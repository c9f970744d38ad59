"""Choosing the variables of a traced network: selectors, the default depth, names, edges."""

from __future__ import annotations

from typing import Any

import networkx as nx
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as nnf

import scmnet as sn
from scmnet.testing import assert_close
from scmnet.tracing import (
    ByPath,
    ByPredicate,
    ByType,
    Default,
    TracedModel,
    trace,
)
from scmnet.tracing.capture._glob import path_matches
from tests.tiny_models import VOCAB, tiny_model

IDS = torch.arange(6).reshape(1, 6) % VOCAB


@pytest.fixture(scope="module")
def llama() -> nn.Module:
    return tiny_model("llama")


@pytest.fixture(scope="module")
def traced_llama(llama: nn.Module) -> TracedModel:
    return trace(llama, {"input_ids": IDS})


# -- glob patterns on module paths ---------------------------------------------------------------

segments = st.lists(st.sampled_from(["model", "layers", "0", "1", "mlp", "attn"]), max_size=5)


@given(path=segments)
def test_a_path_matches_itself_and_double_star(path: list[str]) -> None:
    dotted = ".".join(path)
    assert path_matches(dotted, dotted)
    assert path_matches("**", dotted)


@given(path=segments.filter(bool))
def test_star_matches_exactly_one_segment(path: list[str]) -> None:
    dotted = ".".join(path)
    stars = ".".join("*" for _ in path)
    assert path_matches(stars, dotted)
    assert not path_matches(stars + ".*", dotted)
    assert path_matches("**." + path[-1], dotted)


# -- selectors -------------------------------------------------------------------------------


def test_by_path_selects_module_outputs(traced_llama: TracedModel) -> None:
    traced = traced_llama.with_variables(ByPath("model.layers.*.mlp").expect(3))
    assert traced.endogenous == (
        "model.layers.0.mlp", "model.layers.1.mlp", "model.layers.2.mlp", "lm_head",
    )  # fmt: skip
    assert traced.records["model.layers.0.mlp"].selected_as == "module"
    assert traced.records["lm_head"].selected_as == "module"  # the model output, not selected
    assert traced.outputs == ("lm_head",)


def test_strings_and_lists_mean_by_path(llama: nn.Module, traced_llama: TracedModel) -> None:
    a = trace(llama, {"input_ids": IDS}, variables=["model.layers.0.*", "model.norm"])
    b = traced_llama.with_variables(ByPath("model.layers.0.*") | ByPath("model.norm"))
    assert a.endogenous == b.endogenous
    assert "model.layers.0.self_attn" in a.endogenous
    assert "model.layers.0.self_attn.q_proj" not in a.endogenous


def test_by_type_and_combinations(traced_llama: TracedModel) -> None:
    linear = ByType(nn.Linear)
    traced = traced_llama.with_variables(linear.expect(3 * 7 + 1))
    assert "model.layers.2.self_attn.o_proj" in traced.endogenous
    first = ByPath("model.layers.0.**")
    both = traced_llama.with_variables((linear & first).expect(7))
    assert all(v.startswith("model.layers.0.") for v in both.endogenous[:-1])
    rest = traced_llama.with_variables((linear - first).expect(3 * 7 + 1 - 7))
    assert not any(v.startswith("model.layers.0.") for v in rest.endogenous)


def test_by_predicate_within_a_module(traced_llama: TracedModel) -> None:
    rsqrt = ByPredicate(lambda n: n.target is torch.ops.aten.rsqrt.default)
    everywhere = traced_llama.with_variables(rsqrt.expect(2 * 3 + 1))
    assert "model.layers.1.post_attention_layernorm/rsqrt" in everywhere.endogenous
    final = traced_llama.with_variables(ByPredicate(rsqrt.fn, within="model.norm"))
    assert final.endogenous == ("model.norm/rsqrt", "lm_head")
    record = final.records["model.norm/rsqrt"]
    assert record.selected_as == "op"
    assert record.op == "aten.rsqrt.default"
    assert record.shape == (1, 6, 1)


def test_op_names_count_repeats_within_a_module(traced_llama: TracedModel) -> None:
    mul = ByPredicate(lambda n: n.target is torch.ops.aten.mul.Tensor, within="model.norm")
    traced = traced_llama.with_variables(mul)
    assert traced.endogenous[:2] == ("model.norm/mul", "model.norm/mul.1")


def test_default_selection_of_a_decoder_keeps_gemma_post_norms() -> None:
    traced = trace(tiny_model("gemma3"), {"input_ids": IDS})
    layer = (
        "self_attn", "post_attention_layernorm", "mlp", "post_feedforward_layernorm",
    )  # fmt: skip
    expected = [f"model.layers.{i}.{name}" for i in range(3) for name in layer]
    assert traced.endogenous == ("model.embed_tokens", *expected, "model.norm", "lm_head")


@pytest.mark.parametrize(
    ("family", "blocks"),
    [("gpt2", "transformer.h.{}.{}"), ("gpt_neox", "gpt_neox.layers.{}.{}")],
)
def test_default_selection_of_other_decoders(family: str, blocks: str) -> None:
    traced = trace(tiny_model(family), {"input_ids": IDS})
    attention = "attn" if family == "gpt2" else "attention"
    layers = [blocks.format(i, kind) for i in range(3) for kind in (attention, "mlp")]
    assert list(traced.endogenous[1:-2]) == layers


def test_default_selection_of_plain_modules() -> None:
    inner = nn.Sequential(nn.Linear(3, 3), nn.ReLU())
    net = nn.Sequential(nn.Linear(2, 3), inner, nn.Linear(3, 1)).eval()
    traced = trace(net, torch.zeros(1, 2))
    assert traced.endogenous == ("0", "1.0", "1.1", "2")
    assert traced.endogenous == trace(net, torch.zeros(1, 2), variables=Default()).endogenous


class Inner(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 4)
        self.fc2 = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


class Stem(nn.Module):
    """The first layer feeds only a block, but it is not on a residual branch: a variable."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Linear(4, 4)
        self.block = Inner()
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(self.stem(x)))


class PreNorm(Stem):
    """``x + block(norm(x))``: the norm is part of the block's mechanism."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.LayerNorm(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x + self.block(self.stem(x)))


def test_pre_norms_are_folded_into_their_block_and_stems_are_not() -> None:
    assert trace(Stem().eval(), torch.zeros(1, 4)).endogenous == ("stem", "block", "head")
    traced = trace(PreNorm().eval(), torch.zeros(1, 4))
    assert traced.endogenous == ("block", "head")
    assert set(traced.graph.predecessors("block")) == {"x"}
    assert set(traced.graph.predecessors("head")) == {"x", "block"}


def test_output_computed_by_the_root_becomes_a_variable() -> None:
    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x) * 2.0

    traced = trace(Scaled().eval(), torch.zeros(1, 3))
    assert traced.endogenous == ("fc", "output")
    assert traced.outputs == ("output",)
    assert traced.records["output"].selected_as == "output"
    assert list(traced.graph.predecessors("output")) == ["fc"]


class Converts(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.fc(x).to(torch.float32), x


def test_no_op_conversions_and_returned_inputs_are_not_variables() -> None:
    traced = trace(Converts().eval(), torch.zeros(1, 2))
    assert traced.info.dropped == ("to",)
    assert traced.endogenous == ("fc",)
    assert traced.outputs == ("fc",)


class Twice(nn.Module):
    """Calls one module twice and returns two tensors."""

    def __init__(self) -> None:
        super().__init__()
        self.f = nn.Linear(3, 3)
        self.split = Split()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = self.split(self.f(x))
        return self.f(a), b


class Split(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x * 2.0, x - 1.0


def test_repeated_calls_and_several_outputs_get_readable_names() -> None:
    net = Twice().eval()
    traced = trace(net, torch.zeros(2, 3))
    assert traced.endogenous == ("f", "split/out0", "split/out1", "f@1")
    assert traced.outputs == ("f@1", "split/out1")
    assert set(traced.graph.predecessors("f@1")) == {"split/out0"}
    x = torch.randn(2, 3)
    values = traced.evaluate({"x": x})
    first, second = net(x)
    assert torch.equal(values["f@1"], first)
    assert torch.equal(values["split/out1"], second)
    calls = trace(net, torch.zeros(2, 3), variables=ByPath("f").expect(2))
    assert calls.endogenous == ("f", "split/out1", "f@1")


# -- what the edges mean --------------------------------------------------------------------


class ShapeOnly(nn.Module):
    """``b`` reads only the shape of ``a``'s output; ``c`` reads its values."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(3, 3)
        self.b = Zeros()
        self.c = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        return self.c(h) + self.b(h, x)


class Zeros(nn.Module):
    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(h) + x.new_ones(h.shape[0], 1) * nnf.relu(x)


def test_shape_only_reads_are_not_edges() -> None:
    traced = trace(ShapeOnly().eval(), torch.zeros(2, 3))
    assert set(traced.graph.predecessors("b")) == {"x"}
    assert set(traced.graph.predecessors("c")) == {"a"}
    context = {"x": torch.randn(2, 3)}
    te = sn.total_effect(traced, {"a": torch.randn(2, 3)}, "b", context=context, unreached="zero")
    assert torch.equal(te, torch.zeros_like(te))
    with pytest.raises(sn.NoCausalPath, match="'a' is not an ancestor of the outcome 'b'"):
        sn.total_effect(traced, {"a": torch.randn(2, 3)}, "b", context=context)


def test_constants_of_the_context_are_not_variables_unless_selected(
    traced_llama: TracedModel,
) -> None:
    assert not any("rotary" in v for v in traced_llama.endogenous)
    rotary = traced_llama.with_variables(ByPath("model.rotary_emb").expect(2))
    assert rotary.endogenous[:2] == ("model.rotary_emb/out0", "model.rotary_emb/out1")
    assert list(rotary.graph.predecessors("model.rotary_emb/out0")) == []
    assert set(rotary.graph.successors("model.rotary_emb/out1")) == {"lm_head"}
    assert rotary.records["lm_head"].selected_as == "module"


def test_an_attention_mask_input_is_a_parent_of_attention(llama: nn.Module) -> None:
    mask = torch.ones(1, 6, dtype=torch.long)
    traced = trace(llama, {"input_ids": IDS, "attention_mask": mask})
    assert traced.exogenous == ("input_ids", "attention_mask")
    assert "attention_mask" in traced.graph.predecessors("model.layers.0.self_attn")
    assert "attention_mask" not in traced.graph.predecessors("model.layers.0.mlp")
    masked = mask.clone()
    masked[0, 2] = 0
    context = {"input_ids": IDS, "attention_mask": masked}
    with torch.no_grad():
        expected = llama(**context, use_cache=False).logits
    assert_close(traced.evaluate(context)["lm_head"], expected)


# -- leaves --------------------------------------------------------------------------------


class Gate(nn.Module):
    """Data-dependent control flow: untraceable unless kept whole."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return x * 2.0
        return -x


class Gated(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.gate = Gate()
        self.out = nn.Linear(3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.gate(self.fc(x)))


@pytest.mark.parametrize("leaf", ["gate", Gate])
def test_leaves_keep_untraceable_modules_whole(leaf: Any) -> None:
    torch.manual_seed(0)
    net = Gated().eval()
    traced: TracedModel = trace(net, torch.zeros(2, 3), leaves=[leaf])
    assert traced.info.frontend == "fx"
    assert traced.endogenous == ("fc", "gate", "out")
    assert traced.records["gate"].op == "call_module:gate"
    for _ in range(3):
        x = torch.randn(2, 3)
        assert torch.equal(traced.evaluate({"x": x})["out"], net(x))
    ablated = traced.evaluate({"x": torch.randn(2, 3)}, {"fc": -torch.ones(2, 3)})
    with torch.no_grad():
        expected = net.out(net.gate(-torch.ones(2, 3)))
    assert torch.equal(ablated["out"], expected)


def test_every_selection_gives_a_frozen_dag_and_the_same_outputs(
    traced_llama: TracedModel,
) -> None:
    context = {"input_ids": IDS.flip(1)}
    logits = traced_llama.evaluate(context)["lm_head"]
    for variables in (None, ByType(nn.Linear), ByPath("model.layers.*"), ByPath("**")):
        traced = traced_llama.with_variables(variables)
        assert nx.is_directed_acyclic_graph(traced.graph)
        assert nx.is_frozen(traced.graph)
        assert traced.outputs == ("lm_head",)
        assert torch.equal(traced.evaluate(context)["lm_head"], logits)
