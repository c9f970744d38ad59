"""The clean run stores what cannot be recomputed cheaply, and reads the same as a full run.

Property: on random networks (depth, width, residual connections, activations), every node of
:func:`~scmnet.tracing.engine.run_values.run_values` reads bit for bit as in
:meth:`Executor.run`, in any order. Known answers: a read recomputes at most ``DEPTH``
operations; a graph with an in-place or random operation stores everything; the variables of a
traced model are stored; a sequence model stores a fraction of its activations. Parity: an
effect table is unchanged.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import fx, nn

import scmnet as sn
from scmnet.testing import assert_close
from scmnet.tracing.engine import run_values as run_values_module
from scmnet.tracing.engine.executor import Executor
from scmnet.tracing.engine.run_values import DEPTH, RunValues, replayable, run_values
from tests.plain_models import TinyGPT
from tests.test_fuzz import networks


def _executor(traced: sn.TracedModel) -> Executor:
    return traced.network.source.executor


def _equal(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return torch.equal(a, b)
    return a == b


@settings(max_examples=25, deadline=None)
@given(case=networks(), order=st.randoms(use_true_random=False))
def test_every_value_reads_as_in_a_full_run(
    case: tuple[nn.Module, sn.TracedModel, dict[str, torch.Tensor], int], order: object
) -> None:
    _, traced, context, _ = case
    ex = _executor(traced)
    full = ex.run(context)
    lean = run_values(ex, context)
    assert set(lean) == set(full)
    assert len(lean) == len(full)
    nodes = list(full)
    order.shuffle(nodes)  # type: ignore[attr-defined]
    for node in nodes:
        assert _equal(lean[node], full[node]), node.name


def _deep(depth: int) -> tuple[sn.TracedModel, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(4, 4), nn.Tanh()]
    traced = sn.trace(nn.Sequential(*layers).eval(), torch.zeros(1, 4))
    return traced, {"input": torch.randn(1, 4)}


def test_a_read_recomputes_at_most_depth_operations() -> None:
    traced, context = _deep(20)  # a chain of 40 single-reader operations
    ex = _executor(traced)
    lean = run_values(ex, context)
    assert len(lean.stored) < len(lean) // 2
    calls = 0
    compute = ex.compute

    def counting(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        return compute(*args, **kwargs)  # type: ignore[arg-type]

    ex.compute = counting  # type: ignore[method-assign]
    try:
        for node in reversed(ex.order):  # cold reads, latest first: no help from the memo
            fresh = RunValues(ex, context, dict(lean.stored), set(lean) - set(lean.stored))
            calls = 0
            fresh[node]
            assert calls <= DEPTH, (node.name, calls)
    finally:
        del ex.compute


def test_the_variables_of_a_traced_model_are_stored() -> None:
    traced, context = _deep(6)
    traced.evaluate(context, outputs=[traced.endogenous[-1]])
    _, clean = traced.network.source.clean(context)
    assert isinstance(clean, RunValues)
    variables = set(traced.network.variables.values())
    assert variables <= set(clean.stored)


class _InPlace(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(3, 3), nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        h.add_(1.0)
        return self.b(torch.relu(h))  # type: ignore[no-any-return]


class _Dropout(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(3, 3), nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(nn.functional.dropout(torch.tanh(self.a(x)), 0.5, training=True))  # type: ignore[no-any-return]


def _fx_executor(module: nn.Module) -> Executor:
    from scmnet.tracing.engine.executor import Feed

    gm = fx.symbolic_trace(module)
    feeds = [Feed(n.name, n.name, "input") for n in gm.graph.nodes if n.op == "placeholder"]
    return Executor(gm, feeds, module)


def test_a_graph_with_an_in_place_or_random_operation_stores_every_value() -> None:
    torch.manual_seed(0)
    for module in (_InPlace().eval(), _Dropout()):
        ex = _fx_executor(module)
        assert not replayable(ex)
        lean = run_values(ex, {"x": torch.randn(2, 3)})
        assert len(lean.stored) == len(lean)


def test_an_eval_dropout_and_an_attention_without_dropout_are_replayable() -> None:
    traced = sn.trace(TinyGPT().eval(), torch.zeros(1, 8, dtype=torch.long))
    assert replayable(_executor(traced))


def test_a_sequence_model_stores_a_fraction_of_its_activations() -> None:
    torch.manual_seed(0)
    traced = sn.trace(TinyGPT(context=64).eval(), torch.zeros(1, 8, dtype=torch.long))
    ex = _executor(traced)
    context = {"idx": torch.randint(0, 50, (1, 64))}
    lean = run_values(ex, context)
    full = RunValues(ex, context, ex.run(context), ())
    params = sum(p.numel() * p.element_size() for p in traced.module.parameters())
    assert lean.stored_bytes - params < 0.6 * (full.stored_bytes - params)


def test_an_effect_table_is_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    net = TinyGPT().eval()
    context = {"idx": torch.randint(0, 50, (1, 8))}
    last = (slice(None), -1)
    treatments = [{sn.Site("h.0.attn", index=last): sn.zero()}, {"h.1.mlp": sn.scale(0.5)}]
    out = sn.Outcome((sn.Site("lm_head", index=(0, -1, 3)),), lambda v: v, "logit 3")
    tables = []
    for depth in (run_values_module.DEPTH, 0):  # depth 0: every value stored, as before
        monkeypatch.setattr(run_values_module, "DEPTH", depth)
        traced = sn.trace(net, torch.zeros(1, 8, dtype=torch.long))
        tables.append(sn.effect_table(traced, treatments, out, context=context))
    lean, full = tables
    with torch.no_grad():
        assert_close(lean.reference[0], net(context["idx"])[0, -1, 3], reordered=True)
    assert torch.equal(torch.as_tensor(lean.values), torch.as_tensor(full.values))
    assert torch.equal(torch.as_tensor(lean.treated), torch.as_tensor(full.treated))
