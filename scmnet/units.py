"""Many contexts as one: the units of a population, stacked along a leading axis.

Averaging an effect over P(u) evaluates the same worlds in many contexts ("units"). A model
whose mechanisms broadcast can evaluate them all at once: a :class:`Units` is one context whose
value of each exogenous variable holds the ``n`` units' values stacked along a new leading axis,
and every variable computed from it has shape ``(n, *unit shape)``. :class:`UnitBatching`
records how a population query ran (vectorised, or one unit at a time and why).

Examples
--------
>>> import scmnet as sn
>>> units = Units.stack([{"u": 1.0}, {"u": 2.0}, {"u": 4.0}])
>>> units.n, units["u"].tolist(), units.unit(1)
(3, [1.0, 2.0, 4.0], {'u': 2.0})
>>> sn.toys.erasure().evaluate(units)["f"].tolist()
[-1.0, -2.0, -4.0]
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from scmnet import _values
from scmnet.errors import InvalidContext

__all__ = ["UnitBatching", "Units", "broadcast_units", "nbytes", "same_values", "shape_of"]


class Units(Mapping[str, Any]):
    """``n`` contexts stacked: each exogenous variable's values along a leading axis of length n.

    Parameters
    ----------
    values : mapping of str to array or tensor
        Each exogenous variable's ``n`` values, stacked along the first axis.
    n : int
        The number of units.

    Raises
    ------
    InvalidContext
        If a value's first axis is not of length ``n``.

    Examples
    --------
    >>> import numpy as np
    >>> units = Units({"u": np.arange(4.0)}, 4)
    >>> units.take(1, 3)["u"].tolist(), len(units)
    ([1.0, 2.0], 1)
    """

    def __init__(self, values: Mapping[str, Any], n: int) -> None:
        for name, value in values.items():
            shape = shape_of(value)
            if not shape or shape[0] != n:
                raise InvalidContext(
                    f"the stacked values of {name!r} have shape {shape}; units stack each "
                    f"variable's {n} values along the first axis"
                )
        self._values = dict(values)
        self._n = n

    @property
    def n(self) -> int:
        """The number of units."""
        return self._n

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Units(n={self._n}, variables={list(self._values)})"

    def unit(self, i: int) -> dict[str, Any]:
        """Unit ``i`` as a plain context (numpy scalars as Python numbers)."""
        return {k: _item(v[i]) for k, v in self._values.items()}

    def take(self, start: int, stop: int) -> Units:
        """Units ``start`` to ``stop`` (a view where the values allow it)."""
        stop = min(stop, self._n)
        return Units({k: v[start:stop] for k, v in self._values.items()}, stop - start)

    @classmethod
    def stack(cls, contexts: Sequence[Mapping[str, Any]]) -> Units:
        """The contexts stacked, one unit each.

        Raises
        ------
        InvalidContext
            If the contexts name different variables, or a variable's values do not stack
            into a numeric array or tensor (different shapes, strings, ...).

        Examples
        --------
        >>> Units.stack([{"u": "a"}, {"u": "b"}])
        Traceback (most recent call last):
        ...
        scmnet.errors.InvalidContext: the values of 'u' do not stack into a numeric array \
