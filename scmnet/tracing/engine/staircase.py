"""The run plan of intervention sets on a traced graph: a staircase of rows, suffixes of positions.

Every intervened run of a traced network -- one set of interventions, or many as the rows of a
batch -- is executed here, in three steps (DESIGN.md, "one engine"):

1. **rows** (:func:`plan_rows`): each set becomes a :class:`Row` whose **start** is the first
   variable, in graph order, that its interventions change. A variable held at its clean value
   before the start is a no-op and is dropped (the row is clean there); after the start it
   clamps the variable.
2. **positions** (:mod:`scmnet.tracing.engine.positions`): where every changing intervention
   sits at one position t of its variable (``Site(..., index=(slice(None), t))``), the run
   computes only positions t, t+1, ... of the nodes downstream, reading the clean prefix -- on
   a causal decoder, one position for an intervention at the final one.
3. **the staircase** (:func:`run_rows`): rows are sorted by start and go through the graph as
   the blocks of one batch that grows: a node is computed for the rows that have joined by then
   (those whose start is at or before it), and the clean value stands in for the others. A row
   that ablates the last layer costs one layer, not the whole network.

Values are exact: each row equals the single-set run of its interventions, up to the order of
floating-point operations. The batch probe (:mod:`scmnet.tracing.engine.batched`) has checked
that the graph keeps the rows of a batch apart before a plan with more than one row runs.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx

from scmnet.ablations import Zero
from scmnet.errors import NonFiniteValue
from scmnet.interventions import Interventions, Rule, Set, Site
from scmnet.tracing.engine.executor import Executor, modified_in_place
from scmnet.tracing.engine.indexing import row_index
from scmnet.tracing.engine.patching import check_result
from scmnet.tracing.engine.positions import (
    FULL,
    Cut,
    Form,
    NoSuffixPlan,
    Partial,
    SuffixPlan,
    compute,
    cut,
    cut_prefix,
    materialise,
)
from scmnet.tracing.engine.run_values import holds_tensors, tensorish

__all__ = ["Batch", "Row", "RowsRun", "plan_rows", "run_rows"]

Layouts = Mapping[fx.Node, Any]


@dataclass(frozen=True)
class Row:
    """One intervention set, ready to run.

    Attributes
    ----------
    rules : mapping of node to tuple of (Site, Rule)
        The interventions on each variable node that matter for this row (no-ops dropped).
    start : int
        The graph position of the first variable the row changes (``-1`` for none).
    changed : frozenset of torch.fx.Node
        The variables whose value the row changes from the clean one by itself.
    """

    rules: Mapping[fx.Node, tuple[tuple[Site, Rule], ...]]
    start: int
    changed: frozenset[fx.Node]

    def constant_at(self, node: fx.Node) -> bool:
        """Whether the row fixes the whole value of ``node`` without its mechanism."""
        return any(
            site.index is None and (not rule.needs_natural or isinstance(rule, Zero))
            for site, rule in self.rules.get(node, ())
        )


def _same(value: Any, clean: Any) -> bool:
    if value is clean:
        return True
    return (
        isinstance(value, torch.Tensor)
        and isinstance(clean, torch.Tensor)
        and value.shape == clean.shape
        and value.dtype == clean.dtype
        and torch.equal(value, clean)
    )


def plan_rows(
    sets: Sequence[Interventions],
    variables: Mapping[str, fx.Node],
    clean: Mapping[fx.Node, Any],
    position: Mapping[fx.Node, int],
) -> list[Row]:
    """One :class:`Row` per fitted intervention set (see the module docs)."""
    rows = []
    for iv in sets:
        by_node: dict[fx.Node, list[tuple[Site, Rule]]] = {}
        for site, rule in iv:
            by_node.setdefault(variables[site.node], []).append((site, rule))
        changed = frozenset(
            node
            for node, items in by_node.items()
            if not all(
                s.index is None and isinstance(r, Set) and _same(r.value, clean[node])
                for s, r in items
            )
        )
        start = min((position[n] for n in changed), default=-1)
        rules = {
            node: tuple(items)
            for node, items in by_node.items()
            if node in changed or position[node] > start >= 0
        }
        rows.append(Row(rules, start, changed))
    return rows


# -- where the rows intervene: one position? -------------------------------------------------------


def _position_of(site: Site, value: torch.Tensor) -> tuple[int, int, int] | None:
    """(axis, position, length) of an indexed site: its first int index after the batch axis."""
    index = site.index if isinstance(site.index, tuple) else (site.index,)
    for axis, part in enumerate(index):
        if part is Ellipsis:
            return None
        if axis >= 1 and isinstance(part, int) and not isinstance(part, bool):
            length = value.shape[axis]
            return axis, part % length, length
    return None


@dataclass(frozen=True)
class _Positions:
    """The position every changing intervention sits at, and each variable's position axis."""

    t: int
    length: int
    axes: Mapping[fx.Node, int]


