"""Cleaning up a traced graph before its variables are chosen.

Two passes over the graph that runs:

* :func:`drop_no_ops` bypasses and deletes operations that return their input unchanged --
  conversions to the dtype and device a value already has, aliases, eval-mode dropout,
  ``nn.Identity``. They change no value, but they sit inside module calls: Llama's RMSNorm
  begins with ``x.to(float32)``, and the residual connection reads that converted value, so
  without this pass the residual edge would appear to start inside the norm.
* :func:`check_deterministic` refuses a graph that draws random numbers: effects would mix
  noise with causation, and no run could be reproduced.

Examples
--------
>>> import torch
>>> from torch import nn
>>> from scmnet.tracing.capture.frontends import bind_example, capture
>>> net = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.1), nn.Identity()).eval()
>>> gm = capture(net, bind_example(net, torch.zeros(1, 2))).graph_module
>>> drop_no_ops(gm, {})
{'_1': '_0', '_2': '_0'}
>>> [n.op for n in gm.graph.nodes]
['placeholder', 'call_module', 'output']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import fx, nn

from scmnet.errors import UnsupportedModel

__all__ = ["check_deterministic", "drop_no_ops"]


_aten = torch.ops.aten

_CONVERSIONS: set[Any] = {
    _aten.to.dtype,
    _aten.to.dtype_layout,
    _aten.to.device,
    _aten.to.other,
    _aten._to_copy.default,
    _aten.alias.default,
}
_CONVERSION_METHODS = {"to", "type", "type_as", "float", "double", "half", "bfloat16"}
_RANDOM: set[Any] = {
    _aten.bernoulli.default,
    _aten.bernoulli.p,
    _aten.native_dropout.default,
    _aten.rand.default,
    _aten.rand_like.default,
    _aten.randn.default,
    _aten.randn_like.default,
    _aten.randint.default,
    _aten.randint.low,
    _aten.randint_like.default,
    _aten.randperm.default,
    _aten.normal.Tensor_Tensor,
    _aten.multinomial.default,
    _aten.uniform.default,
}
_RANDOM_FUNCTIONS: set[Callable[..., Any]] = {
    torch.rand,
    torch.randn,
    torch.randint,
    torch.rand_like,
    torch.randn_like,
    torch.randint_like,
    torch.randperm,
    torch.bernoulli,
    torch.multinomial,
    torch.normal,
}


def _same_kind(a: Any, b: Any) -> bool:
    return (
        isinstance(a, torch.Tensor)
        and isinstance(b, torch.Tensor)
        and a.dtype == b.dtype
        and a.device == b.device
        and a.shape == b.shape
    )


def _identity_input(node: fx.Node, gm: fx.GraphModule, values: Mapping[str, Any]) -> Any:
    """The input node that ``node`` passes through unchanged, or ``None``."""
    if not node.args or not isinstance(node.args[0], fx.Node):
        return None
    source = node.args[0]
    if node.op == "call_function" and node.target in _CONVERSIONS:
        if "memory_format" in node.kwargs:
            return None
        return source if _same_kind(values.get(node.name), values.get(source.name)) else None
    if node.op == "call_function" and node.target is _aten.dropout.default:
        return source if len(node.args) > 2 and node.args[2] is False else None
    if node.op == "call_function" and node.target is nn.functional.dropout:
        training = node.kwargs.get("training", node.args[2] if len(node.args) > 2 else True)
        return source if training is False else None
    if node.op == "call_method" and node.target in _CONVERSION_METHODS:
        if "memory_format" in node.kwargs:
            return None
        return source if _same_kind(values.get(node.name), values.get(source.name)) else None
    if node.op == "call_module":
        module = gm.get_submodule(str(node.target))
        if isinstance(module, nn.Identity) or (
            isinstance(module, nn.modules.dropout._DropoutNd) and not module.training
        ):
            return source
    return None


def drop_no_ops(gm: fx.GraphModule, values: Mapping[str, Any]) -> dict[str, str]:
    """Remove operations that return their input unchanged, in place.

    Dtype and device conversions that convert nothing, aliases, eval-mode dropout and
    ``nn.Identity`` are bypassed (their users read their input instead) and then deleted, with
    the dtype assertions export inserts and any code left dead. Without this, a residual edge
    can appear to start inside the normalisation layer that begins with ``x.to(float32)``.

    Parameters
    ----------
    gm : torch.fx.GraphModule
        Modified in place (and recompiled).
    values : mapping of node name to value
        The values of an example run, used to tell no-op conversions from real ones.

    Returns
    -------
    dict
        The name of each removed node to the name of the node whose value it passed on.
    """
    dropped: dict[str, str] = {}
    for node in list(gm.graph.nodes):
        if node.op == "call_function" and node.target is _aten._assert_tensor_metadata.default:
            gm.graph.erase_node(node)
            continue
        source = _identity_input(node, gm, values)
        if source is not None:
            node.replace_all_uses_with(source)
            gm.graph.erase_node(node)
            dropped[node.name] = source.name
    gm.graph.eliminate_dead_code()
    gm.graph.lint()
    gm.recompile()
    return dropped


def check_deterministic(gm: fx.GraphModule) -> None:
    """Refuse a graph that draws random numbers.

    Raises
    ------
    UnsupportedModel
        Naming the random operation and its module.

    Examples
    --------
    >>> import torch
    >>> gm = torch.fx.symbolic_trace(lambda x: x + torch.randn_like(x))
    >>> try:
    ...     check_deterministic(gm)
    ... except UnsupportedModel as e:
    ...     print(str(e)[:55])
    the traced graph draws random numbers (<built-in method
    """
    for node in gm.graph.nodes:
        random = node.op == "call_function" and (
            node.target in _RANDOM
            or node.target in _RANDOM_FUNCTIONS
            or (node.target is _aten.dropout.default and node.args[2:3] != (False,))
        )
        if random:
            stack = node.meta.get("nn_module_stack") or {}
            where = next(reversed(stack.values()))[0] if stack else "<root>"
            raise UnsupportedModel(
                f"the traced graph draws random numbers ({node.target} in module {where!r}), "
                f"so runs would not be reproducible and effects would mix noise with causation; "
                f"put the model in eval mode, or remove the random operation"
            )
