"""Arguments for CUDA's fused attention kernels: each tensor's data on a 16-byte boundary.

On CUDA, ``scaled_dot_product_attention`` picks a fused kernel (flash, memory-efficient) from its
arguments' shapes, strides and dtypes. Those kernels read 16 bytes at a time, and nothing checks
that a tensor's data starts on a 16-byte boundary (pytorch/pytorch#183484). A fresh tensor's data
does: the device's allocator hands out blocks of 512 bytes. A view into a tensor need not. The
engine gives attention such views: a suffix run (:mod:`scmnet.tracing.engine.positions`) reads
the attention mask's rows from position ``t`` on, ``t x length`` elements into the mask.

On an H200 (torch 2.11, CUDA 13.0), ``scmnet hydra --device cuda --dtype bfloat16`` on a tiny
Llama failed with "CUDA error: misaligned address" right after the first attentions given such a
mask (a ``bool`` view 12 bytes into its storage); every earlier attention had had aligned data.
The error surfaced at a later operation, even with ``CUDA_LAUNCH_BLOCKING=1``: a fault like this
poisons the CUDA context rather than raising where it happens.

:func:`aligned` copies a device tensor whose data starts off the boundary into fresh memory,
and passes anything else through unchanged. The copy holds the same values, so the attention
computes the same result. :data:`FUSED_ATTENTION` names the operations that need it.

Examples
--------
>>> import torch
>>> rows = torch.ones(4, 4, dtype=torch.bool).tril()[3:]  # 12 bytes into the mask
>>> aligned(rows) is rows  # on the host: nothing to do
True
>>> scaled_dot_product_attention in FUSED_ATTENTION
True
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn.functional import scaled_dot_product_attention

__all__ = ["ALIGNMENT", "FUSED_ATTENTION", "aligned", "aligned_arguments"]

#: The boundary, in bytes, that the fused attention kernels' vector reads need.
ALIGNMENT = 16

#: The operations whose CUDA kernels need :data:`ALIGNMENT`: the functional form (a traced
#: ``torch.fx`` graph) and the ATen operator (an exported graph).
FUSED_ATTENTION = frozenset(
    {scaled_dot_product_attention, torch.ops.aten.scaled_dot_product_attention.default}
)


def aligned(value: Any) -> Any:
    """``value``, or a copy of it in fresh memory if it is a CUDA tensor whose data starts off
    an :data:`ALIGNMENT`-byte boundary.

    Reading the data pointer does not wait for the device.
    """
    if (
        isinstance(value, torch.Tensor)
        and value.device.type == "cuda"
        and value.data_ptr() % ALIGNMENT
    ):
        return value.clone(memory_format=torch.contiguous_format)
    return value


def aligned_arguments(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """:func:`aligned` applied to every positional and keyword argument."""
    return tuple(aligned(a) for a in args), {k: aligned(v) for k, v in kwargs.items()}
