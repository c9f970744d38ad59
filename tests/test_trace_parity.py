"""Traced networks evaluate exactly like the eager model, with and without interventions.

Parity (minGPT's test against HF GPT-2, in miniature): the traced clean run reproduces the eager
outputs, and an intervention on a variable reproduces the eager model run with the same value
patched in by a forward hook, for plain modules (an MLP, a residual CNN, a GPT-style model
written here) and tiny random-weight Hugging Face models of every supported family.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import networkx as nx
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import scmnet as sn
from scmnet.testing import assert_close, check_scm
from scmnet.tracing import ByPath, ByPredicate, TracedModel, trace
from tests.plain_models import ResidualCNN, TinyGPT
from tests.tiny_models import FAMILIES, VOCAB, tiny_model

SEQ = 6


def _plain(name: str) -> tuple[nn.Module, Callable[[], torch.Tensor]]:
    torch.manual_seed(0)
    if name == "mlp":
        mlp = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 16), nn.Tanh())
        return mlp.append(nn.Linear(16, 3)).eval(), lambda: torch.randn(2, 4)
    if name == "cnn":
        cnn = ResidualCNN(inplace=False)
    elif name == "cnn_inplace":
        cnn = ResidualCNN(inplace=True)
    else:
        return TinyGPT().eval(), lambda: torch.randint(0, 50, (2, SEQ))
    with torch.no_grad():  # running statistics that are not the identity
        for m in cnn.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return cnn.eval(), lambda: torch.randn(2, 3, 8, 8)


PLAIN = ("mlp", "cnn", "cnn_inplace", "gpt")


@pytest.fixture(scope="module", params=PLAIN)
def plain(request: pytest.FixtureRequest) -> tuple[nn.Module, TracedModel, Callable[[], Any]]:
    model, draw = _plain(request.param)
    return model, trace(model, draw()), draw


@pytest.fixture(scope="module", params=FAMILIES)
def hf(request: pytest.FixtureRequest) -> tuple[nn.Module, TracedModel]:
    model = tiny_model(request.param)
    return model, trace(model, {"input_ids": _ids(0)})


def _ids(seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, VOCAB, (1, SEQ), generator=generator)


def _eager(model: nn.Module, context: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        out = (
            model(**context, use_cache=False)
            if "input_ids" in context
            else model(*context.values())
        )
    return out.logits if hasattr(out, "logits") else out  # type: ignore[no-any-return]


def _hooked(
    model: nn.Module,
    path: str,
    patch: Callable[[torch.Tensor], torch.Tensor],
    context: dict[str, torch.Tensor],
) -> torch.Tensor:
    """The eager output with ``patch`` applied to the output of the module ``path``."""

    def hook(module: nn.Module, args: Any, output: Any) -> Any:
        if isinstance(output, tuple):
            return (patch(output[0]), *output[1:])
        return patch(output)

    handle = model.get_submodule(path).register_forward_hook(hook)
    try:
        return _eager(model, context)
    finally:
        handle.remove()


def _middle_module_variable(traced: TracedModel) -> str:
    modules = [v for v in traced.endogenous if traced.records[v].selected_as == "module"]
    return modules[len(modules) // 2]


def _set_last(index: Any, value: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    def patch(output: torch.Tensor) -> torch.Tensor:
        out = output.clone()
        out[index] = value
        return out

    return patch


# -- parity of the clean run -----------------------------------------------------------------


def test_plain_modules_evaluate_like_eager(plain: Any) -> None:
    model, traced, draw = plain
    for _ in range(3):
        x = draw()
        context = {traced.exogenous[0]: x}
        (output,) = traced.outputs
        assert torch.equal(traced.evaluate(context)[output], _eager(model, context))


def test_hf_models_evaluate_like_eager(hf: Any) -> None:
    model, traced = hf
    assert traced.info.frontend == "export"
    assert traced.info.max_abs_diff == 0.0
    for seed in (1, 2):
        context = {"input_ids": _ids(seed)}
        (output,) = traced.outputs
        assert_close(traced.evaluate(context)[output], _eager(model, context))


def test_front_ends_are_recorded() -> None:
    model, draw = _plain("cnn_inplace")
    traced = trace(model, draw())
    assert traced.info.frontend == "export"
    assert "in-place" in traced.info.failures[0]
    model, draw = _plain("gpt")
    assert trace(model, draw()).info.frontend == "fx"


# -- parity of interventions with forward hooks ------------------------------------------------


def test_plain_interventions_match_forward_hooks(plain: Any) -> None:
    model, traced, draw = plain
    x = draw()
    context = {traced.exogenous[0]: x}
    variable = _middle_module_variable(traced)
    natural = traced.evaluate(context, outputs=[variable])[variable]
    torch.manual_seed(1)
    value = torch.randn_like(natural)
    (output,) = traced.outputs
    te = sn.total_effect(traced, {variable: value}, output, context=context)
    path = traced.records[variable].module_path
    expected = _hooked(model, path, lambda _: value, context) - _eager(model, context)
    assert_close(te, expected)
    scaled = sn.total_effect(traced, {variable: sn.scale(0.5)}, output, context=context)
    assert_close(scaled, _hooked(model, path, lambda v: 0.5 * v, context) - _eager(model, context))


def test_hf_interventions_match_forward_hooks(hf: Any) -> None:
    model, traced = hf
    context = {"input_ids": _ids(3)}
    (output,) = traced.outputs
    for variable in (_middle_module_variable(traced), traced.endogenous[0]):
        natural = traced.evaluate(context, outputs=[variable])[variable]
        torch.manual_seed(2)
        value = torch.randn(natural.shape[0], natural.shape[-1])
        site = sn.Site(variable, index=(slice(None), -1))
        te = sn.total_effect(traced, {site: value}, output, context=context)
        patched = _hooked(
            model, traced.records[variable].module_path, _set_last((slice(None), -1), value),
            context,
        )  # fmt: skip
        assert_close(te, patched - _eager(model, context))
        assert torch.equal(te[:, :-1], torch.zeros_like(te[:, :-1]))  # causal masking


def test_traced_networks_pass_the_conformance_check(plain: Any) -> None:
    _, traced, draw = plain
    check_scm(traced, contexts=[{traced.exogenous[0]: draw()}], max_treatments=4)


def test_llama_passes_the_conformance_check() -> None:
    model = tiny_model("llama")
    traced = trace(model, {"input_ids": _ids(0)})
    check_scm(traced, contexts=[{"input_ids": _ids(4)}], max_treatments=3)


@pytest.fixture(scope="module")
def gpt() -> tuple[nn.Module, TracedModel]:
    model, draw = _plain("gpt")
    return model, trace(model, draw())


@settings(max_examples=30)
@given(data=st.data())
def test_random_patches_match_forward_hooks(gpt: tuple[nn.Module, TracedModel], data: Any) -> None:
    """For any variable, position and soft or hard patch, traced == eager with a hook."""
    model, traced = gpt
    variable = data.draw(st.sampled_from(traced.endogenous[:-1]), label="variable")
    position = data.draw(st.integers(-SEQ, SEQ - 1), label="position")
    factor = data.draw(st.floats(-3.0, 3.0, allow_nan=False), label="factor")
    hard = data.draw(st.booleans(), label="hard")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    context = {"idx": torch.randint(0, 50, (2, SEQ), generator=torch.Generator().manual_seed(seed))}
    index = (slice(None), position)
    width = traced.records[variable].shape[-1]
    value = torch.full((width,), factor)
    rule: Any = value if hard else sn.scale(factor)

    def patch(output: torch.Tensor) -> torch.Tensor:
        out = output.clone()
        out[index] = value if hard else factor * output[index]
        return out

    te = sn.total_effect(traced, {sn.Site(variable, index=index): rule}, "lm_head", context=context)
    path = traced.records[variable].module_path
    assert_close(te, _hooked(model, path, patch, context) - _eager(model, context))


def test_in_place_rules_do_not_touch_the_cache(gpt: tuple[nn.Module, TracedModel]) -> None:
    _, traced = gpt
    context = {"idx": torch.randint(0, 50, (2, SEQ))}
    clean = traced.evaluate(context)["h.0.mlp"].clone()
    traced.evaluate(context, {"h.0.mlp": sn.apply(lambda v: v.mul_(0.0), "zero in place")})
    assert torch.equal(traced.evaluate(context)["h.0.mlp"], clean)


def test_with_variables_reuses_the_trace(gpt: tuple[nn.Module, TracedModel]) -> None:
    _, traced = gpt
    coarse = traced.with_variables(ByPath("h.*"))
    assert coarse.endogenous == ("h.0", "h.1", "lm_head")
    assert coarse.network.source is traced.network.source
    assert set(coarse.graph.predecessors("h.1")) == {"h.0"}
    assert set(coarse.graph.predecessors("h.0")) == {"idx"}


# -- the causal graph of a decoder ------------------------------------------------------------


def test_llama_graph_has_attention_and_mlp_nodes_on_the_residual_stream() -> None:
    model = tiny_model("llama")
    traced = trace(model, {"input_ids": _ids(0)})
    layers = len(model.model.layers)
    blocks = [f"model.layers.{i}.{kind}" for i in range(layers) for kind in ("self_attn", "mlp")]
    expected = ("model.embed_tokens", *blocks, "model.norm", "lm_head")
    assert traced.endogenous == expected
    assert traced.exogenous == ("input_ids",)
    g = traced.graph
    assert nx.is_directed_acyclic_graph(g)
    assert set(g.predecessors("model.embed_tokens")) == {"input_ids"}
    upstream = ["model.embed_tokens"]
    for block in blocks:  # the residual stream: every block reads every earlier block
        assert set(g.predecessors(block)) == set(upstream), block
        upstream.append(block)
    assert set(g.predecessors("model.norm")) == set(upstream)
    assert set(g.predecessors("lm_head")) == {"model.norm"}
    record = traced.records["model.layers.1.mlp"]
    assert record.module_type.endswith("LlamaMLP")
    assert record.shape == (1, SEQ, 32)


def test_effects_on_non_ancestors_are_zero() -> None:
    traced = trace(tiny_model("llama"), {"input_ids": _ids(0)})
    context = {"input_ids": _ids(5)}
    treatment = {"model.layers.1.mlp": 0.0}
    for outcome in ("model.layers.0.mlp", "model.layers.1.self_attn", "model.embed_tokens"):
        assert outcome not in nx.descendants(traced.graph, "model.layers.1.mlp")
        for effect in (sn.total_effect, sn.direct_effect, sn.indirect_effect):
            value = effect(traced, treatment, outcome, context=context, unreached="zero")
            assert torch.equal(value, torch.zeros_like(value)), (effect.__name__, outcome)
            with pytest.raises(sn.NoCausalPath, match=r"'model\.layers\.1\.mlp' is not"):
                effect(traced, treatment, outcome, context=context)


def test_direct_effect_with_the_norm_scale_held_is_the_unembedding_impact() -> None:
    """Eqs. 7-10: with sigma = the final RMSNorm's scale as a variable, the direct effect of a
    block's output on the logits is u(v) = (v * sigma) * g @ W_U (here of v = -m, an ablation)."""
    model = tiny_model("llama")
    sigma = ByPredicate(lambda n: n.target is torch.ops.aten.rsqrt.default, within="model.norm")
    variables = ByPath("model.layers.*.self_attn") | ByPath("model.layers.*.mlp") | sigma.expect(1)
    traced = trace(model, {"input_ids": _ids(0)}, variables=variables)
    assert traced.endogenous[-2:] == ("model.norm/rsqrt", "lm_head")
    context = {"input_ids": _ids(6)}
    site = sn.Site("model.layers.1.mlp", index=(slice(None), -1))
    de = sn.direct_effect(traced, {site: 0.0}, "lm_head", context=context)
    values = traced.evaluate(context)
    m = values["model.layers.1.mlp"][:, -1]
    s = values["model.norm/rsqrt"][:, -1]
    with torch.no_grad():
        expected = ((0.0 - m) * s * model.model.norm.weight) @ model.lm_head.weight.T
    assert_close(de[:, -1], expected)


