"""Known-answer tests of the Hydra measures: CE (eq. 33), Delta DE (eq. 34), the statistics,
the ablation values (eqs. 35-38) and the resumable result files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scmnet.adapters.transformer.ablations import Ablation
from scmnet.adapters.transformer.analysis import HydraResults, linear_fit
from scmnet.adapters.transformer.families import Block
from scmnet.adapters.transformer.measures import PromptMeasures, downstream_mask
from scmnet.errors import InvalidIntervention
from scmnet.testing import assert_close


def _synthetic(rng: np.random.Generator, n: int = 4, k: int = 3, prompt: int = 0) -> PromptMeasures:
    return PromptMeasures(
        prompt=prompt,
        token=7,
        clean_logit=float(rng.normal()),
        clean_sigma=1.5,
        unembed=rng.normal(size=(2, n)),
        ablated_logit=rng.normal(size=(2, n, k)),
        ablated_unembed=rng.normal(size=(2, n, k, 2, n)),
        ablated_sigma=rng.uniform(1, 2, size=(2, n, k)),
    )


@given(seed=st.integers(0, 2**32 - 1), parallel=st.booleans())
def test_compensation_is_the_downstream_sum(seed: int, parallel: bool) -> None:
    m = _synthetic(np.random.default_rng(seed))
    ce = m.compensation(parallel=parallel)
    n = m.n_layers
    dde = m.ablated_unembed.mean(2) - m.unembed[None, None]
    for k in range(n):
        attn_first = k + 1 if parallel else k
        expected_attn = dde[0, k, 0, k + 1 :].sum() + dde[0, k, 1, attn_first:].sum()
        expected_mlp = dde[1, k, 0, k + 1 :].sum() + dde[1, k, 1, k + 1 :].sum()
        assert_close(ce[0, k], expected_attn)
        assert_close(ce[1, k], expected_mlp)
    assert_close(m.compensation_split(parallel=parallel).sum(-1), ce)


def test_downstream_mask_sequential_and_parallel() -> None:
    seq = downstream_mask(4, parallel=False)
    par = downstream_mask(4, parallel=True)
    assert seq[Block.ATTN, 2, Block.MLP].tolist() == [False, False, True, True]
    assert par[Block.ATTN, 2, Block.MLP].tolist() == [False, False, False, True]
    assert seq[Block.MLP, 2, Block.ATTN].tolist() == [False, False, False, True]
    assert not seq[Block.MLP, 3].any()  # nothing is downstream of the last MLP...
    assert not seq[Block.ATTN, 3, Block.ATTN].any()
    assert seq[Block.ATTN, 3, Block.MLP, 3]  # ...but the last attention feeds the last MLP


def test_ablation_impact_averages_draws() -> None:
    m = _synthetic(np.random.default_rng(0))
    assert_close(m.ablate, (m.ablated_logit - m.clean_logit).mean(-1))
    assert_close(m.delta_de, m.ablated_unembed.mean(2) - m.unembed[None, None])


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    m = _synthetic(np.random.default_rng(1), prompt=12)
    m.save(tmp_path / "m.npz")
    back = PromptMeasures.load(tmp_path / "m.npz")
    assert (back.prompt, back.token, back.clean_sigma) == (12, 7, 1.5)
    assert_close(back.ablated_unembed, m.ablated_unembed)


def test_statistics_recover_a_planted_slope() -> None:
    rng = np.random.default_rng(3)
    measures = []
    for p in range(40):
        m = _synthetic(rng, prompt=p)
        # Plant CE(attn 1) = 0.7 * DE(attn 1) exactly: put the whole response on attention 2.
        ablated = m.ablated_unembed.copy()
        ablated[0, 1] = m.unembed[None]  # no change anywhere...
        ablated[0, 1, :, 0, 2] = m.unembed[0, 2] + 0.7 * m.unembed[0, 1]  # ...but attention 2
        measures.append(
            PromptMeasures(
                p, 7, m.clean_logit, 1.5, m.unembed, m.ablated_logit, ablated, m.ablated_sigma
            )
        )
    results = HydraResults(measures, parallel=False)
    fit = results.fit(Block.ATTN, 1)
    assert_close(fit.slope, 0.7)
    assert_close(fit.r2, 1.0)
    row = next(s for s in results.layers if (s.block, s.layer) == ("attn", 1))
    assert_close(row.ce_attn_mean, row.ce_mean)
    assert_close(row.ce_mlp_mean, 0.0)
    assert results.summary()["prompts"] == 40


def test_linear_fit_degenerate() -> None:
    assert np.isnan(linear_fit(np.ones(5), np.arange(5.0)).slope)
    assert_close(linear_fit(np.arange(4.0), 2 * np.arange(4.0) + 1).intercept, 1.0)


def test_bad_ablation_settings() -> None:
    with pytest.raises(InvalidIntervention, match="patches must be >= 1"):
        Ablation(patches=0)
    with pytest.raises(InvalidIntervention, match="unknown ablation 'bogus'"):
        Ablation("bogus")  # type: ignore[arg-type]


def test_summary_json_is_strict() -> None:
    from scmnet.adapters.transformer.report import _strict

    found = json.dumps(_strict({"slope": float("nan"), "r2": np.float64(np.inf)}), allow_nan=False)
    assert found == '{"slope": null, "r2": null}'
