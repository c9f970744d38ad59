"""Readouts that are not linear in the residual stream: exact (Gemma 2's softcap) or refused.

The unembedding impact through a softcapped readout is defined as minus the direct effect of
zeroing the contribution, every other variable (sigma included) held (eqs. 19-20, 25; see
``scmnet.adapters.transformer.readout``). Here that definition is checked against the eager
model itself: a forward pass with every contribution's final position clamped to its clean
value, the one read zeroed, and the final norm's scale frozen.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

import scmnet as sn
from scmnet.adapters.transformer.causal import site, traced_lm, unembedding_impact
from scmnet.adapters.transformer.families import Block
from scmnet.adapters.transformer.finder import check_readout, spec_of
from scmnet.adapters.transformer.lm import LanguageModel
from scmnet.adapters.transformer.measures import measure_prompt
from scmnet.adapters.transformer.readout import Readout, direct_impacts
from scmnet.errors import InvalidArgument, UnsupportedModel
from scmnet.testing import assert_close
from tests.reference import Reference, check_measures
from tests.tiny_models import VOCAB, tiny_config, tiny_model


@pytest.fixture(scope="module")
def gemma2() -> LanguageModel:
    return LanguageModel.from_pretrained_model(tiny_model("gemma2"), None, "gemma2")


def _eager_direct_effect(
    lm: LanguageModel, ids: torch.Tensor, token: int, b: Block, layer: int
) -> float:
    """pi^_i(do(V^l_t = 0, every other contribution and sigma held)) - pi^_i, by the eager
    model: hooks clamp every contribution's final position and freeze the final norm's scale."""
    clean = Reference(lm, ids).run(None, token)
    held = clean["contributions"]  # (2, L, d) at the final position
    sigma = clean["sigma"]
    handles = []

    def clamp(c: Block, k: int) -> Any:
        def hook(module: Any, args: Any, output: Any) -> Any:
            x = (output[0] if isinstance(output, tuple) else output).clone()
            x[:, -1] = 0.0 if (c, k) == (b, layer) else held[c, k]
            return (x, *output[1:]) if isinstance(output, tuple) else x

        return hook

    def frozen_norm(module: Any, args: Any, output: Any) -> Any:
        z = args[0]
        out = output.clone()
        out[:, -1] = (z[:, -1].double() / sigma * lm.norm_gain.double()).to(out.dtype)
        return out

    for k in range(lm.n_layers):
        handles.append(lm.attention_out(k).register_forward_hook(clamp(Block.ATTN, k)))
        handles.append(lm.mlp_out(k).register_forward_hook(clamp(Block.MLP, k)))
    handles.append(lm.final_norm.register_forward_hook(frozen_norm))
    try:
        with torch.no_grad():
            logits = lm.model(input_ids=ids, use_cache=False).logits[0, -1].double()
    finally:
        for h in handles:
            h.remove()
    after = float(logits[token] - logits.mean())
    return after - float(clean["logit"][token])


def test_softcapped_direct_effect_is_an_intervention_on_the_eager_model(
    gemma2: LanguageModel,
) -> None:
    assert gemma2.readout == Readout(softcap=0.5)
    ids = torch.randint(0, VOCAB, (1, 6), generator=torch.Generator().manual_seed(5))
    token = Reference(gemma2, ids).run(None)["token"]
    m = measure_prompt(gemma2, ids, token, torch.zeros(1, 2, gemma2.n_layers, gemma2.d_model))
    traced = traced_lm(gemma2, ids)  # variables a^l, m^l, sigma, logits
    ablated = sn.do(traced, {site(gemma2, Block.ATTN, 1): sn.zero()})
    for b in Block:
        for layer in range(gemma2.n_layers):
            eager = -_eager_direct_effect(gemma2, ids, token, b, layer)
            assert_close(m.unembed[b, layer], eager, reordered=True)
            # ... the generic direct-effect operator on the traced graph says the same, and
            # in the ablated run (eq. 13) too.
            single = unembedding_impact(traced, gemma2, ids, token, b, layer)
            assert_close(single, eager, reordered=True)
            after = unembedding_impact(ablated, gemma2, ids, token, b, layer)
            assert_close(m.unembed_after[Block.ATTN, 1, b, layer], after, reordered=True)
    # With a cap the impacts do not add up to the logit: the readout is not linear.
    assert abs(m.unembed.sum() - m.clean_logit) > 1e-3


def test_softcap_of_a_declared_family_is_read_from_its_config() -> None:
    # Gemma 3 (declared) with a logit cap: read exactly, as Gemma 2 is.
    import transformers as tf

    config = tiny_config("gemma3")
    config.final_logit_softcapping = 0.5
    torch.manual_seed(0)
    lm = LanguageModel.from_pretrained_model(
        tf.AutoModelForCausalLM.from_config(config).eval(), None, "gemma3"
    )
    assert lm.readout.softcap == 0.5
    check_measures(lm)


def test_unknown_map_after_the_unembedding_is_refused() -> None:
    # A map after lm_head that no config attribute declares: refused before any work.
    model = tiny_model("llama")
    model.lm_head.register_forward_hook(lambda m, a, out: torch.tanh(out))
    with pytest.raises(
        UnsupportedModel,
        match=r"^model type 'llama' is not supported by the transformer adapter: the logits "
        r"are not the linear readout W_U h \+ b of the final norm's output model\.norm through "
        r"the unembedding lm_head \(max difference [0-9.e-]+\): the model maps them in a way "
        r"the adapter cannot express",
    ):
        spec_of(model)


def test_a_declared_readout_the_model_does_not_apply_is_refused() -> None:
    # A config that claims a logit scale the forward never applies: the check catches it.
    model = tiny_model("llama")
    model.config.logit_scale = 0.5
    with pytest.raises(UnsupportedModel, match=r"the logits are not a logit scale of 0\.5"):
        check_readout(model, spec_of(tiny_model("llama")))


def test_direct_impacts_chunked_equal_whole() -> None:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(7, 3, generator=g, dtype=torch.float64)
    x = torch.randn(5, 7, generator=g, dtype=torch.float64)
    read = torch.randn(5, 4, 3, generator=g, dtype=torch.float64)
    r = Readout(scale=2.0, softcap=1.5)
    whole = direct_impacts(r, x, read, w, 3)
    assert_close(direct_impacts(r, x, read, w, 3, max_elements=7), whole)
    # By hand for one component: pi^_i(s x) - pi^_i(s (x - v W^T)).
    capped = r.apply(x[1]) - r.apply(x[1]).mean()
    moved = r.apply(x[1] - read[1, 2] @ w.T)
    assert_close(whole[1, 2], capped[3] - (moved[3] - moved.mean()))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"softcap": 0.0}, r"softcap must be a positive number or None, got 0\.0"),
        ({"scale": float("nan")}, r"scale must be a finite non-zero number, got nan"),
    ],
)
def test_bad_readouts(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        Readout(**kwargs)


def test_unembedding_mean_follows_the_weight() -> None:
    """W_U's row mean (eq. 9's centring), computed once per weight, is recomputed after the
    weight changes in place or is replaced."""
    lm = LanguageModel.from_pretrained_model(tiny_model("llama"), None, "llama")
    head = lm.model.get_submodule(lm.spec.unembed)
    first = lm.unembedding_mean
    assert lm.unembedding_mean is first  # kept
    assert_close(first, lm.unembedding.float().mean(0), rtol=0.0, atol=0.0)
    with torch.no_grad():
        head.weight.add_(1.0)
    assert_close(lm.unembedding_mean, first + 1.0, rtol=1e-6, atol=1e-6)
    head.weight = torch.nn.Parameter(torch.zeros_like(head.weight))
    assert_close(lm.unembedding_mean, torch.zeros_like(first), rtol=0.0, atol=0.0)
