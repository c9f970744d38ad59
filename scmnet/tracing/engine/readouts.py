"""Linear readouts folded through the linear layer that computes their variable.

A :class:`~scmnet.outcome.LinearReadout` reads ``value[site] @ w + c``. Where the site's variable
is the output of a linear layer ``y = x W^T + b`` whose input x is another variable, the same
number is ``x[site] @ (W^T w) + (b @ w + c)``: the query then reads x, so that no row of a
sweep recomputes the layer. For a language model that layer is the unembedding, whose output
(the vocabulary) is the widest of a row; a centred logit (eq. 9 of the Hydra-effect paper) is
then one dot product with the final norm's output.

:func:`fold_readout` makes that rewrite where it is exact: the layer is a ``nn.Linear`` call
or a ``linear`` operation with constant weights, its input is a variable (possibly through
slices that keep every position, as Hugging Face's ``logits_to_keep`` inserts), the site
leaves the last axis whole, and no intervention of the query sets the read variable.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import torch
from torch import fx, nn

from scmnet.interventions import Site
from scmnet.outcome import LinearReadout, linear_readout

__all__ = ["fold_readout", "linear_parts"]

_LINEAR_OPS = (torch.ops.aten.linear.default, nn.functional.linear)
_CONSTANT_OPS = ("placeholder", "get_attr")  # parameters, lifted or not


def _constant(value: Any, clean: Mapping[fx.Node, Any]) -> Any:
    return clean.get(value) if isinstance(value, fx.Node) else value


def linear_parts(
    node: fx.Node, graph_module: fx.GraphModule, clean: Mapping[fx.Node, Any]
) -> tuple[fx.Node, torch.Tensor, torch.Tensor | None] | None:
    """The input node, weight and bias of a linear layer node; ``None`` for any other node."""
    if node.op == "call_module" and len(node.args) == 1 and not node.kwargs:
        module = graph_module.get_submodule(str(node.target))
        x = node.args[0]
        if type(module) is nn.Linear and isinstance(x, fx.Node):
            return x, module.weight, module.bias
        return None
    if node.op != "call_function" or node.target not in _LINEAR_OPS:
        return None
    args = [*node.args, *node.kwargs.values()]
    if not 2 <= len(args) <= 3 or not isinstance(args[0], fx.Node):
        return None
    computed = [a for a in args[1:] if isinstance(a, fx.Node) and a.op not in _CONSTANT_OPS]
    if computed:  # a weight the graph computes could change with an intervention
        return None
    weight = _constant(args[1], clean)
    bias = _constant(args[2], clean) if len(args) == 3 else None
    if not isinstance(weight, torch.Tensor) or not isinstance(bias, torch.Tensor | None):
        return None
    return args[0], weight, bias


def _whole(node: fx.Node, clean: Mapping[fx.Node, Any]) -> fx.Node:
    """``node``'s source through slices that keep every position (``x[:, 0:]``)."""
    while node.op == "call_function" and node.target is torch.ops.aten.slice.Tensor:
        args: list[Any] = [*node.args, *(None, 0, None, None, 1)[len(node.args) :]]
        source, dim, start, end, step = args
        value = clean.get(source) if isinstance(source, fx.Node) else None
        if not isinstance(value, torch.Tensor) or not all(
            isinstance(a, int | None) for a in (dim, start, end, step)
        ):
            break
        size = value.shape[int(dim)]
        if start not in (0, None) or step != 1 or (end is not None and end < size):
            break
        node = source
    return node


def _leaves_last_axis(index: Any, ndim: int) -> bool:
    if index is None:
        return True
    parts = index if isinstance(index, tuple) else (index,)
    simple = all(isinstance(p, int | slice) and not isinstance(p, bool) for p in parts)
    return simple and len(parts) < ndim


def fold_readout(
    outcome: LinearReadout,
    variables: Mapping[str, fx.Node],
    graph_module: fx.GraphModule,
    clean: Mapping[fx.Node, Any],
    touched: Collection[str],
) -> LinearReadout:
    """``outcome`` read from the input of the linear layer that computes it, where exact.

    Parameters
    ----------
    outcome : LinearReadout
        The readout.
    variables : mapping of str to fx.Node
        The model's variables.
    graph_module : torch.fx.GraphModule
        The traced graph (for ``nn.Linear`` calls).
    clean : mapping of fx.Node to value
        A clean run (for the weights of ``linear`` operations, and the shapes).
    touched : collection of str
        The variables some intervention of the query sets: a readout of one of them is kept.

    Returns
    -------
    LinearReadout
        The folded readout, or ``outcome`` unchanged.
    """
    (site,) = outcome.of
    name, index = (site.node, site.index) if isinstance(site, Site) else (site, None)
    node = variables.get(name)
    if node is None or name in touched or not isinstance(outcome.weight, torch.Tensor):
        return outcome
    parts = linear_parts(node, graph_module, clean)
    value = clean.get(node)
    if parts is None or not isinstance(value, torch.Tensor):
        return outcome
    x, weight, bias = parts
    source = {n: v for v, n in variables.items()}.get(_whole(x, clean))
    if source is None or not _leaves_last_axis(index, value.dim()):
        return outcome
    w = outcome.weight
    with torch.no_grad():
        # a model on several devices: the layer's weights are brought to the readout's
        folded = weight.detach().to(w.device, w.dtype).T @ w
        constant = outcome.constant
        if bias is not None:
            constant = constant + bias.detach().to(w.device, w.dtype) @ w
    read = Site(source, index) if isinstance(site, Site) else source
    return linear_readout(read, folded, constant, name=outcome.label)
