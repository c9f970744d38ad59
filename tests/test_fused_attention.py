"""The fused attention's arguments: shapes checked as the host checks them, masks expanded."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.functional import scaled_dot_product_attention

from scmnet.errors import MechanismError
from scmnet.testing import assert_close
from scmnet.tracing.engine.fused_attention import check_shapes, full_mask, fused_arguments
from tests.simulated_cuda import simulated_cuda

sizes = st.integers(1, 4)


def _composite(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    """softmax(q kᵀ + mask) v, the attention's definition, with a mask added in place (it must
    broadcast to the weights, as in torch's math path)."""
    weights = q @ k.transpose(-2, -1)
    if mask is not None:
        weights.add_(mask)
    return weights.softmax(-1) @ v


@settings(max_examples=200, deadline=None)
@given(
    heads=st.tuples(sizes, sizes, sizes),
    lengths=st.tuples(sizes, sizes, sizes),
    features=st.tuples(sizes, sizes),
    mask=st.none() | st.tuples(st.integers(0, 5), st.integers(0, 5)),
)
def test_the_check_rejects_exactly_what_the_host_rejects(
    heads: tuple[int, int, int],
    lengths: tuple[int, int, int],
    features: tuple[int, int],
    mask: tuple[int, int] | None,
) -> None:
    """Over query, key and value of any heads, positions and features, and a mask of any
    trailing shape: :func:`check_shapes` raises if and only if the composite does (the host's
    fused kernel does not check every length either)."""
    generator = torch.Generator().manual_seed(0)
    q = torch.randn(1, heads[0], lengths[0], features[0], generator=generator)
    k = torch.randn(1, heads[1], lengths[1], features[0] if features[1] == 1 else features[1])
    v = torch.randn(1, heads[2], lengths[2], 3)
    m = None if mask is None else torch.zeros(*mask)
    try:
        _composite(q, k, v, m)
    except RuntimeError:
        with pytest.raises(MechanismError, match="the attention's"):
            check_shapes(q, k, v, m)
    else:
        check_shapes(q, k, v, m)


def test_the_check_names_the_lengths_that_differ() -> None:
    q = torch.zeros(1, 2, 4, 8)
    with pytest.raises(MechanismError, match="key has 4 positions and its value 1"):
        check_shapes(q, q, q.narrow(2, 3, 1))
    with pytest.raises(MechanismError, match="query has 8 features and its key 6"):
        check_shapes(q, q[..., :6], q)


def test_grouped_query_attention_may_have_fewer_key_heads() -> None:
    q, kv = torch.zeros(1, 4, 3, 8), torch.zeros(1, 2, 3, 8)
    check_shapes(q, kv, kv, enable_gqa=True)
    with pytest.raises(MechanismError, match="do not broadcast"):
        check_shapes(q, kv, kv)


@pytest.mark.parametrize("shape", [(1, 1, 4, 1), (4, 1), (1, 1, 1, 4), (1, 4, 4, 4)])
def test_a_device_mask_is_expanded_to_every_query_and_key(shape: tuple[int, ...]) -> None:
    generator = torch.Generator().manual_seed(3)
    q = torch.randn(1, 4, 4, 8, generator=generator)
    mask = torch.rand(*shape, generator=generator) > 0.3
    mask[..., 0] = True  # no query without a key
    reference = scaled_dot_product_attention(q, q, q, attn_mask=mask)
    with simulated_cuda():
        dq, dmask = q.to("cuda"), mask.to("cuda")
        args, kwargs = fused_arguments((dq, dq, dq, dmask), {})
        assert args[3].shape[-2:] == (4, 4)
        assert args[3].is_contiguous()
        got = scaled_dot_product_attention(*args, **kwargs).cpu()
        _, by_name = fused_arguments((dq, dq, dq), {"attn_mask": dmask})
        assert by_name["attn_mask"].shape[-2:] == (4, 4)
    assert_close(got, reference)


def test_a_host_mask_and_a_full_device_mask_are_left_as_they_are() -> None:
    q = torch.zeros(1, 2, 4, 8)
    mask = torch.ones(4, 1, dtype=torch.bool)
    assert full_mask(mask, q, q) is mask
    with simulated_cuda():
        full = torch.ones(4, 4, dtype=torch.bool).to("cuda")
        dq = q.to("cuda")
        assert full_mask(full, dq, dq) is full
        assert full_mask(None, dq, dq) is None
