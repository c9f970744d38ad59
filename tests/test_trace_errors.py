"""Error tests: every misuse of a traced model fails with a message that names the fix."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import scmnet as sn
from scmnet.tracing import (
    ByPath,
    ByPredicate,
    ByType,
    InvalidSelection,
    TracedModel,
    UnsupportedModel,
    UntraceableModel,
    trace,
)
from tests.tiny_models import VOCAB, tiny_model

IDS = torch.arange(5).reshape(1, 5)


@pytest.fixture(scope="module")
def llama() -> TracedModel:
    return trace(tiny_model("llama"), {"input_ids": IDS})


@pytest.fixture(scope="module")
def mlp() -> TracedModel:
    torch.manual_seed(0)
    return trace(
        nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).eval(), torch.zeros(1, 3)
    )


CONTEXT = {"input_ids": IDS.flip(1)}


# -- interventions ----------------------------------------------------------------------------


def test_unknown_node_lists_close_matches(llama: TracedModel) -> None:
    with pytest.raises(sn.NodeNotFound, match=r"'model\.layers\.0\.mpl' \(did you mean "):
        llama.evaluate(CONTEXT, {"model.layers.0.mpl": 0.0})
    with pytest.raises(sn.NodeNotFound, match="did you mean 'lm_head'"):
        sn.total_effect(llama, {"model.norm": 0.0}, "lm_haed", context=CONTEXT)
    with pytest.raises(sn.NodeNotFound, match=r"did you mean 'model\.norm'"):
        llama.evaluate(CONTEXT, outputs=["model.nrom"])
    with pytest.raises(sn.NodeNotFound):
        sn.do(llama, {"model.layers.9.mlp": 0.0})


def test_wrong_shaped_value(llama: TracedModel) -> None:
    with pytest.raises(sn.InvalidIntervention, match=r"shape \(7,\).*shape \(1, 5, 32\)"):
        llama.evaluate(CONTEXT, {"model.layers.0.mlp": torch.zeros(7)})
    last = sn.Site("model.layers.0.mlp", index=(slice(None), -1))
    with pytest.raises(sn.InvalidIntervention, match=r"site's shape \(1, 32\)"):
        llama.evaluate(CONTEXT, {last: torch.zeros(2, 32)})
    llama.evaluate(CONTEXT, {last: torch.zeros(32)})  # broadcasts to (1, 32)


def test_index_out_of_range(llama: TracedModel) -> None:
    site = sn.Site("model.layers.0.mlp", index=(slice(None), 5))
    with pytest.raises(sn.InvalidIntervention, match=r"index .*out of bounds.*size 5"):
        llama.evaluate(CONTEXT, {site: 0.0})
    with pytest.raises(sn.InvalidIntervention, match="does not fit the variable"):
        sn.total_effect(llama, {site: sn.scale(0.0)}, "lm_head", context=CONTEXT)


def test_wrong_dtype_and_kind_of_value(llama: TracedModel) -> None:
    with pytest.raises(sn.InvalidIntervention, match=r"torch\.float64.*\.to\(torch\.float32\)"):
        llama.evaluate(CONTEXT, {"model.norm": torch.zeros(1, 5, 32, dtype=torch.float64)})
    with pytest.raises(sn.InvalidIntervention, match="give a tensor, an array or a number"):
        llama.evaluate(CONTEXT, {"model.norm": "zero"})


def test_soft_intervention_must_keep_the_shape(llama: TracedModel) -> None:
    squash = sn.apply(lambda v: v.sum(-1), "sum")
    with pytest.raises(sn.InvalidIntervention, match="must keep the shape and dtype"):
        llama.evaluate(CONTEXT, {"model.layers.1.mlp": squash})


def test_inputs_cannot_be_intervened_on(llama: TracedModel) -> None:
    with pytest.raises(sn.InvalidIntervention, match=r"input .*exogenous.*context"):
        sn.do(llama, {"input_ids": IDS})


# -- contexts and data sets ----------------------------------------------------------------------


def test_bad_contexts(llama: TracedModel) -> None:
    with pytest.raises(sn.InvalidContext, match="misses the input"):
        llama.evaluate({})
    with pytest.raises(sn.InvalidContext, match="not inputs of the traced model"):
        llama.evaluate({**CONTEXT, "input_idz": IDS})
    longer = {"input_ids": torch.arange(7).reshape(1, 7)}
    assert llama.evaluate(longer, outputs=["lm_head"])["lm_head"].shape[1] == 7  # dynamic sizes
    static = trace(tiny_model("llama"), {"input_ids": IDS}, dynamic_shapes={})
    with pytest.raises(sn.InvalidContext, match=r"shape \(1, 5\).*dynamic_shapes"):
        static.evaluate(longer)
    with pytest.raises(sn.InvalidContext, match="mapping"):
        llama.evaluate([IDS])  # type: ignore[arg-type]
    with pytest.raises(sn.InvalidContext, match="give a tensor"):
        llama.evaluate({"input_ids": "hello"})


def test_no_data_set_to_sample_from(llama: TracedModel) -> None:
    with pytest.raises(sn.InvalidContext, match="no data set"):
        llama.sample_contexts(3, seed=0)
    with pytest.raises(sn.InvalidContext, match="no data set"):
        sn.total_effect(llama, {"model.norm": 0.0}, "lm_head")


def test_bad_data_sets(mlp: TracedModel) -> None:
    net = mlp.module
    with pytest.raises(sn.InvalidContext, match="empty"):
        trace(net, torch.zeros(1, 3), dataset=[])
    with pytest.raises(sn.InvalidContext, match="context 1 of the data set"):
        trace(net, torch.zeros(1, 3), dataset=[{"input": torch.ones(1, 3)}, {"x": 1.0}])
    with pytest.raises(sn.InvalidContext, match="sequence of contexts"):
        trace(net, torch.zeros(1, 3), dataset={"input": torch.ones(1, 3)})  # type: ignore[arg-type]


def test_bad_arguments(mlp: TracedModel) -> None:
    with pytest.raises(sn.InvalidArgument, match="collection of names"):
        mlp.evaluate({"input": torch.zeros(1, 3)}, outputs="2")
    with pytest.raises(sn.InvalidArgument, match="cache_size"):
        trace(mlp.module, torch.zeros(1, 3), cache_size=0)


def test_failing_operation_names_the_node_and_module(mlp: TracedModel) -> None:
    with pytest.raises(sn.MechanismError, match=r"traced operation '_0' .* in module '0'"):
        mlp.evaluate({"input": torch.zeros(1, 7)})


# -- models that cannot be traced or analysed -------------------------------------------------


class Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        if h.sum() > 0:
            return h * 2.0
        return -h


class WithCond(Branchy):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        return torch.cond(h.sum() > 0, lambda h: h * 2.0, lambda h: -h, (h,))


def test_untraceable_model_names_the_construct_and_the_fixes() -> None:
    with pytest.raises(UntraceableModel) as info:
        trace(Branchy().eval(), torch.zeros(2, 3))
    message = str(info.value)
    assert "torch.fx.symbolic_trace failed in '<root>' (Branchy)" in message
    assert "torch.export.export failed" in message
    assert "test_trace_errors.py" in message
    assert "`if h.sum() > 0:`" in message
    assert "torch.cond" in message
    assert "leaves=" in message
    assert "dynamic" in message
    assert isinstance(info.value, sn.ScmnetError)


def test_torch_cond_makes_it_traceable() -> None:
    torch.manual_seed(0)
    net = WithCond().eval()
    traced = trace(net, torch.randn(2, 3))
    assert traced.info.frontend == "export"
    for _ in range(4):
        x = torch.randn(2, 3)
        assert torch.equal(traced.evaluate({"x": x})[traced.outputs[0]], net(x))


def test_batchnorm_in_training_mode_is_refused() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    with pytest.raises(UnsupportedModel, match=r"batch-coupling.*'1'.*model\.eval\(\)"):
        trace(net, torch.zeros(2, 3, 5, 5))
    net.eval()
    net[1].train()
    with pytest.raises(UnsupportedModel, match="BatchNorm in training mode"):
        trace(net, torch.zeros(2, 3, 5, 5))
    trace(net.eval(), torch.zeros(2, 3, 5, 5))


def test_training_mode_and_random_operations_are_refused() -> None:
    with pytest.raises(UnsupportedModel, match=r"training mode.*model\.eval\(\)"):
        trace(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)), torch.zeros(1, 2))

    class Noisy(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + torch.randn_like(x)

    with pytest.raises(UnsupportedModel, match="draws random numbers"):
        trace(Noisy().eval(), torch.zeros(2))


def test_not_a_module_and_no_tensor_inputs() -> None:
    with pytest.raises(UnsupportedModel, match=r"needs a torch\.nn\.Module"):
        trace(lambda x: x, torch.zeros(1))  # type: ignore[arg-type]
    with pytest.raises(sn.InvalidContext, match="contain no tensor"):
        trace(nn.Identity().eval(), (3.0,))
    with pytest.raises(sn.InvalidContext, match="do not fit"):
        trace(nn.Linear(2, 2).eval(), {"nope": torch.zeros(1, 2)})


# -- selections -----------------------------------------------------------------------------


def test_selection_errors(llama: TracedModel) -> None:
    with pytest.raises(InvalidSelection, match=r"selects no variable \(did you mean"):
        llama.with_variables(ByPath("model.layers.*.mpl"))
    with pytest.raises(InvalidSelection, match=r"selects 3 variable\(s\), but 2 were expected"):
        llama.with_variables(ByPath("model.layers.*.mlp").expect(2))
    with pytest.raises(InvalidSelection, match="expect"):
        ByPath("x").expect(-1)
    with pytest.raises(InvalidSelection, match=r"nn\.Module classes"):
        ByType(int)  # type: ignore[arg-type]
    with pytest.raises(InvalidSelection, match="callable"):
        ByPredicate("rsqrt")  # type: ignore[arg-type]
    with pytest.raises(InvalidSelection, match="selector"):
        llama.with_variables(42)  # type: ignore[arg-type]


def test_a_model_without_computing_submodules_needs_op_selectors() -> None:
    with pytest.raises(InvalidSelection, match="ByPredicate"):
        trace(nn.Identity().eval(), torch.zeros(1, 2))


def test_bad_leaves(mlp: TracedModel) -> None:
    with pytest.raises(InvalidSelection, match="matches no module"):
        trace(mlp.module, torch.zeros(1, 3), leaves=["blocks.*"])
    with pytest.raises(InvalidSelection, match="is a Conv2d"):
        trace(mlp.module, torch.zeros(1, 3), leaves=[nn.Conv2d])


def test_out_of_vocabulary_tokens_fail_in_the_embedding(llama: TracedModel) -> None:
    with pytest.raises(sn.MechanismError, match=r"module 'model\.embed_tokens'"):
        llama.evaluate({"input_ids": torch.full((1, 5), VOCAB + 10)})
