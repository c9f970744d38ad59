"""Many intervention sets as the rows of one batched execution of a traced graph.

:meth:`~scmnet.tracing.TracedModel.evaluate_many` evaluates n intervention sets in the same
context. A network that treats the rows of its batch independently can do that in one pass:
stack the context n times along the leading (batch) axis, give **block** i of every intervened
variable the value that set i gives it, and read block i of every output. Only the descendants
of the union of the intervened variables run; the cached clean values of the other nodes they
read are repeated along the batch axis. Block i then equals what ``evaluate`` computes for set
i, up to the order of floating-point operations (a batch of n may use other matrix kernels than
a batch of one). The run itself follows the one run plan of :mod:`scmnet.tracing.engine.staircase`:
rows join the batch where their interventions sit, and interventions at one position of a
causal sequence model recompute only the positions from it on.

That is exact only where the graph runs at a larger batch and keeps its rows apart, which no
tracer states. So a :class:`Batcher` first **probes** the graph, once per input shape, with two
blocks whose contents differ: every node is run on its arguments' clean values stacked with a
perturbed copy (floats scaled and shifted, integers reversed along the last axis), and on the
perturbed copy alone. Node by node, the probe records

* the node's **layout**: ``"batched"`` (the leading axis doubled), ``"free"`` (the value does
  not grow with the batch: a parameter, a position table), ``"scaled"`` (an int that doubled:
  a batch size), a tuple of layouts, or ``"other"`` (anything else);
* whether the rows are **coupled**: block 0 of the output is not the clean value, or block 1 is
  not the output of the perturbed copy (``x / x.sum(0)``, BatchNorm statistics, ``x[0]``);
* whether it **fails**: a graph that ``torch.export`` specialised to batch size 1 raises at the
  first reshape to a fixed size.

A group of sets runs as one batch if every node it recomputes ran and keeps its rows apart, and
every value that crosses into or out of the batch (the clean values it reads, the intervened
variables, the outputs) has a known layout. Otherwise the sets are evaluated one by one, and
:class:`BatchingInfo` says why. Each node is judged on its own (its
arguments rebuilt from clean values), so an operation that mixes rows only stops the batching
of interventions upstream of it. The probe costs about three runs of the graph, once per input
shape; it is a check on one context, not a proof: a model whose rows interact only for some
input values would pass it, and ``evaluate_many(..., batched=False)`` is the reference.

``torch.export`` specialises a graph to the example's sizes unless told otherwise, so a Hugging
Face model batches its interventions only if traced with a dynamic batch dimension, from an
example of batch size 2 or more::

    trace(model, {"input_ids": ids2}, dynamic_shapes={"input_ids": {0: torch.export.Dim("b")}})

Examples
--------
>>> import torch
>>> import scmnet as sn
>>> from torch import nn
>>> from scmnet.tracing import trace
>>> _ = torch.manual_seed(0)
>>> m = trace(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).eval(), torch.zeros(1, 3))
>>> u = {"input": torch.randn(1, 3)}
>>> sets = [sn.interventions.normalize({"1": sn.scale(s)}) for s in (0.0, 0.5, 2.0)]
>>> many = m.evaluate_many(u, sets, outputs=["2"])
>>> m.info.batching.path, m.info.batching.runs
('batched', 1)
>>> torch.allclose(many[2]["2"], m.evaluate(u, sets[2], outputs=["2"])["2"])
True

A network that centres its hidden layer over the batch mixes the rows, so interventions
upstream of the centring are evaluated one by one:

>>> class Centred(nn.Module):
...     def __init__(self) -> None:
...         super().__init__()
...         self.a, self.b = nn.Linear(3, 3), nn.Linear(3, 1)
...     def forward(self, x: torch.Tensor) -> torch.Tensor:
...         h = self.a(x)
...         return self.b(h - h.mean(0))
>>> c = trace(Centred().eval(), torch.zeros(2, 3))
>>> _ = c.evaluate_many({"x": torch.randn(2, 3)}, [{"a": sn.scale(0.0)}, {"a": sn.scale(2.0)}])
>>> c.info.batching.path, c.info.batching.reason
('looped', "the operation 'mean' (mean) in module '<root>' mixes the rows of a batch")
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import torch
from torch import fx

from scmnet.errors import MechanismError
from scmnet.interventions import Interventions
from scmnet.tracing.engine.executor import Executor, module_path
from scmnet.tracing.engine.positions import NoSuffixPlan, SuffixPlan, close, plan_suffix
from scmnet.tracing.engine.staircase import RowsRun, plan_rows, run_rows

__all__ = ["Batcher", "BatchingInfo", "Layout", "NotBatchable", "Probe", "probe", "rows_within"]

Layout: TypeAlias = "Literal['free', 'batched', 'scaled', 'other'] | tuple[Layout, ...]"
"""How a node's value grows when the batch grows (see the module docs)."""


