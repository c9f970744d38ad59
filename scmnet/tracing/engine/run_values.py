"""The node values of a run of a traced graph: a few stored, the rest recomputed when read.

Every query of a context reads its **clean run**, so the clean run is kept. Keeping every
node's value costs the whole graph's activations for the context: on a language model, memory
in proportion to the prompt length times the number of operations (about 2 MiB per token on
SmolLM2-135M, most of it in the elementwise chains inside each layer). Most of those values are
read by one other operation only. :func:`run_values` runs the graph like
:meth:`Executor.run <scmnet.tracing.engine.executor.Executor.run>` and drops such a value once
its reader has run; a :class:`RunValues` recomputes a dropped value from its arguments if it
is read again (rematerialisation, as activation checkpointing does), and remembers the last
few it recomputed.

Stored, always: the inputs and parameters, values that are not tensors, values read by two or
more operations or returned by the graph, values whose storage is already stored (a view), the
nodes asked for (``keep``, e.g. the variables) and overridden nodes. A chain of dropped values
is cut every :data:`DEPTH` operations, so reading any value recomputes at most that many
operations back. A graph with an in-place or random operation keeps every value (recomputing
would not give the value the run had). A context's clean run also keeps, first come, as many of
the values it could drop as fit in :data:`SPARE_BYTES`: a short prompt is then never recomputed,
and a long one costs that much more memory than the leanest run.

Examples
--------
>>> import torch
>>> from torch import nn
>>> from scmnet.tracing import trace
>>> _ = torch.manual_seed(0)
>>> net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh()).eval()
>>> ex = trace(net, torch.zeros(1, 3)).network.source.executor
>>> u = {"input": torch.randn(1, 3)}
>>> lean, full = run_values(ex, u), ex.run(u)
>>> len(lean.stored) < len(full)  # the Linear outputs are read once: dropped
True
>>> all(torch.equal(lean[n], full[n]) for n in full)  # and recomputed, bit for bit
True
"""

from __future__ import annotations

import operator
import weakref
from collections import OrderedDict
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import fx

from scmnet.tracing.engine.executor import Executor, Override, modified_in_place

__all__ = ["DEPTH", "SPARE_BYTES", "RunValues", "holds_tensors", "run_values", "tensorish"]

DEPTH = 6
"""The most operations a read of a dropped value recomputes back to stored values."""

SPARE_BYTES = 64 * 2**20
"""What a clean run keeps of the values it could drop (first come), to recompute less.

A short prompt's whole run fits (SmolLM2-135M: about 2 MiB per token, so up to about 30
tokens), and the queries read it without recomputing anything (a zero-ablation query of
SmolLM2 at 8 tokens: 0.33 s to 0.28 s, interleaved); a long prompt's run stores this much
more than the leanest."""

_MEMO = 32  # recomputed values remembered (reads in graph order then recompute each once)

_IN_PLACE_FUNCTIONS = frozenset(
    (
        operator.iadd,
        operator.iand,
        operator.iconcat,
        operator.ifloordiv,
        operator.ilshift,
        operator.imatmul,
        operator.imod,
        operator.imul,
        operator.ior,
        operator.ipow,
        operator.irshift,
        operator.isub,
        operator.itruediv,
        operator.ixor,
        operator.setitem,
        operator.delitem,
    )
)
_RANDOM = ("rand", "dropout", "bernoulli", "normal", "multinomial", "poisson", "empty")


def _in_place(name: str) -> bool:
    base = name.split(".")[0]
    return base.endswith("_") and not base.endswith("__")


def _dropout_off(node: fx.Node) -> bool:
    """Whether a dropout call has ``training``/``train`` given as ``False`` (the identity)."""
    given = node.kwargs.get("training", node.kwargs.get("train"))
    if given is None and len(node.args) > 2:
        given = node.args[2]
    return given is False


def _no_dropout(node: fx.Node, op: torch._ops.OpOverload) -> bool:
    """Whether a seeded operation runs without randomness here: an attention or dropout whose
    dropout probability is given as 0 or whose ``train`` flag is ``False``."""
    names = [a.name for a in op._schema.arguments]
    bound = dict(zip(names, node.args, strict=False)) | dict(node.kwargs)
    if "dropout_p" in names:
        return bool(bound.get("dropout_p", 0.0) == 0.0)
    return "train" in bound and bound["train"] is False