(dtype <U1)
        """
        if not contexts:
            raise InvalidContext("no contexts to stack")
        names = list(contexts[0])
        stacked = {}
        for name in names:
            try:
                column = [c[name] for c in contexts]
            except KeyError as e:
                raise InvalidContext(f"a context misses {name!r}, which the first one gives") from e
            stacked[name] = _stack_column(name, column)
        if any(len(c) != len(names) for c in contexts):
            raise InvalidContext("the contexts name different variables; they do not stack")
        return cls(stacked, len(contexts))

    @classmethod
    def from_draws(cls, draws: Mapping[str, Any], n: int) -> Units:
        """Units from each variable's ``n`` draws (an array, a tensor or a list of values).

        Raises
        ------
        InvalidContext
            If a variable's draws do not stack into a numeric array or tensor.
        """
        return cls({k: _stack_column(k, v) for k, v in draws.items()}, n)


def _stack_column(name: str, column: Any) -> Any:
    if _values.is_tensor(column):
        return column
    if isinstance(column, np.ndarray) and column.dtype != object:
        values = column
    else:
        try:
            values = _values.stack(list(column))
        except (ValueError, TypeError, RuntimeError) as e:
            raise InvalidContext(f"the values of {name!r} do not stack: {e}") from e
    if isinstance(values, np.ndarray) and values.dtype.kind not in "biufc":
        raise InvalidContext(
            f"the values of {name!r} do not stack into a numeric array (dtype {values.dtype})"
        )
    return values


def _item(value: Any) -> Any:
    """A 0-d numpy value as a Python scalar; anything else unchanged."""
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass(frozen=True)
class UnitBatching:
    """How a population query evaluated its units: vectorised, or one at a time and why.

    Mirrors :class:`~scmnet.tracing.BatchingInfo` of traced networks.

    Attributes
    ----------
    path : {"vectorised", "looped"}
        ``"vectorised"``: every world was evaluated once per chunk of units, on arrays;
        ``"looped"``: one unit at a time (the results are the same, only slower).
    reason : str
        Why the units were looped (``""`` if they were not): the mechanism that does not take
        a batch, contexts that do not stack, random ablations, ...
    units : int
        The number of units (contexts) averaged.
    chunk : int
        The most units one vectorised evaluation held (0 when looped).
    chunks : int
        The number of vectorised evaluations (0 when looped).
    unit_bytes : int
        The bytes of one unit's values in one world (0 when unknown).
    """

    path: Literal["vectorised", "looped"]
    reason: str = ""
    units: int = 0
    chunk: int = 0
    chunks: int = 0
    unit_bytes: int = 0


def shape_of(value: Any) -> tuple[int, ...]:
    """The shape of a number (``()``), array or tensor.

    >>> shape_of(1.0), shape_of(np.zeros((2, 3)))
    ((), (2, 3))
    """
    if _values.is_tensor(value):
        return tuple(value.shape)
    return tuple(np.shape(value))


def nbytes(value: Any) -> int:
    """The bytes a number, array or tensor holds.

    >>> nbytes(np.zeros(4)), nbytes(1.0)
    (32, 8)
    """
    if _values.is_tensor(value):
        return int(value.element_size() * value.numel())
    return int(np.asarray(value).nbytes)


def broadcast_units(value: Any, n: int, shape: tuple[int, ...]) -> Any:
    """``value`` (one unit's shape) repeated for ``n`` units, without copying.

    >>> broadcast_units(2.0, 3, ()).tolist()
    [2.0, 2.0, 2.0]
    """
    if _values.is_tensor(value):
        return value.expand(n, *shape)
    return np.broadcast_to(np.asarray(value), (n, *shape))


def to_numpy(value: Any) -> np.ndarray:
    """A numpy copy of a number, array or tensor (for comparisons)."""
    if _values.is_tensor(value):
        return np.asarray(value.detach().cpu().double().numpy())
    return np.asarray(value)


def same_values(batch: Any, units: Sequence[Any]) -> bool:
    """Whether ``batch`` (shape ``(k, *s)``) holds the ``k`` values of ``units`` (shape ``s``).

    Equal to within the rounding of the less precise dtype (1e-9 relative for float64, 1e-5
    below it): vectorised and scalar maths may round differently, and a mechanism may compute
    one unit in float32 (``torch.as_tensor(1.0)``) and a batch in float64.

    >>> same_values(np.array([1.0, 2.0]), [1.0, 2.0]), same_values(np.array(3.0), [1.0, 2.0])
    (True, False)
    """
    expected = np.stack([to_numpy(u) for u in units])
    found = to_numpy(batch)
    if found.shape != expected.shape:
        return False
    if found.dtype.kind not in "biufc" or expected.dtype.kind not in "biufc":
        return bool(np.array_equal(found, expected))
    low = _low_precision(batch) or any(_low_precision(u) for u in units)
    rtol, atol = (1e-5, 1e-6) if low else (1e-9, 1e-12)
    return bool(np.allclose(found, expected, rtol=rtol, atol=atol, equal_nan=True))


def _low_precision(value: Any) -> bool:
    """Whether a value is a float of fewer than 64 bits (numpy or torch)."""
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        return False
    if _values.is_tensor(value):
        return bool(value.is_floating_point() and value.element_size() < 8)
    return bool(np.dtype(dtype).kind == "f" and np.dtype(dtype).itemsize < 8)