def common_position(rows: Sequence[Row], clean: Mapping[fx.Node, Any]) -> _Positions | str:
    """The one position all rows intervene at, or why there is none."""
    found: set[tuple[int, int]] = set()
    axes: dict[fx.Node, int] = {}
    for row in rows:
        for node, items in row.rules.items():
            for site, _ in items:
                if site.index is None:
                    continue
                where = _position_of(site, clean[node])
                if where is None:
                    return f"the site {site} does not name one position"
                axis, t, length = where
                if axes.setdefault(node, axis) != axis:
                    return f"the sites of {site.node!r} name positions along different axes"
                found.add((t, length))
    if len(found) != 1:
        return "the interventions sit at different positions" if found else "no position named"
    ((t, length),) = found
    for row in rows:
        for node, items in row.rules.items():
            for site, rule in items:
                if site.index is not None:
                    continue
                if isinstance(rule, Set) and _same(rule.value, clean[node]):
                    continue  # holds the clean value: every suffix of it is clean
                held = axes.get(node)
                if held is None or not isinstance(rule, Set):
                    return f"the whole value of a variable is intervened on ({site} {rule.label()})"
                value = rule.value
                if not isinstance(value, torch.Tensor) or value.shape != clean[node].shape:
                    return f"the value set at {site} is not a whole tensor of the variable's shape"
                if not torch.equal(cut_prefix(value, held, t), cut_prefix(clean[node], held, t)):
                    return f"the value set at {site} changes positions before {t}"
    return _Positions(t, length, axes)


def _cut_rules(
    items: Sequence[tuple[Site, Rule]], axis: int, t: int
) -> tuple[tuple[Site, Rule], ...]:
    """The rules of one variable, acting on its suffix ``t:`` along ``axis``."""
    out = []
    for site, rule in items:
        if site.index is None:
            if isinstance(rule, Set):
                rule = Set(cut(rule.value, axis, t))
            out.append((site, rule))
            continue
        index = list(site.index if isinstance(site.index, tuple) else (site.index,))
        index[axis] = 0  # position t (common_position checked it) is the suffix's first
        out.append((Site(site.node, tuple(index)), rule))
    return tuple(out)


# -- the staircase ---------------------------------------------------------------------------------


def _expand(value: Any, layout: Any, k: int) -> Any:
    """A clean value repeated for ``k`` rows, by its batch layout."""
    if k == 1 or layout == "free":
        return value
    if layout == "batched":
        return _rows(value, k)
    if layout == "scaled":
        return value * k
    if isinstance(layout, tuple):
        parts = [_expand(v, part, k) for v, part in zip(value, layout, strict=True)]
        return torch.Size(parts) if isinstance(value, torch.Size) else type(value)(parts)
    return value


def _rows(value: Any, k: int) -> Any:
    if isinstance(value, torch.Tensor):
        return value.repeat(k, *[1] * (value.dim() - 1)) if k > 1 else value
    if isinstance(value, tuple | list):
        return type(value)(_rows(v, k) for v in value)
    return value


