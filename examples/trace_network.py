"""Trace a small residual network into an SCM and measure effects on it.

The network has two residual blocks, ``z1 = x + f1(x)`` and ``z2 = z1 + f2(z1)``, and a linear
readout ``y = w . z2``: the two-layer residual network of Figure 5 of the Hydra-effect paper.
Traced with ``sn.trace``, its variables are the block outputs and the readout; the residual
additions are collapsed into the mechanisms downstream of them, so the direct effect of the
first block on ``y`` is exactly ``w . (f1' - f1)``: the change flows along the residual stream
only, with the second block held (eqs. 19-20).

The script prints the causal graph, the total, direct and indirect effects of ablating the first
block (zero and resample ablation, eqs. 35 and 38), activation patching from another input, and
checks the total effect against the eager network run with a forward hook. Last, it zero-ablates
each hidden unit of the first block's ReLU, one at a time: a unit that the ReLU has already set
to zero in this context has a total effect of exactly zero, because do(unit = 0) gives it the
value it already has; the script says so next to those zeros.

Usage::

    python examples/trace_network.py [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from torch import nn

import scmnet as sn
from scmnet.draw import draw_graph


class Block(nn.Module):
    """A small MLP block, f(z) = W2 ReLU(W1 z + b1) + b2."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.up = nn.Linear(width, 2 * width)
        self.act = nn.ReLU()
        self.down = nn.Linear(2 * width, width)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.down(self.act(self.up(z)))
        return out


class Residual(nn.Module):
    """Two residual blocks and a scalar readout."""

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.f1 = Block(width)
        self.f2 = Block(width)
        self.readout = nn.Linear(width, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z1 = x + self.f1(x)
        z2 = z1 + self.f2(z1)
        y: torch.Tensor = self.readout(z2)
        return y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="folder for the graph picture")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="scmnet-trace-"))
    out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(0)
    net = Residual().eval()
    data = [{"x": torch.randn(1, 4)} for _ in range(8)]
    model = sn.trace(net, data[0]["x"], dataset=data)
    print(
        f"traced with {model.info.frontend}: exogenous {model.exogenous}, "
        f"endogenous {model.endogenous}"
    )
    print("edges:", sorted(model.graph.edges))
    draw_graph(model, out / "residual.png", legend=True)
    print(f"wrote {out / 'residual.png'}")

    u = data[0]
    te = sn.total_effect(model, {"f1": sn.zero()}, "readout", context=u)
    de = sn.direct_effect(model, {"f1": sn.zero()}, "readout", context=u)
    ie = sn.indirect_effect(model, {"f1": sn.zero()}, "readout", context=u)
    print(f"zero-ablating f1: TE = {te.item():+.6f}, DE = {de.item():+.6f}, IE = {ie.item():+.6f}")

    with torch.no_grad():
        f1 = net.f1(u["x"])
        closed_form = -(net.readout.weight @ f1.T).item()
    print(f"closed form of the direct effect, -w . f1(x): {closed_form:+.6f}")

    def zero_f1(module: nn.Module, args: object, output: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(output)

    handle = net.f1.register_forward_hook(zero_f1)
    with torch.no_grad():
        hooked = net(u["x"]).item()
    handle.remove()
    with torch.no_grad():
        clean = net(u["x"]).item()
    print(f"eager network with a zeroing hook: TE = {hooked - clean:+.6f}")

    resampled = sn.total_effect(
        model, {"f1": sn.resample()}, "readout", context=u, draws=50, seed=0
    )
    print(
        f"resample-ablating f1 (50 draws from the data set, eq. 39): TE = {resampled.item():+.6f}"
    )
    patched = sn.total_effect(model, {"f1": sn.patch(data[1])}, "readout", context=u)
    print(f"patching f1 from input 1: TE = {patched.item():+.6f}")

    # One hidden unit at a time: the ReLU inside f1 becomes a variable, indexed by unit.
    units = sn.trace(
        net, data[0]["x"], variables=sn.ByPath("f1.act") | sn.ByPath("f2") | sn.ByPath("readout")
    )
    with torch.no_grad():
        hidden = net.f1.act(net.f1.up(u["x"]))[0]
    for j, value in enumerate(hidden.tolist()):
        unit = sn.Site("f1.act", index=(slice(None), j))
        te_j = sn.total_effect(units, {unit: sn.zero()}, "readout", context=u).item()
        # A ReLU unit at 0 is not ablated by do(unit = 0): it already has that value.
        note = "  (already 0 in this context: do(unit = 0) changes nothing)" if value == 0 else ""
        print(f"zero-ablating ReLU unit {j} of f1 (value {value:.4f}): TE = {te_j:+.6f}{note}")


if __name__ == "__main__":
    main()
