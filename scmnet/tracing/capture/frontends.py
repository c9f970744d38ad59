"""Front ends: turn an ``nn.Module`` and example inputs into one executable ``torch.fx`` graph.

Two tracers are tried in order, and the one that ran is recorded:

1. ``"fx"`` -- :func:`torch.fx.symbolic_trace` with a tracer that keeps chosen modules as leaves
   (``torch.nn`` layers always are). It works on plain modules, keeps Python-level operations
   (the graph runs exactly the code eager PyTorch runs) and is shape-generic. It cannot trace
   Hugging Face models, data-dependent control flow, or ``*args`` signatures, and it is skipped
   for graphs with in-place operations (a cached activation must never be overwritten).
2. ``"export"`` -- :func:`torch.export.export` with ``strict=False``: an ATen graph whose
   parameters are lifted to inputs. It works on Hugging Face decoder models (pass
   ``use_cache=False``, which :func:`bind_example` adds where ``forward`` takes it). Graphs with
   in-place operations are functionalised with ``run_decompositions({})``.

Every node of both graphs carries ``nn_module_stack``, the module calls it belongs to, which is
what :mod:`scmnet.tracing.capture.calls` groups variables by. A model that neither front end
can trace raises :class:`~scmnet.UntraceableModel`, naming the construct that failed (file,
line and module) and what to do about it.

Models must be in eval mode (:func:`check_eval_mode`): BatchNorm in training mode normalises
with the statistics of the whole batch, so the rows of a batch are not independent, and
training-mode dropout is random.

Examples
--------
>>> import torch
>>> from scmnet.toys.modules import ErasureNet
>>> from scmnet.tracing.capture.frontends import bind_example, capture
>>> cap = capture(ErasureNet().eval(), bind_example(ErasureNet(), torch.zeros(3)))
>>> cap.frontend, [f.name for f in cap.feeds if f.kind == "input"]
('fx', ['u'])
"""

from __future__ import annotations

import dataclasses
import inspect
import operator
import traceback
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias

import torch
import torch.utils._pytree as pytree
from torch import fx, nn
from torch.export.graph_signature import InputKind, OutputKind, TensorArgument

from scmnet.errors import (
    InvalidContext,
    InvalidSelection,
    UnsupportedModel,
    UntraceableModel,
    format_names,
)
from scmnet.tracing.capture._glob import path_matches
from scmnet.tracing.capture.quiet import captured
from scmnet.tracing.engine.executor import Feed

__all__ = [
    "BoundInputs",
    "Capture",
    "Frontend",
    "LeafSpec",
    "bind_example",
    "capture",
    "check_eval_mode",
    "check_leaves",
]

Frontend: TypeAlias = Literal["fx", "export"]
"""The name of the tracer that produced a graph."""

LeafSpec: TypeAlias = "str | type[nn.Module]"
"""A module kept whole by the ``torch.fx`` tracer: a glob on its path or a module class."""


@dataclass(frozen=True)
class BoundInputs:
    """Example inputs bound to the parameters of ``model.forward``.

    Attributes
    ----------
    args, kwargs
        What the model is called with.
    arguments : dict
        Every given parameter name to its value, in signature order.
    """

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    arguments: dict[str, Any]

    @property
    def tensors(self) -> dict[str, torch.Tensor]:
        """The tensor-valued arguments: the exogenous variables of the traced model."""
        return {k: v for k, v in self.arguments.items() if isinstance(v, torch.Tensor)}


@dataclass(frozen=True, eq=False)
class Capture:
    """A traced graph, how to feed it and how to read its outputs.

    Attributes
    ----------
    frontend : {"fx", "export"}
        The tracer that produced the graph.
    graph_module : torch.fx.GraphModule
        The executable graph; ``get_attr`` and ``call_module`` targets live on it.
    feeds : tuple of Feed
        One per placeholder, in graph order.
    outputs : tuple of (str, str)
        ``(label, node name)`` for each leaf of the model output that the graph computes, in
        pytree order; the label is the pytree key path (``""`` for a single tensor, ``"[0]"``);
        :func:`~scmnet.tracing.capture.outputs.relabel` gives them the eager output's labels.
    failures : tuple of str
        Why earlier front ends were not used.
    dynamic : bool
        Whether ``torch.export`` made the batch and token-sequence sizes dynamic by itself
        (:func:`auto_dynamic`), so that the graph runs at other sizes.
    """

    frontend: Frontend
    graph_module: fx.GraphModule
    feeds: tuple[Feed, ...]
    outputs: tuple[tuple[str, str], ...]
    failures: tuple[str, ...] = field(default=())
    dynamic: bool = False