@dataclass(frozen=True)
class BatchingInfo:
    """How the last :meth:`~scmnet.TracedModel.evaluate_many` call on a trace ran.

    Intervention sets run as rows of one batched execution where that is exact, and one by one
    otherwise (see the module docs); this record says which, and why.

    Attributes
    ----------
    path : {"none", "clean", "batched", "looped", "mixed"}
        ``"none"`` before any call; ``"clean"`` if every set was empty (read from the clean
        run); ``"batched"`` or ``"looped"`` if every non-empty set ran that way; ``"mixed"`` if
        some of each.
    sets : int
        The number of intervention sets in the call.
    batched : int
        How many of them ran as rows of a batched execution.
    looped : int
        How many ran one by one.
    runs : int
        The number of batched executions (one per chunk).
    reason : str
        Why sets were looped (``""`` if none was): the operation that mixes the rows of a
        batch, the node that does not run with a larger batch, ``batched=False``, ...
    positions : str
        How the positions of a sequence ran in the last execution: ``"suffix from position t
        of T"`` where every intervention sat at position t of a causal model (only positions
        t: were recomputed, ``scmnet.tracing.engine.positions``), otherwise
        ``"all positions"`` and why.
    """

    path: Literal["none", "clean", "batched", "looped", "mixed"] = "none"
    sets: int = 0
    batched: int = 0
    looped: int = 0
    runs: int = 0
    reason: str = ""
    positions: str = ""


_PROBE_ROWS = 8
"""The rows of the first chunk, which measures a row's memory under a budget."""


