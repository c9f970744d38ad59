"""Reference models: the erasure and self-repair motifs of the Hydra-effect paper (Section 3.3,
eqs. 30-32) and textbook SCMs with closed-form effects, each as a plain SCM and as a small
:class:`torch.nn.Module`.

Examples
--------
>>> import scmnet as sn
>>> sorted(sn.toys.erasure().graph.edges)
[('f', 'y'), ('u', 'x'), ('x', 'f'), ('x', 'y')]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scmnet.errors import require
from scmnet.toys.scms import erasure, linear_gaussian, linear_mediation, self_repair

if TYPE_CHECKING:
    from scmnet.toys.modules import ErasureNet, LinearMediationNet, SelfRepairNet

__all__ = [
    "erasure",
    "erasure_module",
    "linear_gaussian",
    "linear_mediation",
    "linear_mediation_module",
    "self_repair",
    "self_repair_module",
]


def _modules() -> Any:
    require("torch", "torch")
    from scmnet.toys import modules

    return modules


def erasure_module() -> ErasureNet:
    """The erasure motif as an ``nn.Module`` (needs torch); see :func:`erasure`."""
    return _modules().ErasureNet().eval()  # type: ignore[no-any-return]


def self_repair_module() -> SelfRepairNet:
    """The self-repair motif as an ``nn.Module`` (needs torch); see :func:`self_repair`."""
    return _modules().SelfRepairNet().eval()  # type: ignore[no-any-return]


def linear_mediation_module(a: float = 2.0, b: float = 3.0, c: float = 0.5) -> LinearMediationNet:
    """The linear mediation model as an ``nn.Module`` (needs torch).

    See :func:`linear_mediation`.
    """
    return _modules().LinearMediationNet(a, b, c).eval()  # type: ignore[no-any-return]
