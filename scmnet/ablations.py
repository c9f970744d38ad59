"""Ablation values: interventions whose value comes from the model (Appendix A, eqs. 35-39).

An ablation replaces a variable Z by a value z~ meant to remove the information it carries:

* :func:`~scmnet.zero` -- z~ = 0 (eq. 35);
* :func:`~scmnet.mean` -- z~ = E_u[Z(u)], the mean over P(u) or a data set of contexts (eq. 36);
* :func:`~scmnet.noise` -- z~ = Z(u + eps), eps ~ N(0, scale^2), Z computed from a noised context
  (eq. 37); ``on="value"`` adds the noise to Z's own value instead;
* :func:`~scmnet.resample` -- z~ = Z(u'), the value Z takes in another context u' ~ P(u) (eq. 38);
* :func:`~scmnet.patch` -- z~ = Z(u'), the value in one given source context (activation patching).

Noise and resample values are random: the effect operators average an effect over ``draws``
values of z~ (a Monte Carlo estimate of eq. 39, with an explicit seed), which is not the same as
mean ablation. Mean and patch values do not depend on the context being analysed, so they are
computed once. :func:`~scmnet.resolve` turns such rules into plain :class:`~scmnet.Set`
interventions for one context and one random generator.

Examples
--------
>>> import scmnet as sn
>>> m = sn.toys.linear_mediation()
>>> u = {"u_x": 1.0, "u_m": 0.0, "u_y": 0.0}
>>> sn.total_effect(m, {"x": sn.zero()}, "y", context=u)  # -(c + a b) * x
-6.5
>>> est = sn.total_effect(m, {"x": sn.resample()}, "y", context=u, draws=200, seed=0)
>>> round(est, 1)  # E[TE] = 6.5 * (E[x'] - 1) with x' ~ N(0, 1)
-6.7
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from scmnet import _values
from scmnet.errors import InvalidIntervention
from scmnet.interventions import Interventions, Rule, Set, Site

if TYPE_CHECKING:
    from scmnet.model import CausalModel, Context

__all__ = [
    "Mean",
    "Noise",
    "Patch",
    "Resample",
    "Resolvable",
    "SiteValues",
    "Zero",
    "mean",
    "noise",
    "patch",
    "resample",
    "resolve",
    "zero",
]


@dataclass(frozen=True, eq=False)
class Zero(Rule):
    """z~ = 0 with the shape and type of the natural value (equation 35).

    Examples
    --------
    >>> import numpy as np
    >>> Zero().apply(np.ones(2)).tolist()
    [0.0, 0.0]
    """

    hard = True
    needs_natural = True  # for its shape and type only

    def apply(self, natural: Any) -> Any:
        """Zeros like the natural value."""
        return natural * 0

    def label(self) -> str:
        """``'= 0'``."""
        return "= 0"


class Resolvable(Rule):
    """A rule whose value is computed from the model, per context and random draw.

    Use it as (part of) the treatment of an effect operator, which resolves it for every
    context and draw; or call :func:`~scmnet.resolve` yourself.
    """

    hard = True
    #: Whether the value is random (noise, resample): effects average it over draws (eq. 39).
    stochastic: bool = False
    #: Whether the value is the same in every context (mean, patch): resolved once.
    context_free: bool = False

    @abc.abstractmethod
    def value(
        self,
        model: CausalModel,
        site: Site,
        context: Context,
        rng: np.random.Generator,
        values: SiteValues | None = None,
    ) -> Any:
        """The ablation value of ``site`` in ``context``.

        ``values`` reads sites in other contexts; pass one :class:`SiteValues` to every
        resolution of a query so that each context is evaluated once.
        """

    def apply(self, natural: Any) -> Any:
        """Unresolved rules have no value by themselves."""
        raise InvalidIntervention(
            f"{self.label()!r} draws its value from the model: use it as the treatment of "
            f"total_effect/direct_effect/indirect_effect (which resolve it per context and "
            f"draw), or turn it into plain values with sn.resolve(model, interventions, context)"
        )


class SiteValues:
    """The value of sites in contexts, each context evaluated once (a memo for one query).

    Ablation values come from other contexts (resample, patch, mean): when many treatments
    draw from the same contexts, each context's variables are evaluated once for all of them.
    Values already known -- a sweep's clean pass over its data set -- are given with
    :meth:`record`, and are then never computed. Contexts are matched by identity: record and
    use the same mapping objects.

    Examples
    --------
    >>> import scmnet as sn
    >>> m = sn.toys.erasure()
    >>> donor = {"u": 4.0}
    >>> memo = SiteValues(m)
    >>> memo.record(donor, sn.Site("x"), 4.0)
    >>> t = sn.effect_table(m, [{"x": sn.patch(donor)}], "f", context={"u": 1.0}, values=memo)
    >>> t.values.tolist()
    [-3.0]
    """

    def __init__(self, model: CausalModel | None = None) -> None:
        self._model = model
        self._runs: dict[int, tuple[Context, dict[str, Any]]] = {}
        self._known: dict[tuple[int, Site], tuple[Context, Any]] = {}
        self._means: dict[tuple[int, Site], tuple[Sequence[Context], Any]] = {}

    def record(self, context: Context, site: Site | str, value: Any) -> None:
        """Give ``site``'s value in ``context`` (e.g. read in a clean pass already done).

        Raises
        ------
        InvalidIntervention
            If the memo has no model (it would not be used) or the context is not a mapping.
        """
        if self._model is None:
            raise InvalidIntervention(
                "this SiteValues has no model; make it with SiteValues(model) to record values"
            )
        if not isinstance(context, Mapping):
            raise InvalidIntervention(
                f"record() needs the context as a mapping, got {type(context).__name__}"
            )
        key = site if isinstance(site, Site) else Site(site)
        self._known[(id(context), key)] = (context, value)

    def __call__(self, model: CausalModel, site: Site, context: Context) -> Any:
        """``site``'s value in ``context``."""
        if self._model is None or model is not self._model:
            values = model.evaluate(context, outputs=[site.node])
        else:
            known = self._known.get((id(context), site))
            if known is not None and known[0] is context:
                return known[1]
            entry = self._runs.get(id(context))
            if entry is None or entry[0] is not context:
                entry = (context, model.evaluate(context))
                self._runs[id(context)] = entry
            values = entry[1]
        value = values[site.node]
        return value if site.index is None else value[site.index]

    def mean(self, model: CausalModel, site: Site, contexts: Sequence[Context]) -> Any:
        """The mean of ``site``'s value over ``contexts`` (eq. 36), computed once per memo."""
        key = (id(contexts), site)
        found = self._means.get(key)
        if found is not None and found[0] is contexts:
            return found[1]
        value = _values.mean([self(model, site, c) for c in contexts])
        if self._model is model:
            self._means[key] = (contexts, value)
        return value


