"""Self-repair decomposed (Rushing & Nanda 2024): the identities on tiny models of every family,
the estimators' known answers, and their errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import scmnet as sn
from scmnet.adapters.transformer.ablations import Ablation, AblationKind
from scmnet.adapters.transformer.families import Block
from scmnet.adapters.transformer.lm import LanguageModel
from scmnet.adapters.transformer.measures import PromptMeasures, measure_prompt
from scmnet.adapters.transformer.selfrepair import self_repair, shares
from scmnet.adapters.transformer.sweep import run_sweep
from scmnet.errors import InvalidArgument
from scmnet.testing import assert_close
from tests.protocol import draws, tiny_lm
from tests.tiny_models import FAMILIES

IDS = torch.tensor([[5, 6, 7, 8, 9, 10, 11]])
TOKEN = 3


def _constant_part(lm: LanguageModel, token: int) -> float:
    """B: the centred logit's part that no residual contribution carries (the final norm's bias
    and the unembedding bias, through the readout row)."""
    w = lm.unembedding.float()
    w_bar = w[token] - w.mean(0)
    norm = lm.model.get_submodule(lm.spec.final_norm.path)
    beta = getattr(norm, "bias", None)
    b = float(beta.detach().float() @ w_bar) if isinstance(beta, torch.Tensor) else 0.0
    return (b + lm.centred_bias(token)) * lm.readout.scale


@pytest.mark.parametrize("kind", [AblationKind.ZERO, AblationKind.RESAMPLE])
@pytest.mark.parametrize("family", FAMILIES)
def test_the_norms_share_is_the_change_of_scale(family: str, kind: AblationKind) -> None:
    """SR_norm = (1 - sigma_a / sigma_c)(logit_a - B) for every ablation and draw: the part of
    self-repair that neither the attention nor the MLP layers carry is the final norm's."""
    lm = tiny_lm(family)
    assert lm.readout.linear, f"{family}: the identity needs a linear readout"
    found, values = draws(lm, IDS, kind, 2)
    m = measure_prompt(lm, IDS, TOKEN, found, values=values)
    for j in range(2):  # one draw at a time: the decomposition of each run
        one = PromptMeasures(
            m.prompt,
            m.token,
            m.clean_logit,
            m.clean_sigma,
            m.unembed,
            m.ablated_logit[..., j : j + 1],
            m.ablated_unembed[:, :, j : j + 1],
            m.ablated_sigma[..., j : j + 1],
        )
        sr = self_repair(one)
        expected = (1 - one.ablated_sigma[..., 0] / one.clean_sigma) * (
            one.ablated_logit[..., 0] - _constant_part(lm, TOKEN)
        )
        scale = max(abs(m.clean_logit), float(np.abs(m.unembed).max()))
        assert_close(sr.norm, expected, rtol=0, atol=1e-5 * scale, msg=f"{family} draw {j}")
        assert_close(sr.attn + sr.mlp + sr.norm, sr.total, rtol=0, atol=1e-12)
        assert_close(sr.total, sr.ablate - sr.own, rtol=0, atol=1e-12)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_last_mlp_has_no_layer_to_repair_it(family: str) -> None:
    """Nothing reads the last MLP but the final norm: its SR_attn and SR_MLP are 0, and what
    the ablation leaves is its own change of direct effect and the norm's share."""
    lm = tiny_lm(family)
    m = measure_prompt(lm, IDS, TOKEN, [sn.zero()])
    sr = self_repair(m)
    last = lm.n_layers - 1
    scale = max(abs(m.clean_logit), float(np.abs(m.unembed).max()))
    assert_close(sr.attn[Block.MLP, last], 0.0, rtol=0, atol=1e-5 * scale)
    assert_close(sr.mlp[Block.MLP, last], 0.0, rtol=0, atol=1e-5 * scale)
    assert_close(sr.total[Block.MLP, last], sr.norm[Block.MLP, last], rtol=0, atol=1e-5 * scale)


@given(seed=st.integers(0, 2**32 - 1))
def test_a_constant_scale_leaves_the_norm_nothing(seed: int) -> None:
    """With sigma unchanged, and every run's logit the sum of its direct effects plus a
    constant, self-repair is exactly what the other layers' direct effects took back."""
    rng = np.random.default_rng(seed)
    n, k = 3, 2
    unembed = rng.normal(size=(2, n))
    embedding = float(rng.normal())
    after = unembed[None, None, None] + rng.normal(size=(2, n, k, 2, n))
    m = PromptMeasures(
        0,
        0,
        clean_logit=float(unembed.sum() + embedding),
        clean_sigma=1.7,
        unembed=unembed,
        ablated_logit=after.sum((-2, -1)) + embedding,
        ablated_unembed=after,
        ablated_sigma=np.full((2, n, k), 1.7),
    )
    sr = self_repair(m)
    assert_close(sr.norm, np.zeros((2, n)), rtol=0, atol=1e-12)
    change = (after - unembed[None, None, None]).mean(2)  # (2, n, 2, n)
    for b in Block:
        for layer in range(n):
            d = change[b, layer].copy()
            own = d[b, layer]
            d[b, layer] = 0.0
            assert_close(sr.own[b, layer], own, rtol=0, atol=1e-12)
            assert_close(sr.attn[b, layer], d[Block.ATTN].sum(), rtol=0, atol=1e-12)
            assert_close(sr.mlp[b, layer], d[Block.MLP].sum(), rtol=0, atol=1e-12)