def bind_example(model: nn.Module, example_inputs: Any) -> BoundInputs:
    """Bind example inputs to ``model.forward``'s parameters.

    Parameters
    ----------
    model : torch.nn.Module
    example_inputs : Tensor, tuple or mapping
        One tensor (the first positional argument), a tuple of positional arguments, or a
        mapping of keyword arguments. Tensors become exogenous variables; other values are
        constants of the trace. Where ``forward`` takes ``use_cache`` and it is not given, it is
        set to ``False``: a key/value cache is state, not a function of the inputs.

    Raises
    ------
    InvalidContext
        If the inputs do not fit the signature or contain no tensor.

    Examples
    --------
    >>> import torch
    >>> from scmnet.toys.modules import SelfRepairNet
    >>> sorted(bind_example(SelfRepairNet(), torch.zeros(2)).tensors)
    ['u']
    """
    if isinstance(example_inputs, torch.Tensor):
        args: tuple[Any, ...] = (example_inputs,)
        kwargs: dict[str, Any] = {}
    elif isinstance(example_inputs, Mapping):
        args, kwargs = (), dict(example_inputs)
    elif isinstance(example_inputs, tuple | list):
        args, kwargs = tuple(example_inputs), {}
    else:
        raise InvalidContext(
            f"example inputs must be a tensor, a tuple of positional arguments or a mapping of "
            f"keyword arguments, got {type(example_inputs).__name__}"
        )
    signature = inspect.signature(model.forward)
    if "use_cache" in signature.parameters and "use_cache" not in kwargs:
        kwargs["use_cache"] = False
    try:
        bound = signature.bind_partial(*args, **kwargs)
    except TypeError as e:
        raise InvalidContext(
            f"the example inputs do not fit {type(model).__name__}.forward{signature}: {e}"
        ) from e
    arguments = dict(bound.arguments)
    for name, param in signature.parameters.items():
        if param.kind is param.VAR_KEYWORD and name in arguments:
            arguments.update(arguments.pop(name))
    result = BoundInputs(args, kwargs, arguments)
    if not result.tensors:
        raise InvalidContext(
            f"the example inputs {format_names(arguments)} contain no tensor; a traced model's "
            f"exogenous variables are its tensor inputs"
        )
    return result


_BATCH_COUPLING = (nn.modules.batchnorm._BatchNorm,)


def check_eval_mode(model: nn.Module) -> None:
    """Refuse a model with modules in training mode.

    Raises
    ------
    UnsupportedModel
        Naming the batch-coupling layers (BatchNorm) first, then the other modules in training
        mode.

    Examples
    --------
    >>> from torch import nn
    >>> check_eval_mode(nn.Linear(2, 2).eval())
    """
    training = [name or "<root>" for name, m in model.named_modules() if m.training]
    if not training:
        return
    coupling = [
        name or "<root>"
        for name, m in model.named_modules()
        if m.training and isinstance(m, _BATCH_COUPLING)
    ]
    if coupling:
        raise UnsupportedModel(
            f"{type(model).__name__} has batch-coupling layers in training mode "
            f"({format_names(coupling)}): BatchNorm in training mode normalises with the "
            f"statistics of the whole batch, so one row's activations depend on the other "
            f"rows and interventions would leak between them. Call model.eval() before tracing"
        )
    raise UnsupportedModel(
        f"{type(model).__name__} is in training mode (modules {format_names(training)}); "
        f"training mode changes what a model computes (dropout is random, BatchNorm uses batch "
        f"statistics), so effects would not be reproducible. Call model.eval() before tracing"
    )


# -- front end 1: torch.fx ----------------------------------------------------------------------


class _LeafTracer(fx.Tracer):
    """A symbolic tracer that keeps the chosen modules as single ``call_module`` nodes."""

    def __init__(self, leaves: Sequence[LeafSpec]) -> None:
        super().__init__()
        self._leaves = tuple(leaves)

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        for leaf in self._leaves:
            if isinstance(leaf, str):
                if path_matches(leaf, module_qualified_name):
                    return True
            elif isinstance(m, leaf):
                return True
        return bool(super().is_leaf_module(m, module_qualified_name))


def check_leaves(model: nn.Module, leaves: Sequence[LeafSpec]) -> None:
    """Raise :class:`InvalidSelection` for a leaf pattern or class that matches no module."""
    paths = [name for name, _ in model.named_modules() if name]
    for leaf in leaves:
        if isinstance(leaf, str):
            if not any(path_matches(leaf, p) for p in paths):
                raise InvalidSelection(
                    f"the leaf pattern {leaf!r} matches no module of {type(model).__name__}; "
                    f"module paths look like {format_names(paths, limit=6)}"
                )
        elif not (isinstance(leaf, type) and issubclass(leaf, nn.Module)):
            raise InvalidSelection(
                f"a leaf must be a module path pattern (str) or an nn.Module class, got {leaf!r}"
            )
        elif not any(isinstance(m, leaf) for m in model.modules()):
            raise InvalidSelection(f"no module of {type(model).__name__} is a {leaf.__name__}")


