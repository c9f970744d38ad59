"""Interventions that prove they acted: an intervened or cached value overwritten in place is
an error naming the node, not a silently wrong effect."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import scmnet as sn
from scmnet.testing import assert_close
from scmnet.tracing import trace


class Clip(nn.Module):
    """A leaf that overwrites its input in place, but only where the input is large."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool((x > 5.0).any()):
            x.clamp_(max=5.0)
        return x * 2.0


class Clipped(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.clip = Clip()
        self.out = nn.Linear(3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        return self.out(self.clip(h)) + h.sum(-1, keepdim=True)


class Overwrites(nn.Module):
    """A leaf that always overwrites its input in place."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul_(2.0)


class Overwritten(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.twice = Overwrites()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        return self.twice(h) + h


def _clipped() -> tuple[nn.Module, sn.TracedModel]:
    torch.manual_seed(0)
    net = Clipped().eval()
    with torch.no_grad():
        net.fc.weight.mul_(0.1)
    return net, trace(net, torch.zeros(2, 3), leaves=[Clip])


def test_an_intervention_a_leaf_overwrites_is_an_error_naming_the_node() -> None:
    net, traced = _clipped()
    context = {"x": torch.randn(2, 3)}
    small = torch.full((2, 3), 1.0)
    te = sn.total_effect(traced, {"fc": small}, "output", context=context)
    with torch.no_grad():
        h = net.fc(context["x"])
        expected = net.out(small * 2.0) + small.sum(-1, keepdim=True)
        expected -= net.out(h * 2.0) + h.sum(-1, keepdim=True)
    assert_close(te, expected)  # the leaf left the value alone: the effect is exact
    large = torch.full((2, 3), 9.0)
    with pytest.raises(sn.MechanismError, match=r"intervened value of node 'fc'.*did not hold"):
        sn.total_effect(traced, {"fc": large}, "output", context=context)
    rows = [{"fc": small}, {"fc": torch.full((2, 3), 9.0)}]  # the leaf clamped ``large``
    with pytest.raises(sn.MechanismError, match="'fc'"):  # one row of a batch is enough
        sn.effect_table(traced, rows, "output", context=context)


def test_a_leaf_that_overwrites_a_value_is_refused_at_trace_time() -> None:
    with pytest.raises(sn.MechanismError, match=r"value of node 'fc'.*\(add, twice\)"):
        trace(Overwritten().eval(), torch.zeros(2, 3), leaves=[Overwrites])


def test_a_clean_run_a_leaf_overwrites_is_an_error_too() -> None:
    """The leaf passes the trace (small values), then overwrites a clean value in a context
    where the value is large: the cached value would not be what the graph says."""
    _, traced = _clipped()
    with pytest.raises(sn.MechanismError, match=r"the value of node 'fc'.*cached values"):
        traced.evaluate({"x": torch.full((2, 3), 200.0)})
