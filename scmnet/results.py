"""What an effect query returns: :class:`EffectTable`, and :class:`Estimate` for one effect.

An effect is computed in one context u, or averaged over contexts -- a data set, or Monte Carlo
draws from P(u) -- and, for random ablations (noise, resample), over draws of the ablation value
(eq. 39 of the Hydra-effect paper). A result keeps what it is (the kind of effect, the treatment,
the outcome, the variables held), how it was estimated (contexts, draws, seed) and its
uncertainty (a standard error), so that a number is never separated from its meaning.

Examples
--------
>>> import scmnet as sn
>>> m = sn.toys.erasure()
>>> table = sn.effect_table(m, [{"x": 0.0}, {"x": 1.0}], "y", kind="direct", context={"u": 2.0})
>>> table.values.tolist()
[-2.0, -1.0]
>>> print(table)
direct effect on y, 1 context
  x = 0.0   -2
  x = 1.0   -1
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import numpy as np

from scmnet import _values
from scmnet.interventions import Interventions
from scmnet.units import UnitBatching

__all__ = [
    "Z_95",
    "EffectKind",
    "EffectTable",
    "Estimate",
    "contrast",
    "difference",
    "plain_value",
    "potential_outcome",
    "treatment_label",
    "world_label",
]

EffectKind: TypeAlias = Literal["total", "direct", "indirect", "path"]
"""The effects of Section 3.1: total (eq. 14), direct (eqs. 19-20), indirect (eq. 29); and
path patching (:func:`scmnet.path_patching`), the effect through named receivers."""


#: The two-sided normal quantile of :attr:`Estimate.interval`, z = Phi^-1(0.975).
Z_95 = 1.959963984540054


@dataclass(frozen=True)
class Estimate:
    """A population effect: the mean over contexts, with its Monte Carlo standard error.

    Attributes
    ----------
    value : float, array or tensor
        The average effect.
    stderr : float, array or tensor
        The standard error of the mean; NaN (undefined) for a single context, which gives no
        estimate of the spread (:attr:`note` says so).
    samples : int
        The number of contexts averaged.
    seed : int or None
        The seed of what was drawn: contexts from P(u), values of random ablations; ``None``
        for a given data set with deterministic treatments.
    contrast : str
        The population contrast the value estimates, in counterfactual notation: e.g.
        ``"E[y(x=1.0) - y(x=0.0)]"`` (the average treatment effect, with a reference) or
        ``"E[y(x=1.0)] - E[y]"`` (the treatment against each unit's natural value, without
        one). ``y(x=1.0, M(x=0.0))`` is y with x set to 1.0 and the mediators M held at the
        values they take under x = 0.0 in the same unit. ``""`` where not given.
    batching : UnitBatching or None
        How the units of an SCM population were evaluated (vectorised, or one at a time and
        why); ``None`` where not recorded.

    Examples
    --------
    >>> import scmnet as sn
    >>> m = sn.toys.linear_mediation(a=2.0, b=3.0, c=0.5)
    >>> est = sn.total_effect(m, {"x": 1.0}, "y", reference={"x": 0.0}, samples=100)
    >>> est.contrast, round(est.value, 6)
    ('E[y(x=1.0) - y(x=0.0)]', 6.5)
    >>> sn.total_effect(m, {"x": 1.0}, "y", samples=100).contrast
    'E[y(x=1.0)] - E[y]'
    """

    value: Any
    stderr: Any
    samples: int
    seed: int | None
    contrast: str = ""
    batching: UnitBatching | None = field(default=None, compare=False, repr=False)

    def __float__(self) -> float:
        return float(self.value)

    @property
    def note(self) -> str:
        """What to know about this estimate (``""`` where nothing): why the standard error is
        undefined, or why the units of a population were evaluated one at a time (the numbers
        are the same; the ``batching`` field has the details).

        Examples
        --------
        >>> import scmnet as sn
        >>> est = sn.total_effect(sn.toys.erasure(), {"x": 0.0}, "f", samples=1)
        >>> est.stderr, est.note
        (nan, 'the standard error is undefined: one sample gives no estimate of the spread')
        """
        if self.samples < 2:
            return "the standard error is undefined: one sample gives no estimate of the spread"
        if self.batching is not None and self.batching.reason:
            return f"the units were evaluated one at a time: {self.batching.reason}"
        return ""

    @property
    def interval(self) -> tuple[Any, Any]:
        """The 95% confidence interval ``(value - z * stderr, value + z * stderr)``.

        The normal approximation to the sampling distribution of the mean (z = 1.96, the
        0.975 quantile of the standard normal), which the central limit theorem justifies for
        many samples; it ignores the error of the estimated standard error, so it is too
        narrow for a handful of samples. Both ends are NaN where the standard error is
        undefined (one sample; :attr:`note` says why). Arrays and tensors give elementwise
        intervals.

        Examples
        --------
        >>> import scmnet as sn
        >>> est = sn.Estimate(2.0, 0.5, 100, 0)
        >>> tuple(round(end, 3) for end in est.interval)
        (1.02, 2.98)
        >>> sn.Estimate(2.0, float("nan"), 1, 0).interval
        (nan, nan)
        """
        half = Z_95 * self.stderr
        return self.value - half, self.value + half

    def __repr__(self) -> str:
        contrast = f", contrast={self.contrast!r}" if self.contrast else ""
        return (
            f"Estimate(value={self.value!r}, stderr={self.stderr!r}, samples={self.samples}, "
            f"seed={self.seed}{contrast})"
        )

    def __str__(self) -> str:
        """The contrast, the value, its standard error and 95% interval, and the samples.

        Examples
        --------
        >>> import scmnet as sn
        >>> print(sn.Estimate(2.0, 0.5, 100, 0, "E[y(x=1.0) - y(x=0.0)]"))
        E[y(x=1.0) - y(x=0.0)] = 2 ± 0.5 (95% interval 1.02 to 2.98, normal approximation; 100 samples, seed 0)
        """  # noqa: E501
        low, high = self.interval
        where = f"{self.samples} sample{'s' if self.samples != 1 else ''}"
        where += f", seed {self.seed}" if self.seed is not None else ""
        if self.samples < 2:
            spread = f" ± undefined ({self.note})"
        else:
            spread = (
                f" ± {_text(self.stderr)} (95% interval {_text(low, 4)} to {_text(high, 4)}, "
                f"normal approximation"
            )
            where = f"; {where})"
        text = f"{self.contrast} = " if self.contrast else ""
        if self.samples < 2:
            return f"{text}{_text(self.value)}{spread} ({where})"
        return f"{text}{_text(self.value)}{spread}{where}"


def treatment_label(treatment: Interventions) -> str:
    """A short text for a treatment: each site and its rule.

    Examples
    --------
    >>> import scmnet as sn
    >>> treatment_label(sn.interventions.normalize({sn.Site("h", index=(0, -1)): sn.zero()}))
    'h[0, -1] = 0'
    """
    return "; ".join(f"{site} {rule.label()}" for site, rule in treatment)


def world_label(interventions: Interventions) -> str:
    """A treatment as it appears in a potential outcome: ``"x=1.0"``, ``""`` for none.

    Examples
    --------
    >>> import scmnet as sn
    >>> world_label(sn.interventions.normalize({"x": 1.0, "z": sn.shift(2.0)}))
    'x=1.0, z+=2.0'
    """
    return ", ".join(f"{site}{rule.label().replace(' ', '')}" for site, rule in interventions)


def potential_outcome(outcome: str, world: str, mediators_at: str | None = None) -> str:
    """The potential outcome ``y(x=1.0)``; ``y(x=1.0, M(x=0.0))`` with the mediators M at
    their values in the world ``mediators_at`` (``"M"``: their natural values).

    Examples
    --------
    >>> potential_outcome("y", "x=1.0"), potential_outcome("y", "x=1.0", "x=0.0")
    ('y(x=1.0)', 'y(x=1.0, M(x=0.0))')
    >>> potential_outcome("y", ""), potential_outcome("y", "", "x=1.0")
    ('y', 'y(M(x=1.0))')
    """
    parts = [world] if world else []
    if mediators_at is not None:
        parts.append(f"M({mediators_at})" if mediators_at else "M")
    return f"{outcome}({', '.join(parts)})" if parts else outcome


def difference(
    first: str, second: str, *, natural: bool = False, mediators: tuple[str, ...] | None = None
) -> str:
    """The contrast ``E[first - second]``; ``E[first] - E[y]`` against the ``natural`` world.

    With ``mediators``, the contrast names them: ``..., M = (m, f)``.

    Examples
    --------
    >>> difference("y(x=1.0)", "y(x=0.0)"), difference("y(x=1.0)", "y", natural=True)
    ('E[y(x=1.0) - y(x=0.0)]', 'E[y(x=1.0)] - E[y]')
    >>> difference("y(x=1.0, M(x=0.0))", "y(x=0.0)", mediators=("m",))
    'E[y(x=1.0, M(x=0.0)) - y(x=0.0)], M = (m)'
    """
    text = f"E[{first}] - E[{second}]" if natural else f"E[{first} - {second}]"
    return text if mediators is None else f"{text}, M = ({', '.join(mediators)})"


def contrast(
    kind: EffectKind,
    outcome: str,
    treatment: Interventions,
    reference: Interventions,
    held: tuple[str, ...] = (),
) -> str:
    """The population contrast an effect estimates, in counterfactual notation.

    A total effect against a reference is ``E[y(x=1.0) - y(x=0.0)]`` (for a binary treatment,
    the average treatment effect); against the natural value (no reference) it is
    ``E[y(x=1.0)] - E[y]``, each unit's treated outcome against its own factual one. A direct
    effect holds the mediators M at their reference-world values (Pearl's pure natural direct
    effect, ``E[y(x=1.0, M(x=0.0)) - y(x=0.0)]``); an indirect effect keeps the reference and
    moves M to its treated values (the pure natural indirect effect,
    ``E[y(x=0.0, M(x=1.0)) - y(x=0.0)]``).

    Examples
    --------
    >>> import scmnet as sn
    >>> x1, x0 = (sn.interventions.normalize({"x": v}) for v in (1.0, 0.0))
    >>> contrast("total", "y", x1, x0)
    'E[y(x=1.0) - y(x=0.0)]'
    >>> contrast("indirect", "y", x1, sn.Interventions(), ("m",))
    'E[y(M(x=1.0))] - E[y], M = (m)'
    """
    t, r = world_label(treatment), world_label(reference)
    y, natural = outcome, not r
    base = potential_outcome(y, r)
    if kind == "total":
        return difference(potential_outcome(y, t), base, natural=natural)
    moved = potential_outcome(y, t, r) if kind == "direct" else potential_outcome(y, r, t)
    return difference(moved, base, natural=natural, mediators=held)  # path: M = the receivers


def plain_value(value: Any) -> Any:
    """Python scalars for 0-d numpy results, anything else unchanged.

    >>> plain_value(np.float64(1.5)), plain_value(np.ones(2)).tolist()
    (1.5, [1.0, 1.0])
    """
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value.item()
    return value


def _text(value: Any, digits: int = 6) -> str:
    if _values.is_tensor(value) and value.numel() == 1:
        return f"{float(value):.{digits}g}"
    if isinstance(value, int | float | np.generic) or np.ndim(value) == 0:
        return f"{float(value):.{digits}g}"
    return f"<{type(value).__name__} of shape {tuple(np.shape(value))}>"


@dataclass(frozen=True, eq=False)
class EffectTable:
    """Effects of many treatments on one outcome: one row per treatment.

    Built by :func:`scmnet.effect_table`. Row ``r`` is the effect of ``treatments[r]`` -- what
    :func:`~scmnet.total_effect`, :func:`~scmnet.direct_effect` or
    :func:`~scmnet.indirect_effect` return for that treatment alone.

    Attributes
    ----------
    kind : {"total", "direct", "indirect"}
        Which effect (eq. 14, eqs. 19-20, eq. 29).
    outcome : str
        The outcome's label.
    treatments : tuple of Interventions
        The treatments do(Z = z'), in order.
    references : tuple of Interventions
        Each row's reference do(Z = z); empty for the natural value z(u).
    held : tuple of tuple of str
        For direct and indirect effects, the variables each row holds (its mediators); empty
        for total effects.
    row_values : tuple
        Each row's effect, as the outcome computes it (a float, an array or a tensor).
    row_stderr : tuple
        Each row's standard error: over contexts for a population estimate; over the ablation
        draws for a random treatment in one context; zero for an exact effect (deterministic
        treatments in one given context). NaN where one context or one draw gives no estimate.
    contexts : int
        How many contexts were averaged (1 for one given context).
    draws : tuple of int
        How many ablation values each row averaged (1 for deterministic treatments).
    seed : int or None
        The seed of the context and ablation draws (``None`` for given contexts with
        deterministic treatments).
    population : bool
        Whether the rows are averages over contexts (a data set or draws from P(u)).
    row_treated, row_reference : tuple
        Each row's outcome in its treated world -- do(Z = z') for a total effect, with the
        mediators held (direct) or moved (indirect) as the kind says -- and in its reference
        world do(Z = z), averaged like the effect; ``row_values`` is their difference.
    batching : UnitBatching or None
        How a population's units ran on an SCM: ``path`` ``"vectorised"`` (every world once
        per chunk of units) or ``"looped"`` (one context at a time, with the ``reason``); the
        numbers are the same. ``None`` for one context, or a model that evaluates contexts
        one at a time (a traced network: see its ``info.batching``).
    """

    kind: EffectKind
    outcome: str
    treatments: tuple[Interventions, ...]
    references: tuple[Interventions, ...]
    held: tuple[tuple[str, ...], ...]
    row_values: tuple[Any, ...]
    row_stderr: tuple[Any, ...]
    contexts: int
    draws: tuple[int, ...]
    seed: int | None
    population: bool
    row_treated: tuple[Any, ...]
    row_reference: tuple[Any, ...]
    batching: UnitBatching | None = None

    def __len__(self) -> int:
        return len(self.treatments)

    @functools.cached_property
    def values(self) -> Any:
        """The effects stacked along a leading axis: shape ``(len(treatments), *outcome shape)``.

        A tensor if the outcome returns tensors, a numpy array otherwise.
        """
        return _values.stack(list(self.row_values))

    @functools.cached_property
    def treated(self) -> Any:
        """The outcome in each row's treated world, stacked like :attr:`values`.

        Examples
        --------
        >>> import scmnet as sn
        >>> t = sn.effect_table(sn.toys.erasure(), [{"x": 5.0}], "f", context={"u": 2.0})
        >>> t.treated.tolist(), t.reference.tolist(), t.values.tolist()
        ([-5.0], [-2.0], [-3.0])
        """
        return _values.stack(list(self.row_treated))

    @functools.cached_property
    def reference(self) -> Any:
        """The outcome in each row's reference world, stacked like :attr:`values`."""
        return _values.stack(list(self.row_reference))

    @functools.cached_property
    def stderr(self) -> Any:
        """The standard errors, stacked like :attr:`values`."""
        return _values.stack(list(self.row_stderr))

    @property
    def labels(self) -> tuple[str, ...]:
        """A short text for each treatment (see :func:`~scmnet.results.treatment_label`)."""
        return tuple(treatment_label(t) for t in self.treatments)

    def result(self, row: int) -> Any:
        """Row ``row`` as the single-treatment operators return it.

        An :class:`Estimate` for a population table, the plain value otherwise.
        """
        if self.population:
            return Estimate(
                self.row_values[row],
                self.row_stderr[row],
                self.contexts,
                self.seed,
                contrast(
                    self.kind,
                    self.outcome,
                    self.treatments[row],
                    self.references[row],
                    self.held[row],
                ),
                self.batching,
            )
        return plain_value(self.row_values[row])

    def rows(self) -> list[dict[str, Any]]:
        """The table in tidy form: one dict per treatment.

        Keys: ``treatment`` (its label), ``sites`` (the intervened sites, as text), ``kind``,
        ``outcome``, ``value``, ``stderr``, ``treated`` and ``reference`` (the outcome in the
        two worlds; Python floats for scalar outcomes), ``contexts``, ``draws`` and ``held``
        (how many variables the row held). ``pandas.DataFrame(rows)``
        makes a data frame of it.

        Examples
        --------
        >>> import scmnet as sn
        >>> t = sn.effect_table(sn.toys.erasure(), [{"x": 0.0}], "y", context={"u": 1.0})
        >>> t.rows()[0]["treatment"], t.rows()[0]["value"]
        ('x = 0.0', 0.0)
        """
        return [
            {
                "treatment": label,
                "sites": tuple(str(s) for s in treatment.sites),
                "kind": self.kind,
                "outcome": self.outcome,
                "value": _scalar(value),
                "stderr": _scalar(err),
                "treated": _scalar(treated),
                "reference": _scalar(reference),
                "contexts": self.contexts,
                "draws": draws,
                "held": len(held),
            }
            for label, treatment, value, err, treated, reference, draws, held in zip(
                self.labels,
                self.treatments,
                self.row_values,
                self.row_stderr,
                self.row_treated,
                self.row_reference,
                self.draws,
                self.held,
                strict=True,
            )
        ]

    def __str__(self) -> str:
        where = f"{self.contexts} context{'s' if self.contexts != 1 else ''}"
        lines = [f"{self.kind} effect on {self.outcome}, {where}"]
        width = max((len(label) for label in self.labels), default=0)
        for label, value, err, draws in zip(
            self.labels, self.row_values, self.row_stderr, self.draws, strict=True
        ):
            text = _text(value)
            if self.population or draws > 1:
                undefined = self.contexts < 2 if self.population else draws < 2
                text += " ± undefined (one sample)" if undefined else f" ± {_text(err)}"
            if draws > 1:
                text += f" ({draws} draws)"
            lines.append(f"  {label:<{width}}   {text}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"EffectTable(kind={self.kind!r}, outcome={self.outcome!r}, rows={len(self)}, "
            f"contexts={self.contexts}, population={self.population})"
        )


def _scalar(value: Any) -> Any:
    if _values.is_tensor(value) and value.numel() == 1:
        return float(value)
    if isinstance(value, np.generic | np.ndarray) and np.ndim(value) == 0:
        return float(value)
    return value