_INPLACE_FUNCTIONS = {operator.setitem, operator.iadd, operator.isub, operator.imul}


def _inplace_reason(gm: fx.GraphModule) -> str | None:
    """Describe the first in-place operation of a ``torch.fx`` graph, or return ``None``."""
    for node in gm.graph.nodes:
        if node.op == "call_method" and isinstance(node.target, str):
            if node.target.endswith("_") and not node.target.startswith("__"):
                return f"the in-place method .{node.target}() (node {node.name!r})"
        elif node.op == "call_function":
            name = getattr(node.target, "__name__", "")
            if node.target in _INPLACE_FUNCTIONS or node.kwargs.get("inplace") is True:
                return f"the in-place operation {name} (node {node.name!r})"
            if name.endswith("_") and not name.startswith("_"):
                return f"the in-place function {name} (node {node.name!r})"
        elif node.op == "call_module" and getattr(
            gm.get_submodule(str(node.target)), "inplace", False
        ):
            return f"the in-place module {node.target!r}"
    return None


class _FrontendFailed(Exception):
    """A front end cannot trace the model; carries a one-line reason."""


def _capture_fx(model: nn.Module, bound: BoundInputs, leaves: Sequence[LeafSpec]) -> Capture:
    signature = inspect.signature(model.forward)
    params = list(signature.parameters.values())
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        raise _FrontendFailed("forward takes *args or **kwargs, which torch.fx cannot bind")
    concrete: dict[str, Any] = {}
    for p in params:
        if p.name in bound.arguments:
            value = bound.arguments[p.name]
            if not isinstance(value, torch.Tensor):
                concrete[p.name] = value
        elif p.default is not p.empty:
            concrete[p.name] = p.default
        else:
            raise _FrontendFailed(f"no example value for the parameter {p.name!r}")
    tracer = _LeafTracer(leaves)
    graph = tracer.trace(model, concrete_args=concrete or None)
    gm = fx.GraphModule(tracer.root, graph, type(model).__name__)
    reason = _inplace_reason(gm)
    if reason is not None:
        raise _FrontendFailed(f"the graph contains {reason}, which would overwrite cached values")
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != len(params):
        raise _FrontendFailed("the placeholders do not match the parameters of forward")
    feeds = []
    for node, p in zip(placeholders, params, strict=True):
        if p.name in concrete:
            feeds.append(Feed(node.name, p.name, "constant", concrete[p.name]))
        else:
            feeds.append(Feed(node.name, p.name, "input"))
    output = gm.graph.output_node().args[0]
    leaves_with_path, _ = pytree.tree_flatten_with_path(output)
    outputs = tuple(
        (pytree.keystr(path), leaf.name)
        for path, leaf in leaves_with_path
        if isinstance(leaf, fx.Node)
    )
    return Capture("fx", gm, tuple(feeds), outputs)


# -- front end 2: torch.export ------------------------------------------------------------------


def _mutates(graph: fx.Graph) -> bool:
    return any(
        node.op == "call_function"
        and isinstance(node.target, torch._ops.OpOverload)
        and node.target._schema.is_mutable
        for node in graph.nodes
    )


def auto_dynamic(bound: BoundInputs) -> tuple[BoundInputs, dict[str, Any]] | None:
    """An example and dynamic dimensions that let an exported graph run at other sizes.

    Every tensor input's leading (batch) axis is dynamic, and so is the second axis of 2-d
    integer inputs (token ids, attention masks: the sequence). ``torch.export`` specialises a
    size of 1, so an example of batch 1 is repeated to batch 2. ``None`` where the inputs do
    not share one batch size. Sizes that the model's code fixes stay static
    (``torch.export.Dim.AUTO``).
    """
    tensors = {k: v for k, v in bound.arguments.items() if isinstance(v, torch.Tensor)}
    sizes = {int(v.shape[0]) for v in tensors.values() if v.dim()}
    if not tensors or len(sizes) != 1 or any(not v.dim() for v in tensors.values()):
        return None
    (size,) = sizes
    auto = torch.export.Dim.AUTO
    dims: dict[str, Any] = {}
    for name, v in tensors.items():
        dims[name] = {0: auto}
        if v.dim() == 2 and not v.is_floating_point() and v.shape[1] >= 2:
            dims[name][1] = auto
    if size >= 2:
        return bound, dims

    def widened(value: Any) -> Any:
        return (
            value.repeat(2, *[1] * (value.dim() - 1)) if isinstance(value, torch.Tensor) else value
        )

    arguments = {k: widened(v) for k, v in bound.arguments.items()}
    args = tuple(widened(v) for v in bound.args)
    kwargs = {k: widened(v) for k, v in bound.kwargs.items()}
    return BoundInputs(args, kwargs, arguments), dims


