"""Outcomes: what an effect is measured on.

An effect compares the value of an outcome Y in two worlds (Section 3.1 of the Hydra-effect
paper). Y is a variable of the model, or a function of several variables: the centred logit of
one token (eq. 9) is a function of the logits, the unembedding of a component (eqs. 7-10) a
function of the component and the final norm's scale. :class:`Outcome` names the variables a
readout reads and the function that reads them; :func:`as_outcome` turns what a user passes (a
name, an :class:`Outcome`, or a function whose parameter names are variables) into one, checked
against the model.

Examples
--------
>>> import scmnet as sn
>>> m = sn.toys.erasure()
>>> y = as_outcome(m, lambda x, f: x - f)
>>> y.of, y({"x": 2.0, "f": 0.5})
(('x', 'f'), 1.5)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np

from scmnet import _values
from scmnet.errors import InvalidOutcome, did_you_mean, format_names, unknown_node
from scmnet.interventions import Site
from scmnet.model import CausalModel, output_names

__all__ = ["LinearReadout", "Outcome", "OutcomeLike", "as_outcome", "linear_readout"]


@dataclass(frozen=True)
class Outcome:
    """An outcome that is a function of variables: ``fn(*values of of)``.

    Use it where variable names are not Python identifiers (network nodes such as
    ``"model.layers.3.mlp"``); otherwise a plain function whose parameter names are variables
    works too. An entry of ``of`` may be a :class:`~scmnet.Site`: ``fn`` then gets that part
    of the variable (``value[index]``), and a traced network computes only that part where it
    can (the final position's logits, not every position's).

    Attributes
    ----------
    of : tuple of str or Site
        The variables (or parts of them) the readout reads, in the order ``fn`` takes them.
    fn : callable
        The readout.
    name : str, optional
        A short label for tables and reports (default: the variable, or ``fn``'s name).
    batched : bool
        Whether ``fn`` is vectorised over runs: it gets each value stacked along a new leading
        axis (one entry per run) and returns one result per run, stacked the same way. The
        effect operators then read all the runs of a query at once -- on a traced network,
        straight from the batch that computed them -- instead of calling ``fn`` run by run,
        which is what a readout of thousands of ablated runs wants (dot products of every
        run's activations with one readout vector are one matrix product).

    Examples
    --------
    >>> import scmnet as sn
    >>> m = sn.toys.erasure()
    >>> sn.total_effect(m, {"x": 1.0}, sn.Outcome(("x",), lambda x: 2 * x), context={"u": 0.0})
    2.0

    A batched readout gets every run of a query at once:

    >>> y = sn.Outcome(("x", "f"), lambda x, f: x - f, batched=True)
    >>> sn.effect_table(m, [{"x": 1.0}, {"x": 3.0}], y, context={"u": 0.0}).values.tolist()
    [2.0, 6.0]
    """

    of: tuple[str | Site, ...]
    fn: Callable[..., Any]
    name: str | None = None
    batched: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.of, str):
            raise InvalidOutcome(
                f"Outcome.of must be a tuple of variable names, got the string {self.of!r}; "
                f"write ({self.of!r},)"
            )
        if not callable(self.fn):
            raise InvalidOutcome(f"Outcome.fn must be callable, got {self.fn!r}")
        if not isinstance(self.batched, bool):
            raise InvalidOutcome(f"Outcome.batched must be True or False, got {self.batched!r}")

    def __call__(self, values: Mapping[Any, Any]) -> Any:
        """Apply the readout to the values of its variables in one run (keyed as in ``of``)."""
        if self.batched:
            return self.over_runs({v: _values.stack([values[v]]) for v in self.of}, runs=1)[0]
        return self.fn(*(values[v] for v in self.of))

    def over_runs(self, values: Mapping[Any, Any], *, runs: int) -> Any:
        """Apply the readout to the values of ``runs`` runs, stacked along a leading axis.

        A ``batched`` readout reads them at once; any other is applied run by run.
        The result is stacked the same way.

        Raises
        ------
        InvalidOutcome
            If a batched readout does not return one result per run.
        """
        if not self.batched:
            return _values.stack([self.fn(*(values[v][r] for v in self.of)) for r in range(runs)])
        result = self.fn(*(values[v] for v in self.of))
        shape = getattr(result, "shape", None)
        found = (shape[0] if len(shape) else None) if shape is not None else None
        if found != runs:
            raise InvalidOutcome(
                f"the batched outcome {self.label!r} returned {_shape_text(result)} for {runs} "
                f"run(s); a batched readout must return one result per run, stacked along the "
                f"first axis (or pass batched=False)"
            )
        return result

    @property
    def variables(self) -> tuple[str, ...]:
        """The variables read, each once."""
        return output_names(self.of)

    @property
    def label(self) -> str:
        """``name``, else the variable for an identity readout, else ``fn(of...)``."""
        if self.name is not None:
            return self.name
        fn_name = getattr(self.fn, "__name__", "f")
        return f"{fn_name}({', '.join(str(v) for v in self.of)})"


@dataclass(frozen=True)
class LinearReadout(Outcome):
    """An outcome linear in one variable: ``value[site] @ weight + constant``, batched.

    Made by :func:`~scmnet.linear_readout`. Because it is linear, a traced network can read it
    earlier than where it is asked: where the site is the output of a linear layer whose
    input is another variable, ``(x W^T + b) @ w = x @ (W^T w) + b @ w``, so the rows of a
    query stop before that layer (the unembedding of a language model, the widest matrix
    product of a row) and the readout is one matrix product over every run.
    """

    weight: Any = None
    constant: Any = 0.0


def linear_readout(
    site: str | Site, weight: Any, constant: Any = 0.0, *, name: str | None = None
) -> LinearReadout:
    """The outcome ``value[site] @ weight + constant``: a linear readout of one variable.

    Parameters
    ----------
    site : str or Site
        The variable, or the part of it, read; its last axis is contracted with ``weight``.
    weight : tensor or array, shape (d,) or (d, k)
        The readout direction(s), in the variable's dtype.
    constant : float, tensor or array
        Added to the result.
    name : str, optional
        A label for tables.

    Returns
    -------
    LinearReadout
        A batched :class:`Outcome`; traced networks fold it through a linear layer that
        computes the site (see :class:`~scmnet.outcome.LinearReadout`).

    Examples
    --------
    The centred logit of token 2 (eq. 9 of the paper) is linear in the logits:
    ``logits[2] - mean(logits) = logits @ (e_2 - 1/V)``.

    >>> import numpy as np
    >>> import scmnet as sn
    >>> y = sn.linear_readout("logits", np.array([-1.0, -1.0, 2.0]) / 3, name="centred")
    >>> float(y({"logits": np.array([1.0, 2.0, 6.0])}))
    3.0
    """
    if isinstance(weight, str | int | float) or getattr(weight, "ndim", 0) not in (1, 2):
        raise InvalidOutcome(
            f"linear_readout() needs a weight vector (d,) or matrix (d, k), got {weight!r}"
        )

    def read(values: Any) -> Any:
        if _values.is_tensor(values):
            import torch

            w = torch.as_tensor(weight, device=values.device)
            return values.to(w.dtype) @ w + constant
        return np.asarray(values) @ np.asarray(weight) + constant

    return LinearReadout((site,), read, name, True, weight, constant)


def _shape_text(value: Any) -> str:
    shape = getattr(value, "shape", None)
    return f"a value of shape {tuple(shape)}" if shape is not None else f"{value!r}"


def _identity(value: Any) -> Any:
    return value


OutcomeLike: TypeAlias = "str | Outcome | Callable[..., Any]"
"""An outcome: a variable name, an :class:`Outcome`, or a function whose parameter names are
variable names."""


def as_outcome(model: CausalModel, outcome: OutcomeLike) -> Outcome:
    """The :class:`Outcome` that ``outcome`` describes, checked against ``model``'s variables.

    Parameters
    ----------
    model : CausalModel
        The model whose variables the outcome reads.
    outcome : str, Outcome or callable
        A variable name; an :class:`Outcome`; or a function whose parameter names are
        variables.

    Returns
    -------
    Outcome

    Raises
    ------
    NodeNotFound
        If a variable name is not in the model.
    InvalidOutcome
        If the outcome is none of the above, or reads an unknown variable or none at all.

    Examples
    --------
    >>> import scmnet as sn
    >>> as_outcome(sn.toys.erasure(), "y").label
    'y'
    """
    variables = (*model.exogenous, *model.endogenous)
    if isinstance(outcome, str):
        if outcome not in variables:
            raise unknown_node(outcome, model.endogenous, what="endogenous nodes")
        return Outcome((outcome,), _identity, outcome)
    if isinstance(outcome, Outcome):
        result = outcome
    elif callable(outcome):
        params = list(inspect.signature(outcome).parameters)
        result = Outcome(tuple(params), outcome)
    else:
        raise InvalidOutcome(
            f"an outcome must be a variable name, an sn.Outcome or a function of variables, "
            f"got {outcome!r}"
        )
    for v in result.variables:
        if v not in variables:
            raise InvalidOutcome(
                f"the outcome reads {v!r}, which is not a variable of the model"
                f"{did_you_mean(v, variables)}; the variables are {format_names(variables)}"
            )
    if not result.of:
        raise InvalidOutcome("the outcome reads no variable; name at least one")
    return result