def _replayable(node: fx.Node, executor: Executor) -> bool:
    """Whether recomputing ``node`` from its arguments' values gives the value it had."""
    target = node.target
    if "dropout" in str(getattr(target, "__name__", target)).lower() and _dropout_off(node):
        return True
    if node.op == "call_function":
        if isinstance(target, torch._ops.OpOverload):
            if target._schema.is_mutable:
                return False
            seeded = torch.Tag.nondeterministic_seeded in target.tags
            if seeded or any(word in str(target) for word in _RANDOM):
                return _no_dropout(node, target)
            return True
        if target in _IN_PLACE_FUNCTIONS:
            return False
        name = str(getattr(target, "__name__", target))
    elif node.op == "call_method":
        name = str(target)
    elif node.op == "call_module":
        module = executor.graph_module.get_submodule(str(target))
        random = module.training and "Dropout" in type(module).__name__
        return not (getattr(module, "inplace", False) or random)
    else:
        return True
    return not _in_place(name) and not any(word in name.lower() for word in _RANDOM)


_PURE: dict[int, tuple[fx.Graph, bool]] = {}


def replayable(executor: Executor) -> bool:
    """Whether every operation of the graph can be recomputed to the value it had (no
    in-place or random operation); remembered per graph."""
    graph = executor.graph_module.graph
    found = _PURE.get(id(graph))
    if found is None or found[0] is not graph:
        found = (graph, all(_replayable(n, executor) for n in executor.order))
        _PURE[id(graph)] = found
    return found[1]


class RunValues(Mapping[fx.Node, Any]):
    """The values of the nodes of a run, read like a dict (see the module docs).

    Build one with :func:`run_values`. A node of the run reads as its value, stored or
    recomputed; any other node reads from ``base`` (the clean run an intervened run starts
    from), and is not one of its keys.
    """

    def __init__(
        self,
        executor: Executor,
        inputs: Mapping[str, Any],
        stored: dict[fx.Node, Any],
        dropped: Collection[fx.Node],
        base: Mapping[fx.Node, Any] | None = None,
    ) -> None:
        self._executor = executor
        self._inputs = inputs
        self._stored = stored
        self._dropped = frozenset(dropped)
        self._base = base
        self._pinned: set[fx.Node] = set()
        self._memo: OrderedDict[fx.Node, Any] = OrderedDict()

    @property
    def stored(self) -> Mapping[fx.Node, Any]:
        """The values held (the others are recomputed when read)."""
        return self._stored

    @property
    def stored_bytes(self) -> int:
        """The bytes of the distinct tensor storages held."""
        storages = {
            t.untyped_storage().data_ptr(): t.untyped_storage().nbytes()
            for v in self._stored.values()
            for t in _tensors(v)
        }
        return sum(storages.values())

    def pin(self, nodes: Collection[fx.Node]) -> None:
        """Store the values of ``nodes`` once they are next computed (the variables a model
        reads on every query)."""
        self._pinned.update(n for n in nodes if n in self._dropped)

    def __getitem__(self, node: fx.Node) -> Any:
        if node in self._stored:
            return self._stored[node]
        if node in self._dropped:
            if node in self._memo:
                self._memo.move_to_end(node)
                return self._memo[node]
            with torch.no_grad():
                value = self._executor.compute(node, self.__getitem__, self._inputs)
            if node in self._pinned:
                self._stored[node] = value
            else:
                self._memo[node] = value
                if len(self._memo) > _MEMO:
                    self._memo.popitem(last=False)
            return value
        if self._base is not None:
            return self._base[node]
        raise KeyError(node)

    def holds_tensors(self, node: fx.Node) -> bool:
        """Whether ``node``'s value is a tensor or a sequence holding one, without recomputing
        it (only tensors are dropped)."""
        if node in self._dropped:
            return True
        if node in self._stored:
            return tensorish(self._stored[node])
        if self._base is not None:
            return holds_tensors(self._base, node)
        raise KeyError(node)

    def __contains__(self, node: object) -> bool:
        return node in self._stored or node in self._dropped

    def __iter__(self) -> Iterator[fx.Node]:
        yield from self._stored
        yield from self._dropped

    def __len__(self) -> int:
        return len(self._stored) + len(self._dropped)


def tensorish(value: Any) -> bool:
    """A tensor, or a tuple/list holding at least one tensor."""
    if isinstance(value, torch.Tensor):
        return True
    return isinstance(value, tuple | list) and any(isinstance(v, torch.Tensor) for v in value)


def holds_tensors(values: Mapping[fx.Node, Any], node: fx.Node) -> bool:
    """Whether ``values[node]`` is :func:`tensorish`; a :class:`RunValues` answers without
    recomputing a dropped value."""
    if isinstance(values, RunValues):
        return values.holds_tensors(node)
    return tensorish(values[node])


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _tensors(v)


_Layout = tuple[
    Sequence[fx.Node],
    dict[fx.Node, int],
    dict[fx.Node, tuple[fx.Node, ...]],
    frozenset[fx.Node],
]
_FULL_RUNS: weakref.WeakKeyDictionary[Executor, _Layout] = weakref.WeakKeyDictionary()