def test_gpt_style_default_variables() -> None:
    model, draw = _plain("gpt")
    traced = trace(model, draw())
    assert traced.endogenous == (
        "wte", "h.0.attn", "h.0.mlp", "h.1.attn", "h.1.mlp", "ln_f", "lm_head",
    )  # fmt: skip
    assert set(traced.graph.predecessors("h.1.attn")) == {"wte", "h.0.attn", "h.0.mlp"}


# -- incremental, cached evaluation -----------------------------------------------------------


def _counting(traced: TracedModel, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    executor = traced.network.executor
    ran: list[str] = []
    compute = executor.compute

    def counted(node: torch.fx.Node, *args: Any) -> Any:
        ran.append(node.name)
        return compute(node, *args)

    monkeypatch.setattr(executor, "compute", counted)
    return ran


def test_only_descendants_of_interventions_are_recomputed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    traced = trace(tiny_model("llama"), {"input_ids": _ids(0)})
    ran = _counting(traced, monkeypatch)
    context = {"input_ids": _ids(7)}
    traced.evaluate(context)
    clean_nodes = len(ran)
    assert clean_nodes == len(traced.network.executor.order)
    ran.clear()
    traced.evaluate(context)  # cached
    assert ran == []
    traced.evaluate(context, {"model.norm": 0.0}, outputs=["lm_head"])
    norm, head = traced.fx_node("model.norm"), traced.fx_node("lm_head")
    between = {n.name for n in traced.network.executor.downstream({norm})}
    assert head.name in ran  # and what lies between the norm and the head (a slice), no more
    assert set(ran) <= between
    assert len(ran) <= 3
    ran.clear()
    traced.evaluate(context, {"model.layers.2.self_attn": sn.scale(2.0)}, outputs=["lm_head"])
    assert 0 < len(ran) < clean_nodes // 4
    assert traced.fx_node("model.layers.0.mlp").name not in ran


def test_cache_is_invalidated_when_weights_change() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 2)).eval()
    traced = trace(model, torch.zeros(1, 3))
    context = {"input": torch.ones(1, 3)}
    before = traced.evaluate(context)["2"].clone()
    with torch.no_grad():
        model[2].bias.add_(1.0)
    after = traced.evaluate(context)["2"]
    assert_close(after, before + 1.0)


def test_evaluate_many_agrees_with_evaluate(hf: Any) -> None:
    _, traced = hf
    context = {"input_ids": _ids(8)}
    variable = _middle_module_variable(traced)
    ivs = [sn.interventions.normalize(x) for x in ({}, {variable: sn.scale(0.0)})]
    many = traced.evaluate_many(context, ivs, outputs=traced.outputs)
    for iv, values in zip(ivs, many, strict=True):
        single = traced.evaluate(context, iv, outputs=traced.outputs)
        assert torch.equal(values[traced.outputs[0]], single[traced.outputs[0]])


def test_dynamic_sequence_length() -> None:
    model = tiny_model("qwen2")
    seq = torch.export.Dim("seq", min=2, max=32)
    traced = trace(model, {"input_ids": _ids(0)}, dynamic_shapes={"input_ids": {1: seq}})
    assert traced.network.source.input_specs["input_ids"] == (torch.int64, (1, None))
    for length in (3, 11):
        context = {"input_ids": torch.randint(0, VOCAB, (1, length))}
        assert_close(traced.evaluate(context)["lm_head"], _eager(model, context))
