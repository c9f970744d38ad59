"""Averaging over P(u) in one batch: the population path of :func:`~scmnet.effect_table`.

Where a model evaluates many contexts at once
(:meth:`~scmnet.model.CausalModelBase.evaluates_units`, an :class:`~scmnet.SCM`), a population
query -- ``samples=N`` draws, or a given list of contexts that stack -- evaluates every world
once per chunk of units instead of once per context. The draws are those of the per-context
path (the same seed gives the same units), and the per-unit effects are reduced to the same mean
and Monte Carlo standard error (combined chunk by chunk), so the numbers agree to rounding.

Before the first chunk, the query runs on its first three units both ways -- one by one and as
a batch -- and compares; any difference (an outcome function or an intervention rule that does
not broadcast) sends the query down the per-context loop, and the result records why
(a :class:`~scmnet.UnitBatching`, the ``batching`` field of the :class:`~scmnet.EffectTable`).
The chunk is cut to a memory budget (``memory=``, default :data:`DEFAULT_MEMORY`): one unit's
values in one world, times the worlds of the query, times a margin for temporaries.

Examples
--------
>>> import scmnet as sn
>>> m = sn.toys.linear_mediation()
>>> t = sn.effect_table(m, [{"x": 1.0}], "y", reference={"x": 0.0}, samples=10_000)
>>> round(float(t.values[0]), 6), t.batching.path
(6.5, 'vectorised')
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from scmnet import _values
from scmnet.errors import InvalidContext, MechanismError, UnitShapeError
from scmnet.interventions import Interventions
from scmnet.model import CausalModel, Context
from scmnet.scm_units import PROBE_UNITS
from scmnet.units import UnitBatching, Units, broadcast_units, same_values, shape_of

__all__ = ["DEFAULT_MEMORY", "UnitSummary", "run_units", "units_of"]

#: The default memory budget of one chunk of units, in bytes (64 MiB).
DEFAULT_MEMORY = 64 * 2**20

#: The margin for temporaries on the bytes of the worlds a chunk holds.
_MARGIN = 3

PerUnits = Callable[
    [Context, list[int], list[Interventions], list[Interventions]], list[tuple[Any, Any]]
]
"""The query in one context (or many stacked): each row's outcome in its two worlds."""


def units_of(
    model: CausalModel, context: Context | Sequence[Context] | None, samples: int, seed: int
) -> tuple[Units | None, UnitBatching | None]:
    """The units of a population query, stacked, where ``model`` evaluates units.

    Returns ``(units, batching)``: ``units`` is ``None`` where the query runs context by
    context, and ``batching`` then says why (``None`` for one context, or a model that never
    evaluates units).
    """
    evaluates = getattr(model, "evaluates_units", None)
    if evaluates is None or not evaluates() or isinstance(context, Mapping):
        return None, None
    try:
        if context is None:
            if isinstance(samples, bool) or not isinstance(samples, int | np.integer):
                return None, None  # the per-context path reports the bad argument
            units: Units = getattr(model, "draw_units")(samples, seed=seed)  # noqa: B009
        elif isinstance(context, Sequence) and not isinstance(context, str) and context:
            units = Units.stack(list(context))
        else:
            return None, None
    except InvalidContext as e:
        return None, UnitBatching("looped", f"the contexts do not stack: {e}")
    if units.n < 2:
        return None, UnitBatching("looped", "one unit", units.n)
    return units, None


@dataclass(frozen=True)
class UnitSummary:
    """Each row's mean effect, its standard error, and its mean outcome in both worlds."""

    values: list[Any]
    errors: list[Any]
    treated: list[Any]
    reference: list[Any]
    batching: UnitBatching


