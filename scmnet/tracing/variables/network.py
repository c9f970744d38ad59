"""A trace with its variables chosen: :class:`TracedNetwork`, and :func:`build_network`.

:func:`build_network` chooses the variables of a :class:`~scmnet.tracing.capture.source.TraceSource`
(:func:`~scmnet.tracing.variables.selectors.resolve`), collapses the other operations into
their mechanisms (:func:`~scmnet.tracing.capture.collapse.collapse`), records every node
(:class:`~scmnet.tracing.NodeRecord`) and draws the causal graph. A
:class:`~scmnet.tracing.TracedModel` adds interventions to the network it gets; choosing other
variables on the same trace builds another network from the same source.

Examples
--------
>>> import torch
>>> from torch import nn
>>> from scmnet.tracing import ByType, trace
>>> m = trace(nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)).eval(), torch.zeros(1, 2))
>>> network = build_network(m.network.source, ByType(nn.Linear))
>>> tuple(network.variables), network.records["2"].parents
(('0', '2'), ('0',))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import torch
from torch import fx

from scmnet.errors import InvalidContext, InvalidSelection
from scmnet.tracing.capture.collapse import collapse
from scmnet.tracing.capture.records import NodeRecord
from scmnet.tracing.capture.source import TraceSource
from scmnet.tracing.engine.executor import Executor
from scmnet.tracing.variables.selectors import SelectionContext, Selector, resolve

__all__ = ["TracedNetwork", "build_graph", "build_network"]


@dataclass(frozen=True, eq=False)
class TracedNetwork:
    """A traced model with its variables chosen; shared by all its intervened versions.

    Built by :func:`build_network`; a :class:`~scmnet.tracing.TracedModel` adds interventions
    to it.

    Attributes
    ----------
    source : TraceSource
        The traced graph, its clean-run cache and what the inputs must look like.
    variables : mapping of str to torch.fx.Node
        Each endogenous variable's node, in topological order.
    records : mapping of str to NodeRecord
        One record per node of the causal graph.
    outputs : tuple of str
        The variables that carry the model's outputs, in the order the model returns them.
    graph : networkx.DiGraph
        The unintervened causal graph (frozen).
    dataset : tuple of dict, optional
        Contexts that :meth:`~scmnet.tracing.TracedModel.sample_contexts` draws from.
    notes : tuple of str
        Module calls the selection found but could not make variables, and why.
    """

    source: TraceSource
    variables: Mapping[str, fx.Node]
    records: Mapping[str, NodeRecord]
    outputs: tuple[str, ...]
    graph: nx.DiGraph
    dataset: tuple[dict[str, Any], ...] | None = None
    notes: tuple[str, ...] = ()
    _downstream: dict[frozenset[fx.Node], frozenset[fx.Node]] = field(
        init=False, repr=False, default_factory=dict
    )

    @property
    def inputs(self) -> Mapping[str, fx.Node]:
        """Each exogenous variable's placeholder."""
        return self.source.inputs

    @property
    def executor(self) -> Executor:
        """Runs the traced graph."""
        return self.source.executor

    def downstream(self, nodes: frozenset[fx.Node]) -> frozenset[fx.Node]:
        """The graph nodes that read ``nodes`` (memoised per set)."""
        found = self._downstream.get(nodes)
        if found is None:
            found = frozenset(self.executor.downstream(nodes))
            if len(self._downstream) > 512:
                self._downstream.clear()
            self._downstream[nodes] = found
        return found


def _op_label(node: fx.Node) -> str:
    """E.g. ``"aten.linear.default"``, ``"torch.where"``, ``"call_method:clone"``."""
    if node.op != "call_function":
        return f"{node.op}:{node.target}"
    if isinstance(node.target, torch._ops.OpOverload):
        return str(node.target)
    module = getattr(node.target, "__module__", None) or "builtins"
    name = getattr(node.target, "__qualname__", None) or getattr(node.target, "__name__", "?")
    return f"{module.removeprefix('_')}.{name}"


def build_network(
    source: TraceSource,
    variables: Selector | str | Sequence[Selector | str] | None,
    dataset: Sequence[Mapping[str, Any]] | None = None,
) -> TracedNetwork:
    """Choose the variables of a traced graph and build its causal graph.

    Raises
    ------
    InvalidSelection
        If the selection is empty, not of the expected size, or selects a non-tensor value.
    InvalidContext
        If a context of the data set does not fit the trace.
    """
    gm = source.executor.graph_module
    tensors = frozenset(name for name, meta in source.meta.items() if meta is not None)
    context = SelectionContext.build(gm, source.index, source.dependent, source.outputs, tensors)
    candidates = resolve(variables, context)
    for c in candidates:
        if source.meta.get(c.node) is None:
            raise InvalidSelection(
                f"the selected variable {c.name!r} (graph node {c.node!r}) is not a tensor; "
                f"variables must be tensors"
            )
    names = {c.node: c.name for c in candidates}
    inputs = {node.name: name for name, node in source.inputs.items()}
    parents = collapse(gm, names, inputs)
    records: dict[str, NodeRecord] = {}
    for name, node in source.inputs.items():
        shape, dtype = source.meta[node.name] or ((), torch.float32)
        records[name] = NodeRecord(
            name, "exogenous", "input", "", "", "", "placeholder", node.name, shape, dtype, ()
        )
    for c in candidates:
        call = source.index[c.call]
        shape, dtype = source.meta[c.node] or ((), torch.float32)
        records[c.name] = NodeRecord(
            c.name, "endogenous", c.kind, call.path, call.module_type, call.key,
            _op_label(source.executor.node(c.node)), c.node, shape, dtype, parents[c.name],
        )  # fmt: skip
    network = TracedNetwork(
        source=source,
        variables={c.name: source.executor.node(c.node) for c in candidates},
        records=records,
        outputs=tuple(names[n] for _, n in source.outputs if n in names),
        graph=build_graph(type(source.model).__name__, records),
        notes=tuple(dict.fromkeys(context.notes)),
    )
    if dataset is None:
        return network
    return dataclasses.replace(network, dataset=_contexts(source, dataset))


def _contexts(
    source: TraceSource, dataset: Sequence[Mapping[str, Any]]
) -> tuple[dict[str, Any], ...]:
    if isinstance(dataset, Mapping) or not isinstance(dataset, Sequence):
        raise InvalidContext(
            f"dataset must be a sequence of contexts (mappings from input names to tensors), "
            f"got {type(dataset).__name__}"
        )
    if not dataset:
        raise InvalidContext("the data set is empty; give at least one context")
    contexts = []
    for i, context in enumerate(dataset):
        try:
            source.context_inputs(context)
        except InvalidContext as e:
            raise InvalidContext(f"context {i} of the data set: {e}") from e
        contexts.append(dict(context))
    return tuple(contexts)


def build_graph(name: str, records: Mapping[str, NodeRecord]) -> nx.DiGraph:
    """The frozen causal graph of a trace from its records (inputs, variables, parents)."""
    g = nx.DiGraph(name=name)
    for record in records.values():
        g.add_node(record.name, kind=record.kind, intervention=None, record=record)
    for record in records.values():
        g.add_edges_from((p, record.name) for p in record.parents)
    return nx.freeze(g)
