"""Mechanisms that say how their exogenous input is recovered from an observed unit.

A plain mechanism ``lambda x, u_m: 2 * x + u_m`` is a black box: given the observed ``x`` and
``m`` nothing tells :func:`~scmnet.abduct` which value of ``u_m`` produced ``m``. The two
declarations here wrap a function and name its **noise**, the exogenous variable the
mechanism is invertible in:

* :func:`additive` -- ``fn(parents) + noise``, so ``noise = value - fn(parents)``;
* :func:`invertible` -- any ``fn(parents..., noise)`` with a given inverse
  ``inverse(parents..., value) -> noise``.

A declaration is a plain callable to the :class:`~scmnet.SCM`: its signature is ``fn``'s
parameters followed by the noise, so the SCM reads its parents (the noise included) from the
parameter names as it does for any mechanism. Its values may be numbers or numpy arrays: a
declaration applies ``fn`` and its inverse element-wise when they are numpy-friendly.

Examples
--------
>>> import scmnet as sn
>>> m = sn.additive(lambda x: 2.0 * x, noise="u_m")
>>> m(x=1.0, u_m=0.5)
2.5
>>> m.recover({"x": 1.0}, 2.5)
0.5
>>> model = sn.SCM({"x": sn.additive(lambda: 0.0, noise="u_x"), "m": m},
...                exogenous={"u_x": sn.Normal(), "u_m": sn.Normal()})
>>> model.parents("m")
('x', 'u_m')
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from scmnet.errors import InvalidMechanism

__all__ = ["Declared", "additive", "invertible"]


class Declared:
    """A mechanism invertible in one exogenous input, its noise.

    Build one with :func:`additive` or :func:`invertible`. Calling it with the parents and the
    noise gives the variable's value; :meth:`recover` gives the noise back from the parents and
    the value.

    Attributes
    ----------
    fn : callable
        The function of the parents (for :func:`additive`) or of the parents and the noise
        (for :func:`invertible`).
    noise : str
        The name of the exogenous variable the mechanism is invertible in.
    parent_names : tuple of str
        The parameters of ``fn`` other than the noise.
    required : tuple of str
        Those of ``parent_names`` without a default value: the parents proper.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        noise: str,
        inverse: Callable[..., Any] | None,
        *,
        kind: str,
    ) -> None:
        if not callable(fn):
            raise InvalidMechanism(f"sn.{kind} needs a callable function, got {fn!r}")
        if not isinstance(noise, str) or not noise.isidentifier():
            raise InvalidMechanism(
                f"sn.{kind} needs noise= as the name of an exogenous variable (a Python "
                f"identifier), got {noise!r}"
            )
        if inverse is not None and not callable(inverse):
            raise InvalidMechanism(f"sn.{kind} needs a callable inverse=, got {inverse!r}")
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError) as e:
            raise InvalidMechanism(f"cannot read the parameters of {fn!r} for sn.{kind}") from e
        params = list(sig.parameters.values())
        if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
            raise InvalidMechanism(
                f"sn.{kind} reads the parents from the parameter names of {fn!r}; it cannot "
                f"take *args or **kwargs"
            )
        names = [p.name for p in params]
        self.fn = fn
        self.noise = noise
        self.inverse = inverse
        self.kind = kind
        if kind == "additive":
            if noise in names:
                raise InvalidMechanism(
                    f"sn.additive(fn, noise={noise!r}) adds the noise to fn's result, so fn "
                    f"must not take {noise!r} itself; use sn.invertible for a map of the noise"
                )
            # positional too (the SCM calls a mechanism with explicit parents positionally),
            # unless a default or a keyword-only parameter of fn comes before it
            plain = all(p.kind == p.POSITIONAL_OR_KEYWORD and p.default is p.empty for p in params)
            kind_ = (
                inspect.Parameter.POSITIONAL_OR_KEYWORD if plain else inspect.Parameter.KEYWORD_ONLY
            )
            extra = inspect.Parameter(noise, kind_)
            self.__signature__ = sig.replace(parameters=[*params, extra])
        else:
            if noise not in names:
                raise InvalidMechanism(
                    f"sn.invertible(fn, noise={noise!r}) needs fn to take the noise as the "
                    f"parameter {noise!r}; its parameters are {names}"
                )
            self.__signature__ = sig
        self.parent_names = tuple(n for n in names if n != noise)
        self.required = tuple(
            p.name for p in params if p.name != noise and p.default is inspect.Parameter.empty
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The variable's value from its parents and its noise."""
        if self.kind != "additive":
            return self.fn(*args, **kwargs)
        if args:
            bound = self.__signature__.bind(*args, **kwargs)
            kwargs = dict(bound.arguments)
        noise = kwargs.pop(self.noise)
        return self.fn(**kwargs) + noise

    def recover(self, parents: Mapping[str, Any], value: Any) -> Any:
        """The noise that gives ``value`` from ``parents`` (abduction of one mechanism).

        Parameters
        ----------
        parents : mapping
            Values of (at least) the parents other than the noise, by name.
        value : Any
            The observed value of the variable.

        Returns
        -------
        Any
            The value of the noise.

        Examples
        --------
        >>> import numpy as np
        >>> import scmnet as sn
        >>> f = sn.invertible(lambda x, u: x * np.exp(u), inverse=lambda x, y: np.log(y / x),
        ...                   noise="u")
        >>> float(f.recover({"x": 2.0}, 2.0))
        0.0
        """
        args = {n: parents[n] for n in self.parent_names if n in parents}
        if self.inverse is None:
            return value - self.fn(**args)
        return self.inverse(**args, **{self._inverse_value_name(): value})

    def _inverse_value_name(self) -> str:
        assert self.inverse is not None
        names = list(inspect.signature(self.inverse).parameters)
        free = [n for n in names if n not in self.parent_names]
        if len(free) != 1:
            raise InvalidMechanism(
                f"the inverse of sn.invertible(..., noise={self.noise!r}) must take the "
                f"parents {list(self.parent_names)} by name and one more parameter, the value; "
                f"it takes {names}"
            )
        return free[0]

    def __repr__(self) -> str:
        return f"sn.{self.kind}({self.fn!r}, noise={self.noise!r})"


def additive(fn: Callable[..., Any], *, noise: str) -> Declared:
    """An additive-noise mechanism, ``fn(parents) + noise``.

    Parameters
    ----------
    fn : callable
        A function of the parents, read from its parameter names; a root variable takes none
        (``lambda: 0.0``).
    noise : str
        The exogenous variable added to ``fn``'s result.

    Returns
    -------
    Declared
        A mechanism for :class:`~scmnet.SCM` whose parents are ``fn``'s and the noise.

    Raises
    ------
    InvalidMechanism
        If ``fn`` is not callable, takes ``*args``, or takes the noise itself.

    Examples
    --------
    >>> import scmnet as sn
    >>> model = sn.SCM(
    ...     {"x": sn.additive(lambda: 0.0, noise="u_x"),
    ...      "y": sn.additive(lambda x: 3.0 * x, noise="u_y")},
    ...     exogenous={"u_x": sn.Normal(), "u_y": sn.Normal()},
    ... )
    >>> model.evaluate({"u_x": 1.0, "u_y": 0.5})["y"]
    3.5
    """
    return Declared(fn, noise, None, kind="additive")


def invertible(fn: Callable[..., Any], *, inverse: Callable[..., Any], noise: str) -> Declared:
    """A mechanism ``fn(parents..., noise)`` that ``inverse(parents..., value)`` undoes.

    Parameters
    ----------
    fn : callable
        A function of the parents and the noise, all read from its parameter names.
    inverse : callable
        Takes the parents by the same names and one more parameter, the observed value, and
        returns the noise.
    noise : str
        The exogenous parameter of ``fn`` that ``inverse`` recovers.

    Returns
    -------
    Declared
        A mechanism for :class:`~scmnet.SCM`.

    Raises
    ------
    InvalidMechanism
        If ``fn`` or ``inverse`` is not callable, or ``fn`` does not take the noise.

    Examples
    --------
    >>> import numpy as np
    >>> import scmnet as sn
    >>> y = sn.invertible(lambda x, u: x * np.exp(u), inverse=lambda x, y: np.log(y / x),
    ...                   noise="u")
    >>> float(y(x=2.0, u=0.0))
    2.0
    """
    return Declared(fn, noise, inverse, kind="invertible")
