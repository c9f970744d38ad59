"""The run plan of traced graphs: suffixes of positions and the staircase of rows.

An intervention at position t of a causal sequence model recomputes positions t: only
(:mod:`scmnet.tracing.engine.positions`), and rows join a batch where their intervention sits
(:mod:`scmnet.tracing.engine.staircase`). Both must be exact: every value equals the eager
model run with the same activation patched in by a forward hook. Property tests first (random
positions and values on a GPT written in plain PyTorch), then models where a suffix must not be
used (an encoder that attends both ways, interventions at several positions), then the
staircase with held variables, then reading part of an output (``Site`` outputs), then tiny
Hugging Face models.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as nnf

import scmnet as sn
from scmnet.testing import assert_close
from scmnet.tracing.engine.positions import Partial
from tests.plain_models import TinyGPT

SEQ = 7
VOCAB = 50


def hooked(model: nn.Module, ids: torch.Tensor, patches: dict[str, tuple[Any, Any]]) -> Any:
    """The eager logits with ``output[index] = value`` for each module path patched."""
    handles = []
    for path, (index, value) in patches.items():

        def hook(
            module: nn.Module, args: Any, output: Any, index: Any = index, v: Any = value
        ) -> Any:
            out = output.clone()
            out[index] = v
            return out

        handles.append(model.get_submodule(path).register_forward_hook(hook))
    try:
        with torch.no_grad():
            return model(ids)
    finally:
        for h in handles:
            h.remove()


@pytest.fixture(scope="module")
def gpt() -> tuple[nn.Module, sn.TracedModel]:
    torch.manual_seed(0)
    model = TinyGPT(VOCAB, d=32, heads=4, layers=3).eval()
    return model, sn.trace(model, torch.randint(0, VOCAB, (2, SEQ)))


def _blocks(traced: sn.TracedModel) -> list[str]:
    return [v for v in traced.endogenous if v.endswith((".attn", ".mlp"))]


# -- suffixes of positions -------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(st.integers(0, SEQ - 1), st.integers(0, 2**31 - 1), st.integers(1, 6))
def test_suffix_runs_equal_hooked_eager_runs(
    gpt: tuple[nn.Module, sn.TracedModel], t: int, seed: int, rows: int
) -> None:
    """Any position t, any values, any number of rows: the batch equals eager + hooks."""
    model, traced = gpt
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (1, SEQ), generator=gen)
    blocks = _blocks(traced)
    chosen = [blocks[int(i)] for i in torch.randint(0, len(blocks), (rows,), generator=gen)]
    values = torch.randn(rows, 32, generator=gen)
    sets = [{sn.Site(b, index=(slice(None), t)): v} for b, v in zip(chosen, values, strict=True)]
    got = traced.evaluate_many({"idx": ids}, sets, outputs=["lm_head"])
    assert traced.info.batching.positions == f"suffix from position {t} of {SEQ}"
    for b, v, out in zip(chosen, values, got, strict=True):
        want = hooked(model, ids, {b: ((slice(None), t), v)})
        assert_close(out["lm_head"], want, reordered=True)


def test_positions_before_t_are_the_clean_values(gpt: tuple[nn.Module, sn.TracedModel]) -> None:
    _, traced = gpt
    ctx = {"idx": torch.randint(0, VOCAB, (1, SEQ))}
    clean = traced.evaluate(ctx)
    site = sn.Site("h.0.mlp", index=(slice(None), 4))
    (out,) = traced.evaluate_many(ctx, [{site: sn.zero()}], outputs=["h.2.mlp", "lm_head"])
    for name in ("h.2.mlp", "lm_head"):
        assert torch.equal(out[name][:, :4], clean[name][:, :4])
        assert not torch.equal(out[name][:, 4:], clean[name][:, 4:])


class Encoder(nn.Module):
    """Attention in both directions: position t changes every position after one layer."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16)
        self.qkv = nn.Linear(16, 48)
        self.mlp = nn.Linear(16, 16)
        self.head = nn.Linear(16, 3)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.embed(idx)
        q, k, v = self.qkv(x).split(16, dim=-1)
        x = x + nnf.scaled_dot_product_attention(q, k, v)
        return self.head(x + self.mlp(x))