def rows_within(memory: int, peak: int, rows: int, chunk: int | None) -> int:
    """How many rows fit in ``memory`` bytes, when ``rows`` rows held ``peak`` bytes at most.

    At least one, and at most ``chunk`` where given.

    Examples
    --------
    >>> rows_within(1000, 400, 4, None), rows_within(1000, 400, 4, 5), rows_within(10, 400, 4, None)
    (10, 5, 1)
    """
    per_row = max(peak / max(rows, 1), 1.0)
    fit = max(int(memory // per_row), 1)
    return fit if chunk is None else min(fit, chunk)


class NotBatchable(Exception):
    """Why a group of intervention sets cannot run as one batch.

    Internal control flow: :meth:`~scmnet.tracing.TracedModel.evaluate_many` catches it and
    evaluates the sets one by one, recording the message in :class:`BatchingInfo`.
    """


@dataclass(frozen=True)
class Probe:
    """What running the graph on two differing blocks showed about each node.

    Attributes
    ----------
    layouts : mapping of node to Layout
        How each node's value grows with the batch.
    failed : mapping of node to str
        Nodes that did not run with a larger batch, or read such a node, and why.
    coupled : mapping of node to str
        Nodes whose output mixes the rows of the batch, and how.
    """

    layouts: Mapping[fx.Node, Layout]
    failed: Mapping[fx.Node, str]
    coupled: Mapping[fx.Node, str]


def _perturbed(value: torch.Tensor) -> torch.Tensor:
    """Another valid value of the same shape: floats scaled and shifted, others reversed."""
    if value.is_floating_point() or value.is_complex():
        return value * 1.5 + 0.25
    return value.flip(-1) if value.dim() else value


def _classify(clean: Any, doubled: Any, alone: Any) -> tuple[Layout, bool]:
    """The layout of a node and whether its rows are independent.

    ``doubled`` is its value on two blocks (clean, perturbed) and ``alone`` its value on the
    perturbed block alone.
    """
    if isinstance(clean, torch.Tensor):
        if not isinstance(doubled, torch.Tensor):
            return "other", True
        size = clean.shape[0] if clean.dim() else 0
        if size and doubled.shape == (2 * size, *clean.shape[1:]):
            return "batched", close(doubled[:size], clean) and close(doubled[size:], alone)
        if doubled.shape == clean.shape:
            return "free", close(doubled, clean) and close(alone, clean)
        return "other", True
    if isinstance(clean, int) and not isinstance(clean, bool) and isinstance(doubled, int):
        if doubled == clean:
            return "free", alone == clean
        if clean and doubled == 2 * clean:
            return "scaled", alone == clean
        return "other", True
    if (
        type(clean) in (tuple, list, torch.Size)
        and type(doubled) is type(clean)
        and type(alone) is type(clean)
        and len(doubled) == len(clean) == len(alone)
    ):
        parts = [_classify(c, d, a) for c, d, a in zip(clean, doubled, alone, strict=True)]
        layouts = tuple(layout for layout, _ in parts)
        independent = all(ok for _, ok in parts)
        if all(layout == "free" for layout in layouts):
            return "free", independent
        return ("other" if "other" in layouts else layouts), independent
    if close(doubled, clean):
        return "free", close(alone, clean)
    return "other", True


def _has_other(layout: Layout) -> bool:
    if isinstance(layout, tuple):
        return any(_has_other(part) for part in layout)
    return layout == "other"


def _expand(value: Any, layout: Layout, k: int, *, perturb: bool = False) -> Any:
    """The value of a node on ``k`` blocks, each holding ``value`` (the last one perturbed)."""
    if layout == "free":
        return value
    if layout == "batched":
        if perturb:
            return torch.cat([value.repeat(k - 1, *[1] * (value.dim() - 1)), _perturbed(value)])
        return value.repeat(k, *[1] * (value.dim() - 1))
    if layout == "scaled":
        return value * k
    if isinstance(layout, tuple):
        parts = [
            _expand(v, part, k, perturb=perturb) for v, part in zip(value, layout, strict=True)
        ]
        return torch.Size(parts) if isinstance(value, torch.Size) else type(value)(parts)
    raise NotBatchable(f"a value of layout {layout!r} cannot be repeated along a batch")


def _alone(value: Any, layout: Layout) -> Any:
    """The perturbed block of a node on its own."""
    if layout == "batched":
        return _perturbed(value)
    if isinstance(layout, tuple):
        parts = [_alone(v, part) for v, part in zip(value, layout, strict=True)]
        return torch.Size(parts) if isinstance(value, torch.Size) else type(value)(parts)
    return value


def _where(node: fx.Node) -> str:
    return f"the operation {node.name!r} ({node.target}) in module {module_path(node)!r}"


def probe(executor: Executor, inputs: Collection[fx.Node], clean: Mapping[fx.Node, Any]) -> Probe:
    """Run every node of the graph on two differing blocks (see the module docs).

    Each node runs on its own: its arguments are rebuilt from their clean values, so one node
    that mixes rows or fails does not hide what its descendants do.

    Parameters
    ----------
    executor : Executor
        Runs the graph.
    inputs : collection of torch.fx.Node
        The placeholders of the context's inputs; each must have a leading batch axis.
    clean : mapping of node to value
        Every node's value in the clean run of a context.

    Returns
    -------
    Probe
    """
    layouts: dict[fx.Node, Layout] = {}
    failed: dict[fx.Node, str] = {}
    coupled: dict[fx.Node, str] = {}
    kept: dict[fx.Node, tuple[Any, Any]] = {}  # (doubled, alone) values of "other" nodes
    position = executor.position
    last_use = {
        node: max((position[u] for u in node.users if u in position), default=-1)
        for node in executor.order
    }

    def doubled_arg(perturb: bool) -> Callable[[fx.Node], Any]:
        def lookup(a: fx.Node) -> Any:
            if a in kept:
                return kept[a][0]
            return _expand(clean[a], layouts[a], 2, perturb=perturb)

        return lookup

    def alone_arg(a: fx.Node) -> Any:
        return kept[a][1] if a in kept else _alone(clean[a], layouts[a])

    for step, node in enumerate(executor.order):
        for a in [a for a in kept if last_use[a] < step]:
            del kept[a]
        if node.op in ("placeholder", "get_attr"):
            value = clean[node]
            if node not in inputs:
                layouts[node] = "free"
            elif isinstance(value, torch.Tensor) and value.dim() and value.shape[0]:
                layouts[node] = "batched"
            else:
                layouts[node] = "other"
                failed[node] = (
                    f"the input {node.name!r} has no leading batch axis to stack the intervention "
                    f"sets along ({_describe(value)})"
                )
            continue
        broken = next((a for a in node.all_input_nodes if a in failed), None)
        if broken is not None:
            layouts[node] = "other"
            failed[node] = failed[broken]
            continue
        try:
            doubled = executor.compute(node, doubled_arg(True), {})
            alone = executor.compute(node, alone_arg, {})
        except MechanismError:
            try:  # some operations only take valid data (indices, ...): no perturbation then
                doubled = executor.compute(node, doubled_arg(False), {})
                alone = clean[node]
            except MechanismError as e:
                layouts[node] = "other"
                failed[node] = (
                    f"the graph does not run with a larger batch: {e}; it may be specialised to "
                    f"the example's batch size: trace with a dynamic batch dimension, e.g. "
                    f"dynamic_shapes={{'input_ids': {{0: torch.export.Dim('batch')}}}} and an "
                    f"example of batch size 2 or more"
                )
                continue
        layout, independent = _classify(clean[node], doubled, alone)
        layouts[node] = layout
        if not independent:
            coupled[node] = f"{_where(node)} mixes the rows of a batch"
        if layout == "other":
            kept[node] = (doubled, alone)
    return Probe(layouts, failed, coupled)


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"


#: How many suffix plans a trace keeps (small: recipes only; one per set of intervened variables).
_SUFFIX_PLANS = 1024


class Batcher:
    """Runs groups of intervention sets as batches; one per trace, shared by its models.

    It keeps a :class:`Probe` per input shape (so a graph that cannot batch is found out once)
    and the :class:`BatchingInfo` of the last call.

    Parameters
    ----------
    executor : Executor
        Runs the graph.
    inputs : collection of torch.fx.Node
        The placeholders of the context's inputs.
    size : int
        How many probes (input shapes) to keep.
    """

    def __init__(
        self,
        executor: Executor,
        inputs: Collection[fx.Node],
        size: int = 8,
        *,
        generic: bool = False,
    ) -> None:
        self._executor = executor
        self._inputs = frozenset(inputs)
        self._size = size
        self._generic = generic
        self._probes: OrderedDict[Hashable, Probe] = OrderedDict()
        self._suffixes: OrderedDict[Hashable, SuffixPlan | str] = OrderedDict()
        self.info = BatchingInfo()
        #: How positions ran in the last execution (see :mod:`scmnet.tracing.engine.positions`).
        self.positions = ""

    def _shape_key(self, inputs: Mapping[str, Any]) -> Hashable:
        """What the probes depend on: the inputs' shapes, or only their ranks for a graph that
        runs the same operations at every size (``torch.fx``, or dynamic export sizes)."""
        return tuple(
            (name, v.dim() if self._generic else tuple(v.shape), v.dtype)
            if isinstance(v, torch.Tensor)
            else (name, repr(v))
            for name, v in inputs.items()
        )

    def suffix(
        self,
        inputs: Mapping[str, Any],
        clean: Mapping[fx.Node, Any],
        starts: Mapping[fx.Node, int],
        t: int,
        length: int,
        needed: Collection[fx.Node],
        constant: Collection[fx.Node],
    ) -> SuffixPlan:
        """The suffix plan of interventions at position ``t`` (found once per input shape).

        Raises
        ------
        NoSuffixPlan
            If there is none (remembered too).
        """
        # a size-generic graph has one plan for every length, for suffixes of one length
        where = (length - t,) if self._generic else (t, length)
        key = (
            self._shape_key(inputs),
            frozenset((n, a) for n, a in starts.items()),
            where,
            frozenset(needed),
            frozenset(constant),
        )
        found = self._suffixes.get(key)
        if found is None:
            try:
                found = plan_suffix(
                    self._executor, inputs, clean, starts, t, length, needed, constant=constant
                )
            except NoSuffixPlan as e:
                found = str(e)
            self._suffixes[key] = found
            while len(self._suffixes) > _SUFFIX_PLANS:
                self._suffixes.popitem(last=False)
        self._suffixes.move_to_end(key)
        if isinstance(found, str):
            raise NoSuffixPlan(found)
        if (found.t, found.length) != (t, length):  # the same recipes, at this length
            found = dataclasses.replace(found, t=t, length=length)
        return found

    def run_one(
        self,
        inputs: Mapping[str, Any],
        clean: Mapping[fx.Node, Any],
        interventions: Interventions,
        variables: Mapping[str, fx.Node],
        wanted: Collection[fx.Node],
        downstream: Callable[[frozenset[fx.Node]], frozenset[fx.Node]],
    ) -> dict[fx.Node, Any]:
        """Evaluate one fitted intervention set: the values of the nodes it changes."""
        rows = plan_rows([interventions], variables, clean, self._executor.position)
        names = {node: name for name, node in variables.items()}
        done, self.positions = run_rows(
            self._executor,
            inputs,
            clean,
            rows,
            names,
            wanted,
            downstream,
            suffixes=lambda *a: self.suffix(inputs, clean, *a),
        )
        (out,) = done.per_row()
        return out

    def probe(self, inputs: Mapping[str, Any], clean: Mapping[fx.Node, Any]) -> Probe:
        """The probe of the graph for inputs shaped like ``inputs`` (run once per shape)."""
        key = self._shape_key(inputs)
        found = self._probes.get(key)
        if found is None:
            with torch.no_grad():
                found = probe(self._executor, self._inputs, clean)
            self._probes[key] = found
            while len(self._probes) > self._size:
                self._probes.popitem(last=False)
        self._probes.move_to_end(key)
        return found

    def evaluate(
        self,
        inputs: Mapping[str, Any],
        clean: Mapping[fx.Node, Any],
        sets: Sequence[Interventions],
        variables: Mapping[str, fx.Node],
        wanted: Collection[fx.Node],
        downstream: Callable[[frozenset[fx.Node]], frozenset[fx.Node]],
        one: Callable[[int], Mapping[fx.Node, Any]],
        *,
        batched: bool = True,
        chunk: int | None = None,
        memory: int | None = None,
        stacked: list[tuple[list[int], RowsRun]] | None = None,
    ) -> list[Mapping[fx.Node, Any]]:
        """Evaluate intervention sets, in batches of ``chunk`` where exact, one by one otherwise.

        Empty sets are the clean run (an empty mapping of changed values). The others are
        ordered by their first intervened variable in the graph (so that a chunk holds sets
        that recompute about the same part of it) and go in chunks to :meth:`run`; a chunk it
        refuses, or one of a single set, is evaluated with ``one(i)``, the single-set path.
        Records :attr:`info`.

        Parameters
        ----------
        inputs, clean, variables, wanted, downstream
            As for :meth:`run`.
        sets : sequence of Interventions
            The intervention sets, fitted to their variables.
        one : callable
            ``one(i)`` evaluates ``sets[i]`` alone: the values of the nodes it changes.
        batched : bool
            ``False`` evaluates every set with ``one``.
        chunk : int, optional
            At most this many sets per batch.
        memory : int, optional
            A budget in bytes for the values a batch holds at once: a first chunk of a few
            sets measures what a row holds (:attr:`RowsRun.peak_bytes`), and the other chunks
            take as many rows as fit (at least one; at most ``chunk``).
        stacked : list, optional
            Where given, each batched chunk is appended to it as ``(indices of its sets,
            RowsRun)`` and its sets get no mapping of their own (read the batches whole).

        Returns
        -------
        list of mapping
            For each set, the values of the nodes it changes; the other nodes keep their
            clean values.
        """
        envs: list[Mapping[fx.Node, Any]] = [{} for _ in sets]
        position = self._executor.position
        pending = sorted(  # chunks of sets that start at the same depth recompute the least
            (i for i, iv in enumerate(sets) if iv),
            key=lambda i: min(position[variables[v]] for v in sets[i].nodes),
        )
        size = max(len(pending) if chunk is None else chunk, 1)
        if memory is not None:  # a first chunk measures the bytes a row holds
            size = min(size, _PROBE_ROWS)
        reasons: list[str] = []
        runs = done = start = 0
        while start < len(pending):
            group = pending[start : start + size]
            start += len(group)
            reason = "" if batched else "batched=False"
            if batched and len(group) < 2:
                reason = "a single intervention set to evaluate"
            elif batched:
                try:
                    rows = [sets[i] for i in group]
                    found = self.run(inputs, clean, rows, variables, wanted, downstream)
                except NotBatchable as e:
                    reason = str(e)
                else:
                    if stacked is not None:
                        stacked.append((group, found))
                    else:
                        for i, env in zip(group, found.per_row(), strict=True):
                            envs[i] = env
                    runs, done = runs + 1, done + len(group)
                    if memory is not None and runs == 1:
                        size = rows_within(memory, found.peak_bytes, len(group), chunk)
                    continue
            reasons.append(reason)
            for i in group:
                envs[i] = one(i)
        looped = len(pending) - done
        path: Literal["clean", "batched", "looped", "mixed"] = (
            "clean" if not pending else "batched" if not looped
            else "looped" if not done else "mixed"
        )  # fmt: skip
        why = "; ".join(dict.fromkeys(reasons))
        positions = self.positions if pending else ""
        self.info = BatchingInfo(path, len(sets), done, looped, runs, why, positions)
        return envs

    def run(
        self,
        inputs: Mapping[str, Any],
        clean: Mapping[fx.Node, Any],
        rows: Sequence[Interventions],
        variables: Mapping[str, fx.Node],
        wanted: Collection[fx.Node],
        downstream: Callable[[frozenset[fx.Node]], frozenset[fx.Node]],
    ) -> RowsRun:
        """Evaluate the intervention sets ``rows`` as the blocks of one batch.

        Parameters
        ----------
        inputs : mapping of str to value
            The context's input values.
        clean : mapping of node to value
            Every node's value in the clean run of the context.
        rows : sequence of Interventions
            Non-empty intervention sets, fitted to their variables
            (:func:`~scmnet.tracing.engine.patching.fit`).
        variables : mapping of str to torch.fx.Node
            Each variable's node.
        wanted : collection of torch.fx.Node
            The variable nodes whose values are returned.
        downstream : callable
            The nodes that read a set of nodes (:meth:`TracedNetwork.downstream`).

        Returns
        -------
        RowsRun
            The batch of each ``wanted`` node that the interventions may change (the others
            keep their clean values), to read per row or stacked.

        Raises
        ------
        NotBatchable
            If the rows cannot run as one batch; nothing has been computed then.
        """
        planned = plan_rows(rows, variables, clean, self._executor.position)
        targets = {n for row in planned for n in row.rules}
        affected = downstream(frozenset(targets))
        hard = set(targets)
        for row in planned:  # a variable that every row fixes: its mechanism does not run
            hard &= {n for n in row.rules if row.constant_at(n)}
        needed = self._executor.upstream(
            [n for n in wanted if n in affected], within=affected, stop=hard
        )
        found = self.probe(inputs, clean)
        set_now = targets - affected
        boundary = {
            a
            for n in needed
            if n not in hard
            for a in n.all_input_nodes
            if a not in needed and a not in set_now
        }
        crossing = {*set_now, *(n for n in targets if n in needed)}
        self._check(found, needed, crossing, boundary, wanted, variables)
        names = {node: name for name, node in variables.items()}
        out, self.positions = run_rows(
            self._executor,
            inputs,
            clean,
            planned,
            names,
            wanted,
            downstream,
            layouts=found.layouts,
            suffixes=lambda *a: self.suffix(inputs, clean, *a),
        )
        return out

    def _check(
        self,
        found: Probe,
        needed: Collection[fx.Node],
        targets: Collection[fx.Node],
        boundary: Collection[fx.Node],
        wanted: Collection[fx.Node],
        variables: Mapping[str, fx.Node],
    ) -> None:
        """Raise :class:`NotBatchable` unless the probe says the batch would be exact.

        Every recomputed node must run with a larger batch and keep its rows apart; the
        intervened variables and the recomputed outputs must carry the batch on their leading
        axis; the clean values read from the cache must have a layout they can be repeated in.
        """
        for node in sorted(needed, key=self._executor.position.__getitem__):
            if node in found.failed:
                raise NotBatchable(found.failed[node])
            if node in found.coupled:
                raise NotBatchable(found.coupled[node])
        names = {node: name for name, node in variables.items()}
        for node in [*targets, *(n for n in wanted if n in needed)]:
            layout = found.layouts.get(node, "other")
            if layout != "batched":
                raise NotBatchable(
                    found.failed.get(node)
                    or f"the variable {names[node]!r} has no leading batch axis (its value "
                    f"{_GROWTH.get(str(layout), _GROWTH['other'])}), so the intervention sets "
                    f"cannot be stacked along it"
                )
        for node in sorted(boundary, key=self._executor.position.__getitem__):
            if _has_other(found.layouts.get(node, "other")):
                raise NotBatchable(
                    found.failed.get(node)
                    or f"the value of {_where(node)} {_GROWTH['other']}, so it cannot be "
                    f"repeated for the rows of a batch"
                )


_GROWTH = {
    "free": "keeps its shape when the batch grows",
    "other": "does not keep the batch on its leading axis",
}