def _capture_export(model: nn.Module, bound: BoundInputs, dynamic_shapes: Any | None) -> Capture:
    if isinstance(dynamic_shapes, Mapping):
        # export wants an entry for every argument; the ones not named are static
        dynamic_shapes = {name: None for name in bound.arguments} | dict(dynamic_shapes)
    ep = torch.export.export(
        model, bound.args, bound.kwargs, strict=False, dynamic_shapes=dynamic_shapes
    )
    if _mutates(ep.graph):
        with warnings.catch_warnings():  # torch's own use of a deprecated pytree API
            warnings.filterwarnings("ignore", category=FutureWarning, message=".*LeafSpec")
            ep = ep.run_decompositions({})
    signature = ep.graph_signature
    flat_inputs = pytree.tree_leaves((bound.args, bound.kwargs))
    user_values = iter(flat_inputs)
    feeds = []
    for spec in signature.input_specs:
        name = spec.arg.name
        if spec.kind is InputKind.USER_INPUT:
            value = next(user_values)
            if isinstance(value, torch.Tensor):
                feeds.append(Feed(name, name, "input"))
            else:
                feeds.append(Feed(name, name, "constant", value))
        elif spec.kind is InputKind.PARAMETER and spec.target is not None:
            feeds.append(Feed(name, spec.target, "parameter"))
        elif spec.kind is InputKind.BUFFER and spec.target is not None:
            feeds.append(Feed(name, spec.target, "buffer"))
        elif spec.kind in (InputKind.CONSTANT_TENSOR, InputKind.CUSTOM_OBJ) and spec.target:
            feeds.append(Feed(name, spec.target, "constant", ep.constants[spec.target]))
        else:
            raise _FrontendFailed(f"unsupported graph input {name!r} of kind {spec.kind.name}")
    mutated = [s.target for s in signature.output_specs if s.kind is not OutputKind.USER_OUTPUT]
    if mutated:
        raise UnsupportedModel(
            f"{type(model).__name__}.forward changes its own state (it writes "
            f"{format_names(str(m) for m in mutated)}), so a run depends on earlier runs; "
            f"only stateless forward passes can be analysed"
        )
    # a leaf that is no tensor (a loss of None) is a constant output with no graph node
    user_outputs = [
        s.arg.name if isinstance(s.arg, TensorArgument) else None for s in signature.output_specs
    ]
    structure = pytree.tree_unflatten(user_outputs, ep.call_spec.out_spec)
    leaves_with_path, _ = pytree.tree_flatten_with_path(structure)
    outputs = tuple(
        (pytree.keystr(path), str(leaf)) for path, leaf in leaves_with_path if leaf is not None
    )
    return Capture("export", ep.graph_module, tuple(feeds), outputs)


# -- choosing a front end, and explaining failures ----------------------------------------------


_SCMNET = str(Path(__file__).resolve().parents[2]).replace("\\", "/") + "/"
"""scmnet's own source files, which are never the construct that failed."""


def _user_frame(exc: BaseException) -> traceback.FrameSummary | None:
    """The innermost frame of the traceback that is neither torch's nor scmnet's tracing code."""
    frames = traceback.extract_tb(exc.__traceback__)
    inner: list[traceback.FrameSummary] = []
    cause: BaseException | None = exc
    while cause is not None:
        inner.extend(traceback.extract_tb(cause.__traceback__))
        cause = cause.__cause__ or cause.__context__
    for frame in reversed(inner or frames):
        name = frame.filename.replace("\\", "/")
        if "/torch/" in name or name.startswith((_SCMNET, "<")):
            continue
        return frame
    return None


def _module_at(model: nn.Module, frame: traceback.FrameSummary) -> str:
    """Name the module whose ``forward`` contains ``frame``, e.g. ``" in 'blocks.0' (Block)"``."""
    for path, module in model.named_modules():
        code = getattr(type(module).forward, "__code__", None)
        if code is None or code.co_filename != frame.filename or frame.lineno is None:
            continue
        last = max((line for _, _, line in code.co_lines() if line is not None), default=0)
        if code.co_firstlineno <= frame.lineno <= last:
            return f" in {path or '<root>'!r} ({type(module).__name__})"
    return ""


