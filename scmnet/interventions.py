"""Interventions: what ``do(Z = z')`` means, kept apart from the machinery that runs it.

An intervention names a **site** (a node, optionally an index into its value, e.g. one
sequence position of an activation) and a **rule** for the new value:

* :class:`Set` -- replace the value by a constant ``z'``. This is Pearl's ``do(Z = z')``: the
  mechanism f_Z becomes a constant function and the in-edges of Z are removed (Section 3 of
  the Hydra-effect paper, Figure 5).
* :class:`Transform` -- replace the value by a function of its natural value (a *soft*
  intervention): :func:`~scmnet.shift` adds a constant, :func:`~scmnet.scale` multiplies by
  one, and :func:`~scmnet.apply` takes any function. Z keeps its parents.

A plain value in an intervention mapping means :class:`Set`, so ``{"x": 0.0}`` reads as
``do(X = 0)``. Mappings are normalised by :func:`~scmnet.interventions.normalize` into an immutable
:class:`Interventions` object keyed by :class:`Site`.

Examples
--------
>>> import scmnet as sn
>>> iv = sn.interventions.normalize({"x": 0.0, sn.Site("v", index=1): sn.shift(2.0)})
>>> [str(site) for site in iv.sites]
['x', 'v[1]']
>>> sn.shift(2.0).apply(1.0)
3.0
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from scmnet._values import update_at
from scmnet.errors import InvalidIntervention

__all__ = [
    "Interventions",
    "Rule",
    "Set",
    "Site",
    "Transform",
    "apply",
    "normalize",
    "scale",
    "shift",
]

Index: TypeAlias = Any
"""An index into a value: an int, a slice, or a tuple of them (as for numpy/torch)."""


def _index_str(index: Index) -> str:
    parts = index if isinstance(index, tuple) else (index,)

    def one(p: Any) -> str:
        if isinstance(p, slice):
            start = "" if p.start is None else str(p.start)
            stop = "" if p.stop is None else str(p.stop)
            step = "" if p.step is None else f":{p.step}"
            return f"{start}:{stop}{step}"
        if p is Ellipsis:
            return "..."
        return repr(p)

    return ", ".join(one(p) for p in parts)


@dataclass(frozen=True)
class Site:
    """A place to intervene: a node, and optionally an index into its value.

    Parameters
    ----------
    node : str
        The name of an endogenous variable.
    index : int, slice or tuple, optional
        Restricts the intervention to ``value[index]``, e.g. ``(slice(None), -1)`` for the last
        sequence position of a ``(batch, pos, d_model)`` activation. ``None`` means the whole
        value.

    Examples
    --------
    >>> str(Site("model.layers.3.mlp", index=(slice(None), -1)))
    'model.layers.3.mlp[:, -1]'
    """

    node: str
    index: Index = None

    def __post_init__(self) -> None:
        if not isinstance(self.node, str) or not self.node:
            raise InvalidIntervention(
                f"a Site needs a node name (a non-empty str), got {self.node!r}"
            )
        if isinstance(self.index, list):
            raise InvalidIntervention(
                f"a Site index must be an int, slice or tuple (hashable), got the list "
                f"{self.index!r}; write tuple({self.index!r}) instead"
            )

    def __hash__(self) -> int:
        found: int | None = self.__dict__.get("_hash")
        if found is None:
            # Slices are unhashable before Python 3.12; hash them by their fields.
            parts = self.index if isinstance(self.index, tuple) else (self.index,)
            key = tuple((p.start, p.stop, p.step) if isinstance(p, slice) else p for p in parts)
            found = hash((self.node, key))
            object.__setattr__(self, "_hash", found)  # sites key many dicts: hash once
        return found

    def __str__(self) -> str:
        return self.node if self.index is None else f"{self.node}[{_index_str(self.index)}]"


class Rule(abc.ABC):
    """How an intervention computes the new value of its site from the natural value."""

    #: Whether the new value ignores what the parents computed (a hard intervention, which
    #: removes the site's in-edges from the causal graph).
    hard: bool = True
    #: Whether the rule reads the natural value (a soft rule, or a zero that takes its shape);
    #: if not, the mechanism of a whole-value intervention is not even run.
    needs_natural: bool = False

    @abc.abstractmethod
    def apply(self, natural: Any) -> Any:
        """Return the new value given the value the mechanism would produce."""

    @abc.abstractmethod
    def label(self) -> str:
        """A short human-readable description, used in graph pictures."""


@dataclass(frozen=True, eq=False)
class Set(Rule):
    """``do(Z = value)``: replace the value by a constant.

    A hard intervention: the new value ignores the natural one, so the site's mechanism is not
    needed and, for a whole node, its in-edges are removed from the causal graph.

    Parameters
    ----------
    value : object
        The constant ``z'`` (a float, an array, a tensor...).

    See Also
    --------
    Transform : A soft intervention, computed from the natural value.

    Examples
    --------
    >>> Set(0.0).apply(3.0)
    0.0
    """

    value: Any

    hard = True

    def apply(self, natural: Any) -> Any:
        """Return the constant, whatever the natural value."""
        return self.value

    def label(self) -> str:
        """E.g. ``'= 0.0'``."""
        text = repr(self.value)
        return f"= {text if len(text) <= 12 else type(self.value).__name__}"


@dataclass(frozen=True, eq=False)
class Transform(Rule):
    """A soft intervention: the new value is ``fn(natural value)``.

    The site keeps its parents, as the new value depends on the value its mechanism computes.
    :func:`shift`, :func:`scale` and :func:`apply` build the common ones.

    Parameters
    ----------
    fn : callable
        Maps the natural value to the new value.
    name : str
        A short description of ``fn``, used as the label in graph pictures.

    See Also
    --------
    Set : A hard intervention, a constant.

    Examples
    --------
    >>> Transform(abs, "abs").apply(-2.0)
    2.0
    """

    fn: Callable[[Any], Any]
    name: str = field(default="f")

    hard = False
    needs_natural = True

    def apply(self, natural: Any) -> Any:
        """Apply the function to the natural value."""
        return self.fn(natural)

    def label(self) -> str:
        """E.g. ``'+= 1.0'``."""
        return self.name


def shift(delta: Any) -> Transform:
    """A soft intervention adding ``delta`` to the natural value.

    Parameters
    ----------
    delta : object
        What to add: a number, or an array or tensor that broadcasts against the value.

    Returns
    -------
    Transform
        The rule ``v -> v + delta``, labelled ``'+= delta'``.

    See Also
    --------
    scale, apply

    Examples
    --------
    >>> shift(1.5).apply(1.0)
    2.5
    """
    return Transform(lambda v: v + delta, f"+= {delta!r}")


def scale(factor: Any) -> Transform:
    """A soft intervention multiplying the natural value by ``factor``.

    Parameters
    ----------
    factor : object
        What to multiply by: a number, or an array or tensor that broadcasts against the value.

    Returns
    -------
    Transform
        The rule ``v -> v * factor``, labelled ``'*= factor'``.

    See Also
    --------
    shift, apply

    Examples
    --------
    >>> scale(0.5).apply(4.0)
    2.0
    """
    return Transform(lambda v: v * factor, f"*= {factor!r}")


def apply(fn: Callable[[Any], Any], name: str | None = None) -> Transform:
    """A soft intervention replacing the natural value ``v`` by ``fn(v)``.

    Parameters
    ----------
    fn : callable
        Maps the natural value to the new value.
    name : str, optional
        The label in graph pictures; by default the function's ``__name__``.

    Returns
    -------
    Transform
        The rule ``v -> fn(v)``.

    Raises
    ------
    InvalidIntervention
        If ``fn`` is not callable.

    See Also
    --------
    shift, scale

    Examples
    --------
    >>> apply(lambda v: -v, "negate").apply(3.0)
    -3.0
    """
    if not callable(fn):
        raise InvalidIntervention(f"apply() needs a callable, got {fn!r}")
    return Transform(fn, name or str(getattr(fn, "__name__", "f")))


@dataclass(frozen=True)
class Interventions:
    """An immutable, ordered set of interventions keyed by :class:`Site`.

    Build one with :func:`~scmnet.interventions.normalize`. Iterating yields ``(site, rule)`` pairs.
    """

    items: tuple[tuple[Site, Rule], ...] = ()

    @property
    def sites(self) -> tuple[Site, ...]:
        """The intervened sites, in order."""
        return tuple(site for site, _ in self.items)

    @property
    def nodes(self) -> frozenset[str]:
        """The names of the intervened nodes."""
        return frozenset(site.node for site, _ in self.items)

    def __iter__(self) -> Iterator[tuple[Site, Rule]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __bool__(self) -> bool:
        return bool(self.items)

    def on(self, node: str) -> tuple[tuple[Site, Rule], ...]:
        """The interventions on ``node``, in order."""
        return tuple((s, r) for s, r in self.items if s.node == node)

    def hard_nodes(self) -> frozenset[str]:
        """Nodes whose whole value is replaced by a hard rule (their in-edges are cut)."""
        return frozenset(s.node for s, r in self.items if r.hard and s.index is None)

    def constant_nodes(self) -> frozenset[str]:
        """Nodes whose value the interventions fix without running their mechanism."""
        return frozenset(s.node for s, r in self.items if s.index is None and not r.needs_natural)

    def merged(self, other: Interventions) -> Interventions:
        """These interventions followed by ``other``; a site in both takes ``other``'s rule."""
        replaced = {s for s, _ in other.items}
        return Interventions(
            tuple((s, r) for s, r in self.items if s not in replaced) + other.items
        )

    def apply_to(self, node: str, natural: Callable[[], Any]) -> Any:
        """The value of ``node`` once its interventions act on its natural value.

        ``natural`` is called only if some rule needs the natural value: a hard rule on the
        whole node makes the mechanism irrelevant, so it is not run (it may not even be
        defined for the intervened parents).
        """
        rules = self.on(node)
        cuts = [
            i
            for i, (site, rule) in enumerate(rules)
            if site.index is None and not rule.needs_natural
        ]
        if cuts:
            value = rules[cuts[-1]][1].apply(None)
            rest = rules[cuts[-1] + 1 :]
        else:
            value = natural()
            rest = rules
        for site, rule in rest:
            if site.index is None:
                value = rule.apply(value)
            else:
                value = update_at(value, site.index, rule.apply)
        return value