def _pad(value: Any, k_value: int, k: int, filler: Any) -> Any:
    """``value`` (``k_value`` rows) followed by ``filler`` (one row) for rows up to ``k``."""
    if k_value == k:
        return value
    if isinstance(value, torch.Tensor):
        if filler.dim() and filler.shape[0] == 1:  # one row: read k - k_value times, copied once
            return torch.cat([value, filler.expand(k - k_value, *filler.shape[1:])])
        return torch.cat([value, _rows(filler, k - k_value)])
    return type(value)(
        _pad(v, k_value, k, f) if isinstance(v, torch.Tensor) else v
        for v, f in zip(value, filler, strict=True)
    )


@dataclass
class _Run:
    """The state of one staircase execution."""

    executor: Executor
    inputs: Mapping[str, Any]
    clean: Mapping[fx.Node, Any]
    layouts: Layouts
    region: frozenset[fx.Node]
    suffix: SuffixPlan | None
    forms: dict[fx.Node, Form]
    env: dict[fx.Node, tuple[Any, int]]  # region tensor nodes: (value in its form, rows)
    variants: dict[tuple[fx.Node, bool, int], Any]
    touching: dict[fx.Node, list[int]]  # the rows that intervene on each variable

    @property
    def t(self) -> int:
        return self.suffix.t if self.suffix is not None else 0

    def clean_in(self, node: fx.Node, form: Form) -> Any:
        """The clean value of ``node`` in ``form`` (one row)."""
        value = self.clean[node]
        return cut(value, form.axis, self.t) if isinstance(form, Cut) else value

    def full(self, node: fx.Node, k: int) -> Any:
        """A region node's full value for ``k`` rows."""
        value, rows = self.env[node]
        form = self.forms[node]
        value = _pad(value, rows, k, self.clean_in(node, form))
        if isinstance(form, Cut):
            return materialise(self.clean[node], value, form.axis, self.t)
        return value

    def arg(self, a: fx.Node, k: int, how: str, axis: int | None, is_cut: bool) -> Any:
        """Argument ``a`` for a node computed at ``k`` rows, read as its recipe says.

        ``how`` is an :class:`~scmnet.tracing.engine.positions.ArgUse` kind; ``is_cut`` says whether
        the reading node is cut (which variant of a size or shape it reads).
        """
        if a in self.env:  # a recomputed tensor: pad it with clean rows, then read it
            if how == "materialise":
                return self.full(a, k)
            value, rows = self.env[a]
            value = _pad(value, rows, k, self.clean_in(a, self.forms[a]))
            if how == "cut":
                assert axis is not None
                return cut(value, axis, self.t)
            return value
        value = self.clean[a]
        if a in self.region and not tensorish(value):  # a size or shape of recomputed values
            return self.variant(a, is_cut, k)
        if how == "cut":
            assert axis is not None
            value = cut(value, axis, self.t)
        elif how == "own" and isinstance(self.forms.get(a), Cut):  # unchanged for these rows
            value = self.clean_in(a, self.forms[a])
        return _expand(value, self.layouts.get(a, "free"), k)

    def variant(self, node: fx.Node, is_cut: bool, k: int) -> Any:
        """A size or shape computed from recomputed values, cut or full, for ``k`` rows."""
        key = (node, is_cut, k)
        if key not in self.variants:
            how = "own" if is_cut else "materialise"
            self.variants[key] = self.executor.compute(
                node, lambda a: self.arg(a, k, how, None, is_cut), self.inputs
            )
        return self.variants[key]

    def rows_of(self, node: fx.Node) -> int:
        """How many rows a node is computed for: the most that any argument carries."""
        return max((self.env[a][1] for a in node.all_input_nodes if a in self.env), default=0)

    def natural(self, node: fx.Node, k: int) -> Any:
        """The mechanism of ``node`` for ``k`` rows, its arguments read per its recipe."""
        form = self.forms[node]
        is_cut = isinstance(form, Cut)
        recipe = self.suffix.recipes[node] if self.suffix is not None else None
        uses = recipe.args if recipe is not None else {}

        def lookup(a: fx.Node) -> Any:
            use = uses.get(a)
            if use is None:
                how = "own" if a in self.env else "clean"
                return self.arg(a, k, how, None, is_cut)
            return self.arg(a, k, use.how, use.axis, is_cut)

        def clean_prefix(a: fx.Node, axis: int) -> Any:
            return cut_prefix(self.clean[a], axis, self.t)

        return compute(self.executor, node, recipe, lookup, self.inputs, clean_prefix)


