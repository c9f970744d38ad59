"""The bootstrap and regression intervals of :mod:`scmnet.intervals`: properties of the
percentile bootstrap (it holds the sample's statistic, is a function of the seed, covers a
known mean about as often as its level says, narrows with more data, refuses too little data)
and known answers against a direct resampling loop and scipy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scmnet.errors import InvalidArgument
from scmnet.intervals import (
    BOOTSTRAP,
    Interval,
    bootstrap,
    correlation_interval,
    moments,
    pearson,
    r2,
    r2_interval,
    resample_counts,
    slope,
    slope_interval,
)
from scmnet.testing import assert_close, tolerance

RTOL, ATOL = tolerance(np.float64)
seeds = st.integers(0, 2**32 - 1)


def _sample(seed: int, n: int, *shape: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.1, 10.0)
    return rng.normal(loc=rng.uniform(-5, 5), scale=scale, size=(n, *shape))


@settings(max_examples=40)
@given(data_seed=seeds, seed=seeds, n=st.integers(2, 60))
def test_the_interval_of_the_mean_holds_the_sample_mean(data_seed: int, seed: int, n: int) -> None:
    x = _sample(data_seed, n, 3)
    iv = bootstrap(x, level=0.9, resamples=400, seed=seed)
    mean = x.mean(0)
    slack = ATOL + RTOL * np.abs(mean)
    assert (iv.low <= mean + slack).all()
    assert (mean - slack <= iv.high).all()
    assert (iv.low <= iv.high).all()
    assert (iv.level, iv.resamples, iv.seed, iv.method, iv.reason) == (
        0.9,
        400,
        seed,
        BOOTSTRAP,
        "",
    )


@settings(max_examples=20)
@given(data_seed=seeds, seed=seeds)
def test_the_interval_is_a_function_of_the_seed(data_seed: int, seed: int) -> None:
    x = _sample(data_seed, 30, 2, 4)
    a, b = bootstrap(x, resamples=300, seed=seed), bootstrap(x, resamples=300, seed=seed)
    assert np.array_equal(a.low, b.low)
    assert np.array_equal(a.high, b.high)
    other = bootstrap(x, resamples=300, seed=seed + 1)
    assert not np.array_equal(a.low, other.low)


def test_it_covers_a_known_mean_about_as_often_as_its_level() -> None:
    """200 seeded samples of 50 normal draws: the 95% interval holds the true mean (2.0) in
    roughly 90-99% of them (the percentile bootstrap is a little narrow at small n)."""
    covered = 0
    for rep in range(200):
        x = np.random.default_rng(10_000 + rep).normal(loc=2.0, scale=3.0, size=50)
        iv = bootstrap(x, level=0.95, resamples=1000, seed=rep)
        covered += bool(iv.low <= 2.0 <= iv.high)
    assert 0.90 <= covered / 200 <= 0.99, covered


@settings(max_examples=20)
@given(data_seed=seeds, seed=seeds)
def test_the_interval_narrows_with_more_data(data_seed: int, seed: int) -> None:
    x = _sample(data_seed, 400)
    narrow = bootstrap(x, resamples=500, seed=seed).width
    wide = bootstrap(x[:25], resamples=500, seed=seed).width
    assert narrow < wide  # about 4 times narrower: sqrt(400 / 25)


@pytest.mark.parametrize("n", [0, 1])
def test_fewer_than_two_observations_give_nan_with_a_reason(n: int) -> None:
    iv = bootstrap(np.ones((n, 2, 3)), seed=0)
    assert np.isnan(iv.low).all()
    assert np.isnan(iv.high).all()
    assert iv.low.shape == (2, 3)
    assert iv.reason == f"an interval needs at least 2 observations; got {n}"
    scalar = bootstrap([4.0], seed=0)
    assert np.isnan(scalar.low)
    assert np.isnan(scalar.high)
    assert "got 1" in scalar.reason
    assert "at least 3" in slope_interval([1.0, 2.0], [1.0, 2.0]).reason
    assert "at least 3" in r2_interval([1.0, 2.0], [1.0, 2.0]).reason
    assert "at least 3" in correlation_interval([1.0, 2.0], [1.0, 2.0]).reason


def test_bad_settings_are_refused() -> None:
    with pytest.raises(InvalidArgument, match=r"level must be between 0 and 1; got 1\.5"):
        bootstrap([1.0, 2.0], level=1.5)
    with pytest.raises(InvalidArgument, match="resamples must be >= 1; got 0"):
        bootstrap([1.0, 2.0], resamples=0)
    with pytest.raises(InvalidArgument, match="first axis"):
        bootstrap(3.0)


def test_known_answer_against_a_resampling_loop() -> None:
    """The counts-matrix bootstrap equals resampling the rows one resample at a time."""
    x = _sample(5, 40, 3)
    seed, resamples = 11, 250
    draws = np.random.default_rng(seed).integers(0, 40, size=(resamples, 40))
    means = np.stack([x[d].mean(0) for d in draws])
    low, high = np.quantile(means, [0.025, 0.975], axis=0)
    iv = bootstrap(x, resamples=resamples, seed=seed)
    assert_close(iv.low, low)
    assert_close(iv.high, high)
    counts = resample_counts(40, resamples, seed)
    assert_close(counts, np.stack([np.bincount(d, minlength=40) for d in draws]).astype(float))


def test_columns_are_resampled_together() -> None:
    """Every column sees the same resamples: one column alone gives its column's interval."""
    x = _sample(6, 30, 4)
    whole = bootstrap(x, resamples=300, seed=2)
    for j in range(4):
        alone = bootstrap(x[:, j], resamples=300, seed=2)
        assert_close(whole.at(j).low, alone.low)
        assert_close(whole.at(j).high, alone.high)


