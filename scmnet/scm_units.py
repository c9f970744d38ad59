"""How an :class:`~scmnet.SCM` evaluates many units at once, and checks that it may.

Given :class:`~scmnet.Units` as its context, :meth:`SCM.evaluate <scmnet.SCM.evaluate>`
evaluates each mechanism once on arrays whose leading axis holds the units. Whether that gives
each unit's value is checked once per model (and per shape of the exogenous values) by a
**shape probe**: the first three units are evaluated one by one and as a batch, mechanism by
mechanism, each fed its parents' true per-unit values, and the results compared.

* A mechanism that raises on a batch (``math.exp(x)``, ``if x > 0:``) does not broadcast: the
  model then evaluates units one at a time, and the probe says why (a population query
  records it in the ``batching`` field of its :class:`~scmnet.EffectTable`).
* A mechanism that returns one unit's shape for the whole batch, with the same value for every
  unit (``lambda: 0.0``, a constant), is a constant: its value is broadcast to every unit.
* A mechanism that returns another shape (``x.sum()`` sums over the units) or other values
  (``x - x.mean()`` mixes them) is an error, :class:`~scmnet.UnitShapeError`, naming the
  variable: a batch would hide the mistake. Write the mechanism elementwise along a leading
  axis of units, or build the model with ``SCM(..., vectorize=False)``.

During a vectorised evaluation every value is checked to have shape ``(n, *unit shape)``;
values fixed by an intervention (and constant mechanisms) are broadcast to it explicitly, so a
mechanism always sees its parents with a leading axis of units.

Examples
--------
>>> import math
>>> import scmnet as sn
>>> m = sn.SCM({"x": lambda u: math.exp(u)}, exogenous={"u": sn.Normal()})
>>> units = sn.Units.stack([{"u": 0.0}, {"u": 1.0}])
>>> probe(m, units).reason.split(":")[0]
"the mechanism of 'x' does not take a batch of units"
>>> m.evaluate(units)["x"].round(3).tolist()  # one unit at a time, then stacked
[1.0, 2.718]
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from scmnet import _values
from scmnet.errors import MechanismError, UnitShapeError
from scmnet.interventions import Interventions, Site
from scmnet.model import Output, check_context, output_names
from scmnet.units import Units, broadcast_units, nbytes, same_values, shape_of, to_numpy

__all__ = ["PROBE_UNITS", "UnitModel", "UnitProbe", "evaluate_units", "probe"]

#: The units a shape probe evaluates one by one and as a batch.
PROBE_UNITS = 3


@dataclass(frozen=True)
class UnitProbe:
    """What a shape probe found about a model's mechanisms.

    Attributes
    ----------
    shapes : mapping of str to tuple of int
        Each variable's shape in one unit (exogenous and endogenous).
    constant : frozenset of str
        The variables whose mechanism returns one value for every unit (broadcast).
    reason : str
        Why the model evaluates units one at a time (``""`` where it vectorises).
    unit_bytes : int
        The bytes of one unit's values (every variable) in one world.
    """

    shapes: Mapping[str, tuple[int, ...]]
    constant: frozenset[str]
    reason: str
    unit_bytes: int


class UnitModel(Protocol):
    """What evaluating units reads of a model: the members of :class:`~scmnet.SCM` it uses.

    Written out here, rather than imported with the SCM, so that the SCM's module imports this
    one and nothing imports back.
    """

    _vectorize: bool  # False: one unit at a time, without probing
    _unit_probes: dict[Any, UnitProbe]  # the probes found so far, by interventions and shapes

    @property
    def interventions(self) -> Interventions: ...

    @property
    def endogenous(self) -> tuple[str, ...]: ...

    @property
    def distributions(self) -> Mapping[str, Any]: ...

    def evaluate(
        self,
        context: Any,
        interventions: Interventions | Mapping[Any, Any] | None = None,
        *,
        outputs: Collection[Output] | None = None,
    ) -> dict[Any, Any]: ...

    def run_mechanism(self, var: str, values: Mapping[str, Any]) -> Any: ...

    def _merged(self, interventions: Interventions | Mapping[Any, Any] | None) -> Interventions: ...

    def _needed(self, iv: Interventions, outputs: Collection[str] | None) -> frozenset[str]: ...


def probe(scm: UnitModel, units: Units) -> UnitProbe:
    """The shape probe of ``scm`` on the first units of ``units``, cached per model.

    Raises
    ------
    UnitShapeError
        If a mechanism returns another shape, or other values, for a batch of units than
        for each unit alone; the message names the variable.
    MechanismError
        If a mechanism raises on one of the probed units alone (as evaluating it would).
    """
    if not scm._vectorize:
        return UnitProbe({}, frozenset(), "the SCM was built with vectorize=False", 0)
    sample = units.take(0, PROBE_UNITS)
    key: Any = (
        scm.interventions,
        tuple((k, shape_of(v)[1:], str(getattr(v, "dtype", type(v)))) for k, v in sample.items()),
    )
    try:
        hash(key)
    except TypeError:  # interventions holding arrays: probe every time
        key = None
    cache = scm._unit_probes
    if key is not None and key in cache:
        return cache[key]
    found = _probe(scm, sample)
    if key is not None:
        cache[key] = found
    return found


def _probe(scm: UnitModel, sample: Units) -> UnitProbe:
    k = sample.n
    if k < 2:
        return UnitProbe({}, frozenset(), "one unit shows nothing about a batch", 0)
    one_by_one = [scm.evaluate(sample.unit(i)) for i in range(k)]
    shapes: dict[str, tuple[int, ...]] = {}
    for var in one_by_one[0]:
        found = {shape_of(r[var]) for r in one_by_one}
        if len(found) > 1:
            return UnitProbe(
                {},
                frozenset(),
                f"the values of {var!r} have different shapes in different units",
                0,
            )
        shapes[var] = found.pop()
    unit_bytes = sum(nbytes(v) for v in one_by_one[0].values())
    truth = {var: _values.stack([r[var] for r in one_by_one]) for var in one_by_one[0]}
    iv = scm.interventions
    hard = iv.constant_nodes()
    if any(site.index is not None for site in iv.sites):
        return UnitProbe(shapes, frozenset(), "the model carries an indexed intervention", 0)
    constant: set[str] = set()
    for var in scm.endogenous:
        units = [r[var] for r in one_by_one]
        try:
            value = iv.apply_to(var, functools.partial(scm.run_mechanism, var, truth))
        except Exception as e:
            cause = e.__cause__ if isinstance(e, MechanismError) and e.__cause__ else e
            return UnitProbe(
                shapes,
                frozenset(),
                f"the mechanism of {var!r} does not take a batch of units: it raised "
                f"{type(cause).__name__}: {cause}",
                unit_bytes,
            )
        shape, unit = shape_of(value), shapes[var]
        if shape == (k, *unit) and same_values(value, units):
            continue
        if shape == unit and same_values(broadcast_units(value, k, unit), units):
            constant.add(var)  # one value for every unit (a constant, or held by do())
            continue
        if var in hard:
            continue
        _mismatch(var, shape, unit, k, value, units)
    return UnitProbe(shapes, frozenset(constant), "", unit_bytes)


def _mismatch(
    var: str, shape: tuple[int, ...], unit: tuple[int, ...], k: int, value: Any, units: list[Any]
) -> None:
    fix = (
        "write it elementwise along a leading axis of units (e.g. x.sum(axis=-1) for the "
        "sum of a vector per unit), or build the SCM with vectorize=False to evaluate one unit "
        "at a time"
    )
    if shape != (k, *unit):
        raise UnitShapeError(
            f"the mechanism of {var!r} returned shape {shape} for a batch of {k} units whose "
            f"values each have shape {unit} (expected {(k, *unit)}): it reduces or reshapes "
            f"across units (e.g. x.sum()); {fix}"
        )
    diff = float(np.max(np.abs(to_numpy(value) - np.stack([to_numpy(u) for u in units]))))
    raise UnitShapeError(
        f"the mechanism of {var!r} gives other values for a batch of {k} units than for each "
        f"unit alone (largest difference {diff:.3g}): it mixes the units (e.g. x - x.mean()); "
        f"{fix}"
    )


def evaluate_units(
    scm: UnitModel,
    units: Units,
    interventions: Interventions | Mapping[Any, Any] | None,
    outputs: Collection[Output] | None,
) -> dict[Any, Any]:
    """Every variable's values in each unit of ``units``, stacked along a leading axis.

    Vectorised where ``probe`` allows it, else one unit at a time.

    Raises
    ------
    UnitShapeError
        If a value has neither the shape of the batch nor that of one unit (a constant).
    """
    found = probe(scm, units)
    iv = scm._merged(interventions)
    indexed = any(site.index is not None for site in iv.sites) or any(
        isinstance(o, Site) and o.index is not None for o in outputs or ()
    )
    if found.reason or indexed:
        rows = [scm.evaluate(units.unit(i), iv, outputs=outputs) for i in range(units.n)]
        return {k: _values.stack([r[k] for r in rows]) for k in rows[0]}
    n = units.n
    values: dict[str, Any] = dict(check_context(units, scm.distributions))
    needed = scm._needed(iv, None if outputs is None else output_names(outputs))
    fixed = iv.constant_nodes()
    for var in scm.endogenous:
        if var not in needed:
            continue
        value = iv.apply_to(var, functools.partial(scm.run_mechanism, var, values))
        shape, unit = shape_of(value), found.shapes[var]
        if shape != (n, *unit):
            if shape != unit or not (var in fixed or var in found.constant):
                raise UnitShapeError(
                    f"the value of {var!r} has shape {shape} for a batch of {n} units whose "
                    f"values each have shape {unit} (expected {(n, *unit)}); check its "
                    f"mechanism and interventions, or build the SCM with vectorize=False"
                )
            value = broadcast_units(value, n, unit)
        values[var] = value
    if outputs is None:
        return values
    return {o: values[o.node] if isinstance(o, Site) else values[o] for o in outputs}
