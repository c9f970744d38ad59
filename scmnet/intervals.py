"""Confidence intervals: a seeded, vectorised bootstrap over observations, and regression intervals.

:func:`bootstrap` resamples the rows of a data array (the observations: prompts, contexts) with
replacement and gives the percentile interval of a statistic. The statistic is a function of
column means -- the mean itself, a ratio of means, a correlation, a slope or an :math:`R^2`
from first and second moments -- so that every resample costs one row of a matrix product:
the resamples are drawn once as a ``(resamples, n)`` matrix of counts and multiply all the
columns at once. The same data, statistic and seed give the same interval, bit for bit.

:func:`slope_interval` is the t-based interval of a least-squares slope (from its standard
error, as :func:`scipy.stats.linregress` reports it), and :func:`correlation_interval` and
:func:`r2_interval` bootstrap the Pearson correlation and the :math:`R^2` of the fit.

Every interval is an :class:`Interval`: its bounds (floats or arrays), the confidence level, how
it was made (method, resamples, seed) and, where a bound is NaN, the reason.

Examples
--------
>>> import numpy as np
>>> from scmnet.intervals import bootstrap
>>> x = np.random.default_rng(0).normal(loc=1.0, size=200)
>>> iv = bootstrap(x, seed=0)
>>> bool(iv.low < x.mean() < iv.high), iv.level
(True, 0.95)
>>> print(bootstrap(x[:1], seed=0))
[nan, nan] (95%): an interval needs at least 2 observations; got 1
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from scmnet.errors import InvalidArgument, require

__all__ = [
    "BOOTSTRAP",
    "Interval",
    "bootstrap",
    "correlation_interval",
    "moments",
    "pearson",
    "r2",
    "r2_interval",
    "resample_counts",
    "slope",
    "slope_interval",
]

#: The method name of a percentile bootstrap interval (:attr:`Interval.method`).
BOOTSTRAP = "percentile bootstrap"

#: Statistics of the rows of a data array, as functions of its column means.
Statistic = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Interval:
    """A confidence interval, or one per element of an array of statistics.

    Attributes
    ----------
    low, high : float or array
        The bounds; NaN where no interval can be given (``reason`` says why).
    level : float
        The confidence level, e.g. 0.95.
    resamples : int
        The number of bootstrap resamples (0 for an interval from a formula).
    seed : int or None
        The seed of the resamples (``None`` for an interval from a formula).
    method : str
        How the interval was made: ``"percentile bootstrap"`` or ``"t"``.
    reason : str
        Why bounds are NaN (``""`` where every bound is finite).

    Examples
    --------
    >>> iv = Interval(np.array([0.0, 1.0]), np.array([2.0, 3.0]), 0.9, 100, 7)
    >>> print(iv.at(1))
    [1, 3] (90%)
    >>> float(iv.at(0).width)
    2.0
    """

    low: Any
    high: Any
    level: float
    resamples: int
    seed: int | None
    method: str = BOOTSTRAP
    reason: str = ""

    @property
    def width(self) -> Any:
        """``high - low``."""
        return self.high - self.low

    def __neg__(self) -> Interval:
        """The interval of minus the statistic: ``[-high, -low]``.

        >>> print(-Interval(1.0, 2.0, 0.95, 100, 0))
        [-2, -1] (95%)
        """
        return Interval(
            -self.high, -self.low, self.level, self.resamples, self.seed, self.method, self.reason
        )

    def at(self, index: Any) -> Interval:
        """The interval of one element (or a slice) of array bounds, with the same settings.

        The reason is kept only if that element's bounds are NaN.
        """
        low, high = _unbox(np.asarray(self.low)[index]), _unbox(np.asarray(self.high)[index])
        finite = bool(np.isfinite(low).all() and np.isfinite(high).all())
        return Interval(
            low,
            high,
            self.level,
            self.resamples,
            self.seed,
            self.method,
            "" if finite else self.reason,
        )

    def __str__(self) -> str:
        if np.ndim(self.low) == 0 and np.ndim(self.high) == 0:
            text = f"[{float(self.low):.4g}, {float(self.high):.4g}]"
        else:
            text = f"[{self.low}, {self.high}]"
        text += f" ({self.level:.0%})"
        return f"{text}: {self.reason}" if self.reason else text


def _unbox(value: np.ndarray) -> Any:
    return float(value) if value.ndim == 0 else value


def _check(level: float, resamples: int) -> None:
    if not 0 < level < 1:
        raise InvalidArgument(f"the confidence level must be between 0 and 1; got {level!r}")
    if resamples < 1:
        raise InvalidArgument(f"resamples must be >= 1; got {resamples!r}")


def _nan(shape: tuple[int, ...]) -> Any:
    return _unbox(np.full(shape, np.nan))


def resample_counts(n: int, resamples: int, seed: int) -> np.ndarray:
    """How often each of ``n`` observations occurs in each of ``resamples`` bootstrap resamples.

    Each resample draws ``n`` observations with replacement; the draws of all resamples come
    from one generator seeded with ``seed``, at once.

    Returns
    -------
    ndarray of float64, shape (resamples, n)
        Row ``b`` counts the draws of each observation in resample ``b``; every row sums to
        ``n``.

    Examples
    --------
    >>> counts = resample_counts(4, 3, seed=0)
    >>> counts.shape, counts.sum(1).tolist()
    ((3, 4), [4.0, 4.0, 4.0])
    >>> bool((counts == resample_counts(4, 3, seed=0)).all())
    True
    """
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(resamples, n))
    flat = (draws + n * np.arange(resamples)[:, None]).ravel()
    return np.bincount(flat, minlength=resamples * n).reshape(resamples, n).astype(np.float64)


def bootstrap(
    data: Any,
    statistic: Statistic | None = None,
    *,
    level: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """The percentile bootstrap interval of a statistic of the rows of ``data``.

    The rows (first axis) are the observations; resampling them with replacement ``resamples``
    times gives as many column means, and the statistic of each; the interval runs from the
    ``(1 - level) / 2`` to the ``(1 + level) / 2`` quantile of those. Columns are never split:
    a statistic may combine them (a ratio of two means, a correlation from five moments).

    Parameters
    ----------
    data : array_like, shape (n, ...)
        The observations.
    statistic : callable, optional
        Maps column means, shape ``(m, ...)`` with a leading axis of ``m`` resamples, to the
        statistic of each, shape ``(m, ...)`` (any trailing shape). NaN marks a resample
        where the statistic is undefined; those resamples are left out of the quantiles of
        that element. The default is the mean itself.
    level : float
        The confidence level, in (0, 1).
    resamples : int
        The number of bootstrap resamples.
    seed : int
        The seed of the resamples (:func:`resample_counts`).

    Returns
    -------
    Interval
        Floats for a scalar statistic, else arrays of the statistic's trailing shape. NaN, with
        the reason, for fewer than two observations, and where the statistic is undefined on
        the data or in every resample.

    Raises
    ------
    InvalidArgument
        For a level outside (0, 1), fewer than one resample, or zero-dimensional data.

    Examples
    --------
    The mean of every column at once:

    >>> data = np.random.default_rng(1).normal(size=(500, 3)) + [0.0, 5.0, -5.0]
    >>> iv = bootstrap(data, seed=2)
    >>> np.round(iv.low), np.round(iv.high)
    (array([-0.,  5., -5.]), array([ 0.,  5., -5.]))

    A ratio of means, from two columns:

    >>> pairs = np.column_stack([np.arange(1.0, 11.0), 2 * np.arange(1.0, 11.0)])
    >>> print(bootstrap(pairs, lambda m: m[:, 0] / m[:, 1], seed=0))
    [0.5, 0.5] (95%)
    """
    _check(level, resamples)
    values = np.asarray(data, dtype=np.float64)
    if values.ndim == 0:
        raise InvalidArgument("bootstrap needs observations along a first axis; got a scalar")
    stat: Statistic = statistic if statistic is not None else (lambda means: means)
    n = values.shape[0]
    # The statistic's shape, from the data's own means (NaN-safe for zero rows).
    center = values.mean(0) if n else np.zeros(values.shape[1:])
    estimate = np.asarray(stat(center[None]), dtype=np.float64)[0]
    if n < 2:
        return Interval(
            _nan(estimate.shape),
            _nan(estimate.shape),
            level,
            resamples,
            seed,
            reason=f"an interval needs at least 2 observations; got {n}",
        )
    counts = resample_counts(n, resamples, seed)
    # Centred columns keep the means, and moments built from them, exact for constant data.
    flat = (values - center).reshape(n, -1)
    means = (counts @ flat / n).reshape((resamples, *values.shape[1:])) + center
    stats = np.asarray(stat(means), dtype=np.float64)
    q = [(1 - level) / 2, (1 + level) / 2]
    if np.isnan(stats).any():
        with warnings.catch_warnings():  # all-NaN slices: NaN bounds, with the reason
            warnings.simplefilter("ignore", RuntimeWarning)
            low, high = np.nanquantile(stats, q, axis=0)
    else:
        low, high = np.quantile(stats, q, axis=0)
    low = np.where(np.isnan(estimate), np.nan, low)
    high = np.where(np.isnan(estimate), np.nan, high)
    reason = ""
    if np.isnan(low).any():
        reason = "the statistic is undefined on the data or in every resample (e.g. constant data)"
    return Interval(_unbox(low), _unbox(high), level, resamples, seed, reason=reason)


def moments(x: Any, y: Any) -> np.ndarray:
    """The per-observation moments of paired data that :func:`pearson`, :func:`slope` and
    :func:`r2` take the means of: ``x, y, x^2, y^2, xy`` of the centred values.

    Centring (on the sample means) changes none of those statistics and keeps their
    second moments free of cancellation.

    Parameters
    ----------
    x, y : array_like, shape (n, ...)
        Paired observations along the first axis; any further axes are separate pairs.

    Returns
    -------
    ndarray, shape (n, 5, ...)

    Examples
    --------
    >>> m = moments([0.0, 1.0, 2.0], [1.0, 3.0, 5.0])
    >>> m.shape, float(slope(m.mean(0)[None])[0])
    ((3, 5), 2.0)
    """
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    a, b = a - a.mean(0), b - b.mean(0)
    return np.stack([a, b, a * a, b * b, a * b], axis=1)


def _covariances(m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mx, my = m[:, 0], m[:, 1]
    return m[:, 2] - mx * mx, m[:, 3] - my * my, m[:, 4] - mx * my


def pearson(m: np.ndarray) -> np.ndarray:
    """The Pearson correlation from mean :func:`moments`, shape ``(k, 5, ...)`` -> ``(k, ...)``.

    NaN where either variable is constant.

    >>> float(pearson(moments([0.0, 1.0, 2.0], [2.0, 1.0, 0.0]).mean(0)[None])[0])
    -1.0
    """
    vx, vy, cxy = _covariances(m)
    with np.errstate(all="ignore"):
        return np.where((vx > 0) & (vy > 0), cxy / np.sqrt(vx * vy), np.nan)


def slope(m: np.ndarray) -> np.ndarray:
    """The least-squares slope of y on x from mean :func:`moments`; NaN where x is constant.

    >>> float(slope(moments([0.0, 1.0, 2.0], [0.0, 3.0, 6.0]).mean(0)[None])[0])
    3.0
    """
    vx, _, cxy = _covariances(m)
    with np.errstate(all="ignore"):
        return np.where(vx > 0, cxy / vx, np.nan)


def r2(m: np.ndarray) -> np.ndarray:
    """The :math:`R^2` of the least-squares line from mean :func:`moments`: the squared
    correlation, 1 for a perfect fit; NaN where x or y is constant, as
    :func:`scipy.stats.linregress` has it.

    >>> float(r2(moments([0.0, 1.0, 2.0], [1.0, 0.0, 2.0]).mean(0)[None])[0])
    0.25
    """
    return np.asarray(pearson(m) ** 2)


def correlation_interval(
    x: Any, y: Any, *, level: float = 0.95, resamples: int = 2000, seed: int = 0
) -> Interval:
    """The bootstrap interval of the Pearson correlation of paired data (pairs resampled).

    NaN for fewer than three pairs (two points are always perfectly correlated) and where x
    or y is constant.

    Parameters
    ----------
    x, y : array_like, shape (n, ...)
        Paired observations; any further axes are separate correlations.
    level, resamples, seed
        As for :func:`bootstrap`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=300)
    >>> iv = correlation_interval(x, x + rng.normal(size=300), seed=0)
    >>> bool(iv.low < np.corrcoef(x, x + 0)[0, 1]), bool(0.6 < iv.low < 0.71 < iv.high < 0.8)
    (True, True)
    """
    return _paired(x, y, pearson, "a correlation", level, resamples, seed)


def r2_interval(
    x: Any, y: Any, *, level: float = 0.95, resamples: int = 2000, seed: int = 0
) -> Interval:
    """The bootstrap interval of the :math:`R^2` of the regression of y on x (pairs resampled).

    NaN for fewer than three pairs (a line fits two points exactly) and where x or y is
    constant.

    Parameters
    ----------
    x, y : array_like, shape (n, ...)
        Paired observations; any further axes are separate regressions.
    level, resamples, seed
        As for :func:`bootstrap`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=300)
    >>> iv = r2_interval(x, x + rng.normal(size=300), seed=0)
    >>> bool(0.35 < iv.low < 0.5 < iv.high < 0.65)
    True
    """
    return _paired(x, y, r2, "an R^2", level, resamples, seed)


def _paired(
    x: Any, y: Any, statistic: Statistic, what: str, level: float, resamples: int, seed: int
) -> Interval:
    """The bootstrap interval of a statistic of paired data; NaN for fewer than 3 pairs, on
    which a line fits exactly (any two points are perfectly correlated)."""
    _check(level, resamples)
    m = moments(x, y)
    if m.shape[0] < 3:
        nan = _nan(m.shape[2:])
        reason = f"{what} interval needs at least 3 observations; got {m.shape[0]}"
        return Interval(nan, nan, level, resamples, seed, reason=reason)
    return bootstrap(m, statistic, level=level, resamples=resamples, seed=seed)


def slope_interval(x: Any, y: Any, *, level: float = 0.95) -> Interval:
    """The t-based interval of the least-squares slope of y on x.

    ``slope +- t * stderr``, with the slope's standard error as :func:`scipy.stats.linregress`
    gives it and the ``(1 + level) / 2`` quantile of Student's t with ``n - 2`` degrees of
    freedom (needs scipy: ``pip install scmnet[stats]``). Valid for a line with independent,
    normal errors of constant variance; NaN for fewer than three points or a constant x.

    Parameters
    ----------
    x, y : array_like, shape (n, ...)
        Paired observations; any further axes are separate regressions.
    level : float
        The confidence level, in (0, 1).

    Examples
    --------
    >>> x = np.arange(6.0)
    >>> iv = slope_interval(x, 2 * x + np.array([0.1, -0.1, 0.0, 0.1, -0.1, 0.0]))
    >>> print(iv)
    [1.924, 2.053] (95%)
    >>> iv.method, iv.resamples, iv.seed
    ('t', 0, None)
    """
    _check(level, 1)
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n = a.shape[0] if a.ndim else 0
    shape = a.shape[1:]
    if n < 3:
        return Interval(
            _nan(shape),
            _nan(shape),
            level,
            0,
            None,
            "t",
            f"a slope interval needs at least 3 points; got {n}",
        )
    require("scipy", "stats")
    from scipy import stats

    dx, dy = a - a.mean(0), b - b.mean(0)
    sxx, syy, sxy = (dx * dx).sum(0), (dy * dy).sum(0), (dx * dy).sum(0)
    with np.errstate(all="ignore"):
        fitted = sxy / sxx
        residual = np.maximum(syy - fitted * sxy, 0.0) / (n - 2)
        stderr = np.sqrt(residual / sxx)
    half = float(stats.t.ppf((1 + level) / 2, n - 2)) * stderr
    defined = sxx > 0
    low = np.where(defined, fitted - half, np.nan)
    high = np.where(defined, fitted + half, np.nan)
    reason = "" if defined.all() else "the slope is undefined where x is constant"
    return Interval(_unbox(low), _unbox(high), level, 0, None, "t", reason)
