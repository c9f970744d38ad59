"""Distributions of exogenous variables, P(u).

An SCM's exogenous variables carry the randomness of the model: everything endogenous follows
deterministically from a context u (Definition 3.1 of the Hydra-effect paper). A distribution
here is anything with a ``sample(rng, n)`` method that returns ``n`` independent draws; the
generator is always passed in, so every Monte Carlo estimate in scmnet is reproducible from an
explicit seed.

Examples
--------
>>> import numpy as np
>>> from scmnet.distributions import Normal, Choice
>>> rng = np.random.default_rng(0)
>>> Normal(0.0, 1.0).sample(rng, 3).shape
(3,)
>>> Choice([-1.0, 1.0]).sample(np.random.default_rng(1), 4).tolist()
[-1.0, 1.0, 1.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from scmnet.errors import InvalidContext

__all__ = [
    "Bernoulli",
    "Choice",
    "Constant",
    "Distribution",
    "Empirical",
    "Normal",
    "Uniform",
]


@runtime_checkable
class Distribution(Protocol):
    """What an exogenous distribution provides: independent draws from a given generator."""

    def sample(self, rng: np.random.Generator, n: int) -> Any:
        """Return ``n`` independent draws (an array or sequence whose first axis is ``n``)."""
        ...


@dataclass(frozen=True)
class Normal:
    """A Gaussian ``N(loc, scale**2)``; ``shape`` gives vector-valued draws."""

    loc: float = 0.0
    scale: float = 1.0
    shape: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.scale >= 0:
            raise InvalidContext(f"Normal scale must be >= 0, got {self.scale!r}")

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draw ``n`` values."""
        return rng.normal(self.loc, self.scale, size=(n, *self.shape))


@dataclass(frozen=True)
class Uniform:
    """A uniform distribution on ``[low, high)``."""

    low: float = 0.0
    high: float = 1.0
    shape: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.high > self.low:
            raise InvalidContext(f"Uniform needs low < high, got low={self.low}, high={self.high}")

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draw ``n`` values."""
        return rng.uniform(self.low, self.high, size=(n, *self.shape))


@dataclass(frozen=True)
class Bernoulli:
    """0/1 draws (as floats) with ``P(1) = p``."""

    p: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise InvalidContext(f"Bernoulli p must lie in [0, 1], got {self.p!r}")

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draw ``n`` values."""
        return (rng.random(n) < self.p).astype(float)


@dataclass(frozen=True)
class Choice:
    """Draws from a finite set of values, uniformly or with the given probabilities."""

    values: Sequence[Any]
    probs: Sequence[float] | None = None

    def __post_init__(self) -> None:
        if len(self.values) == 0:
            raise InvalidContext("Choice needs at least one value, got an empty sequence")
        if self.probs is not None:
            if len(self.probs) != len(self.values):
                raise InvalidContext(
                    f"Choice got {len(self.values)} values but {len(self.probs)} probabilities"
                )
            if abs(sum(self.probs) - 1.0) > 1e-9 or min(self.probs) < 0:
                raise InvalidContext(
                    f"Choice probabilities must be >= 0 and sum to 1: {self.probs}"
                )

    def sample(self, rng: np.random.Generator, n: int) -> Any:
        """Draw ``n`` values."""
        idx = rng.choice(len(self.values), size=n, p=self.probs)
        values = self.values
        if isinstance(values, np.ndarray):
            return values[idx]
        arr = np.asarray(values)
        if arr.dtype != object:
            return arr[idx]
        return [values[i] for i in idx]


@dataclass(frozen=True)
class Constant:
    """A point mass: every draw is ``value``."""

    value: Any

    def sample(self, rng: np.random.Generator, n: int) -> list[Any]:
        """Return ``n`` copies of the value."""
        return [self.value] * n


@dataclass(frozen=True)
class Empirical:
    """Draws (with replacement) from a finite data set, e.g. a collection of model inputs."""

    data: Sequence[Any] = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.data) == 0:
            raise InvalidContext("Empirical needs at least one data point, got an empty sequence")

    def sample(self, rng: np.random.Generator, n: int) -> list[Any]:
        """Draw ``n`` rows of the data set."""
        return [self.data[int(i)] for i in rng.integers(0, len(self.data), size=n)]
