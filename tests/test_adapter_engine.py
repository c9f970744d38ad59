"""The adapter's fast path against a plain hooks-based reference, on every supported family.

The reference runs the full Hugging Face forward once per intervention, patching the final
position of the ablated contribution with a forward hook, and unembeds every contribution by
applying the final norm with its scale frozen and the whole unembedding matrix, then centring
over the vocabulary (eqs. 7-10, 12, 13). The fast path must give the same numbers.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from scmnet.adapters.transformer.engine import Block
from scmnet.adapters.transformer.families import spec_for
from scmnet.adapters.transformer.lm import LanguageModel
from scmnet.adapters.transformer.measures import measure_prompt, measure_prompt_traced
from scmnet.errors import UnsupportedModel
from scmnet.testing import assert_close
from tests.reference import Reference
from tests.tiny_models import VOCAB


@pytest.mark.parametrize("measure", [measure_prompt, measure_prompt_traced], ids=["hooks", "core"])
def test_fast_path_equals_hooked_reference(tiny: LanguageModel, measure: Any) -> None:
    """Both engines: the adapter's hooks and the core's traced staircase (the same numbers)."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, VOCAB, (1, 6), generator=g)
    ref = Reference(tiny, ids)
    clean = ref.run(None)
    token = clean["token"]
    values = torch.randn(2, 2, tiny.n_layers, tiny.d_model, generator=g)
    m = measure(tiny, ids, token, values, chunk=5)  # several staircases
    whole = measure(tiny, ids, token, values)
    assert_close(whole.ablated_unembed, m.ablated_unembed, reordered=True)
    assert_close(m.clean_logit, float(clean["logit"][token]), reordered=True)
    assert_close(m.unembed, clean["direct"], reordered=True)
    assert_close(m.clean_sigma, clean["sigma"], reordered=True)
    for b in Block:
        for k in range(tiny.n_layers):
            for j in range(2):
                run = ref.run((b, k, values[j, b, k]), token)
                assert_close(m.ablated_logit[b, k, j], float(run["logit"][token]), reordered=True)
                assert_close(m.ablated_unembed[b, k, j], run["direct"], reordered=True)
                assert_close(m.ablated_sigma[b, k, j], run["sigma"], reordered=True)


def test_upstream_layers_keep_their_contribution(tiny: LanguageModel) -> None:
    # Ablating (b, k) cannot change contributions upstream of it; only sigma rescales them.
    ids = torch.randint(0, VOCAB, (1, 5), generator=torch.Generator().manual_seed(2))
    values = torch.zeros(1, 2, tiny.n_layers, tiny.d_model)
    m = measure_prompt(tiny, ids, 3, values)
    for k in range(tiny.n_layers):
        scale = m.clean_sigma / m.ablated_sigma[Block.ATTN, k, 0]
        for layer in range(k):
            for b in Block:
                assert_close(
                    m.ablated_unembed[Block.ATTN, k, 0, b, layer],
                    m.unembed[b, layer] * scale,
                    reordered=True,
                )
        # A zero ablation leaves nothing of the ablated layer (Delta~ = 0 exactly).
        assert m.ablated_unembed[Block.ATTN, k, 0, Block.ATTN, k] == 0.0


def test_spec_structure(tiny: LanguageModel) -> None:
    parallel = {"gpt_neox": True, "phi": True}.get(tiny.name, False)
    assert tiny.parallel is parallel
    assert tiny.n_layers == 3
    assert tiny.d_model == 32
    assert spec_for(tiny.model).name == tiny.name


def test_unsupported_family_lists_supported() -> None:
    import transformers as tf

    bert = tf.BertForMaskedLM(
        tf.BertConfig(
            vocab_size=50,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
        )
    )
    with pytest.raises(UnsupportedModel, match=r"'bert' is not supported.*'gpt2'.*'llama'"):
        LanguageModel.from_pretrained_model(bert, None, "bert")


@pytest.mark.parametrize("measure", [measure_prompt, measure_prompt_traced], ids=["hooks", "core"])
def test_one_token_prompt_has_no_prefix(tiny: LanguageModel, measure: Any) -> None:
    # Nothing precedes the final position: no cache, and the same numbers as the reference.
    ids = torch.tensor([[7]])
    ref = Reference(tiny, ids)
    clean = ref.run(None)
    token = clean["token"]
    values = torch.randn(
        1, 2, tiny.n_layers, tiny.d_model, generator=torch.Generator().manual_seed(3)
    )
    m = measure(tiny, ids, token, values)
    run = ref.run((Block.MLP, 1, values[0, Block.MLP, 1]), token)
    expected = float(run["logit"][token] - clean["logit"][token])
    assert_close(m.ablated_logit[Block.MLP, 1, 0] - m.clean_logit, expected, reordered=True)
