"""Collapsing a traced graph onto its variables: the causal graph's edges.

Only some nodes of a traced graph are variables of the causal model; every other operation is
part of the mechanism of the variables downstream of it. The parents of a variable are the
variables and inputs it reaches by walking its graph inputs backwards *through non-variable
nodes only*: an edge X -> V for every data path from X to V that meets no other variable.

Two kinds of dependency carry no causal information and are ignored:

* **shape-only** reads: ``x.size(1)``, ``aten.sym_size``, ``zeros_like(x)``, ``x.new_ones(...)``
  read the shape of a value, never its numbers, and an intervention cannot change a shape;
* **constants of the context**: nodes that depend on no input value at all -- parameters,
  causal masks, position ids, rotary tables computed from shapes and positions. They are the
  same in every intervened run, so they are computed once per context and cached.

Examples
--------
>>> import torch
>>> from scmnet.toys.modules import SelfRepairNet
>>> from scmnet.tracing.capture.frontends import bind_example, capture
>>> net = SelfRepairNet().eval()
>>> gm = capture(net, bind_example(net, torch.zeros(2))).graph_module
>>> parents = collapse(gm, {"clone": "x", "where": "f", "add": "y"}, {"u": "u"})
>>> parents["f"]
('u', 'x')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import fx

__all__ = ["collapse", "input_dependent", "value_inputs"]

_aten = torch.ops.aten

_SHAPE_QUERIES: set[Any] = {
    _aten.sym_size.int,
    _aten.sym_size.default,
    _aten.sym_numel.default,
    _aten.sym_stride.int,
    _aten.sym_stride.default,
    _aten.sym_storage_offset.default,
    _aten.size.default,
    _aten.size.int,
    _aten.dim.default,
    _aten.numel.default,
}
_FACTORIES_LIKE: set[Any] = {
    _aten.zeros_like.default,
    _aten.ones_like.default,
    _aten.empty_like.default,
    _aten.full_like.default,
    _aten.new_zeros.default,
    _aten.new_ones.default,
    _aten.new_empty.default,
    _aten.new_full.default,
    torch.zeros_like,
    torch.ones_like,
    torch.empty_like,
    torch.full_like,
}
_SHAPE_METHODS = {"size", "dim", "numel", "stride", "ndimension", "nelement"}
_FACTORY_METHODS = {"new_zeros", "new_ones", "new_empty", "new_full"}
_SHAPE_ATTRIBUTES = {"shape", "dtype", "device", "ndim", "layout", "is_cuda"}


def value_inputs(node: fx.Node) -> list[fx.Node]:
    """The nodes whose *values* (not only shapes) ``node`` reads.

    Examples
    --------
    >>> import torch
    >>> gm = torch.fx.symbolic_trace(lambda x: torch.zeros_like(x) + x.size(0))
    >>> [n.name for n in gm.graph.nodes if n.op != "output" and value_inputs(n)]
    ['add']
    """
    target = node.target
    if node.op == "call_function":
        if target in _SHAPE_QUERIES:
            return []
        if target is getattr and len(node.args) > 1 and node.args[1] in _SHAPE_ATTRIBUTES:
            return []
        if target in _FACTORIES_LIKE:
            first = node.args[0] if node.args else None
            return [n for n in node.all_input_nodes if n is not first]
    elif node.op == "call_method":
        if target in _SHAPE_METHODS:
            return []
        if target in _FACTORY_METHODS:
            first = node.args[0] if node.args else None
            return [n for n in node.all_input_nodes if n is not first]
    return list(node.all_input_nodes)


def input_dependent(gm: fx.GraphModule, inputs: set[str]) -> frozenset[str]:
    """The names of the nodes whose values depend on the values of the ``inputs`` nodes.

    The other nodes are constants of the context (given the input shapes).

    Examples
    --------
    >>> import torch
    >>> gm = torch.fx.symbolic_trace(lambda x: x * torch.arange(x.size(0)))
    >>> sorted(input_dependent(gm, {"x"}))
    ['mul', 'x']
    """
    dependent: set[str] = set()
    for node in gm.graph.nodes:
        if node.op == "output":
            continue
        if node.name in inputs or any(a.name in dependent for a in value_inputs(node)):
            dependent.add(node.name)
    return frozenset(dependent)


def collapse(
    gm: fx.GraphModule, variables: Mapping[str, str], inputs: Mapping[str, str]
) -> dict[str, tuple[str, ...]]:
    """The parents of every variable, with non-variable operations collapsed.

    Parameters
    ----------
    gm : torch.fx.GraphModule
    variables : mapping of node name to variable name
        The nodes that carry the endogenous variables.
    inputs : mapping of node name to input name
        The placeholders that carry the exogenous variables.

    Returns
    -------
    dict
        Variable name to its parents (inputs first, then variables, each in graph order).
    """
    exogenous = set(inputs.values())
    rank: dict[str, int] = {}
    sources: dict[str, frozenset[str]] = {}
    parents: dict[str, tuple[str, ...]] = {}
    for position, node in enumerate(gm.graph.nodes):
        if node.op == "output":
            continue
        if node.name in inputs:
            rank[inputs[node.name]] = position
            sources[node.name] = frozenset([inputs[node.name]])
            continue
        reached: set[str] = set()
        for arg in value_inputs(node):
            if arg.name in variables:
                reached.add(variables[arg.name])
            else:
                reached.update(sources.get(arg.name, ()))
        if node.name in variables:
            name = variables[node.name]
            rank[name] = position
            parents[name] = tuple(sorted(reached, key=lambda v: (v not in exogenous, rank[v])))
            sources[node.name] = frozenset([name])
        else:
            sources[node.name] = frozenset(reached)
    return parents
