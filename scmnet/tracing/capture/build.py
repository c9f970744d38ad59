"""From a captured graph to a verified, indexed trace: :class:`TraceSource`.

:func:`verify` runs the example through a captured graph and compares the outputs with the
eager model's: a graph that does not reproduce the model is never analysed.
:func:`make_source` indexes the graph once (module calls, input-dependent nodes, example
shapes); choosing the variables on it is :mod:`scmnet.tracing.variables`' part.

Examples
--------
>>> import torch
>>> from torch import nn
>>> from scmnet.tracing.capture.frontends import bind_example, capture
>>> net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)).eval()
>>> bound = bind_example(net, torch.zeros(1, 2))
>>> cap = capture(net, bound)
>>> values, diff = verify(net, cap, bound.tensors, [net(torch.zeros(1, 2))])
>>> diff
0.0
>>> source = make_source(net, cap, values, dropped=(), max_abs_diff=diff, cache_size=8)
>>> source.exogenous, [c.key for c in source.index.children("")]
(('input',), ['0', '1', '2'])
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import torch
from torch import fx, nn

from scmnet.tracing.capture.calls import CallIndex
from scmnet.tracing.capture.collapse import input_dependent
from scmnet.tracing.capture.frontends import Capture
from scmnet.tracing.capture.records import TraceInfo
from scmnet.tracing.capture.source import InputSpec, TensorMeta, TraceSource
from scmnet.tracing.engine.executor import Executor

__all__ = ["make_source", "verify"]

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
    executor = Executor(cap.graph_module, cap.feeds, model)
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
    notes: tuple[str, ...] = (),
) -> TraceSource:
    """Index a verified, cleaned-up graph: module calls, dependencies, example shapes.

    ``notes`` are recorded in :attr:`TraceInfo.notes` (what of the model is not a variable).
    """
    gm = cap.graph_module
    executor = Executor(cap.graph_module, cap.feeds, model)
    meta: dict[str, TensorMeta | None] = {}
    for node in executor.order:
        value = values.get(node.name)
        meta[node.name] = (
            (tuple(value.shape), value.dtype) if isinstance(value, torch.Tensor) else None
        )
    inputs = {f.name: executor.node(f.node) for f in cap.feeds if f.kind == "input"}
    info = TraceInfo(
        cap.frontend, cap.failures, tuple(dropped), len(executor.order) - len(cap.feeds),
        max_abs_diff, notes=notes,
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
