"""Gradients of a traced model and attribution patching: known answers, parity with eager
autograd, AtP exact to first order on every family, the agreement measure, and the errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import scmnet as sn
from scmnet.adapters.transformer.attribution import agreement, attribution_impacts
from scmnet.adapters.transformer.causal import final_readings
from scmnet.adapters.transformer.lm import LanguageModel
from scmnet.adapters.transformer.measures import measure_prompt
from scmnet.errors import InvalidArgument, InvalidOutcome, NodeNotFound
from scmnet.testing import assert_close
from tests.plain_models import TinyGPT
from tests.protocol import tiny_lm
from tests.tiny_models import CharTokenizer

IDS = torch.tensor([[5, 6, 7, 8, 9, 10]])


def test_the_gradient_of_a_two_layer_net_is_its_second_weight() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).eval()
    traced = sn.trace(net, torch.zeros(1, 3))
    x = torch.randn(1, 3)
    y, grads = traced.gradients({"input": x}, sn.Outcome(("2",), lambda v: v[0, 1]), ["1", "0"])
    assert_close(y, net(x)[0, 1])
    assert_close(grads["1"], net[2].weight[1:2].detach())  # d y / d h = W2[1]
    h = net[0](x)
    expected = (net[2].weight[1] * (1 - torch.tanh(h) ** 2)).detach()  # through the tanh
    assert_close(grads["0"], expected, reordered=True)


def test_a_plain_gpts_gradients_equal_eager_autograd() -> None:
    torch.manual_seed(1)
    gpt = TinyGPT(layers=2).eval()
    ids = torch.randint(0, 50, (1, 6))
    traced = sn.trace(gpt, ids, variables=sn.ByPath("h.*.attn") | sn.ByPath("h.*.mlp"))
    outcome = sn.Outcome((traced.outputs[0],), lambda v: v[0, -1, 7])
    wrt = ["h.0.attn", "h.1.mlp"]
    _, grads = traced.gradients({"idx": ids}, outcome, wrt)
    leaves: dict[str, torch.Tensor] = {}

    def hook(name: str):
        def replace(_m: nn.Module, _i: object, out: torch.Tensor) -> torch.Tensor:
            leaves[name] = torch.zeros_like(out, requires_grad=True)
            return out + leaves[name]  # the total derivative, later modules reacting

        return replace

    handles = [gpt.get_submodule(n).register_forward_hook(hook(n)) for n in wrt]
    gpt(ids)[0, -1, 7].backward()
    for h in handles:
        h.remove()
    for name in wrt:
        assert leaves[name].grad is not None
        assert_close(grads[name], leaves[name].grad, reordered=True)


def test_a_variable_the_outcome_does_not_read_has_a_zero_gradient() -> None:
    traced = sn.trace(sn.toys.erasure_module(), torch.zeros(()))
    _, grads = traced.gradients({"u": torch.tensor(1.0)}, sn.Outcome(("f",), lambda f: f), ["y"])
    assert float(grads["y"]) == 0.0


def test_gradients_refuse_bad_requests() -> None:
    traced = sn.trace(sn.toys.erasure_module(), torch.zeros(2))
    context = {"u": torch.ones(2)}
    with pytest.raises(InvalidOutcome, match="one number, got shape \\(2,\\)"):
        traced.gradients(context, sn.Outcome(("y",), lambda y: y), ["f"])
    with pytest.raises(NodeNotFound, match="'g'"):
        traced.gradients(context, sn.Outcome(("y",), lambda y: y.sum()), ["g"])
    with pytest.raises(InvalidArgument, match="write \\['f'\\]"):
        traced.gradients(context, sn.Outcome(("y",), lambda y: y.sum()), "f")  # type: ignore[arg-type]


def _double(family: str) -> LanguageModel:
    lm = tiny_lm(family)
    return LanguageModel.from_pretrained_model(lm.model.double(), CharTokenizer(), lm.name)


@settings(max_examples=6, deadline=None)
@given(family=st.sampled_from(["llama", "gpt2", "gpt_neox", "phi"]), seed=st.integers(0, 99))
def test_attribution_is_the_ablation_impact_to_first_order(family: str, seed: int) -> None:
    """For a~ = a + eps d with eps small, AtP's estimate and the exact impact (one query of the
    sweep's engine) agree to first order: within 2% of the largest impact at eps = 1e-4 (the
    readouts accumulate in float32, so a smaller eps drowns in their rounding). A gradient
    that held the later layers fixed would miss by far more."""
    lm = _double(family)
    clean, _ = final_readings(lm, IDS)
    direction = torch.randn(clean.shape[1:], generator=torch.Generator().manual_seed(seed))
    eps = 1e-4
    values = (clean[0].double() + eps * direction.double()).to(lm.dtype)
    estimate = attribution_impacts(lm, IDS, 3, values)
    exact = measure_prompt(lm, IDS, 3, [values]).ablate
    scale = float(np.abs(exact).max())
    assert scale > 1e-9  # the perturbation moves the logit
    assert_close(estimate, exact, rtol=0, atol=0.02 * scale)


def test_attribution_averages_draws_and_checks_the_shape() -> None:
    lm = tiny_lm("llama")
    draws = torch.randn(3, 2, lm.n_layers, lm.d_model, generator=torch.Generator().manual_seed(0))
    assert_close(
        attribution_impacts(lm, IDS, 3, draws),
        attribution_impacts(lm, IDS, 3, draws.mean(0)),
        reordered=True,
    )
    with pytest.raises(InvalidArgument, match=r"values must have shape \(2, 3, 32\)"):
        attribution_impacts(lm, IDS, 3, torch.zeros(3, 32))


def test_agreement_known_answers() -> None:
    exact = np.array([[4.0, -3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0]])
    perfect = agreement(2 * exact, exact, top=2, keep=(2,))
    assert perfect.spearman == pytest.approx(1.0)
    assert perfect.missed == {2: 0.0}
    reversed_ = agreement(exact[:, ::-1].copy(), exact, top=1, keep=(1, 4))
    assert reversed_.missed[4] == 0.0  # keeping every unit misses nothing
    assert reversed_.missed[1] == 1.0  # the largest is ranked last in both prompts


def test_agreement_refuses_mismatched_arrays() -> None:
    with pytest.raises(InvalidArgument, match="of one shape"):
        agreement(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(InvalidArgument, match=r"top must be in 1\.\.3"):
        agreement(np.zeros((2, 3)), np.zeros((2, 3)), top=4)
