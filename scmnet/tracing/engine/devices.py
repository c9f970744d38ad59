"""Running a traced graph whose parameters sit on several devices, or are offloaded.

A model larger than one accelerator is split across devices (a *device map*): each module's
weights live on one device, and the activations move between devices at the boundaries. A
module may also be *offloaded*: its weights are kept elsewhere (host memory, a folder on disk)
and its parameters are empty placeholders on the ``meta`` device, materialised only when the
module runs. Hugging Face ``accelerate`` does both with a hook on each module (an object at
``module._hf_hook`` with an ``execution_device`` and, for offloaded modules, a ``weights_map``
of the stored weights); this module reads those two attributes, nothing else, and imports no
library.

A traced graph reads parameters as graph inputs and runs each operation itself, so no module
hook fires. :class:`Placement` gives the engine what the hooks did:

* :func:`stored_value` -- a parameter or buffer as stored: the live tensor, or for an offloaded
  module the stored weight (on the device it is stored on; it moves to the execution device
  only for the operation that reads it). The executor reads each offloaded weight once and
  keeps it (host memory, where accelerate keeps ``"cpu"`` offload: a ``"disk"`` weight is then
  held there too, rather than read again for every run);
* :meth:`Placement.place` -- before an operation runs, its tensor arguments move to the
  operation's device: the execution device of a parameter it reads, otherwise that of the
  innermost module it belongs to (``nn_module_stack``). Moving a tensor between devices copies
  it exactly, so every operation computes what it computes on the device the device map gives
  it.

A model whose parameters all sit on one device, none offloaded, has no placement
(:func:`placement` returns ``None``) and runs with no check at all.

Examples
--------
>>> import torch
>>> from torch import nn
>>> from scmnet.tracing.capture.frontends import bind_example, capture
>>> net = nn.Sequential(nn.Linear(2, 2), nn.ReLU()).eval()
>>> cap = capture(net, bind_example(net, torch.zeros(1, 2)))
>>> print(placement(cap.graph_module, cap.feeds, net))  # one device: nothing to place
None
>>> stored_value(net, "0.bias", "parameter").shape
torch.Size([2])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx, nn

from scmnet.errors import UnsupportedModel

__all__ = ["Placement", "execution_device", "live_value", "placement", "stored_value"]

_META = torch.device("meta")


def _hook(module: nn.Module) -> Any:
    """The device-placement hook on ``module`` (accelerate's ``_hf_hook``), or ``None``."""
    return getattr(module, "_hf_hook", None)


def _owner(model: nn.Module, path: str) -> tuple[nn.Module, str]:
    module_path, _, name = path.rpartition(".")
    return (model.get_submodule(module_path) if module_path else model), name


def live_value(model: nn.Module, path: str, kind: str) -> torch.Tensor:
    """The parameter or buffer at ``path`` as the model holds it now (a ``meta`` placeholder
    where its module is offloaded)."""
    module, name = _owner(model, path)
    value: torch.Tensor = getattr(module, name) if kind == "buffer" else module.get_parameter(name)
    return value


def stored_value(model: nn.Module, path: str, kind: str) -> torch.Tensor:
    """The parameter or buffer at ``path`` (``kind`` is ``"parameter"`` or ``"buffer"``).

    The live tensor; where it is an empty placeholder on the ``meta`` device because its module
    is offloaded, the stored weight from the module's hook (``weights_map``), on the device it
    is stored on.

    Raises
    ------
    UnsupportedModel
        If the tensor is on ``meta`` and no hook of its module holds its value.
    """
    value = live_value(model, path, kind)
    if value.device != _META:
        return value
    module, name = _owner(model, path)
    weights = getattr(_hook(module), "weights_map", None)
    if weights is not None:
        try:
            stored: torch.Tensor = weights[name]
        except KeyError:
            stored = None  # type: ignore[assignment]
        if stored is not None:
            return stored
    raise UnsupportedModel(
        f"the {kind} {path!r} is on the meta device and its module holds no offloaded value for "
        f"it, so it has no value to compute with; load the model with its weights (a device "
        f"map puts offloaded weights in the module's hook)"
    )


def execution_device(module: nn.Module) -> torch.device | None:
    """Where ``module`` computes: its hook's execution device, else the one device its own
    parameters and buffers sit on (``None`` where they sit on none or several, or on ``meta``).

    >>> from torch import nn
    >>> execution_device(nn.Linear(2, 2))
    device(type='cpu')
    >>> print(execution_device(nn.ReLU()))
    None
    """
    found = getattr(_hook(module), "execution_device", None)
    if found is not None:
        return torch.device(found if not isinstance(found, int) else f"cuda:{found}")
    devices = {
        t.device for t in (*module._parameters.values(), *module._buffers.values()) if t is not None
    }
    devices.discard(_META)
    return next(iter(devices)) if len(devices) == 1 else None


def _module_stack(node: fx.Node) -> list[str]:
    """The module paths of ``node``'s ``nn_module_stack``, innermost first."""
    stack = node.meta.get("nn_module_stack") or {}
    return [str(entry[0]) for entry in reversed(list(stack.values()))]


@dataclass(frozen=True)
class Placement:
    """Where each operation of a graph runs, for a model on several devices.

    Attributes
    ----------
    devices : mapping of node name to device
        The device of each operation that has one: the execution device of a parameter it
        reads, else of the innermost module it belongs to that has one. Operations not listed
        run where their first tensor argument is.
    """

    devices: Mapping[str, torch.device]

    def place(
        self, node: fx.Node, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """``args`` and ``kwargs`` with every tensor on the device of ``node`` (where the
        tensors already share one device and ``node`` has none of its own, as they are)."""
        device = self.devices.get(node.name)
        if device is None:
            found = {a.device for a in _tensors(args, kwargs)}
            if len(found) <= 1:
                return args, kwargs
            device = next(t.device for t in _tensors(args, kwargs))
        elif all(t.device == device for t in _tensors(args, kwargs)):
            return args, kwargs
        target = device

        def move(value: Any) -> Any:
            if isinstance(value, torch.Tensor):
                return value.to(target) if value.device != target else value
            if isinstance(value, list | tuple) and any(isinstance(v, torch.Tensor) for v in value):
                return type(value)(move(v) for v in value)
            return value

        return tuple(move(a) for a in args), {k: move(v) for k, v in kwargs.items()}


def _tensors(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[torch.Tensor]:
    found: list[torch.Tensor] = []
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, list | tuple):
            found.extend(v for v in value if isinstance(v, torch.Tensor))
    return found


def placement(
    graph_module: fx.GraphModule, feeds: Sequence[Any], model: nn.Module
) -> Placement | None:
    """The :class:`Placement` of a traced graph of ``model``, or ``None`` where every parameter
    and buffer sits on one device and none is offloaded (nothing to place).

    Parameters
    ----------
    graph_module : torch.fx.GraphModule
        The traced graph.
    feeds : sequence of Feed
        How its placeholders get their values (parameters and buffers by path).
    model : torch.nn.Module
        The live model.
    """
    where: set[torch.device] = set()
    offloaded = False
    for module in model.modules():
        hook = _hook(module)
        if hook is not None:
            offloaded = offloaded or getattr(hook, "weights_map", None) is not None
            found = execution_device(module)
            if found is not None:
                where.add(found)
        for t in (*module._parameters.values(), *module._buffers.values()):
            if t is not None:
                where.add(t.device)
    offloaded = offloaded or _META in where
    where.discard(_META)
    if len(where) <= 1 and not offloaded:
        return None  # one device, nothing offloaded: nothing to place
    modules: dict[str, torch.device | None] = {}

    def module_device(path: str) -> torch.device | None:
        if path not in modules:
            try:
                modules[path] = execution_device(model.get_submodule(path))
            except AttributeError:  # a module of the trace only (a replaced submodule)
                modules[path] = None
        return modules[path]

    feeding = {f.node: f for f in feeds if f.kind in ("parameter", "buffer")}
    devices: dict[str, torch.device] = {}
    for node in graph_module.graph.nodes:
        if node.op not in ("call_function", "call_method", "call_module"):
            continue
        chosen: torch.device | None = None
        for arg in node.all_input_nodes:
            feed = feeding.get(arg.name)
            if feed is not None:
                owner = feed.name.rpartition(".")[0]
                chosen = module_device(owner)
                if chosen is not None:
                    break
        if chosen is None:
            for path in _module_stack(node):
                chosen = module_device(path)
                if chosen is not None:
                    break
        if chosen is not None:
            devices[node.name] = chosen
    return Placement(devices)