_site_value = SiteValues()


def _contexts(
    model: CausalModel, contexts: Sequence[Context] | None, samples: int, seed: int
) -> Sequence[Context]:
    return contexts if contexts is not None else model.sample_contexts(samples, seed=seed)


@dataclass(frozen=True, eq=False)
class Mean(Resolvable):
    """z~ = E_u[Z(u)] over given contexts, or ``samples`` draws from P(u) (equation 36)."""

    contexts: Sequence[Context] | None = field(default=None, repr=False)
    samples: int = 1000
    seed: int = 0

    context_free = True

    def value(
        self,
        model: CausalModel,
        site: Site,
        context: Context,
        rng: np.random.Generator,
        values: SiteValues | None = None,
    ) -> Any:
        """The mean of the site's value over the contexts."""
        contexts = _contexts(model, self.contexts, self.samples, self.seed)
        return (values or _site_value).mean(model, site, contexts)

    def label(self) -> str:
        """``'= mean'``."""
        return "= mean"


@dataclass(frozen=True, eq=False)
class Resample(Resolvable):
    """z~ = Z(u'), u' drawn from the given contexts or from P(u) (equation 38)."""

    contexts: Sequence[Context] | None = field(default=None, repr=False)

    stochastic = True

    def value(
        self,
        model: CausalModel,
        site: Site,
        context: Context,
        rng: np.random.Generator,
        values: SiteValues | None = None,
    ) -> Any:
        """The site's value in a randomly drawn other context."""
        if self.contexts is not None:
            if not self.contexts:
                raise InvalidIntervention("resample() got an empty sequence of contexts")
            other = self.contexts[int(rng.integers(len(self.contexts)))]
        else:
            other = model.sample_contexts(1, seed=int(rng.integers(2**63)))[0]
        return (values or _site_value)(model, site, other)

    def label(self) -> str:
        """``'= resample'``."""
        return "= resample"


@dataclass(frozen=True, eq=False)
class Noise(Resolvable):
    """z~ = Z(u + eps) (equation 37), or Z(u) + eps with ``on="value"``; eps ~ N(0, scale^2)."""

    scale: float
    on: Literal["input", "value"] = "input"

    stochastic = True

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise InvalidIntervention(f"noise scale must be > 0, got {self.scale!r}")
        if self.on not in ("input", "value"):
            raise InvalidIntervention(f"noise(on=...) must be 'input' or 'value', got {self.on!r}")

    def value(
        self,
        model: CausalModel,
        site: Site,
        context: Context,
        rng: np.random.Generator,
        values: SiteValues | None = None,
    ) -> Any:
        """The site's value from a noised context (or its noised value)."""
        if self.on == "value":
            return _add_noise(
                (values or _site_value)(model, site, context), self.scale, rng, site.node
            )
        noised = {k: _add_noise(v, self.scale, rng, k) for k, v in context.items()}
        return (values or _site_value)(model, site, noised)

    def label(self) -> str:
        """E.g. ``'= noise(0.1)'``."""
        return f"= noise({self.scale:g})"


