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
from scmnet.adapters.transformer.analysis import INTERVAL_FIELDS, HydraResults, linear_fit
from scmnet.adapters.transformer.families import Block
from scmnet.adapters.transformer.measures import PromptMeasures, downstream_mask
from scmnet.errors import InvalidIntervention
from scmnet.testing import assert_close, tolerance


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


def _results(prompts: int, seed: int = 0, **kw: int) -> HydraResults:
    rng = np.random.default_rng(12)
    measures = [_synthetic(rng, prompt=p) for p in range(prompts)]
    return HydraResults(measures, parallel=False, seed=seed, **kw)


def test_layer_intervals_hold_the_means() -> None:
    results = _results(30)
    rtol, atol = tolerance(np.float64)
    for row in results.layers:
        for name in INTERVAL_FIELDS:
            value, low, high = (getattr(row, name + end) for end in ("", "_low", "_high"))
            if np.isnan(value):  # R^2 of the last MLP, whose CE is always 0
                assert np.isnan([low, high]).all(), (name, row)
                continue
            assert np.isfinite([value, low, high]).all(), (name, row)
            assert low <= high
            if name.endswith("_mean") or name in ("share_unembed_gt_drop", "ce_on_unembed_slope"):
                slack = atol + rtol * abs(value)
                assert low - slack <= value <= high + slack, (name, row)
    # The drop's interval is the ablation impact's, negated; the CE's is the layer's.
    summary = results.summary()
    drop = summary["blocks"]["mlp"]["largest_drop"]
    row = next(s for s in results.layers if (s.block, s.layer) == ("mlp", drop["layer"]))
    assert (drop["drop_low"], drop["drop_high"]) == (-row.ablate_mean_high, -row.ablate_mean_low)
    assert (drop["ce_low"], drop["ce_high"]) == (row.ce_mean_low, row.ce_mean_high)
    for key in ("correlation_unembed_drop", "share_unembed_gt_drop"):
        assert summary[f"{key}_low"] <= summary[key] <= summary[f"{key}_high"]


def test_intervals_are_a_function_of_the_seed() -> None:
    a, b, c = _results(20, seed=3), _results(20, seed=3), _results(20, seed=4)
    assert repr(a.layers) == repr(b.layers)  # NaN (an undefined R^2) included
    assert json.dumps(a.summary()) == json.dumps(b.summary())
    assert repr(a.layers) != repr(c.layers)
    assert [s.ce_mean for s in a.layers] == [s.ce_mean for s in c.layers]  # only the bounds
    narrow = _results(20, seed=3, level=0.5, resamples=500).layers[0]  # type: ignore[arg-type]
    assert (
        a.layers[0].ce_mean_low
        < narrow.ce_mean_low
        < narrow.ce_mean_high
        < a.layers[0].ce_mean_high
    )


def test_one_prompt_gives_nan_intervals_with_the_reason() -> None:
    results = _results(1)
    assert all(np.isnan(s.ce_mean_low) and np.isnan(s.unembed_mean_high) for s in results.layers)
    summary = results.summary()
    assert summary["intervals"]["note"] == "an interval needs at least 2 observations; got 1"
    assert np.isnan(summary["blocks"]["attn"]["largest_drop"]["drop_low"])


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


def test_a_largest_drop_with_no_downstream_layer_is_said_so() -> None:
    """The last MLP has no layer downstream: the report says nothing can compensate, rather
    than printing a share of exactly zero."""
    from scmnet.adapters.transformer.report import _markdown

    rng = np.random.default_rng(3)
    measures = [_synthetic(rng, prompt=p) for p in range(6)]
    for m in measures:  # make the last MLP's ablation the largest drop
        m.ablated_logit[Block.MLP, -1] = m.clean_logit - 50.0
    results = HydraResults(measures, parallel=False)
    summary = results.summary()
    drop = summary["blocks"]["mlp"]["largest_drop"]
    assert (drop["layer"], drop["downstream_layers"]) == (results.n_layers - 1, 0)
    assert summary["blocks"]["attn"]["largest_drop"]["downstream_layers"] > 0
    settings = {"model": "m", "prompts": "p", "ablation": "zero", "patches": 1, "seed": 0}
    counts = {"prompts_total": 6, "prompts_correct": 6, "prompts_kept": 6}
    text = _markdown({**summary, **counts, "settings": settings}, results)
    line = next(x for x in text.splitlines() if x.startswith("- Largest mlp drop"))
    assert "no layer is downstream of it" in line
    assert "give back" not in line
