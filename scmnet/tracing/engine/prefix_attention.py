"""Attention of many rows' suffix queries over one shared clean prefix, without copying it.

In a suffix run (:mod:`scmnet.tracing.engine.positions`) every row recomputes the positions
``t:`` of a causal sequence model, and its attention reads the keys and values of the
positions before ``t`` from the clean run: the same prefix for every row. Giving each row its
own copy of that prefix (the clean prefix concatenated with the row's suffix) costs
``rows x heads x t x d`` of memory traffic per attention, which dominates a sweep of
thousands of rows on a long prompt.

:func:`prefix_attention` computes the same scaled dot-product attention from the suffix
queries, keys and values of the rows and the one prefix: the scores against the prefix are one
matrix product per head (the rows folded into the query axis), the scores against the rows'
own suffix keys are batched per row, and one softmax spans both.

Examples
--------
>>> import torch
>>> from torch.nn.functional import scaled_dot_product_attention as sdpa
>>> g = torch.Generator().manual_seed(0)
>>> q, k, v = (torch.randn(3, 2, 5, 4, generator=g) for _ in range(3))
>>> k[:, :, :3], v[:, :, :3] = k[:1, :, :3], v[:1, :, :3]  # three rows share a 3-position prefix
>>> full = sdpa(q, k, v, is_causal=True)[:, :, 3:]  # the suffix queries' outputs
>>> mine = prefix_attention(q[:, :, 3:], k[:, :, 3:], v[:, :, 3:], k[:1, :, :3], v[:1, :, :3],
...                         causal=True)
>>> bool(torch.allclose(full, mine, atol=1e-6))
True
"""

from __future__ import annotations

import math

import torch

__all__ = ["prefix_attention"]


def _fold(x: torch.Tensor, batch: int) -> torch.Tensor:
    """``(rows * batch, h, s, e) -> (batch, h, rows * s, e)``: rows joined to the query axis."""
    r, h, s, e = x.shape
    rows = r // batch
    return x.reshape(rows, batch, h, s, e).permute(1, 2, 0, 3, 4).reshape(batch, h, rows * s, e)


def _unfold(x: torch.Tensor, rows: int) -> torch.Tensor:
    """The inverse of :func:`_fold`: ``(batch, h, rows * s, e) -> (rows * batch, h, s, e)``."""
    b, h, rs, e = x.shape
    s = rs // rows
    return x.reshape(b, h, rows, s, e).permute(2, 0, 1, 3, 4).reshape(rows * b, h, s, e)


def prefix_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    key_prefix: torch.Tensor,
    value_prefix: torch.Tensor,
    *,
    causal: bool,
    mask: torch.Tensor | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """Scaled dot-product attention of suffix queries over a shared prefix and their suffix.

    Parameters
    ----------
    query, key, value : tensor, shape (rows * B, heads, s, d)
        The suffix positions of every row (row-major blocks of the context's batch B). Keys and
        values may have fewer heads than queries (grouped-query attention): each is shared by
        ``heads / kv_heads`` consecutive query heads.
    key_prefix, value_prefix : tensor, shape (B, kv_heads, t, d)
        The keys and values of the positions before the suffix, shared by every row.
    causal : bool
        Whether suffix query i sees suffix keys up to i only (a causal mask); every query sees
        the whole prefix.
    mask : tensor, optional
        The attention mask of the suffix queries over all ``t + s`` keys, broadcastable to
        ``(rows * B, heads, s, t + s)`` or with a leading axis of B: boolean (True attends) or
        added to the scores, as in ``scaled_dot_product_attention``.
    scale : float, optional
        The scores' scale; default ``1 / sqrt(d)``.

    Returns
    -------
    tensor, shape (rows * B, heads, s, d_v)
    """
    batch = key_prefix.shape[0]
    rows = query.shape[0] // batch
    groups = query.shape[1] // key.shape[1]
    if groups > 1:  # grouped-query attention: expand the key/value heads (suffix and prefix)
        key, value = key.repeat_interleave(groups, 1), value.repeat_interleave(groups, 1)
        key_prefix = key_prefix.repeat_interleave(groups, 1)
        value_prefix = value_prefix.repeat_interleave(groups, 1)
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    on_prefix = _unfold(_fold(query, batch) @ key_prefix.transpose(-1, -2), rows) * scale
    one = query.shape[-2] == 1  # one suffix position: products, not a batch of 1x1 matmuls
    if one:
        on_suffix = (query * key).sum(-1, keepdim=True) * scale
    else:
        on_suffix = (query @ key.transpose(-1, -2)) * scale  # (rows * B, heads, s, s)
    if causal and not one:
        s = query.shape[-2]
        future = torch.ones(s, s, dtype=torch.bool, device=query.device).triu(1)
        on_suffix = on_suffix.masked_fill(future, float("-inf"))
    scores = torch.cat([on_prefix, on_suffix], dim=-1)
    if mask is not None:
        if mask.dim() == 4 and mask.shape[0] not in (1, scores.shape[0]):
            mask = mask.repeat(rows, 1, 1, 1)  # the context's batch, once per row
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + mask
    t = key_prefix.shape[-2]
    weights = scores.float().softmax(-1).to(query.dtype)
    from_prefix = _unfold(_fold(weights[..., :t], batch) @ value_prefix, rows)
    return from_prefix + (weights[..., t:] * value if one else weights[..., t:] @ value)
