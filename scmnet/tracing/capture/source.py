"""What tracing produced for one model: the verified graph, its contexts and clean runs.

A :class:`TraceSource` holds everything about a traced model that does not depend on which
nodes are variables: the graph and its :class:`~scmnet.tracing.engine.executor.Executor`, the
module calls, which nodes depend on input values, the shape and dtype of every node in the
example run, what the inputs must look like -- and the cache of **clean runs**. A clean run
executes the whole graph for one context and keeps every node's value (storing what cannot be
recomputed cheaply: :mod:`~scmnet.tracing.engine.run_values`); it is cached in a small
LRU keyed by the identity and version of the context's tensors and invalidated when a parameter
or buffer of the model changes in place. It also holds the
:class:`~scmnet.tracing.engine.batched.Batcher` that runs many intervention sets as one batch
(and remembers whether the graph can). Choosing other variables
(:meth:`~scmnet.tracing.TracedModel.with_variables`) reuses the source, its caches included.

Examples
--------
>>> import torch
>>> import scmnet as sn
>>> from scmnet.tracing import trace
>>> source = trace(sn.toys.erasure_module(), torch.zeros(2)).network.source
>>> source.exogenous, source.meta["neg"]
(('u',), ((2,), torch.float32))
>>> inputs, run = source.clean({"u": torch.ones(2)})
>>> run[source.executor.node("add")]
tensor([0., 0.])
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
import torch
from torch import fx, nn

from scmnet.errors import InvalidContext
from scmnet.model import Context, Terms, check_context
from scmnet.tracing.capture.calls import CallIndex
from scmnet.tracing.capture.records import TraceInfo
from scmnet.tracing.engine.batched import Batcher
from scmnet.tracing.engine.executor import Executor
from scmnet.tracing.engine.run_values import SPARE_BYTES, RunValues, run_values

__all__ = ["INPUTS", "InputSpec", "TensorMeta", "TraceSource"]

INPUTS = Terms(
    exogenous="inputs",
    one="an input (exogenous)",
    missing="the input(s)",
    model="the traced model",
    example="tensor",
)
"""How messages about a traced model name its exogenous variables: its inputs."""

TensorMeta: TypeAlias = tuple[tuple[int, ...], torch.dtype]
"""The shape and dtype of a node's value in the example run."""

InputSpec: TypeAlias = tuple[torch.dtype, "tuple[int | None, ...] | None"]
"""An input's dtype, and the sizes the graph is specialised to (``None`` for a dynamic
dimension; no sizes at all where any shape works, as for ``torch.fx`` graphs)."""


class _CleanRuns:
    """An LRU cache of clean runs, keyed by context, invalidated when the weights change."""

    def __init__(self, model: nn.Module, size: int) -> None:
        self._model = model
        self._size = size
        self._runs: OrderedDict[Hashable, tuple[Any, RunValues]] = OrderedDict()
        self._weights = self._fingerprint()

    def _fingerprint(self) -> tuple[tuple[int, int], ...]:
        """Every parameter and buffer, and its version counter (bumped by in-place changes).

        Walked through the modules' own dicts: this runs on every lookup, and
        ``Module.parameters()`` is an order of magnitude slower on a large model.
        """
        found: list[tuple[int, int]] = []
        stack = [self._model]
        while stack:
            module = stack.pop()
            for tensors in (module._parameters, module._buffers):
                found.extend((id(t), t._version) for t in tensors.values() if t is not None)
            stack.extend(m for m in module._modules.values() if m is not None)
        return tuple(found)

    def get(self, key: Hashable) -> RunValues | None:
        weights = self._fingerprint()
        if weights != self._weights:
            self._runs.clear()
            self._weights = weights
        entry = self._runs.get(key)
        if entry is None:
            return None
        self._runs.move_to_end(key)
        return entry[1]

    def put(self, key: Hashable, pinned: Any, values: RunValues) -> None:
        self._runs[key] = (pinned, values)
        while len(self._runs) > self._size:
            self._runs.popitem(last=False)

    def clear(self) -> None:
        self._runs.clear()


