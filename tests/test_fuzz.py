"""Fuzzed invariants: random networks and random SCMs, checked against their definitions.

* Random small networks (depth, width, residual connections, activations) traced with the
  defaults and run under random interventions give the total, direct and indirect effects of
  eager runs with forward hooks (:class:`tests.hooks.HookedReference`), and a batched
  ``effect_table`` gives the same rows as one query per treatment.
* Random DAG SCMs satisfy the operator identities: an intervention at the natural value has no
  effect, a non-descendant of the treatment never moves, ``do`` never mutates its model, and
  evaluation is deterministic.

Bounded: a few dozen examples each, with no deadline (tracing takes a few tens of ms).
"""

from __future__ import annotations

import networkx as nx
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import scmnet as sn
from scmnet.testing import assert_close
from tests.hooks import HookedReference
from tests.strategies import LinearCase, linear_scms, reals

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU, "identity": nn.Identity}


class RandomNet(nn.Module):
    """``Linear(3, w) -> [act(Linear(w, w)) (+ h)] * depth -> Linear(w, 2)``."""

    def __init__(self, depth: int, width: int, residual: list[bool], activation: str) -> None:
        super().__init__()
        self.inp = nn.Linear(3, width)
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.acts = nn.ModuleList(_ACTIVATIONS[activation]() for _ in range(depth))
        self.residual = residual
        self.head = nn.Linear(width, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for layer, act, skip in zip(self.layers, self.acts, self.residual, strict=True):
            out = act(layer(h))
            h = out + h if skip else out
        return self.head(h)  # type: ignore[no-any-return]


@st.composite
def networks(draw: st.DrawFn) -> tuple[nn.Module, sn.TracedModel, dict[str, torch.Tensor], int]:
    depth = draw(st.integers(1, 4), label="depth")
    width = draw(st.integers(2, 6), label="width")
    residual = draw(st.lists(st.booleans(), min_size=depth, max_size=depth), label="residual")
    activation = draw(st.sampled_from(sorted(_ACTIVATIONS)), label="activation")
    seed = draw(st.integers(0, 2**16), label="seed")
    torch.manual_seed(seed)
    net = RandomNet(depth, width, residual, activation).eval()
    traced = sn.trace(net, torch.zeros(2, 3))
    context = {"x": torch.randn(2, 3, generator=torch.Generator().manual_seed(seed + 1))}
    return net, traced, context, seed


@settings(max_examples=30, deadline=None)
@given(case=networks(), data=st.data())
def test_random_networks_agree_with_eager_hooks(
    case: tuple[nn.Module, sn.TracedModel, dict[str, torch.Tensor], int], data: st.DataObject
) -> None:
    net, traced, context, seed = case
    ref = HookedReference(net, traced)
    y = traced.endogenous[-1]
    candidates = [v for v in ref.sites if v != y]
    z = data.draw(st.sampled_from(candidates), label="z")
    clean = traced.evaluate(context, outputs=[z])[z]
    shift = torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed + 2))
    value = clean + shift
    expected = ref.effects({"x": context["x"]}, z, value, y)
    kinds = ("total", "direct", "indirect")
    for kind in kinds:
        table = sn.effect_table(traced, [{z: value}], y, kind=kind, context=context)  # type: ignore[arg-type]
        assert_close(table.values[0], expected[kind], reordered=True)
    # a batched table of several treatments equals one query per treatment
    treatments = [{z: clean + k * shift} for k in (0.5, -1.0, 2.0)]
    batched = sn.effect_table(traced, treatments, y, context=context)
    for r, t in enumerate(treatments):
        alone = sn.total_effect(traced, t, y, context=context)
        assert_close(batched.values[r], alone, reordered=True)


@settings(max_examples=40, deadline=None)
@given(case=linear_scms(min_nodes=2, max_nodes=6), dz=reals, data=st.data())
def test_operator_identities_on_random_scms(
    case: LinearCase, dz: float, data: st.DataObject
) -> None:
    m, u = case.model, case.context
    nodes = list(case.graph.nodes)
    z = data.draw(st.sampled_from(nodes), label="z")
    natural = m.evaluate(u)
    assert m.evaluate(u) == natural  # deterministic
    for y in nodes:  # an intervention at the natural value has no effect
        assert sn.total_effect(m, {z: natural[z]}, y, context=u, unreached="zero") == 0.0
    descendants = nx.descendants(case.graph, z)
    for y in nodes:  # a non-descendant never moves, whatever the value
        if y != z and y not in descendants:
            assert sn.total_effect(m, {z: natural[z] + dz}, y, context=u, unreached="zero") == 0.0
    edges, before = set(m.graph.edges), m.evaluate(u)
    intervened = sn.do(m, {z: natural[z] + dz})  # do returns a new model ...
    assert set(m.graph.edges) == edges  # ... and never mutates this one
    assert m.evaluate(u) == before
    assert_close(intervened.evaluate(u)[z], natural[z] + dz)
    assert not any(child == z for _, child in intervened.graph.in_edges(z))
