"""Attention heads as variables: an output projection written as the sum of its heads.

An attention layer's output is its output projection applied to the heads' outputs side by
side, ``a = W_O [o_1; ...; o_H] + b``. Split by the projection's input columns, it is a sum over
the heads (Elhage et al. 2021, "A Mathematical Framework for Transformer Circuits"):

    a = sum_h W_O^h o_h + b,

``W_O^h`` the projection's columns of head h. The term ``W_O^h o_h`` is head h's contribution
to the residual stream, the unit of the head-level analyses (Rushing & Nanda 2024, arXiv
2402.15390).

:func:`split_heads` replaces, for the duration of a ``with`` block, named output projections by
``HeadSplit`` modules computing that sum. A ``HeadSplit``'s submodule ``heads``
returns every head's contribution at once, shape ``(..., H, d_model)``. A model traced inside
the block has those outputs as ordinary module calls (``ByPath("blocks.*.attn.proj.heads")``),
and a head is a :class:`~scmnet.Site` indexing one: ``Site(path, (slice(None), -1, h))`` is head
h at the final position. The ``HeadSplit`` holds the projection's own parameters under
their own names, so the traced graph runs on the restored model after the block.

By construction the heads of a projection sum, with its bias, to its output in the split model:
setting every head to its value in another run sets the output to that run's. The split model
computes the projection as H products and a sum instead of one product, which changes only the
rounding.

Examples
--------
A two-layer attention-like model whose second projection is split into 3 heads:

>>> import torch
>>> from torch import nn
>>> import scmnet as sn
>>> net = nn.Sequential(nn.Linear(4, 6), nn.Linear(6, 4)).eval()
>>> x = torch.randn(2, 4)
>>> with split_heads(net, {"1": 3}):
...     traced = sn.trace(net, x, variables=sn.ByPath("1") | sn.ByPath("1.heads"))
>>> type(net[1]).__name__  # restored
'Linear'
>>> values = traced.evaluate({"input": x}, outputs=["1", "1.heads"])
>>> values["1.heads"].shape  # (batch, heads, d_model)
torch.Size([2, 3, 4])
>>> torch.allclose(values["1.heads"].sum(-2) + net[1].bias, values["1"], atol=1e-6)
True
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import nn

from scmnet.errors import InvalidArgument, UnsupportedModel

__all__ = ["HeadContributions", "HeadSplit", "split_heads"]


class HeadContributions(nn.Module):
    """Every head's contribution, ``(..., H * d_head) -> (..., H, d_model)``.

    The projection's weight is an argument, not an attribute: the traced graph then reads it
    under the projection's own name, which the model without the split also has.
    """

    def __init__(self, n_heads: int, *, transposed: bool) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.transposed = transposed

    def forward(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """``W_O^h o_h`` for every head h, ``x`` holding the heads' outputs side by side."""
        per_head = x.reshape(*x.shape[:-1], self.n_heads, -1)  # (..., H, d_head)
        if self.transposed:  # weight (H * d_head, d_model), y = x W (GPT-2's Conv1D)
            w = weight.reshape(self.n_heads, -1, weight.shape[-1])
            return torch.einsum("...hk,hkd->...hd", per_head, w)
        w = weight.reshape(weight.shape[0], self.n_heads, -1)  # nn.Linear: y = x Wᵀ
        return torch.einsum("...hk,dhk->...hd", per_head, w)


class HeadSplit(nn.Module):
    """An output projection written as the sum of its heads' contributions.

    Parameters
    ----------
    projection : nn.Module
        An ``nn.Linear`` (weight ``(d_model, H * d_head)``), or a module of the same map with
        the weight transposed, ``(H * d_head, d_model)``, and ``y = x W + b`` (Hugging Face's
        ``Conv1D``, which has the attribute ``nf``, its output width).
    n_heads : int
        H.

    Raises
    ------
    UnsupportedModel
        If the projection has no 2-d ``weight`` whose input width is a multiple of ``n_heads``.
    """

    def __init__(self, projection: nn.Module, n_heads: int) -> None:
        super().__init__()
        weight = getattr(projection, "weight", None)
        self.transposed = not isinstance(projection, nn.Linear) and hasattr(projection, "nf")
        ok = isinstance(weight, nn.Parameter) and weight.dim() == 2
        width = 0 if not ok else weight.shape[0 if self.transposed else 1]  # type: ignore[union-attr]
        if not ok or not (isinstance(projection, nn.Linear) or self.transposed):
            raise UnsupportedModel(
                f"cannot split {type(projection).__name__} by head: an output projection must "
                "be an nn.Linear or a transposed linear map with an 'nf' attribute (Conv1D)"
            )
        if width % n_heads:
            raise UnsupportedModel(
                f"cannot split {type(projection).__name__} into {n_heads} heads: its input "
                f"width {width} is not a multiple of {n_heads}"
            )
        self.weight = weight
        bias = getattr(projection, "bias", None)
        self.bias = bias if isinstance(bias, nn.Parameter) else None
        self.heads = HeadContributions(n_heads, transposed=self.transposed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The projection of ``x``: the sum of the heads' contributions, plus the bias."""
        out: torch.Tensor = self.heads(x, self.weight).sum(-2)
        if self.bias is not None:
            out = out + self.bias
        return out


@contextmanager
def split_heads(model: nn.Module, projections: Mapping[str, int]) -> Iterator[None]:
    """Each named output projection of ``model`` replaced by its ``HeadSplit`` for the
    duration of the block, and restored after.

    Parameters
    ----------
    model : nn.Module
        The model.
    projections : mapping of str to int
        The module path of each output projection and its number of heads.

    Raises
    ------
    InvalidArgument
        If a path names no module of ``model``, or a number of heads is not a positive int.
    UnsupportedModel
        If a projection cannot be split (see ``HeadSplit``).
    """
    replaced: list[tuple[nn.Module, str, nn.Module]] = []
    try:
        for path, n_heads in projections.items():
            if not isinstance(n_heads, int) or isinstance(n_heads, bool) or n_heads < 1:
                raise InvalidArgument(
                    f"the number of heads of {path!r} must be a positive int, got {n_heads!r}"
                )
            parent_path, _, name = path.rpartition(".")
            try:
                parent = model.get_submodule(parent_path) if parent_path else model
                original = parent.get_submodule(name)
            except AttributeError:
                raise InvalidArgument(
                    f"{path!r} names no module of the model; give the path of an output "
                    "projection, as in model.named_modules()"
                ) from None
            setattr(parent, name, HeadSplit(original, n_heads).train(original.training))
            replaced.append((parent, name, original))
        yield
    finally:
        for parent, name, original in reversed(replaced):
            setattr(parent, name, original)
