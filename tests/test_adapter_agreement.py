"""The adapter's numbers equal the generic effect operators on the traced model (Section 3).

The language model is traced with the paper's variables (a^l, m^l, the final norm's scale sigma,
the logits). Then, for every layer:

* Delta_ablate (eq. 12) = the total effect of do(A^l_t = a~) on the centred logit (eqs. 14-18);
* Delta_unembed (eq. 10) = minus the direct effect of do(A^l_t = 0), sigma held (eqs. 24-28);
* Delta~^k_unembed,l (eq. 13) = the same direct effect in the model do(A^k_t = a~).
"""

from __future__ import annotations

import pytest
import torch

import scmnet as sn
from scmnet.adapters.transformer.causal import (
    ablation_impact,
    site,
    traced_lm,
    unembedding_impact,
)
from scmnet.adapters.transformer.families import Block
from scmnet.adapters.transformer.lm import LanguageModel
from scmnet.adapters.transformer.measures import measure_prompt
from scmnet.testing import assert_close, check_scm
from tests.tiny_models import FAMILIES, VOCAB, tiny_model


@pytest.fixture(scope="module", params=FAMILIES)
def tiny(request: pytest.FixtureRequest) -> LanguageModel:
    """The declared families only: these tests are about the effect operators, and the other
    layouts (Gemma 3's wrapper, sequential GPT-NeoX) are checked against the hooks reference in
    tests/test_adapter_engine.py."""
    return LanguageModel.from_pretrained_model(tiny_model(request.param), None, request.param)


def test_single_effects_equal_the_sweep_query(tiny: LanguageModel) -> None:
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(0, VOCAB, (1, 5), generator=g)
    model = traced_lm(tiny, ids)
    assert len(model.endogenous) == 2 * tiny.n_layers + 2  # a^l, m^l, sigma, logits
    with torch.no_grad():
        token = int(tiny.model(input_ids=ids).logits[0, -1].argmax())
    values = torch.randn(1, 2, tiny.n_layers, tiny.d_model, generator=g)
    fast = measure_prompt(tiny, ids, token, values)
    for b in Block:
        for layer in range(tiny.n_layers):
            assert_close(
                unembedding_impact(model, tiny, ids, token, b, layer),
                fast.unembed[b, layer],
                reordered=True,
            )
            assert_close(
                ablation_impact(model, tiny, ids, token, b, layer, values[0, b, layer]),
                fast.ablate[b, layer],
                reordered=True,
            )
    k = 1
    ablated = sn.do(model, {site(tiny, Block.ATTN, k): values[0, Block.ATTN, k]})
    for b in Block:
        for layer in range(tiny.n_layers):
            assert_close(
                unembedding_impact(ablated, tiny, ids, token, b, layer),
                fast.unembed_after[Block.ATTN, k, b, layer],
                reordered=True,
            )


def test_traced_language_model_is_a_conformant_scm(tiny: LanguageModel) -> None:
    ids = torch.randint(0, VOCAB, (1, 4), generator=torch.Generator().manual_seed(6))
    model = traced_lm(tiny, ids)
    check_scm(model, contexts=[{"input_ids": ids}], max_treatments=3)
    # The original final norm is back in place after tracing.
    assert type(tiny.final_norm).__name__ != "ScaleNorm"