def test_a_bidirectional_model_runs_every_position() -> None:
    torch.manual_seed(1)
    model = Encoder().eval()
    traced = sn.trace(model, torch.randint(0, VOCAB, (2, SEQ)))
    ids = torch.randint(0, VOCAB, (1, SEQ))
    value = torch.randn(16)
    sets = [{sn.Site("embed", index=(slice(None), -1)): value}, {"embed": sn.scale(2.0)}]
    got = traced.evaluate_many({"idx": ids}, sets[:1], outputs=["head"])
    assert traced.info.batching.positions.startswith("all positions ("), traced.info.batching
    assert_close(got[0]["head"], hooked(model, ids, {"embed": ((slice(None), -1), value)}))


def test_interventions_at_several_positions_run_every_position(
    gpt: tuple[nn.Module, sn.TracedModel],
) -> None:
    model, traced = gpt
    ids = torch.randint(0, VOCAB, (1, SEQ))
    v = torch.randn(32)
    sets = [{sn.Site("h.0.mlp", index=(slice(None), 2)): v}, {sn.Site("h.1.mlp", index=(0, 5)): v}]
    got = traced.evaluate_many({"idx": ids}, sets, outputs=["lm_head"])
    info = traced.info.batching
    assert info.positions == "all positions (the interventions sit at different positions)"
    assert_close(
        got[0]["lm_head"], hooked(model, ids, {"h.0.mlp": ((slice(None), 2), v)}), reordered=True
    )
    assert_close(got[1]["lm_head"], hooked(model, ids, {"h.1.mlp": ((0, 5), v)}), reordered=True)


# -- the staircase ---------------------------------------------------------------------------------


def test_direct_effects_hold_the_other_layers_in_a_suffix_staircase(
    gpt: tuple[nn.Module, sn.TracedModel],
) -> None:
    """DE of every layer with every other layer held: a held layer after a row's start clamps
    it, before the start it is a no-op; the table equals each direct effect computed alone."""
    _, traced = gpt
    ctx = {"idx": torch.randint(0, VOCAB, (1, SEQ))}
    blocks = _blocks(traced)
    last = sn.Outcome((sn.Site("lm_head", index=(0, -1)),), lambda row: row[3] - row.mean())
    treatments = [{sn.Site(b, index=(slice(None), -1)): sn.zero()} for b in blocks]
    table = sn.effect_table(traced, treatments, last, kind="direct", hold=blocks, context=ctx)
    assert traced.info.batching.positions == f"suffix from position {SEQ - 1} of {SEQ}"
    for r, t in enumerate(treatments):
        held = [b for b in blocks if b != blocks[r]]
        alone = sn.direct_effect(traced, t, last, mediators=held, context=ctx)
        assert_close(table.values[r], alone, reordered=True)
    # a direct effect of the last block on the logits is its total effect: nothing mediates it
    total = sn.effect_table(traced, treatments[-1:], last, context=ctx)
    assert_close(table.values[-1], total.values[0], reordered=True)
    # holding the final norm too (a variable that no row treats) leaves only the residual path
    norm = sn.effect_table(
        traced, treatments, last, kind="direct", hold=[*blocks, "ln_f"], context=ctx
    )
    assert traced.info.batching.positions == f"suffix from position {SEQ - 1} of {SEQ}"
    assert_close(norm.values, torch.zeros(len(blocks), dtype=torch.float64))


def test_rows_joining_at_different_layers_equal_rows_run_alone(
    gpt: tuple[nn.Module, sn.TracedModel],
) -> None:
    _, traced = gpt
    ctx = {"idx": torch.randint(0, VOCAB, (1, SEQ))}
    blocks = _blocks(traced)
    sets = [{sn.Site(b, index=(slice(None), -1)): sn.scale(float(i))} for i, b in enumerate(blocks)]
    sets = [*sets[::-1], {}]  # latest start first, and an empty set
    batched = traced.evaluate_many(ctx, sets, outputs=list(blocks))
    looped = traced.evaluate_many(ctx, sets, outputs=list(blocks), batched=False)
    for a, b in zip(batched, looped, strict=True):
        for name in blocks:
            assert_close(a[name], b[name], reordered=True)


# -- reading part of an output ---------------------------------------------------------------------