def _describe(model: nn.Module, tracer: str, exc: BaseException) -> str:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    where = ""
    frame = _user_frame(exc)
    if frame is not None:
        where = f"{_module_at(model, frame)} at {frame.filename}:{frame.lineno}"
        if frame.line:
            where += f" (`{frame.line.strip()}`)"
    return f"{tracer} failed{where}: {type(exc).__name__}: {message}"


def _advice(failures: Sequence[str]) -> str:
    text = " ".join(failures).lower()
    data_dependent = any(
        key in text for key in ("control flow", "data-dependent", "data dependent", "guard")
    )
    dynamic = any(key in text for key in ("constraint", "specializ", "dynamic", "dim"))
    hints = [
        "rewrite Python control flow that depends on tensor values with torch.cond, which "
        "torch.export traces as one operation with both branches",
        "mark the module that contains the failing construct as a leaf (trace(..., "
        "leaves=['path.to.module'] or leaves=[ModuleClass])), so that torch.fx calls it whole "
        "instead of tracing through it",
        "if a dimension such as the sequence length or the batch size is involved, pass it as "
        "dynamic: trace(..., dynamic_shapes={'input_ids': {1: torch.export.Dim('seq')}})",
    ]
    if dynamic and not data_dependent:
        hints.insert(0, hints.pop())
    return "; or ".join(hints)


def capture(
    model: nn.Module,
    bound: BoundInputs,
    *,
    frontend: Frontend | None = None,
    leaves: Sequence[LeafSpec] = (),
    dynamic_shapes: Any | None = None,
    auto_dims: bool = True,
) -> Capture:
    """Trace ``model`` with the first front end that works.

    Parameters
    ----------
    model : torch.nn.Module
        In eval mode.
    bound : BoundInputs
        From :func:`bind_example`.
    frontend : {"fx", "export"}, optional
        Use only this front end. Default: ``"fx"``, then ``"export"``. ``dynamic_shapes``
        implies ``"export"``.
    leaves : sequence of str or module classes
        Modules ``torch.fx`` keeps whole (see :class:`LeafSpec`).
    dynamic_shapes : optional
        Passed to :func:`torch.export.export`. ``None``: the batch and sequence sizes are made
        dynamic where the model allows (:func:`auto_dynamic`, with ``auto_dims``); ``{}``:
        every size is static.
    auto_dims : bool
        Whether ``dynamic_shapes=None`` tries dynamic batch and sequence sizes first.

    Returns
    -------
    Capture

    Raises
    ------
    UntraceableModel
        If no front end can trace the model; the message names the construct and the fix.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(2, 2), nn.ReLU(inplace=True)).eval()
    >>> cap = capture(net, bind_example(net, torch.zeros(1, 2)))
    >>> cap.frontend, cap.failures[0].startswith("torch.fx skipped: the graph contains")
    ('export', True)
    """
    order: list[Frontend]
    if frontend is not None:
        order = [frontend]
    elif dynamic_shapes is not None:
        order = ["export"]
    else:
        order = ["fx", "export"]
    failures: list[str] = []
    with captured() as chatter:  # torch warns and logs as it tries; shown only on failure
        for name in order:
            try:
                if name == "fx":
                    result = _capture_fx(model, bound, leaves)
                elif dynamic_shapes is None and auto_dims and (auto := auto_dynamic(bound)):
                    try:
                        result = _capture_export(model, *auto)
                        result = dataclasses.replace(result, dynamic=True)
                    except UnsupportedModel:
                        raise
                    except Exception as e:
                        failures.append(
                            f"dynamic sizes skipped: {_describe(model, 'torch.export.export', e)}"
                        )
                        result = _capture_export(model, bound, None)
                else:
                    result = _capture_export(model, bound, dynamic_shapes)
            except UnsupportedModel:
                raise
            except _FrontendFailed as e:
                failures.append(f"torch.fx skipped: {e}")
            except Exception as e:
                tracer = "torch.fx.symbolic_trace" if name == "fx" else "torch.export.export"
                failures.append(_describe(model, tracer, e))
            else:
                return Capture(
                    result.frontend,
                    result.graph_module,
                    result.feeds,
                    result.outputs,
                    tuple(failures),
                    result.dynamic,
                )
    raise UntraceableModel(
        f"could not trace {type(model).__name__}. "
        + " ".join(f"({i + 1}) {f}." for i, f in enumerate(failures))
        + f" What to do: {_advice(failures)}.",
        details=chatter,
    )
