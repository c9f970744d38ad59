"""The reference models written as small :class:`torch.nn.Module` networks.

Each toy SCM of :mod:`scmnet.toys.scms` exists here as a network whose submodules compute its
endogenous variables, so that tracing the network recovers the same causal graph (inputs are
exogenous, submodule outputs are endogenous) and the effect operators give the same answers.
Every submodule is elementwise, so the networks accept inputs of any shape.

This module imports torch; :mod:`scmnet.toys` loads it only when one of these is asked for.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "ErasureNet",
    "LinearMediationNet",
    "SelfRepairNet",
]


class Identity(nn.Module):
    """x(u) = u (eq. 30)."""

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return u.clone()


class Negate(nn.Module):
    """f(x) = -x, the erasure mechanism (eq. 31)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -x


class Repair(nn.Module):
    """f(x, u) = 0 if x = u else u, the self-repair mechanism (eq. 32), elementwise."""

    def forward(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return torch.where(x == u, torch.zeros_like(u), u)


class Add(nn.Module):
    """y = x + f (eq. 30)."""

    def forward(self, x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        return x + f


class ErasureNet(nn.Module):
    """The erasure motif as a network: x = u, f = -x, y = x + f.

    Examples
    --------
    >>> import torch
    >>> from scmnet.toys.modules import ErasureNet
    >>> ErasureNet()(torch.tensor([2.0, -1.0]))
    tensor([0., 0.])
    """

    def __init__(self) -> None:
        super().__init__()
        self.x = Identity()
        self.f = Negate()
        self.y = Add()

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        x = self.x(u)
        f = self.f(x)
        y: torch.Tensor = self.y(x, f)
        return y


class SelfRepairNet(nn.Module):
    """The self-repair motif as a network: x = u, f = 0 if x = u else u, y = x + f.

    Examples
    --------
    >>> import torch
    >>> from scmnet.toys.modules import SelfRepairNet
    >>> SelfRepairNet()(torch.tensor([2.0, -1.0]))
    tensor([ 2., -1.])
    """

    def __init__(self) -> None:
        super().__init__()
        self.x = Identity()
        self.f = Repair()
        self.y = Add()

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        x = self.x(u)
        f = self.f(x, u)
        y: torch.Tensor = self.y(x, f)
        return y


class Scale(nn.Module):
    """Multiplication by a fixed weight (a 1x1 linear map without bias)."""

    def __init__(self, weight: float) -> None:
        super().__init__()
        self.weight: torch.Tensor
        self.register_buffer("weight", torch.tensor(float(weight)))

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return v * self.weight


class LinearMediationNet(nn.Module):
    """The linear mediation model as a network: x = u_x, m = a x + u_m, y = c x + b m + u_y.

    Examples
    --------
    >>> import torch
    >>> from scmnet.toys.modules import LinearMediationNet
    >>> net = LinearMediationNet(a=2.0, b=3.0, c=0.5)
    >>> net(torch.tensor(1.0), torch.tensor(0.0), torch.tensor(0.0))
    tensor(6.5000)
    """

    def __init__(self, a: float = 2.0, b: float = 3.0, c: float = 0.5) -> None:
        super().__init__()
        self.x = Identity()
        self.a = Scale(a)
        self.b = Scale(b)
        self.c = Scale(c)

    def forward(self, u_x: torch.Tensor, u_m: torch.Tensor, u_y: torch.Tensor) -> torch.Tensor:
        x = self.x(u_x)
        m = self.a(x) + u_m
        y: torch.Tensor = self.c(x) + self.b(m) + u_y
        return y
