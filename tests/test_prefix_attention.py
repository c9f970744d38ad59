"""Attention over one shared clean prefix equals ``scaled_dot_product_attention`` per row.

Property test first: random rows, heads (with grouped-query attention), prefix and suffix
lengths, causal or not, boolean or additive masks; every output equals torch's attention on the
row's own copy of the prefix. Then the suffix plan picks it for the attention of a GPT written in
plain PyTorch, whose sweep stays exact (the parity tests of test_engine.py run on it too).
"""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.functional import scaled_dot_product_attention as sdpa

import scmnet as sn
from scmnet.testing import assert_close
from scmnet.tracing.engine.prefix_attention import prefix_attention
from tests.plain_models import TinyGPT


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 4),
    batch=st.integers(1, 2),
    kv_heads=st.integers(1, 2),
    groups=st.integers(1, 3),
    t=st.integers(0, 5),
    s=st.integers(1, 3),
    causal=st.booleans(),
    mask=st.sampled_from([None, "bool", "float"]),
    seed=st.integers(0, 2**16),
)
def test_equals_attention_on_a_copied_prefix(
    rows: int,
    batch: int,
    kv_heads: int,
    groups: int,
    t: int,
    s: int,
    causal: bool,
    mask: str | None,
    seed: int,
) -> None:
    g = torch.Generator().manual_seed(seed)
    d, heads, r = 8, kv_heads * groups, rows * batch
    q = torch.randn(r, heads, s, d, generator=g)
    k, v = (torch.randn(r, kv_heads, s, d, generator=g) for _ in range(2))
    kp, vp = (torch.randn(batch, kv_heads, t, d, generator=g) for _ in range(2))
    m: torch.Tensor | None = None
    if mask == "bool":
        m = torch.rand(batch, 1, s, t + s, generator=g) > 0.3
        m[..., t:] |= torch.eye(s, dtype=torch.bool)  # every query sees its own key
    elif mask == "float":
        m = torch.randn(batch, 1, s, t + s, generator=g)
    got = prefix_attention(q, k, v, kp, vp, causal=causal, mask=m, scale=0.3)
    # the reference: each row with its own copy of its context's prefix
    full_k = torch.cat([kp.repeat(rows, 1, 1, 1), k], dim=2)
    full_v = torch.cat([vp.repeat(rows, 1, 1, 1), v], dim=2)
    full_k, full_v = full_k.repeat_interleave(groups, 1), full_v.repeat_interleave(groups, 1)
    ref_mask = None if m is None else m.repeat(rows, 1, 1, 1)
    if causal:
        keep = torch.ones(s, t + s, dtype=torch.bool).tril(t)
        if ref_mask is None:
            ref_mask = keep
        elif ref_mask.dtype == torch.bool:
            ref_mask = ref_mask & keep
        else:
            ref_mask = ref_mask.masked_fill(~keep, float("-inf"))
    want = sdpa(q, full_k, full_v, attn_mask=ref_mask, scale=0.3)
    assert_close(got, want, reordered=True)


def test_the_suffix_plan_shares_the_prefix() -> None:
    """The sweep of a plain GPT reads its attention's prefix once (no per-row copy)."""
    torch.manual_seed(0)
    gpt = TinyGPT().eval()
    ids = torch.randint(0, 50, (1, 7))
    model = sn.trace(gpt, ids)
    sets = [{sn.Site("h.0.attn", index=(slice(None), -1)): float(v)} for v in range(4)]
    last = sn.Site(model.outputs[0], index=(0, -1))
    stacked = model.evaluate_stacked({"idx": ids}, sets, outputs=[last])[last]
    assert model.info.batching.positions == "suffix from position 6 of 7"
    for i, iv in enumerate(sets):
        assert_close(stacked[i], model.evaluate({"idx": ids}, iv)[model.outputs[0]][0, -1])
    plans = model._net.source.batching._suffixes.values()
    shared = [r for p in plans if not isinstance(p, str) for r in p.recipes.values() if r.prefix]
    assert shared, "no attention read the shared prefix"