def run_units(
    per_units: PerUnits,
    model: CausalModel,
    units: Units,
    rows: list[Interventions],
    base: list[Interventions],
    *,
    memory: int | None = None,
) -> UnitSummary | UnitBatching:
    """Run the query on ``units`` vectorised, chunk by chunk, and reduce to each row's mean.

    Returns a looped :class:`~scmnet.UnitBatching` (why) where the query must run context by
    context instead.

    Raises
    ------
    UnitShapeError
        If a mechanism's value for a batch of units is not the units' values stacked.
    """
    batching: UnitBatching = getattr(model, "units_batching")(units)  # noqa: B009
    if batching.path != "vectorised":
        return batching
    which = list(range(len(rows)))
    sample = units.take(0, PROBE_UNITS)
    singles = [per_units(sample.unit(i), which, rows, base) for i in range(sample.n)]
    try:
        batch = per_units(sample, which, rows, base)
    except UnitShapeError:
        raise
    except Exception as e:
        return _looped(batching, f"a batch of units raised {type(e).__name__}: {e}")
    shapes = [shape_of(pair[0]) for pair in singles[0]]
    for r, shape in enumerate(shapes):
        for side in (0, 1):
            found = _full(batch[r][side], sample.n, shape)
            if found is None or not same_values(found, [s[r][side] for s in singles]):
                return _looped(
                    batching,
                    "the outcome or a treatment gives other values for a batch of units than "
                    "for each unit alone",
                )
    worlds = 2 * len(rows) + len({id(b) for b in base})
    per_unit = max(1, batching.unit_bytes) * worlds * _MARGIN
    chunk = max(1, min(units.n, (memory or DEFAULT_MEMORY) // per_unit))
    moments = [(_Moments(), _Moments(), _Moments()) for _ in rows]
    for start in range(0, units.n, chunk):
        part = units.take(start, start + chunk)
        try:
            levels = per_units(part, which, rows, base)
        except UnitShapeError:
            raise
        except MechanismError as e:  # the per-context path names the unit
            return _looped(batching, f"a batch of units raised {type(e).__name__}: {e}")
        for (a, b), shape, (effect, treated, reference) in zip(
            levels, shapes, moments, strict=True
        ):
            a, b = _full(a, part.n, shape), _full(b, part.n, shape)
            if a is None or b is None:
                raise UnitShapeError(
                    f"the outcome has shape {shape_of(a)} or {shape_of(b)} for a batch of "
                    f"{part.n} units whose values each have shape {shape}"
                )
            effect.add(a - b)
            treated.add(a)
            reference.add(b)
    done = replace(batching, chunk=chunk, chunks=math.ceil(units.n / chunk))
    return UnitSummary(
        [m[0].mean() for m in moments],
        [m[0].stderr() for m in moments],
        [m[1].mean() for m in moments],
        [m[2].mean() for m in moments],
        done,
    )


def _looped(batching: UnitBatching, reason: str) -> UnitBatching:
    return UnitBatching("looped", reason, batching.units)


def _full(value: Any, n: int, shape: tuple[int, ...]) -> Any:
    """``value`` with shape ``(n, *shape)``: as it is, or broadcast from one unit's shape."""
    found = shape_of(value)
    if found == (n, *shape):
        return value
    if found == shape:
        return broadcast_units(value, n, shape)
    return None


class _Moments:
    """A running mean and sum of squared deviations over chunks (Chan et al.'s update)."""

    def __init__(self) -> None:
        self.n = 0
        self.like: Any = None
        self.center: Any = None
        self.m2: Any = None

    def add(self, chunk: Any) -> None:
        x = chunk.double() if _values.is_tensor(chunk) else np.asarray(chunk, dtype=np.float64)
        m = x.shape[0]
        center = x.mean(0)
        m2 = ((x - center) ** 2).sum(0)
        if self.n == 0:
            self.like, self.n, self.center, self.m2 = chunk, m, center, m2
            return
        total = self.n + m
        delta = center - self.center
        self.center = self.center + delta * (m / total)
        self.m2 = self.m2 + m2 + delta * delta * (self.n * m / total)
        self.n = total

    def mean(self) -> Any:
        if _values.is_tensor(self.like):
            return self.center.to(self.like.dtype) if self.like.is_floating_point() else self.center
        return float(self.center) if np.ndim(self.center) == 0 else self.center

    def stderr(self) -> Any:
        if self.n < 2:
            return _values.stderr([self.mean()])
        result = (self.m2 / (self.n - 1)) ** 0.5 / self.n**0.5
        return float(result) if np.ndim(result) == 0 and not _values.is_tensor(result) else result
