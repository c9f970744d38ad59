"""Trace a PyTorch model into a structural causal model (Section 3 of the Hydra-effect paper).

:func:`~scmnet.trace` turns any ``nn.Module`` plus example inputs into a
:class:`~scmnet.TracedModel`, which implements the :class:`~scmnet.CausalModel` protocol: the
network's inputs are the exogenous variables U, chosen activations are the endogenous variables
V, and every other operation is collapsed into the mechanisms of the variables downstream of it.
:func:`~scmnet.do`, :func:`~scmnet.total_effect`, :func:`~scmnet.direct_effect` and
:func:`~scmnet.indirect_effect` then work on it as on any SCM.

Three subpackages, one concept each, bottom up (internal: their modules are not part of the
API reference):

* ``scmnet.tracing.engine`` -- running a traced graph: the ``executor`` recomputes only the
  descendants of an intervention from one cached clean run per context; ``staircase`` is the
  one run plan of every intervened run: rows join a batch where their intervention sits, and
  ``positions`` recomputes only positions t: of a causal sequence model for interventions at
  position t; ``batched`` proves that the rows of a batch stay apart (its record is
  :class:`BatchingInfo`), and ``patching`` fits intervention values to their variables;
* ``scmnet.tracing.capture`` -- getting a graph out of a model: ``frontends`` (``torch.fx``
  for plain modules, ``torch.export`` where fx fails, as for every Hugging Face model; models
  must be in eval mode), ``cleanup`` (no-op conversions dropped, random operations refused),
  ``calls`` (which operations each module call computed), ``collapse`` (which variables a
  variable reads through operations that are not variables), and ``build``, which verifies the
  graph against the eager model and indexes it once into a ``TraceSource``;
* ``scmnet.tracing.variables`` -- choosing the variables on a trace: typed ``selectors``
  (:class:`~scmnet.ByPath`, :class:`~scmnet.ByType`, :class:`~scmnet.ByPredicate`,
  :class:`~scmnet.Default`), and the ``TracedNetwork`` they make, with its causal graph
  (``network``).

:class:`~scmnet.TracedModel` (``scmnet.tracing.model``) is a traced network as a causal model.

Examples
--------
The self-repair motif (eq. 32) written as a network gives the same graph and effects as the
SCM written with Python callables:

>>> import torch
>>> import scmnet as sn
>>> from scmnet.tracing import trace
>>> m = trace(sn.toys.self_repair_module(), torch.zeros(()))
>>> sorted(m.graph.edges) == sorted(sn.toys.self_repair().graph.edges)
True
>>> u = {"u": torch.tensor(3.0)}
>>> [float(f(m, {"x": 0.0}, "y", context=u))
...  for f in (sn.total_effect, sn.direct_effect, sn.indirect_effect)]
[0.0, -3.0, 3.0]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.utils._pytree as pytree
from torch import nn

from scmnet.errors import (
    InvalidArgument,
    InvalidContext,
    InvalidSelection,
    UnsupportedModel,
    UntraceableModel,
)
from scmnet.tracing.capture.build import make_source, verify
from scmnet.tracing.capture.calls import CallIndex, ModuleCall
from scmnet.tracing.capture.cleanup import check_deterministic, drop_no_ops
from scmnet.tracing.capture.frontends import (
    Frontend,
    LeafSpec,
    bind_example,
    capture,
    check_eval_mode,
    check_leaves,
)
from scmnet.tracing.capture.outputs import check_output_structure, output_notes, relabel
from scmnet.tracing.capture.records import NodeRecord, TraceInfo
from scmnet.tracing.capture.source import TraceSource
from scmnet.tracing.engine.batched import BatchingInfo
from scmnet.tracing.model import TracedModel
from scmnet.tracing.variables.network import TracedNetwork, build_network
from scmnet.tracing.variables.selectors import (
    AllOf,
    AnyOf,
    ByPath,
    ByPredicate,
    ByType,
    Default,
    Expect,
    Selector,
    Without,
)

__all__ = [
    "AllOf",
    "AnyOf",
    "BatchingInfo",
    "ByPath",
    "ByPredicate",
    "ByType",
    "CallIndex",
    "Default",
    "Expect",
    "InvalidSelection",
    "ModuleCall",
    "NodeRecord",
    "Selector",
    "TraceInfo",
    "TraceSource",
    "TracedModel",
    "TracedNetwork",
    "UnsupportedModel",
    "UntraceableModel",
    "Without",
    "trace",
]


def trace(
    model: nn.Module,
    example_inputs: Any,
    *,
    variables: Selector | str | Sequence[Selector | str] | None = None,
    leaves: Sequence[LeafSpec] = (),
    dataset: Sequence[Mapping[str, Any]] | None = None,
    frontend: Frontend | None = None,
    dynamic_shapes: Any | None = None,
    cache_size: int = 8,
) -> TracedModel:
    """Trace ``model`` into a causal model whose variables are chosen activations.

    Parameters
    ----------
    model : torch.nn.Module
        In eval mode (``model.eval()``); it is read live, not copied.
    example_inputs : Tensor, tuple or mapping
        What ``model`` is called with: one tensor, a tuple of positional arguments, or a
        mapping of keyword arguments (``{"input_ids": ids}``). Tensor arguments become the
        exogenous variables, named after ``forward``'s parameters; other values are constants.
        ``use_cache=False`` is added where ``forward`` takes it.
    variables : Selector, str or sequence of them, optional
        Which activations are variables: a selector (:class:`ByPath`, :class:`ByType`,
        :class:`ByPredicate`, combined with ``|``, ``&``, ``-``, ``.expect(n)``), a module
        path glob, or a list of them. Default: :class:`Default`. The model's outputs are
        always variables, named after the module that returns them or ``"output"``.
    leaves : sequence of str or nn.Module classes
        Modules that ``torch.fx`` must not trace into (path globs or classes): a way around
        code it cannot trace.
    dataset : sequence of contexts, optional
        Contexts (mappings from input names to tensors) that :meth:`TracedModel.sample_contexts`
        draws from, so that effects can be averaged with ``context=None``.
    frontend : {"fx", "export"}, optional
        Force one front end. Default: ``torch.fx``, then ``torch.export``.
    dynamic_shapes : optional
        Passed to :func:`torch.export.export` (implies ``frontend="export"``), e.g.
        ``{"input_ids": {1: torch.export.Dim("seq")}}`` to allow other sequence lengths. By
        default an exported graph gets dynamic batch and sequence sizes where the model allows
        (so that one trace serves prompts of any length and batches its interventions), and
        static ones otherwise; ``{}`` asks for static sizes.
    cache_size : int
        How many clean runs (one per context) to keep.

    Returns
    -------
    TracedModel

    Raises
    ------
    UnsupportedModel
        If the model is in training mode (BatchNorm would mix the rows of a batch), draws random
        numbers, or changes its own state.
    UntraceableModel
        If no front end can trace it; the message names the construct and what to do.
    InvalidSelection
        If the variables selector selects nothing, or not the expected number.
    InvalidContext
        If the example inputs or the data set do not fit ``forward``.

    See Also
    --------
    scmnet.do, scmnet.total_effect, scmnet.direct_effect, scmnet.indirect_effect

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from scmnet.tracing import trace
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
    >>> m = trace(net, torch.randn(1, 4))
    >>> m.exogenous, m.endogenous, m.info.frontend
    (('input',), ('0', '1', '2'), 'fx')
    >>> sorted(m.graph.edges)
    [('0', '1'), ('1', '2'), ('input', '0')]
    >>> x = torch.randn(1, 4)
    >>> bool((m.evaluate({"input": x})["2"] == net(x)).all())
    True
    """
    if not isinstance(model, nn.Module):
        raise UnsupportedModel(f"trace() needs a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(cache_size, int) or cache_size < 1:
        raise InvalidArgument(f"cache_size must be a positive int, got {cache_size!r}")
    check_eval_mode(model)
    check_leaves(model, leaves)
    bound = bind_example(model, example_inputs)
    try:
        with torch.no_grad():
            eager = model(*bound.args, **bound.kwargs)
    except Exception as e:
        raise InvalidContext(
            f"{type(model).__name__} raised {type(e).__name__} on the example inputs: {e}; "
            f"trace() needs inputs the model runs on"
        ) from e
    check_output_structure(type(model).__name__, eager)
    expected = [t for t in pytree.tree_leaves(eager) if isinstance(t, torch.Tensor)]
    cap = capture(model, bound, frontend=frontend, leaves=leaves, dynamic_shapes=dynamic_shapes)
    check_deterministic(cap.graph_module)
    values, diff = verify(model, cap, bound.tensors, expected)
    if diff is None and cap.frontend == "fx" and frontend is None:
        failure = "torch.fx skipped: its graph does not reproduce the eager outputs"
        cap = capture(model, bound, frontend="export", dynamic_shapes=dynamic_shapes)
        cap = dataclasses.replace(cap, failures=(failure,))
        check_deterministic(cap.graph_module)
        values, diff = verify(model, cap, bound.tensors, expected)
    if diff is None and cap.dynamic:  # the graph of other sizes does not fit this example
        failure = "dynamic sizes skipped: that graph does not reproduce the eager outputs"
        cap = capture(model, bound, frontend="export", auto_dims=False)
        cap = dataclasses.replace(cap, failures=(*cap.failures, failure))
        check_deterministic(cap.graph_module)
        values, diff = verify(model, cap, bound.tensors, expected)
    if diff is None:
        raise UntraceableModel(
            f"the {cap.frontend} graph of {type(model).__name__} does not reproduce its eager "
            f"outputs on the example inputs, so effects computed on it would be wrong; the "
            f"model may depend on Python state that tracing specialised"
        )
    labelled = relabel(cap.outputs, values, eager)
    dropped = drop_no_ops(cap.graph_module, values)
    outputs = tuple((label, dropped.get(node, node)) for label, node in labelled)
    cap = dataclasses.replace(cap, outputs=outputs)
    source = make_source(
        model, cap, values, dropped=dropped, max_abs_diff=diff, cache_size=cache_size,
        notes=output_notes(eager),
    )  # fmt: skip
    return TracedModel(build_network(source, variables, dataset))