@dataclass(frozen=True, eq=False)
class TraceSource:
    """The traced graph of a model and everything about it that no variable choice changes.

    Attributes
    ----------
    model : torch.nn.Module
        The traced module (read live: parameters are not copied).
    executor : Executor
        Runs the graph.
    index : CallIndex
        The module calls of the graph.
    dependent : frozenset of str
        Nodes whose values depend on input values (the others are constants of the context).
    meta : mapping of str to TensorMeta or None
        Each node's shape and dtype in the example run (``None`` for non-tensor values).
    inputs : mapping of str to torch.fx.Node
        Each exogenous variable's placeholder.
    input_specs : mapping of str to InputSpec
        What each input must look like.
    outputs : tuple of (str, str)
        ``(label, node)`` for each tensor the model returns, in pytree order.
    info : TraceInfo
        How the model was traced.
    cache_size : int
        How many clean runs are kept.
    batching : Batcher
        Runs many intervention sets as one batch, where the graph allows it.
    """

    model: nn.Module
    executor: Executor
    index: CallIndex
    dependent: frozenset[str]
    meta: Mapping[str, TensorMeta | None]
    inputs: Mapping[str, fx.Node]
    input_specs: Mapping[str, InputSpec]
    outputs: tuple[tuple[str, str], ...]
    info: TraceInfo
    cache_size: int = 8
    _clean: _CleanRuns = field(init=False, repr=False)
    batching: Batcher = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_clean", _CleanRuns(self.model, self.cache_size))
        generic = self.info.frontend == "fx" or any(
            shape is None or None in shape for _, shape in self.input_specs.values()
        )
        batcher = Batcher(self.executor, self.inputs.values(), generic=generic)
        object.__setattr__(self, "batching", batcher)

    @property
    def exogenous(self) -> tuple[str, ...]:
        """The input names."""
        return tuple(self.inputs)

    def context_inputs(self, context: Context) -> tuple[dict[str, Any], Hashable, list[Any]]:
        """Validate a context; return the input values, a cache key and the objects to pin.

        Raises
        ------
        InvalidContext
            If an input is missing or unknown, or a value does not fit the trace.
        """
        check_context(context, self.inputs, INPUTS)
        values: dict[str, Any] = {}
        key: list[Hashable] = []
        pinned: list[Any] = []
        for name in self.inputs:
            raw = context[name]
            dtype, shape = self.input_specs[name]
            if isinstance(raw, torch.Tensor):
                value = raw
                key.append((name, id(raw), raw._version))
            elif isinstance(raw, int | float | bool | np.ndarray | np.generic):
                value = torch.as_tensor(raw, dtype=dtype)
                key.append((name, id(raw)) if isinstance(raw, np.ndarray) else (name, repr(raw)))
            else:
                raise InvalidContext(
                    f"the context value of {name!r} is a {type(raw).__name__}; give a tensor"
                )
            if shape is not None:
                _check_shape(name, value, dtype, shape)
            values[name] = value
            pinned.append(raw)
        return values, tuple(key), pinned

    def clean(
        self, context: Context, *, keep: Collection[fx.Node] = frozenset()
    ) -> tuple[dict[str, Any], RunValues]:
        """The input values and every node's value in the clean run of ``context`` (cached).

        The run stores what cannot be recomputed cheaply, and the values of ``keep`` (the
        variables); the rest is recomputed when read (:mod:`~scmnet.tracing.engine.run_values`).
        """
        values, key, pinned = self.context_inputs(context)
        run = self._clean.get(key)
        if run is None:
            with torch.no_grad():
                run = run_values(self.executor, values, keep=keep, spare_bytes=SPARE_BYTES)
            self._clean.put(key, pinned, run)
        else:
            run.pin(keep)
        return values, run

    def clear_cache(self) -> None:
        """Forget the cached clean runs."""
        self._clean.clear()


def _check_shape(
    name: str, value: torch.Tensor, dtype: torch.dtype, shape: tuple[int | None, ...]
) -> None:
    fits = value.dim() == len(shape) and all(
        want is None or want == got for want, got in zip(shape, value.shape, strict=True)
    )
    if value.dtype != dtype or not fits:
        pattern = "(" + ", ".join("*" if d is None else str(d) for d in shape) + ")"
        raise InvalidContext(
            f"the input {name!r} is a {value.dtype} tensor of shape {tuple(value.shape)}, but "
            f"the graph was traced for {dtype} tensors of shape {pattern} ('*' is dynamic); "
            f"trace again with dynamic_shapes=... to allow other sizes"
        )