@dataclass(frozen=True)
class Batch:
    """A node's values for the first ``rows`` rows (in start order), in its form."""

    value: Any
    rows: int
    form: Form
    t: int


@dataclass(frozen=True)
class RowsRun:
    """What a staircase computed: each wanted node's batch, and the order of the rows.

    ``order[j]`` is the index (in the sets given) of the row in position ``j`` of every batch;
    rows past a batch's ``rows`` kept the node's clean value. ``peak_bytes`` is the most memory
    the batch's values held at once between two operations (what a memory budget bounds).
    """

    order: Sequence[int]
    size: int
    batches: Mapping[fx.Node, Batch]
    clean: Mapping[fx.Node, Any]
    peak_bytes: int = 0

    def per_row(self) -> list[dict[fx.Node, Any]]:
        """For each row, the value of each node it changed (a Partial where cut)."""
        out: list[dict[fx.Node, Any]] = [{} for _ in range(self.size)]
        for node, batch in self.batches.items():
            value = batch.value
            blocks = [value] if batch.rows == 1 else value.split(_batch_size(self.clean[node]))
            for j, block in enumerate(blocks):
                if isinstance(batch.form, Cut):
                    block = Partial(self.clean[node], block, batch.form.axis, batch.t)
                out[self.order[j]][node] = block
        return out

    def stacked(self, node: fx.Node, index: Any) -> tuple[list[int], Any] | None:
        """``value[index]`` of every row that changed ``node``, stacked; and those rows.

        Read from the suffix where the index names a position in it. ``None`` if no row
        changed the node.
        """
        batch = self.batches.get(node)
        if batch is None:
            return None
        clean = self.clean[node]
        size = _batch_size(clean)
        rows = [self.order[j] for j in range(batch.rows)]
        value = batch.value
        form = batch.form
        parts = list(index) if isinstance(index, tuple) else [] if index is None else [index]
        if isinstance(form, Cut):
            position = parts[form.axis] if len(parts) > form.axis else None
            inside = (
                isinstance(position, int)
                and not isinstance(position, bool)
                and all(p is not Ellipsis for p in parts[: form.axis + 1])
                and position % clean.shape[form.axis] >= batch.t
            )
            if inside:
                assert isinstance(position, int)
                parts[form.axis] = position % clean.shape[form.axis] - batch.t
            else:
                value = materialise(clean, value, form.axis, batch.t)
        if not clean.dim():  # a 0-d variable: one row
            return rows, value.unsqueeze(0)
        blocks = value.reshape(batch.rows, size, *value.shape[1:])  # (rows, *one row's shape)
        return rows, blocks[(slice(None), *parts)]