def test_constant_data_give_a_point_and_an_undefined_statistic_gives_nan() -> None:
    iv = bootstrap(np.full(10, 0.3), seed=0)
    assert_close(np.array([iv.low, iv.high]), np.array([0.3, 0.3]))
    x = np.column_stack([np.ones(10), np.arange(10.0)])
    cor = correlation_interval(x, np.arange(10.0)[:, None] * [1.0, -1.0], seed=0)
    assert np.isnan(cor.low[0])
    assert np.isnan(cor.high[0])
    assert_close(np.array([cor.low[1], cor.high[1]]), np.array([-1.0, -1.0]))
    assert "undefined" in cor.reason
    assert cor.at(1).reason == ""


def test_moment_statistics_match_numpy_and_scipy() -> None:
    from scipy import stats

    rng = np.random.default_rng(7)
    x = rng.normal(size=(50, 3))
    y = 0.5 * x + rng.normal(size=(50, 3))
    m = moments(x, y).mean(0)[None]
    for j in range(3):
        fit = stats.linregress(x[:, j], y[:, j])
        assert_close(slope(m)[0, j], fit.slope)
        assert_close(r2(m)[0, j], fit.rvalue**2)
        assert_close(pearson(m)[0, j], np.corrcoef(x[:, j], y[:, j])[0, 1])


def test_slope_interval_known_answer_against_scipy() -> None:
    from scipy import stats

    rng = np.random.default_rng(8)
    x = rng.normal(size=(25, 2, 3))
    y = -1.5 * x + rng.normal(scale=0.5, size=(25, 2, 3))
    for level in (0.9, 0.95):
        iv = slope_interval(x, y, level=level)
        assert (iv.method, iv.resamples, iv.seed, iv.reason) == ("t", 0, None, "")
        for b in range(2):
            for j in range(3):
                fit = stats.linregress(x[:, b, j], y[:, b, j])
                half = stats.t.ppf((1 + level) / 2, 23) * fit.stderr
                assert_close(iv.low[b, j], fit.slope - half)
                assert_close(iv.high[b, j], fit.slope + half)
    flat = slope_interval(np.ones(5), np.arange(5.0))
    assert np.isnan(flat.low)
    assert "x is constant" in flat.reason


def test_r2_interval_holds_the_fit_and_stays_in_the_unit_interval() -> None:
    from scipy import stats

    rng = np.random.default_rng(9)
    x = rng.normal(size=200)
    y = x + rng.normal(size=200)
    iv = r2_interval(x, y, seed=3)
    fitted = stats.linregress(x, y).rvalue ** 2
    assert 0.0 <= iv.low < fitted < iv.high <= 1.0
    assert r2_interval(x, y, seed=3) == iv


def test_interval_helpers() -> None:
    iv = Interval(np.array([1.0, np.nan]), np.array([2.0, np.nan]), 0.95, 10, 1, reason="why")
    assert str(iv.at(0)) == "[1, 2] (95%)"
    assert str(iv.at(1)) == "[nan, nan] (95%): why"
    neg = -iv.at(0)
    assert (neg.low, neg.high) == (-2.0, -1.0)