@dataclass(frozen=True, eq=False)
class Patch(Resolvable):
    """z~ = Z(u'), the value in one given source context (activation patching)."""

    source: Context = field(repr=False)

    context_free = True

    def value(
        self,
        model: CausalModel,
        site: Site,
        context: Context,
        rng: np.random.Generator,
        values: SiteValues | None = None,
    ) -> Any:
        """The site's value in the source context."""
        return (values or _site_value)(model, site, self.source)

    def label(self) -> str:
        """``'= patched'``."""
        return "= patched"


def _add_noise(value: Any, scale: float, rng: np.random.Generator, name: str) -> Any:
    if _values.is_tensor(value):
        if not value.is_floating_point():
            raise InvalidIntervention(
                f"cannot add Gaussian noise to {name!r}, whose values are {value.dtype}; for "
                f"token inputs, noise an embedding variable with sn.noise(scale, on='value')"
            )
        import torch

        eps = rng.normal(0.0, scale, size=tuple(value.shape))
        return value + torch.as_tensor(eps, dtype=value.dtype, device=value.device)
    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.floating):
        raise InvalidIntervention(
            f"cannot add Gaussian noise to {name!r}, whose values are {array.dtype}"
        )
    noised = array + rng.normal(0.0, scale, size=array.shape)
    return float(noised) if np.ndim(noised) == 0 and isinstance(value, float) else noised


def zero() -> Zero:
    """Zero ablation, z~ = 0 (equation 35).

    Examples
    --------
    >>> import scmnet as sn
    >>> sn.toys.erasure().evaluate({"u": 2.0}, {"f": sn.zero()})["y"]
    2.0
    """
    return Zero()


def mean(contexts: Sequence[Context] | None = None, *, samples: int = 1000, seed: int = 0) -> Mean:
    """Mean ablation, z~ = E_u[Z(u)] (equation 36), over ``contexts`` or draws from P(u).

    Examples
    --------
    >>> import scmnet as sn
    >>> m = sn.toys.erasure()
    >>> sn.total_effect(m, {"x": sn.mean([{"u": 1.0}, {"u": 3.0}])}, "f", context={"u": 0.0})
    -2.0
    """
    return Mean(None if contexts is None else list(contexts), samples, seed)


def resample(contexts: Sequence[Context] | None = None) -> Resample:
    """Resample ablation, z~ = Z(u') with u' from ``contexts`` or P(u) (equation 38).

    Effects average over ``draws`` resampled values (eq. 39).

    Examples
    --------
    >>> import scmnet as sn
    >>> m = sn.toys.erasure()
    >>> sn.direct_effect(m, {"x": sn.resample([{"u": 5.0}])}, "y", context={"u": 2.0})
    3.0
    """
    return Resample(None if contexts is None else list(contexts))


def noise(scale: float, *, on: Literal["input", "value"] = "input") -> Noise:
    """Noise ablation, z~ = Z(u + eps) (equation 37); ``on="value"``: z~ = Z(u) + eps.

    Examples
    --------
    >>> import scmnet as sn
    >>> m = sn.toys.erasure()
    >>> te = sn.total_effect(m, {"x": sn.noise(1.0)}, "x", context={"u": 0.0}, draws=500)
    >>> abs(te) < 0.2  # E[eps] = 0
    True
    """
    return Noise(scale, on)


def patch(source: Context) -> Patch:
    """Activation patching: z~ = Z(u'), the value in the ``source`` context.

    The source is kept as given (not copied), so that values recorded for it in a
    :class:`SiteValues` memo are found; do not modify it while a query uses it.

    Examples
    --------
    >>> import scmnet as sn
    >>> m = sn.toys.self_repair()
    >>> sn.indirect_effect(m, {"x": sn.patch({"u": 1.0})}, "y", context={"u": 3.0})
    3.0
    """
    if not isinstance(source, Mapping):
        raise InvalidIntervention(f"patch() needs a source context (a mapping), got {source!r}")
    return Patch(source)


def resolve(
    model: CausalModel,
    interventions: Interventions,
    context: Context,
    rng: np.random.Generator | int = 0,
    *,
    values: SiteValues | None = None,
) -> Interventions:
    """Replace every :class:`~scmnet.ablations.Resolvable` rule by a :class:`~scmnet.Set`.

    Parameters
    ----------
    model : CausalModel
        The model the values are computed in.
    interventions : Interventions
        Normalised interventions (see :func:`scmnet.interventions.normalize`).
    context : mapping
        The context being analysed.
    rng : numpy Generator or int
        The random generator (or its seed) for noise and resample draws.
    values : SiteValues, optional
        A memo of the contexts already evaluated (shared by the resolutions of one query).

    Examples
    --------
    >>> import scmnet as sn
    >>> m = sn.toys.erasure()
    >>> iv = sn.interventions.normalize({"x": sn.patch({"u": 4.0})})
    >>> resolve(m, iv, {"u": 1.0}).items[0][1].value
    4.0
    """
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    items = []
    for site, rule in interventions:
        if isinstance(rule, Resolvable):
            rule = Set(rule.value(model, site, context, rng, values))
        items.append((site, rule))
    return Interventions(tuple(items))