def run_rows(
    executor: Executor,
    inputs: Mapping[str, Any],
    clean: Mapping[fx.Node, Any],
    rows: Sequence[Row],
    names: Mapping[fx.Node, str],
    wanted: Collection[fx.Node],
    downstream: Callable[[frozenset[fx.Node]], frozenset[fx.Node]],
    *,
    layouts: Layouts | None = None,
    suffixes: Callable[..., SuffixPlan] | None = None,
) -> tuple[RowsRun, str]:
    """Run ``rows`` as one staircase and return the values of the ``wanted`` nodes.

    Parameters
    ----------
    executor : Executor
        Runs the graph.
    inputs, clean
        The context's inputs and every node's clean value.
    rows : sequence of Row
        From :func:`plan_rows`.
    names : mapping of node to str
        Each variable node's name (for messages).
    wanted : collection of torch.fx.Node
        The nodes whose values are returned (full values, one per row).
    downstream : callable
        The nodes that read a set of nodes.
    layouts : mapping, optional
        The batch layout of each node (:class:`~scmnet.tracing.engine.batched.Probe`); needed
        for more than one row.
    suffixes : callable, optional
        ``suffixes(starts, t, length, needed, constant)`` returns the
        :class:`~scmnet.tracing.engine.positions.SuffixPlan` of a position (cached by the
        caller); ``None`` runs every node in full.

    Returns
    -------
    RowsRun, str
        The batch of every ``wanted`` node the interventions may change (the others are
        clean), read per row (:meth:`RowsRun.per_row`: tensors, or
        :class:`~scmnet.tracing.engine.positions.Partial` values where only a suffix of
        positions was recomputed) or stacked (:meth:`RowsRun.stacked`); and how positions ran
        (``"all positions"`` or the suffix).
    """
    # rows that change nothing go last: no node is ever computed for them
    order = sorted(range(len(rows)), key=lambda i: (rows[i].start < 0, rows[i].start))
    ordered = [rows[i] for i in order]
    changed = frozenset(n for r in ordered for n in r.changed)
    clamps = frozenset(n for r in ordered for n in r.rules)
    region = frozenset(downstream(changed) | changed)
    constant = frozenset(n for n in clamps if all(r.constant_at(n) for r in ordered))
    needed = executor.upstream([n for n in wanted if n in region], within=region, stop=constant)
    suffix: SuffixPlan | None = None
    positions = "all positions"
    where: _Positions | str = (
        common_position(ordered, clean) if suffixes is not None else "no plan asked for"
    )
    if isinstance(where, str):
        positions = f"all positions ({where})"
    else:
        starts = {n: where.axes[n] for n in changed if n in where.axes}
        if len(starts) < len(changed):
            positions = "all positions (a changed variable has no position axis)"
        else:
            assert suffixes is not None
            try:
                suffix = suffixes(starts, where.t, where.length, needed, constant)
                _check_outputs(suffix, wanted, starts)
                positions = suffix.label
            except NoSuffixPlan as e:
                suffix, positions = None, f"all positions ({e})"
        if suffix is None:
            where = "no suffix plan"
    forms: dict[fx.Node, Form] = {}
    for node in needed:
        if node not in region:
            continue
        if suffix is None:
            forms[node] = FULL
        elif node in suffix.recipes:
            forms[node] = suffix.recipes[node].form
        elif node in changed and isinstance(where, _Positions):
            forms[node] = Cut(where.axes[node])
    run = _Run(executor, inputs, clean, layouts or {}, region, suffix, forms, {}, {}, {})
    for j, row in enumerate(ordered):
        for node in row.rules:
            run.touching.setdefault(node, []).append(j)
    steps = [
        n
        for n in sorted(needed, key=executor.position.__getitem__)
        if n in region and holds_tensors(clean, n)  # no dropped value recomputed to ask
    ]
    last_use = _last_uses(executor, steps, region, clean)
    keep = set(wanted)
    peak = held = extra = variants = 0  # bytes: the most held at once, in values, in variants
    finite: list[tuple[fx.Node, torch.Tensor, bool]] = []  # variables' rows, checked at the end
    versions: dict[fx.Node, int] = {}  # the intervened values' version counters
    ends: list[tuple[int, int, fx.Node]] = []  # held values by their last reader's position
    with torch.no_grad():
        for node in steps:
            _step(run, node, ordered, names, where if isinstance(where, _Positions) else None)
            if node in run.env:
                held += _bytes(run.env[node][0])
                if node in run.touching and isinstance(run.env[node][0], torch.Tensor):
                    versions[node] = run.env[node][0]._version
                if node not in keep:
                    heapq.heappush(ends, (last_use[node], executor.position[node], node))
            if len(run.variants) != variants:  # padded sizes and shapes: rare, counted anew
                variants = len(run.variants)
                extra = sum(_bytes(v) for v in run.variants.values())
            peak = max(peak, held + extra)
            if node in names and node in run.env:
                finite += _finite_rows(node, *run.env[node])
            here = executor.position[node]
            while ends and ends[0][0] <= here:
                done = heapq.heappop(ends)[2]
                _check_held(done, run.env[done][0], versions)
                held -= _bytes(run.env.pop(done)[0])  # read by nothing later: free its memory
    for node, (value, _) in run.env.items():
        _check_held(node, value, versions)
    check_finite(finite, ordered, order, names)
    batches = {
        node: Batch(run.env[node][0], run.env[node][1], run.forms[node], run.t)
        for node in wanted
        if node in run.env
    }
    return RowsRun(order, len(rows), batches, clean, peak), positions


