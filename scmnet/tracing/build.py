"""From a verified trace to a causal model: sources, variables, edges and records.

:func:`verify` runs the example through a captured graph and compares the outputs with the
eager model's: a graph that does not reproduce the model is never analysed.
:func:`make_source` indexes the graph once (module calls, input-dependent nodes, example
shapes); :func:`build_network` chooses the variables on it
(:func:`~scmnet.tracing.variables.resolve`), collapses the other operations into their mechanisms
(:func:`~scmnet.tracing.collapse.collapse`), and records every node
(:class:`~scmnet.tracing.records.NodeRecord`).

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
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import torch
from torch import fx, nn

from scmnet.errors import InvalidContext, InvalidSelection
from scmnet.tracing.calls import CallIndex
from scmnet.tracing.collapse import collapse, input_dependent
from scmnet.tracing.executor import Executor
from scmnet.tracing.frontends import Capture
from scmnet.tracing.network import TracedNetwork, build_graph
from scmnet.tracing.records import NodeRecord, TraceInfo
from scmnet.tracing.source import InputSpec, TensorMeta, TraceSource
from scmnet.tracing.variables import SelectionContext, Selector, resolve

__all__ = ["build_network", "make_source", "verify"]

RTOL, ATOL = 1e-5, 1e-6
"""How far a traced output may be from the eager one (float32 rounding; usually it is 0)."""


def verify(
    model: nn.Module, cap: Capture, inputs: Mapping[str, torch.Tensor], expected: list[Any]
) -> tuple[dict[str, Any], float | None]:
    """Run the example through the graph and compare its outputs with the eager ones.

    Parameters
    ----------
    model : torch.nn.Module
    cap : Capture
    inputs : mapping of str to tensor
        The example's tensor inputs.
    expected : list
        The tensor leaves of the eager output, in pytree order.

    Returns
    -------
    values : dict
        Every node's value in the example run, by node name.
    max_abs_diff : float or None
        The largest difference from the eager outputs, or ``None`` if they differ in number,
        shape, dtype, or by more than ``RTOL``/``ATOL``.
    """
    executor = Executor(cap, model)
    with torch.no_grad():
        run = executor.run(inputs)
    values = {node.name: value for node, value in run.items()}
    got = [values[node] for _, node in cap.outputs if isinstance(values[node], torch.Tensor)]
    if len(got) != len(expected):
        return values, None
    diff = 0.0
    for a, b in zip(got, expected, strict=True):
        if a.shape != b.shape or a.dtype != b.dtype:
            return values, None
        if not torch.equal(a, b):
            if not torch.allclose(a, b, rtol=RTOL, atol=ATOL):
                return values, None
            diff = max(diff, float((a.double() - b.double()).abs().max()))
    return values, diff


def make_source(
    model: nn.Module,
    cap: Capture,
    values: Mapping[str, Any],
    *,
    dropped: Collection[str],
    max_abs_diff: float,
    cache_size: int,
) -> TraceSource:
    """Index a verified, cleaned-up graph: module calls, dependencies, example shapes."""
    gm = cap.graph_module
    executor = Executor(cap, model)
    meta: dict[str, TensorMeta | None] = {}
    for node in executor.order:
        value = values.get(node.name)
        meta[node.name] = (
            (tuple(value.shape), value.dtype) if isinstance(value, torch.Tensor) else None
        )
    inputs = {f.name: executor.node(f.node) for f in cap.feeds if f.kind == "input"}
    info = TraceInfo(
        cap.frontend, cap.failures, tuple(dropped), len(executor.order) - len(cap.feeds),
        max_abs_diff,
    )  # fmt: skip
    return TraceSource(
        model=model,
        executor=executor,
        index=CallIndex.build(gm, model),
        dependent=input_dependent(gm, {n.name for n in inputs.values()}),
        meta=meta,
        inputs=inputs,
        input_specs=_input_specs(cap, inputs, meta),
        outputs=tuple((label, n) for label, n in cap.outputs if meta.get(n) is not None),
        info=info,
        cache_size=cache_size,
    )


def _input_specs(
    cap: Capture, inputs: Mapping[str, fx.Node], meta: Mapping[str, TensorMeta | None]
) -> dict[str, InputSpec]:
    specs: dict[str, InputSpec] = {}
    for name, node in inputs.items():
        shape, dtype = meta[node.name] or ((), torch.float32)
        if cap.frontend == "fx":
            specs[name] = (dtype, None)  # torch.fx graphs are shape-generic
            continue
        fake = node.meta.get("val")
        dims = tuple(getattr(fake, "shape", shape))
        specs[name] = (dtype, tuple(d if isinstance(d, int) else None for d in dims))
    return specs


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
    context = SelectionContext.build(gm, source.index, source.dependent, source.outputs)
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
