"""Ablation values (Appendix A, eqs. 35-39) on plain SCMs and on traced networks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from torch import nn

import scmnet as sn
from scmnet.testing import assert_close
from tests.strategies import reals

LIN = sn.toys.linear_mediation(a=2.0, b=3.0, c=0.5)


def _ctx(x: float) -> dict[str, float]:
    return {"u_x": x, "u_m": 0.0, "u_y": 0.0}


@given(x=reals)
def test_zero_ablation(x: float) -> None:
    assert_close(sn.total_effect(LIN, {"x": sn.zero()}, "y", context=_ctx(x)), -6.5 * x)
    assert_close(sn.direct_effect(LIN, {"x": sn.zero()}, "y", context=_ctx(x)), -0.5 * x)
    assert sn.do(LIN, {"x": sn.zero()}).graph.in_degree("x") == 0


def test_mean_ablation_over_a_data_set() -> None:
    data = [_ctx(1.0), _ctx(2.0), _ctx(6.0)]
    te = sn.total_effect(LIN, {"x": sn.mean(data)}, "y", context=_ctx(0.0))
    assert_close(te, 6.5 * 3.0)
    # Mean over draws from P(u): E[x] = 0 within 4 standard errors of 2000 draws.
    te_pop = sn.total_effect(LIN, {"x": sn.mean(samples=2000, seed=1)}, "y", context=_ctx(0.0))
    assert abs(te_pop) < 6.5 * 4 / np.sqrt(2000)


def test_resample_averages_effects_over_draws() -> None:
    data = [_ctx(1.0), _ctx(3.0)]
    u = _ctx(0.0)
    te = sn.total_effect(LIN, {"x": sn.resample(data)}, "y", context=u, draws=400, seed=2)
    draws = [
        sn.total_effect(LIN, {"x": sn.patch(d)}, "y", context=u) for d in data
    ]  # each draw is one of the two patches
    assert min(draws) < te < max(draws)
    assert abs(te - np.mean(draws)) < 1.0
    again = sn.total_effect(LIN, {"x": sn.resample(data)}, "y", context=u, draws=400, seed=2)
    assert te == again
    one = sn.total_effect(LIN, {"x": sn.resample(data[:1])}, "y", context=u, draws=3)
    assert_close(one, draws[0])


def test_resample_is_not_mean_ablation() -> None:
    # y = x**2: resampling x from {-1, 1} gives y = 1, mean ablation gives y = 0 (eq. 39).
    m = sn.SCM({"x": lambda u: u, "y": lambda x: x**2}, exogenous={"u": sn.Normal()})
    data = [{"u": -1.0}, {"u": 1.0}]
    u = {"u": 0.0}
    assert sn.total_effect(m, {"x": sn.resample(data)}, "y", context=u, draws=20) == 1.0
    assert sn.total_effect(m, {"x": sn.mean(data)}, "y", context=u) == 0.0


def test_noise_ablation_on_input_and_value() -> None:
    u = _ctx(1.0)
    te = sn.total_effect(LIN, {"x": sn.noise(0.5)}, "x", context=u, draws=2000, seed=3)
    assert abs(te) < 4 * 0.5 / np.sqrt(2000)
    tv = sn.total_effect(LIN, {"m": sn.noise(0.5, on="value")}, "y", context=u, draws=2000)
    assert abs(tv) < 4 * 3 * 0.5 / np.sqrt(2000)
    # Population estimates average over contexts and draws.
    est = sn.total_effect(LIN, {"x": sn.noise(1.0)}, "x", samples=50, draws=4, seed=0)
    assert est.samples == 50


def test_patch_on_a_traced_network_equals_a_hooked_patch() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).eval()
    m = sn.trace(net, torch.randn(1, 3))
    source, target = {"input": torch.randn(1, 3)}, {"input": torch.randn(1, 3)}
    te = sn.total_effect(m, {"1": sn.patch(source)}, "2", context=target)
    with torch.no_grad():
        patched = net[1](net[0](source["input"]))
        expected = net[2](patched) - net(target["input"])
    assert_close(te, expected)
    # Indexed sites take the source's value at the index.
    site = sn.Site("1", index=(slice(None), 0))
    te0 = sn.total_effect(m, {site: sn.patch(source)}, "2", context=target)
    with torch.no_grad():
        hidden = net[1](net[0](target["input"])).clone()
        hidden[:, 0] = patched[:, 0]
        assert_close(te0, net[2](hidden) - net(target["input"]))


def test_resample_on_a_traced_network_uses_its_data_set() -> None:
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 1)).eval()
    data = [{"input": torch.randn(1, 3)} for _ in range(4)]
    m = sn.trace(net, data[0]["input"], dataset=data)
    te = sn.total_effect(m, {"0": sn.resample()}, "2", context=data[0], draws=40, seed=0)
    patches = [sn.total_effect(m, {"0": sn.patch(d)}, "2", context=data[0]) for d in data]
    lo, hi = torch.stack(patches).min(), torch.stack(patches).max()
    assert lo <= te <= hi


def test_ablation_errors() -> None:
    u = _ctx(1.0)
    with pytest.raises(sn.InvalidIntervention, match="draws its value from the model"):
        LIN.evaluate(u, {"x": sn.resample()})
    with pytest.raises(sn.InvalidIntervention, match="draws must be a positive int"):
        sn.total_effect(LIN, {"x": sn.resample()}, "y", context=u, draws=0)
    with pytest.raises(sn.InvalidIntervention, match="reference must be deterministic"):
        sn.total_effect(LIN, {"x": 1.0}, "y", reference={"x": sn.resample()}, context=u)
    with pytest.raises(sn.InvalidIntervention, match="scale must be > 0"):
        sn.noise(0.0)
    with pytest.raises(sn.InvalidIntervention, match="'input' or 'value'"):
        sn.noise(1.0, on="weights")  # type: ignore[arg-type]
    with pytest.raises(sn.InvalidIntervention, match="source context"):
        sn.patch([1.0])  # type: ignore[arg-type]
    tokens = sn.SCM({"h": lambda ids: ids * 2}, exogenous=["ids"])
    with pytest.raises(sn.InvalidIntervention, match="cannot add Gaussian noise to 'ids'"):
        sn.total_effect(tokens, {"h": sn.noise(1.0)}, "h", context={"ids": torch.tensor([1, 2])})
    resolved = sn.resolve(LIN, sn.interventions.normalize({"x": sn.zero()}), u)
    assert isinstance(resolved.items[0][1], sn.ablations.Zero)