def _check_held(node: fx.Node, value: Any, versions: Mapping[fx.Node, int]) -> None:
    """Raise if the intervened value of ``node`` was overwritten in place by one of its readers."""
    if node in versions and value._version != versions[node]:
        raise modified_in_place(node, intervened=True)


def _finite_rows(node: fx.Node, value: Any, rows: int) -> list[tuple[fx.Node, torch.Tensor, bool]]:
    """Whether each row's value of ``node`` is finite, on its device (no sync), and whether
    the flags are per row (else one flag for all).

    A row is finite where its largest magnitude is: the maximum propagates NaN and infinity,
    and costs a tenth of testing every element and reducing the flags.
    """
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        return []
    if value.dim() and value.shape[0] % rows == 0 and value.numel():
        return [(node, value.reshape(rows, -1).abs().amax(1).isfinite(), True)]
    return [(node, torch.isfinite(value).all().reshape(1), False)]


def check_finite(
    found: Sequence[tuple[fx.Node, torch.Tensor, bool]],
    rows: Sequence[Row],
    order: Sequence[int],
    names: Mapping[fx.Node, str],
) -> None:
    """Raise :class:`~scmnet.errors.NonFiniteValue` at the first variable with a NaN or inf.

    ``found`` holds each variable's per-row flags, in graph order; they are read in one
    transfer from the device.
    """
    if not found:
        return
    device = found[0][1].device  # a model on several devices: gathered on one first
    flags = torch.cat([f.to(device) for _, f, _ in found]).cpu()
    if bool(flags.all()):
        return
    at = 0
    for node, f, per_row in found:
        ok = flags[at : at + f.numel()]
        at += f.numel()
        if bool(ok.all()):
            continue
        which = "one of the intervention sets"
        if per_row:
            j = int((~ok).nonzero()[0])
            sites = "; ".join(
                f"{site} {rule.label()}" for items in rows[j].rules.values() for site, rule in items
            )
            which = f"intervention set {order[j]} ({sites or 'no intervention'})"
        raise NonFiniteValue(
            f"the value of {names[node]!r} is NaN or infinite in the run of {which}, the first "
            f"variable where that happens; "
            f"the clean run is finite there, so the intervention drives the model out of its "
            f"range: an effect through it would be NaN or meaningless. Check the value set"
        )


def _bytes(value: Any) -> int:
    """The bytes of a tensor (0 for sizes, shapes and other non-tensors)."""
    return value.nbytes if isinstance(value, torch.Tensor) else 0


def _last_uses(
    executor: Executor,
    steps: Sequence[fx.Node],
    region: Collection[fx.Node],
    clean: Mapping[fx.Node, Any],
) -> dict[fx.Node, int]:
    """The graph position after which nothing reads each node any more.

    A size or shape of a recomputed value is computed when it is read, so its readers count.
    """
    memo: dict[fx.Node, int] = {}

    def last(node: fx.Node) -> int:
        if node not in memo:
            memo[node] = -1
            found = -1
            for user in node.users:
                if user.op == "output":
                    continue
                found = max(found, executor.position[user])
                if user in region and not holds_tensors(clean, user):
                    found = max(found, last(user))
            memo[node] = found
        return memo[node]

    return {n: last(n) for n in steps}