InterventionsLike: TypeAlias = "Interventions | Mapping[str | Site, Any] | None"
"""What the public API accepts as interventions: a mapping from node names or sites to plain
values (meaning :class:`Set`) or to rules, an :class:`Interventions`, or ``None``."""


def normalize(interventions: Interventions | Mapping[Any, Any] | None) -> Interventions:
    """Turn a user's intervention mapping into an :class:`Interventions`.

    Parameters
    ----------
    interventions : mapping, Interventions or None
        Keys are node names or :class:`Site` objects; values are rules (:class:`Set`,
        :class:`Transform`, ...) or plain values, which mean ``Set(value)``.

    Returns
    -------
    Interventions

    Raises
    ------
    InvalidIntervention
        If a key is neither a string nor a :class:`Site`.

    Examples
    --------
    >>> normalize({"x": 1.0}).items[0][1].value
    1.0
    """
    if interventions is None:
        return Interventions()
    if isinstance(interventions, Interventions):
        return interventions
    if not isinstance(interventions, Mapping):
        raise InvalidIntervention(
            f"interventions must be a mapping from node names (or Site objects) to values, "
            f"got {type(interventions).__name__}: {interventions!r}"
        )
    items: list[tuple[Site, Rule]] = []
    for key, value in interventions.items():
        if isinstance(key, str):
            site = Site(key)
        elif isinstance(key, Site):
            site = key
        else:
            raise InvalidIntervention(
                f"an intervention key must be a node name or a Site, got {key!r}"
            )
        items.append((site, value if isinstance(value, Rule) else Set(value)))
    return Interventions(tuple(items))
