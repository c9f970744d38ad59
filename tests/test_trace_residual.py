"""Closed forms on a traced residual network (the two-layer network of Figure 5).

With z1 = x + f1(x), z2 = z1 + f2(z1) and y = W z2, setting f1 to v gives
TE = W (v - f1(x)) + W (f2(x + v) - f2(x + f1(x))), DE = W (v - f1(x)) (the change flows along
the residual stream only, f2 held) and IE = TE - DE.
"""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import scmnet as sn
from scmnet.testing import assert_close


class Residual(nn.Module):
    def __init__(self, width: int = 3) -> None:
        super().__init__()
        self.f1 = nn.Sequential(nn.Linear(width, width), nn.Tanh())
        self.f2 = nn.Sequential(nn.Linear(width, width), nn.Tanh())
        self.readout = nn.Linear(width, 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z1 = x + self.f1(x)
        return self.readout(z1 + self.f2(z1))  # type: ignore[no-any-return]


torch.manual_seed(0)
NET = Residual().eval()
MODEL = sn.trace(NET, torch.zeros(1, 3), variables=[sn.ByPath("f1"), sn.ByPath("f2")])
vectors = st.lists(st.floats(-3, 3, allow_nan=False), min_size=3, max_size=3).map(
    lambda v: torch.tensor([v], dtype=torch.float32)
)


@given(x=vectors, v=vectors)
def test_residual_closed_forms(x: torch.Tensor, v: torch.Tensor) -> None:
    u = {"x": x}
    w = NET.readout.weight
    with torch.no_grad():
        f1 = NET.f1(x)
        de = (v - f1) @ w.T
        te = de + (NET.f2(x + v) - NET.f2(x + f1)) @ w.T
    assert set(MODEL.graph.edges) >= {("f1", "readout"), ("f1", "f2"), ("x", "readout")}
    assert_close(sn.direct_effect(MODEL, {"f1": v}, "readout", context=u), de, reordered=True)
    assert_close(sn.total_effect(MODEL, {"f1": v}, "readout", context=u), te, reordered=True)
    assert_close(
        sn.indirect_effect(MODEL, {"f1": v}, "readout", context=u), te - de, reordered=True
    )