def _layout(executor: Executor, nodes: Collection[fx.Node] | None) -> _Layout:
    """What a run of ``nodes`` (default: all, kept per executor) reads, whatever the values:
    the nodes in graph order, the step after which no node of the run reads each,
    each one's arguments in the run, and the nodes that one other operation of the run reads
    (and that are not inputs), the ones it may drop."""
    if nodes is None and executor in _FULL_RUNS:
        return _FULL_RUNS[executor]
    position = executor.position
    order = executor.order if nodes is None else sorted(nodes, key=position.__getitem__)
    inside = frozenset(order)
    last_use = {n: max((position[u] for u in n.users if u in inside), default=-1) for n in order}
    arguments = {n: tuple(a for a in n.all_input_nodes if a in inside) for n in order}
    once = frozenset(
        n
        for n in order
        if n.op not in ("placeholder", "get_attr")
        and len(n.users) == 1
        and all(u in inside for u in n.users)
    )
    layout = (order, last_use, arguments, once)
    if nodes is None:
        _FULL_RUNS[executor] = layout
    return layout


def run_values(
    executor: Executor,
    inputs: Mapping[str, Any],
    *,
    base: Mapping[fx.Node, Any] | None = None,
    nodes: Collection[fx.Node] | None = None,
    overrides: Mapping[fx.Node, Override] | None = None,
    keep: Collection[fx.Node] = frozenset(),
    spare_bytes: int = 0,
) -> RunValues:
    """Run ``nodes`` (default: all) in graph order, storing only what cannot be recomputed
    cheaply (see the module docs), and values it could drop while they fit in ``spare_bytes``.

    Parameters
    ----------
    executor : Executor
        Runs the graph.
    inputs : mapping of str to value
        The context.
    base : mapping of node to value, optional
        Values of the nodes that are not run (the clean run of an intervened run).
    nodes : collection of torch.fx.Node, optional
        The nodes to run; every argument they read must be run too or be in ``base``.
    overrides : mapping of node to Override, optional
        As :meth:`Executor.run <scmnet.tracing.engine.executor.Executor.run>`; an overridden
        node's value is stored.
    keep : collection of torch.fx.Node
        Nodes whose values are stored whatever their readers.
    spare_bytes : int
        Values the run could drop are stored anyway, in graph order, while they total at most
        this many bytes (:data:`SPARE_BYTES` for a context's clean run; 0: the leanest run).

    Returns
    -------
    RunValues
        Reads as the dict :meth:`Executor.run` returns.
    """
    hooks: Mapping[fx.Node, Override] = overrides if overrides is not None else {}
    fallback: Mapping[fx.Node, Any] = base if base is not None else {}
    order, last_use, arguments, once = _layout(executor, nodes)
    everything = not replayable(executor)
    keep = frozenset(keep)
    stored: dict[fx.Node, Any] = {}
    live: dict[fx.Node, Any] = {}  # dropped values still to be read by the run
    dropped: set[fx.Node] = set()
    depth: dict[fx.Node, int] = {}  # operations back to stored values
    storages: set[int] = set()
    ends: dict[int, list[fx.Node]] = {}
    versions: dict[fx.Node, int] = {}

    def lookup(n: fx.Node) -> Any:
        if n in live:
            return live[n]
        if n in stored:
            return stored[n]
        return fallback[n]

    def natural(n: fx.Node) -> Any:
        return lambda: executor.compute(n, lookup, inputs)

    for step, node in enumerate(order):
        hook = hooks.get(node)
        value = executor.compute(node, lookup, inputs) if hook is None else hook(natural(node))
        if isinstance(value, torch.Tensor):
            versions[node] = value._version
        back = 1 + max([depth.get(a, 0) for a in arguments[node]], default=0)
        drop = (
            not everything
            and hook is None
            and node in once
            and node not in keep
            and isinstance(value, torch.Tensor)
            and back <= DEPTH
            and value.untyped_storage().data_ptr() not in storages
        )
        if drop and spare_bytes:
            size = value.nbytes
            if size <= spare_bytes:  # it fits: stored, never recomputed
                spare_bytes -= size
                drop = False
        if drop:
            live[node] = value
            depth[node] = back
            ends.setdefault(last_use[node], []).append(node)
        else:
            stored[node] = value
            storages.update(t.untyped_storage().data_ptr() for t in _tensors(value))
        for done in ends.pop(step, ()):
            del live[done]
            dropped.add(done)
    for rest in ends.values():  # read by nodes after the run, if any
        for n in rest:
            stored[n] = live.pop(n)
    for node, version in versions.items():  # a kept value overwritten by an operation reading it
        checked = node in hooks or not everything  # a graph's own in-place operations are known
        if checked and node in stored and stored[node]._version != version:
            raise modified_in_place(node, intervened=node in hooks)
    return RunValues(executor, inputs, stored, dropped, base)