def test_site_outputs_read_the_suffix(gpt: tuple[nn.Module, sn.TracedModel]) -> None:
    _, traced = gpt
    ctx = {"idx": torch.randint(0, VOCAB, (1, SEQ))}
    site = sn.Site("h.1.attn", index=(slice(None), -1))
    last = sn.Site("lm_head", index=(0, -1))
    whole = traced.evaluate(ctx, {site: sn.zero()})
    part = traced.evaluate(ctx, {site: sn.zero()}, outputs=[last, "lm_head"])
    assert torch.equal(part[last], whole["lm_head"][0, -1])
    assert torch.equal(part["lm_head"], whole["lm_head"])
    inside = Partial(torch.zeros(1, 4, 2), torch.ones(1, 2, 2), axis=1, t=2)
    assert inside.at((0, 3)).tolist() == [1.0, 1.0]  # from the suffix
    assert inside.at((0, 1)).tolist() == [0.0, 0.0]  # from the clean prefix
    assert inside.at(0).shape == (4, 2)  # every position: the whole value


def test_site_outputs_on_an_scm() -> None:
    m = sn.SCM({"x": lambda u: u, "y": lambda x: x * 2.0}, exogenous={"u": sn.Normal()})
    out = m.evaluate({"u": np.arange(3.0)}, outputs=[sn.Site("y", index=-1), "x"])
    assert out[sn.Site("y", index=-1)] == 4.0
    assert out["x"].tolist() == [0.0, 1.0, 2.0]


# -- tiny Hugging Face models, traced with dynamic batch and sequence dimensions -------------------


@pytest.mark.parametrize("family", ["llama", "gpt_neox", "gemma3"])
def test_hugging_face_models_batch_in_suffixes(family: str) -> None:
    from tests.tiny_models import VOCAB as HF_VOCAB
    from tests.tiny_models import tiny_model

    model = tiny_model(family)
    dims = {"input_ids": {0: torch.export.Dim("batch"), 1: torch.export.Dim("seq", min=2, max=32)}}
    traced = sn.trace(model, {"input_ids": torch.randint(0, HF_VOCAB, (2, 6))}, dynamic_shapes=dims)
    ids = torch.randint(0, HF_VOCAB, (1, 9))
    logits = traced.outputs[0]
    blocks = [v for v in traced.endogenous if v.endswith(("self_attn", "mlp", "attention"))]
    values = torch.randn(len(blocks), model.config.hidden_size)
    sets = [{sn.Site(b, index=(slice(None), -1)): v} for b, v in zip(blocks, values, strict=True)]
    got = traced.evaluate_many({"input_ids": ids}, sets, outputs=[logits])
    info = traced.info.batching
    assert (info.path, info.positions) == ("batched", "suffix from position 8 of 9")
    for b, v, out in zip(blocks, values, got, strict=True):
        patch = {b: ((slice(None), -1), v)}
        handles = []
        for path, (index, value) in patch.items():

            def hook(
                module: nn.Module, args: Any, output: Any, i: Any = index, w: Any = value
            ) -> Any:
                first = output[0] if isinstance(output, tuple) else output
                first = first.clone()
                first[i] = w
                return (first, *output[1:]) if isinstance(output, tuple) else first

            handles.append(model.get_submodule(path).register_forward_hook(hook))
        try:
            with torch.no_grad():
                want = model(input_ids=ids, use_cache=False).logits
        finally:
            for h in handles:
                h.remove()
        assert_close(out[logits], want, reordered=True)


def test_stacked_outputs_equal_the_per_set_outputs(gpt: tuple[nn.Module, sn.TracedModel]) -> None:
    _, traced = gpt
    ctx = {"idx": torch.randint(0, VOCAB, (1, SEQ))}
    blocks = _blocks(traced)
    sets: list[Any] = [{}]
    sets += [{sn.Site(b, index=(slice(None), -1)): sn.zero()} for b in blocks]
    sets += [{sn.Site(b, index=(slice(None), 2)): sn.scale(3.0)} for b in blocks[:2]]
    outputs = ["h.2.mlp", sn.Site("lm_head", index=(0, -1)), sn.Site("lm_head", index=(0, 1))]
    for chunk in (None, 3):
        stacked = traced.evaluate_stacked(ctx, sets, outputs=outputs, chunk=chunk)
        many = traced.evaluate_many(ctx, sets, outputs=outputs)
        for o in outputs:
            assert stacked[o].shape == (len(sets), *many[0][o].shape)
            for i, row in enumerate(many):
                assert_close(stacked[o][i], row[o], reordered=True)
