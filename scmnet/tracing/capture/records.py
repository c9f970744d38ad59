"""Typed records of what a traced model's queries rely on.

Tracing records, for every node of the causal graph, where it comes from in the network and what
its values look like (:class:`NodeRecord`), for the whole trace how it was made
(:class:`TraceInfo`, with the :class:`~scmnet.tracing.BatchingInfo` of how
:meth:`~scmnet.TracedModel.evaluate_many` last ran its intervention sets). They are
frozen dataclasses, attached to the graph
nodes as the attribute ``record``, so that a query can be checked against them and a picture
can label nodes without string-keyed metadata.

Examples
--------
>>> import torch
>>> from scmnet.toys.modules import ErasureNet
>>> from scmnet.tracing import trace
>>> m = trace(ErasureNet().eval(), torch.zeros(3))
>>> r = m.graph.nodes["f"]["record"]
>>> r.module_path, r.shape, r.parents
('f', (3,), ('x',))
>>> m.info.frontend
'fx'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from scmnet.tracing.engine.batched import BatchingInfo

__all__ = ["NodeRecord", "TraceInfo"]


@dataclass(frozen=True)
class NodeRecord:
    """Where a variable of a traced model comes from, and the shape of its example value.

    Attributes
    ----------
    name : str
        The variable's name in the causal graph.
    kind : {"exogenous", "endogenous"}
        An input of the network, or a variable computed by it.
    selected_as : {"input", "module", "op", "output"}
        An input; the output of a module call; a single operation; the model's output.
    module_path : str
        The module that computed it (``""`` for the model's own code or an input).
    module_type : str
        That module's class, qualified.
    call : str
        The module call's key (the path, plus ``"@k"`` for the k-th repeated call).
    op : str
        The graph operation that produces the value (``"aten.linear.default"``,
        ``"call_module:fc"``, ``"placeholder"``).
    node : str
        The name of that node in the traced ``torch.fx`` graph.
    shape : tuple of int
        The value's shape in the example run (dynamic dimensions may differ later).
    dtype : torch.dtype
        The value's dtype.
    parents : tuple of str
        The variable's parents in the unintervened causal graph (inputs first).
    """

    name: str
    kind: Literal["exogenous", "endogenous"]
    selected_as: Literal["input", "module", "op", "output"]
    module_path: str
    module_type: str
    call: str
    op: str
    node: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    parents: tuple[str, ...]


@dataclass(frozen=True)
class TraceInfo:
    """How a model was traced.

    Attributes
    ----------
    frontend : {"fx", "export"}
        The tracer whose graph runs.
    failures : tuple of str
        Why earlier front ends were not used.
    dropped : tuple of str
        Graph nodes removed as no-ops (conversions that convert nothing, eval dropout).
    operations : int
        The number of operations in the graph that runs.
    max_abs_diff : float
        The largest difference between the traced and the eager outputs on the example
        (0.0 when the trace reproduces the model exactly).
    batching : BatchingInfo
        How the last ``evaluate_many`` call ran (filled in by
        :attr:`TracedModel.info <scmnet.TracedModel.info>`).
    notes : tuple of str
        What of the model is not a variable, and why: output leaves that are not tensors
        (``"output[1] is None, ..."``), module calls that return no tensor.
    """

    frontend: Literal["fx", "export"]
    failures: tuple[str, ...]
    dropped: tuple[str, ...]
    operations: int
    max_abs_diff: float
    batching: BatchingInfo = field(default_factory=BatchingInfo)
    notes: tuple[str, ...] = ()
