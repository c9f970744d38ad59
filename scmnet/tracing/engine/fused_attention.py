"""Arguments for CUDA's fused attention kernels: shapes checked, the mask at its full size.

On CUDA, ``scaled_dot_product_attention`` hands its arguments to a fused kernel (cuDNN, flash or
memory-efficient attention), chosen from their shapes, strides and dtypes. On the host it runs
a composite of matmuls and a softmax. Two differences matter to the engine. Both were found on
an H200 (torch 2.11, CUDA 13.0), where the fused kernel was cuDNN's:

* **The fused kernel does not check that the shapes agree.** The engine's suffix search
  (:mod:`scmnet.tracing.engine.positions`) tries several forms of an operation's arguments
  (whole, or cut to the positions from ``t`` on, along each axis of the right length) and
  relies on the operation raising when the forms do not fit together. Given a key of 4
  positions and a value cut to 1, the host raises; cuDNN read past the value, and the process
  died ("Segmentation fault") or the CUDA context was poisoned ("misaligned address", reported
  by a later operation, even with ``CUDA_LAUNCH_BLOCKING=1``).
* **A mask that broadcasts over the keys**, of shape ``(..., L, 1)``, made cuDNN fault with
  "misaligned address" although the call was valid: a fresh mask, a ``bool`` or a ``bfloat16``
  one alike. The same mask expanded to ``(..., L, S)`` computed correctly.

:func:`check_shapes` raises, on every device, the error the host's composite raises for
arguments that do not fit together; :func:`full_mask` expands a device mask to ``(..., L, S)``;
:func:`fused_arguments` does both for the executor, which calls it for every operation in
:data:`FUSED_ATTENTION`.

Examples
--------
>>> import torch
>>> q = torch.zeros(1, 2, 4, 8)
>>> check_shapes(q, q, q.narrow(2, 3, 1))  # a value cut to 1 position, the key not
Traceback (most recent call last):
    ...
scmnet.errors.MechanismError: the attention's key has 4 positions and its value 1: ...
>>> check_shapes(q, q, q, torch.ones(4, 1, dtype=torch.bool))  # a mask may broadcast
>>> scaled_dot_product_attention in FUSED_ATTENTION
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch
from torch.nn.functional import scaled_dot_product_attention

from scmnet.errors import MechanismError

__all__ = ["FUSED_ATTENTION", "PARAMETERS", "check_shapes", "full_mask", "fused_arguments"]

#: The operations that run a fused kernel on CUDA: the functional form (a traced ``torch.fx``
#: graph) and the ATen operator (an exported graph).
FUSED_ATTENTION = frozenset(
    {scaled_dot_product_attention, torch.ops.aten.scaled_dot_product_attention.default}
)

_broadcast = cast(Callable[..., torch.Size], torch.broadcast_shapes)

#: The parameters of ``scaled_dot_product_attention``, in order.
PARAMETERS = (
    "query",
    "key",
    "value",
    "attn_mask",
    "dropout_p",
    "is_causal",
    "scale",
    "enable_gqa",
)


def check_shapes(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    enable_gqa: bool = False,
) -> None:
    """Raise :class:`~scmnet.errors.MechanismError` unless the arguments fit together.

    The key and the value must have as many positions (``S``, their axis ``-2``); the query and
    the key as many features (axis ``-1``); the leading axes of the three must broadcast (the
    heads need not, under grouped-query attention, ``enable_gqa``); and the mask must broadcast
    to the attention weights, ``(..., L, S)``, ``L`` the query's positions. The composite
    ``softmax(q kᵀ + mask) v`` raises for each of these; the fused kernels check none of the
    lengths, on CUDA and on the host alike (torch 2.13's CPU kernel, given a key of 4 positions
    and a value of 1, returns numbers).
    """
    positions, length = key.shape[-2], query.shape[-2]
    if value.shape[-2] != positions:
        raise MechanismError(
            f"the attention's key has {positions} positions and its value {value.shape[-2]}: "
            "they must have as many"
        )
    if query.shape[-1] != key.shape[-1]:
        raise MechanismError(
            f"the attention's query has {query.shape[-1]} features and its key "
            f"{key.shape[-1]}: they must have as many"
        )
    leading = [t.shape[:-2] for t in (query, key, value)]
    if enable_gqa:
        leading = [s[:-1] for s in leading]
    try:
        heads = (query.shape[-3],) if enable_gqa else ()
        weights = (*_broadcast(*leading), *heads, length, positions)
        fits = attn_mask is None or _broadcast(attn_mask.shape, weights) == weights
    except RuntimeError:
        fits = False
    if not fits:
        shapes = [tuple(t.shape) for t in (query, key, value)]
        mask = None if attn_mask is None else tuple(attn_mask.shape)
        raise MechanismError(
            f"the attention's query, key and value of shapes {shapes} and mask of shape {mask} "
            "do not broadcast together"
        )


def full_mask(mask: Any, query: torch.Tensor, key: torch.Tensor) -> Any:
    """``mask`` expanded to ``(..., L, S)`` in fresh memory if it is a CUDA tensor of another
    shape (``L`` the query's positions, ``S`` the key's); anything else unchanged."""
    if not isinstance(mask, torch.Tensor) or mask.device.type != "cuda":
        return mask
    full = (*mask.shape[:-2], query.shape[-2], key.shape[-2])
    if tuple(mask.shape) == full:
        return mask
    return mask.expand(full).clone(memory_format=torch.contiguous_format)


def fused_arguments(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The arguments of a ``scaled_dot_product_attention`` call, checked
    (:func:`check_shapes`) and with the mask at its full size on CUDA (:func:`full_mask`)."""
    bound = dict(zip(PARAMETERS, args, strict=False)) | kwargs
    query, key, value = bound["query"], bound["key"], bound["value"]
    mask = bound.get("attn_mask")
    check_shapes(query, key, value, mask, bool(bound.get("enable_gqa", False)))
    expanded = full_mask(mask, query, key)
    if expanded is mask:
        return args, kwargs
    if len(args) > 3:
        return (*args[:3], expanded, *args[4:]), kwargs
    return args, kwargs | {"attn_mask": expanded}