def _uniform(
    rows: Sequence[Row], touching: Sequence[int], node: fx.Node, cut_axis: int | None, t: int
) -> tuple[tuple[Any, ...], torch.Tensor | None] | None:
    """The common site index and the stacked values where every touching row sets one value.

    That is the usual shape of an ablation sweep (each row sets, or zeroes, one position of one
    variable); the rows then take their values in one indexed assignment. The values are
    ``None`` where every row zeroes its site. ``None`` otherwise.
    """
    index: tuple[Any, ...] | None = None
    values = []
    for j in touching:
        items = rows[j].rules[node]
        if len(items) != 1:
            return None
        site, rule = items[0]
        if site.index is None or not isinstance(rule, Set | Zero):
            return None
        if cut_axis is not None:
            ((site, rule),) = _cut_rules(items, cut_axis, t)
        here = site.index if isinstance(site.index, tuple) else (site.index,)
        if index is None:
            index = here
        elif here != index:
            return None
        value = rule.value if isinstance(rule, Set) else None
        if value is not None and not isinstance(value, torch.Tensor):
            return None
        values.append(value)
    if index is None or any(isinstance(p, torch.Tensor) or p is Ellipsis for p in index):
        return None
    if all(v is None for v in values):
        return index, None  # zeros: filled where they go, nothing made on the host
    tensors = [v for v in values if v is not None]
    if len(tensors) < len(values) or len({tuple(v.shape) for v in tensors}) != 1:
        return None
    return index, torch.stack(tensors)


def _batch_size(value: torch.Tensor) -> int:
    """The rows of one block: the clean value's leading axis (a 0-d value has one)."""
    return int(value.shape[0]) if value.dim() else 1


def _check_outputs(
    suffix: SuffixPlan, wanted: Collection[fx.Node], starts: Mapping[fx.Node, int]
) -> None:
    for node in wanted:
        if node not in suffix.region:
            continue
        form = Cut(starts[node]) if node in starts else suffix.recipes[node].form
        if isinstance(form, Cut) and form.axis not in suffix.confined.get(node, ()):
            raise NoSuffixPlan(f"the output {node.name!r} changes before position {suffix.t}")


def _step(
    run: _Run,
    node: fx.Node,
    rows: Sequence[Row],
    names: Mapping[fx.Node, str],
    where: _Positions | None,
) -> None:
    """Compute ``node`` for the rows that have joined, then apply their interventions."""
    k_args = run.rows_of(node)
    touching = run.touching.get(node, [])
    k = max(k_args, max(touching, default=-1) + 1)
    if k == 0:
        return
    if not touching:
        run.env[node] = (run.natural(node, k_args), k_args)
        return
    form = run.forms[node]
    clean_form = run.clean_in(node, form)
    needs_natural = len(touching) < k or any(not rows[j].constant_at(node) for j in touching)
    natural = run.natural(node, k_args) if needs_natural and k_args else None
    size = _batch_size(run.clean[node])
    cut_axis = form.axis if where is not None and isinstance(form, Cut) else None
    uniform = _uniform(rows, touching, node, cut_axis, where.t if where is not None else 0)
    if uniform is not None and clean_form.dim():  # one indexed value per row: one assignment
        index, values = uniform
        base = natural if natural is not None else clean_form[:0]
        k_base = k_args if natural is not None else 0
        out = _pad(base, k_base, k, clean_form)
        if k_base == k:  # not padded (a new tensor): copy before assigning into it
            out = out.clone()
        blocks_view = out.view(k, size, *out.shape[1:])
        at = (row_index(touching, out.device), *index)
        if values is None:
            blocks_view[at] = 0
        else:
            target = blocks_view[(0, *index)]
            values = values.to(dtype=out.dtype, device=out.device)
            values = values.reshape(
                len(touching), *[1] * (target.dim() - values.dim() + 1), *values.shape[1:]
            )
            blocks_view[at] = values.expand(len(touching), *target.shape)
        run.env[node] = (out, k)
        return

    def natural_block(j: int) -> Any:
        if natural is not None and j < k_args:
            return natural if k_args == 1 else natural[j * size : (j + 1) * size]
        return clean_form.clone()  # a rule that works in place must not touch the cache

    blocks = []
    for j in range(k):
        row = rows[j]
        items = row.rules.get(node)
        if items is None:
            blocks.append(natural_block(j))
            continue
        if where is not None and isinstance(form, Cut):
            items = _cut_rules(items, form.axis, where.t)
        value = Interventions(items).apply_to(names[node], lambda j=j: natural_block(j))  # type: ignore[misc]
        blocks.append(check_result(names[node], value, clean_form))
    run.env[node] = (torch.cat(blocks) if len(blocks) > 1 else blocks[0], k)
