"""Arithmetic on variable values that may be Python numbers, numpy arrays or torch tensors.

Mechanisms are free to return any of the three; the effect operators only subtract, stack,
average and index values, and this module does those things for each kind without importing
torch unless a tensor is actually present.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from scmnet.errors import InvalidIntervention

__all__ = ["is_finite", "is_tensor", "mean", "stack", "stderr", "update_at", "zeros_like"]


def is_tensor(value: object) -> bool:
    """Whether ``value`` is a torch tensor or a subclass of one (checked without importing torch).

    >>> is_tensor(1.0)
    False
    """
    return any(c.__name__ == "Tensor" and c.__module__ == "torch" for c in type(value).__mro__)


def is_finite(value: object) -> bool:
    """Whether a number, array or tensor holds no NaN or infinity (other values: True).

    >>> is_finite(1.0), is_finite(float("nan")), is_finite(np.array([1.0, np.inf])), is_finite("a")
    (True, False, False, True)
    """
    if is_tensor(value):
        import torch

        assert isinstance(value, torch.Tensor)
        return (not value.is_floating_point() and not value.is_complex()) or bool(
            torch.isfinite(value).all()
        )
    if isinstance(value, float | complex | np.number | np.ndarray):
        array = np.asarray(value)
        return not np.issubdtype(array.dtype, np.inexact) or bool(np.isfinite(array).all())
    return True


def stack(values: Sequence[Any]) -> Any:
    """Stack values along a new leading axis (torch for tensors, numpy otherwise).

    >>> stack([1.0, 2.0]).tolist()
    [1.0, 2.0]
    """
    if values and is_tensor(values[0]):
        import torch

        return torch.stack(list(values))
    return np.asarray(values)


def mean(values: Sequence[Any]) -> Any:
    """The mean over a sequence of values, keeping the kind of the values.

    Half-precision tensors (bfloat16, float16) are summed in float32, then rounded once.

    >>> mean([1.0, 2.0, 6.0])
    3.0
    """
    stacked = stack(values)
    if is_tensor(stacked) and stacked.is_floating_point() and stacked.element_size() < 4:
        return stacked.float().mean(0).to(stacked.dtype)  # a half-precision sum loses digits
    result = stacked.mean(0)
    if isinstance(result, np.ndarray) and result.ndim == 0:
        return float(result)
    if isinstance(result, np.floating):
        return float(result)
    return result


def stderr(values: Sequence[Any]) -> Any:
    """The standard error of the mean of a sequence of values; NaN for fewer than two.

    One value gives no estimate of its spread: its standard error is undefined, not zero.

    >>> stderr([1.0, 3.0]), stderr([2.0])
    (1.0, nan)
    """
    n = len(values)
    stacked = stack(values)
    if n < 2:
        nan = stacked.mean(0) * 0 + float("nan")
        return float(nan) if np.ndim(nan) == 0 and not is_tensor(nan) else nan
    if is_tensor(stacked):
        return stacked.double().std(0, unbiased=True) / n**0.5
    result = np.asarray(stacked, dtype=float).std(0, ddof=1) / np.sqrt(n)
    return float(result) if np.ndim(result) == 0 else result


def zeros_like(value: Any) -> Any:
    """Zeros of the shape and kind of ``value`` (0.0 for a number).

    >>> zeros_like(-2.5), zeros_like(np.ones(2)).tolist()
    (0.0, [0.0, 0.0])
    """
    zero = value * 0 + 0  # + 0 turns the -0.0 of a negative value into 0.0
    return float(zero) if np.ndim(zero) == 0 and not is_tensor(zero) else zero


def update_at(natural: Any, index: Any, fn: Callable[[Any], Any]) -> Any:
    """Return a copy of ``natural`` with ``natural[index]`` replaced by ``fn(natural[index])``.

    The input is never modified, so cached clean values stay clean.

    >>> import numpy as np
    >>> update_at(np.zeros(3), 1, lambda v: v + 5.0).tolist()
    [0.0, 5.0, 0.0]
    """
    if is_tensor(natural):
        out = natural.clone()
    elif isinstance(natural, np.ndarray):
        out = natural.copy()
    else:
        raise InvalidIntervention(
            f"an indexed intervention needs an array or tensor value, but the natural value "
            f"is a {type(natural).__name__}; drop the index to set the whole value"
        )
    try:
        out[index] = fn(out[index])
    except (IndexError, ValueError, RuntimeError, TypeError) as e:
        raise InvalidIntervention(
            f"cannot set index {index!r} of a value of shape {tuple(out.shape)}: {e}"
        ) from e
    return out