def test_a_sweep_writes_every_prompts_decomposition(tmp_path: Path) -> None:
    """The decomposition of a sweep's measures has one value per prompt and unit."""
    from scmnet.adapters.transformer.prompts import Prompt, PromptSet

    prompts = PromptSet(tuple(Prompt(t, None) for t in ("abc de", "xyz w")), name="two")
    _, measures = run_sweep(
        tiny_lm("llama"), prompts, Ablation(AblationKind.ZERO), tmp_path / "out"
    )
    for m in measures:
        sr = self_repair(m)
        assert sr.total.shape == (2, 3)
        assert np.isfinite(sr.total).all()


def test_shares_known_answers() -> None:
    de = np.array([2.0, 1.0, 4.0, -1.0, 0.0])
    sr = np.array([1.0, 2.0, 1.0, 0.5, 3.0])
    clipped, ratio = shares(de, sr)
    assert clipped == pytest.approx((0.5 + 1.0 + 0.25 + 0.0 + 0.0) / 5)
    assert ratio == pytest.approx(7.5 / 6.0)
    assert shares(de, sr, top=0.2) == pytest.approx((0.25, 0.25))  # the prompt of DE 4
    assert shares(de, sr, top=1.0) == shares(de, sr)


def test_shares_of_no_direct_effect_is_nan() -> None:
    clipped, ratio = shares(np.zeros(3), np.ones(3))
    assert clipped == 0.0
    assert np.isnan(ratio)


@pytest.mark.parametrize("top", [0.0, 1.5, -0.1, True, "2%"])
def test_shares_refuses_a_bad_fraction(top: object) -> None:
    with pytest.raises(InvalidArgument, match="top must be a fraction in"):
        shares(np.ones(3), np.ones(3), top=top)  # type: ignore[arg-type]


def test_shares_refuses_mismatched_arrays() -> None:
    with pytest.raises(InvalidArgument, match="one value per prompt"):
        shares(np.ones(3), np.ones(4))
    with pytest.raises(InvalidArgument, match="one value per prompt"):
        shares(np.ones(0), np.ones(0))


def test_the_report_reads_the_top_prompts_when_asked(tmp_path: Path) -> None:
    """``--repair-top`` changes only summary.md's shares (and says so), not selfrepair.csv."""
    from scmnet.adapters.transformer.prompts import Prompt, PromptSet
    from scmnet.adapters.transformer.report import write_report
    from scmnet.adapters.transformer.sweep import SweepSettings

    prompts = PromptSet(tuple(Prompt(t, None) for t in ("abc de", "xyz w", "hello")), name="3")
    lm = tiny_lm("llama")
    ablation = Ablation(AblationKind.ZERO)
    clean, measures = run_sweep(lm, prompts, ablation, tmp_path / "sweep")
    settings = SweepSettings.of(lm, prompts, ablation, None)
    texts, tables = [], []
    for top in (None, 0.5):
        out = tmp_path / f"report-{top}"
        out.mkdir()
        summary = write_report(
            out, measures, clean, prompts, settings, parallel=False, repair_top=top
        )
        assert summary["self_repair_top"] == top
        texts.append((out / "summary.md").read_text())
        tables.append((out / "selfrepair.csv").read_bytes())
    assert "over every prompt" in texts[0]
    assert "in its top 50% (--repair-top 0.5)" in texts[1]
    assert tables[0] == tables[1]
    with pytest.raises(InvalidArgument, match="top must be a fraction in"):
        write_report(tmp_path, measures, clean, prompts, settings, parallel=False, repair_top=0.0)


@pytest.mark.parametrize("top", ["0", "2", "-0.5", "nan"])
def test_the_command_line_refuses_a_bad_top_before_the_model_loads(
    top: str, tmp_path: Path
) -> None:
    import argparse

    from scmnet.adapters.transformer.command import HYDRA

    parser = argparse.ArgumentParser()
    HYDRA.add_arguments(parser)
    args = parser.parse_args(["--repair-top", top, "--out", str(tmp_path / "out"), "--quiet"])
    with pytest.raises(InvalidArgument, match="top must be a fraction in"):
        HYDRA.run(args)
    assert not (tmp_path / "out").exists()  # refused before anything was written
