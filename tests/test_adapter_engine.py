"""The adapter's measures against a plain hooks-based reference, on every supported family.

The reference runs the full Hugging Face forward once per intervention, patching the final
position of the ablated contribution with a forward hook, and unembeds every contribution by
applying the final norm with its scale frozen and the whole unembedding matrix, then centring
over the vocabulary (eqs. 7-10, 12, 13). One query of the core's engine
(:func:`measure_prompt`) must give the same numbers.
"""

from __future__ import annotations

import pytest
import torch

import scmnet as sn
from scmnet.adapters.transformer.ablations import Ablation, AblationKind, donors
from scmnet.adapters.transformer.causal import final_readings, noised_readings, recorded_readings
from scmnet.adapters.transformer.families import Block
from scmnet.adapters.transformer.lm import LanguageModel
from scmnet.adapters.transformer.measures import measure_prompt
from scmnet.adapters.transformer.registry import spec_for
from scmnet.errors import InvalidIntervention, UnsupportedModel
from scmnet.testing import assert_close
from tests.reference import Reference, check_measures
from tests.tiny_models import VOCAB


def test_measures_equal_hooked_reference(tiny: LanguageModel) -> None:
    """One query of the core's engine gives the numbers of one hooked forward per run."""
    check_measures(tiny)


def test_clean_and_noised_readings_equal_hooked_reference(tiny: LanguageModel) -> None:
    """The clean pass (a batch of prompts) and noise ablation's values A(u + eps), eq. 37."""
    g = torch.Generator().manual_seed(4)
    ids = torch.randint(0, VOCAB, (3, 5), generator=g)
    contributions, logits = final_readings(tiny, ids)
    for row in range(3):
        clean = Reference(tiny, ids[row : row + 1]).run(None)
        assert_close(contributions[row], clean["contributions"], reordered=True)
        assert int(logits[row].argmax()) == clean["token"]
    noise = torch.randn(2, 5, tiny.d_model, generator=g)
    noised = noised_readings(tiny, ids[:1], noise)
    for j in range(2):
        run = Reference(tiny, ids[:1]).run(None, noise=noise[j])
        assert_close(noised[j], run["contributions"], reordered=True)


def test_rules_give_the_measures_of_their_values(tiny: LanguageModel) -> None:
    """sn.zero, sn.mean and sn.patch draws, read from the recorded clean pass, equal the values."""
    g = torch.Generator().manual_seed(5)
    prompts = torch.randint(0, VOCAB, (3, 4), generator=g)
    contributions, _ = final_readings(tiny, prompts)
    pool = [{"input_ids": prompts[p : p + 1]} for p in range(3)]
    readings = recorded_readings(tiny, pool, contributions)
    ids = torch.randint(0, VOCAB, (1, 6), generator=g)
    rules = [sn.zero(), sn.mean(pool), sn.patch(pool[2]), sn.patch(pool[0])]
    explicit = torch.stack(
        [
            torch.zeros_like(contributions[0]),
            contributions.mean(0),
            contributions[2],
            contributions[0],
        ]
    )
    by_rule = measure_prompt(tiny, ids, 3, rules, values=readings)
    by_value = measure_prompt(tiny, ids, 3, explicit)
    unrecorded = measure_prompt(tiny, ids, 3, rules)  # the donors are run by the query
    for found in (by_rule, unrecorded):
        assert_close(found.ablated_logit, by_value.ablated_logit, reordered=True)
        assert_close(found.ablated_unembed, by_value.ablated_unembed, reordered=True)
        assert_close(found.ablated_sigma, by_value.ablated_sigma, reordered=True)


def test_donors() -> None:
    resample = Ablation(AblationKind.RESAMPLE, patches=3, seed=4)
    found = donors(2, 5, resample)
    assert len(found) == 3
    assert 2 not in found
    assert (donors(2, 5, resample) == found).all()  # reproducible per prompt
    assert len(donors(0, 5, Ablation(patches=4))) == 4  # all the others
    with pytest.raises(InvalidIntervention, match="15 resample draws asked for, but prompt 0 has"):
        donors(0, 5, Ablation(patches=15))  # never a silent cap
    with pytest.raises(InvalidIntervention, match="at least two prompts"):
        donors(0, 1, Ablation())


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
    family = {"gemma3_vlm": "gemma3_multimodal", "gpt_neox_seq": "gpt_neox"}
    assert spec_for(tiny.model).name == family.get(tiny.name, tiny.name)
    if tiny.name == "gemma3_vlm":  # the language model of the wrapper, not its vision tower
        assert tiny.spec.layers == "model.language_model.layers"
        assert type(tiny.model).__name__ == "Gemma3ForConditionalGeneration"


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


def test_one_token_prompt_has_no_prefix(tiny: LanguageModel) -> None:
    # Nothing precedes the final position: no cache, and the same numbers as the reference.
    ids = torch.tensor([[7]])
    ref = Reference(tiny, ids)
    clean = ref.run(None)
    token = clean["token"]
    values = torch.randn(
        1, 2, tiny.n_layers, tiny.d_model, generator=torch.Generator().manual_seed(3)
    )
    m = measure_prompt(tiny, ids, token, values)
    run = ref.run((Block.MLP, 1, values[0, Block.MLP, 1]), token)
    expected = float(run["logit"][token] - clean["logit"][token])
    assert_close(m.ablated_logit[Block.MLP, 1, 0] - m.clean_logit, expected, reordered=True)
