"""Selectors: which nodes of a traced graph are the variables (the granularity).

The variables of the SCM are a chosen subset of the traced graph's nodes; every other operation
is collapsed into the mechanisms of the variables downstream of it
(:mod:`scmnet.tracing.capture.collapse`). The choice decides what "direct" means: a direct
effect holds every *other variable* at its natural value and lets a change flow only through
the collapsed operations.

Selectors say which nodes are variables. They are typed values that combine with ``|``
(union), ``&`` (intersection) and ``-`` (difference), and ``.expect(n)`` makes a selection
that must find exactly ``n`` variables:

* :class:`ByPath` -- module calls whose path matches a glob (``"model.layers.*.mlp"``; ``*``
  stays within one path segment, ``**`` spans several); the variable is the module's output;
* :class:`ByType` -- module calls of given classes (``ByType(nn.Linear)``);
* :class:`ByPredicate` -- single operations chosen by a function of the ``torch.fx`` node,
  optionally only inside modules matching ``within`` (e.g. the ``rsqrt`` of a final RMSNorm,
  the paper's normalisation scale sigma);
* :class:`Default` -- module outputs at a sensible depth (see its docstring): for a decoder
  language model, the embedding, every attention block and MLP, the final norm and the
  unembedding; for a plain network, its child modules.

Names are stable and readable: a module call is named by its path (``"model.layers.3.mlp"``,
``"f@1"`` for a module's second call, ``"path/out1"`` where a call returns several values);
an operation by its module call and op name (``"model.norm/rsqrt"``, ``"model.norm/mul.1"``
for the second ``mul`` there). The model's own output, where it is not already a variable,
is always a variable: named after the module that returns it (``"lm_head"``), or
``"output"`` if the model's own code computes it.

Examples
--------
>>> import torch
>>> from torch import nn
>>> from scmnet.tracing import ByPath, ByType, trace
>>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
>>> trace(net, torch.zeros(1, 3)).endogenous
('0', '1', '2')
>>> trace(net, torch.zeros(1, 3), variables=ByType(nn.Linear).expect(2)).endogenous
('0', '2')
"""

from __future__ import annotations

import abc
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import fx, nn

from scmnet.errors import InvalidSelection, did_you_mean, format_names
from scmnet.tracing.capture._glob import path_matches
from scmnet.tracing.capture.calls import CallIndex, ModuleCall

__all__ = [
    "AllOf",
    "AnyOf",
    "ByPath",
    "ByPredicate",
    "ByType",
    "Candidate",
    "Default",
    "Expect",
    "SelectionContext",
    "Selector",
    "Without",
    "resolve",
]


@dataclass(frozen=True)
class Candidate:
    """A graph node that a selector makes a variable.

    Attributes
    ----------
    name : str
        The variable's name.
    node : str
        The graph node that carries its value.
    call : str
        The key of the module call that computed it (``""`` for the model's own code).
    kind : {"module", "op", "output"}
        A module call's output, a single operation, or a model output.
    """

    name: str
    node: str
    call: str
    kind: Literal["module", "op", "output"]


@dataclass(frozen=True, eq=False)
class SelectionContext:
    """What selectors choose from: the graph, its module calls and its data dependencies.

    Attributes
    ----------
    graph_module : torch.fx.GraphModule
    index : CallIndex
    dependent : frozenset of str
        Nodes whose values depend on input values (the others are constants of the context).
    outputs : tuple of (str, str)
        ``(label, node)`` for each tensor the model returns.
    nodes : mapping of str to torch.fx.Node
        The graph's nodes by name.
    position : mapping of str to int
        Each node's position in the graph (a topological order).
    tensors : frozenset of str
        Nodes whose value is a tensor (only those can be variables).
    notes : list of str
        Filled by the selectors: module calls that provide no variable, and why.
    """

    graph_module: fx.GraphModule
    index: CallIndex
    dependent: frozenset[str]
    outputs: tuple[tuple[str, str], ...]
    nodes: Mapping[str, fx.Node]
    position: Mapping[str, int]
    tensors: frozenset[str]
    notes: list[str] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        gm: fx.GraphModule,
        index: CallIndex,
        dependent: frozenset[str],
        outputs: tuple[tuple[str, str], ...],
        tensors: frozenset[str],
    ) -> SelectionContext:
        """Collect what selectors need from a graph and its call index."""
        nodes = {n.name: n for n in gm.graph.nodes}
        position = {name: i for i, name in enumerate(nodes)}
        return cls(gm, index, dependent, outputs, nodes, position, tensors)

    def module_candidates(self, call: ModuleCall) -> list[Candidate]:
        """The variables a module call provides: its output, or each of several outputs.

        A call that returns a tuple (``nn.LSTM``) provides the tensor elements that the model
        reads, named ``"lstm[0]"``, ``"lstm[1][0]"``; a call that provides no tensor is noted
        in :attr:`notes` and provides nothing.
        """
        live = [o for o in call.outputs if o in self.dependent]
        outs = live or list(call.outputs)
        found: list[Candidate] = []
        for i, out in enumerate(outs):
            base = call.key if len(outs) == 1 else f"{call.key}/out{i}"
            for name, node in self._elements(base, out):
                found.append(Candidate(name, node, call.key, "module"))
        if not found:
            self.notes.append(
                f"module call {call.key!r} ({call.module_type.rsplit('.', 1)[-1]}) returns no "
                f"tensor that the model reads, so it is not a variable"
            )
        return found

    def _elements(self, name: str, node: str) -> list[tuple[str, str]]:
        """``node`` if it is a tensor, else the tensor elements read from it by indexing."""
        if node in self.tensors:
            return [(name, node)]
        found = []
        for user in self.nodes[node].users:
            if user.op == "call_function" and user.target is operator.getitem:
                key = user.args[1]
                if isinstance(key, int | str):
                    found.extend(self._elements(f"{name}[{key!r}]", user.name))
        return found

    def is_live(self, call: ModuleCall) -> bool:
        """Whether some output of the call depends on the input values."""
        return any(o in self.dependent for o in call.outputs)

    def op_candidate(self, node: fx.Node) -> Candidate:
        """The variable for a single operation, named ``"<module call>/<op>[.k]"``."""
        call = self.index.innermost(node.name)
        op = _op_name(node)
        same = [n for n in call.direct if _op_name(self.nodes[n]) == op]
        k = same.index(node.name) if node.name in same else 0
        base = f"{call.key}/{op}" if call.key else op
        return Candidate(base if k == 0 else f"{base}.{k}", node.name, call.key, "op")


def _op_name(node: fx.Node) -> str:
    target = node.target
    if isinstance(target, torch._ops.OpOverload):
        return str(target._overloadpacket.__name__)
    if isinstance(target, str):
        return target.rsplit(".", 1)[-1]
    return str(getattr(target, "__name__", node.op))


class Selector(abc.ABC):
    """Chooses variables among the nodes of a traced graph."""

    @abc.abstractmethod
    def select(self, context: SelectionContext) -> list[Candidate]:
        """The chosen variables, in graph order."""

    def __or__(self, other: Selector) -> Selector:
        return AnyOf((self, other))

    def __and__(self, other: Selector) -> Selector:
        return AllOf((self, other))

    def __sub__(self, other: Selector) -> Selector:
        return Without(self, other)

    def expect(self, n: int) -> Selector:
        """This selection, required to find exactly ``n`` variables.

        Raises
        ------
        InvalidSelection
            At trace time, if the count differs (the message lists what was found).
        """
        if not isinstance(n, int) or n < 0:
            raise InvalidSelection(f"expect() needs a non-negative int, got {n!r}")
        return Expect(self, n)


def _ordered(context: SelectionContext, candidates: Sequence[Candidate]) -> list[Candidate]:
    seen: dict[str, Candidate] = {}
    for c in candidates:
        seen.setdefault(c.name, c)
    return sorted(seen.values(), key=lambda c: context.position[c.node])


@dataclass(frozen=True)
class ByPath(Selector):
    """Module calls whose path matches a glob; the variable is the module's output.

    ``*`` matches within one path segment and ``**`` any number of segments, so
    ``"model.layers.*.mlp"`` selects every layer's MLP. Every call of a module called more than
    once is selected (``"f"``, ``"f@1"``).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from scmnet.tracing import ByPath, trace
    >>> net = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.ReLU(), nn.Linear(2, 1))).eval()
    >>> trace(net, torch.zeros(1, 2), variables=ByPath("1.*")).endogenous
    ('1.0', '1.1')
    """

    pattern: str

    def __post_init__(self) -> None:
        if not isinstance(self.pattern, str):
            raise InvalidSelection(f"ByPath needs a str pattern, got {self.pattern!r}")

    def select(self, context: SelectionContext) -> list[Candidate]:
        """Module calls whose path matches ``pattern``."""
        found: list[Candidate] = []
        for call in context.index:
            if call.key and call.outputs and path_matches(self.pattern, call.path):
                found.extend(context.module_candidates(call))
        return _ordered(context, found)


@dataclass(frozen=True, init=False)
class ByType(Selector):
    """Module calls of the given classes (``isinstance``); the variable is the module's output.

    Examples
    --------
    >>> from torch import nn
    >>> ByType(nn.Linear, nn.Conv2d).types
    (<class 'torch.nn.modules.linear.Linear'>, <class 'torch.nn.modules.conv.Conv2d'>)
    """

    types: tuple[type[nn.Module], ...]

    def __init__(self, *types: type[nn.Module]) -> None:
        for t in types:
            if not (isinstance(t, type) and issubclass(t, nn.Module)):
                raise InvalidSelection(f"ByType needs nn.Module classes, got {t!r}")
        if not types:
            raise InvalidSelection("ByType needs at least one nn.Module class")
        object.__setattr__(self, "types", tuple(types))

    def select(self, context: SelectionContext) -> list[Candidate]:
        """Module calls whose module is an instance of one of ``types``."""
        found: list[Candidate] = []
        for call in context.index:
            if call.key and call.outputs and isinstance(context.index.module(call.key), self.types):
                found.extend(context.module_candidates(call))
        return _ordered(context, found)


@dataclass(frozen=True)
class ByPredicate(Selector):
    """Single operations for which ``fn(node)`` is true, ``node`` being a ``torch.fx.Node``.

    Parameters
    ----------
    fn : callable
        Called with each operation node (``call_function``, ``call_method``,
        ``call_module``) of the graph that runs, after no-op conversions are dropped.
    within : str, optional
        Only consider operations computed inside a module call whose path matches this glob.

    Examples
    --------
    The normalisation scale of the final norm of a decoder model (sigma in eqs. 7-10):

    >>> import torch
    >>> sigma = ByPredicate(lambda n: n.target is torch.ops.aten.rsqrt.default,
    ...                     within="model.norm")
    >>> sigma.within
    'model.norm'
    """

    fn: Callable[[fx.Node], bool]
    within: str | None = None

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise InvalidSelection(f"ByPredicate needs a callable, got {self.fn!r}")

    def select(self, context: SelectionContext) -> list[Candidate]:
        """Operations accepted by ``fn`` (inside ``within``)."""
        found: list[Candidate] = []
        for node in context.graph_module.graph.nodes:
            if node.op not in ("call_function", "call_method", "call_module"):
                continue
            if self.within is not None and not any(
                call.key and path_matches(self.within, call.path)
                for call in context.index.enclosing(node.name)
            ):
                continue
            if self.fn(node):
                found.append(context.op_candidate(node))
        return _ordered(context, found)


@dataclass(frozen=True)
class AnyOf(Selector):
    """The union of several selections."""

    parts: tuple[Selector, ...]

    def select(self, context: SelectionContext) -> list[Candidate]:
        """Every candidate of every part, once."""
        return _ordered(context, [c for part in self.parts for c in part.select(context)])


@dataclass(frozen=True)
class AllOf(Selector):
    """The intersection of several selections (by variable name)."""

    parts: tuple[Selector, ...]

    def select(self, context: SelectionContext) -> list[Candidate]:
        """The candidates every part selects."""
        first, *rest = [part.select(context) for part in self.parts]
        names = set.intersection(*({c.name for c in sel} for sel in rest)) if rest else None
        return [c for c in first if names is None or c.name in names]


@dataclass(frozen=True)
class Without(Selector):
    """The candidates of ``keep`` that ``drop`` does not select."""

    keep: Selector
    drop: Selector

    def select(self, context: SelectionContext) -> list[Candidate]:
        """``keep``'s candidates minus ``drop``'s."""
        dropped = {c.name for c in self.drop.select(context)}
        return [c for c in self.keep.select(context) if c.name not in dropped]


@dataclass(frozen=True)
class Expect(Selector):
    """A selection that must find exactly ``count`` variables."""

    selector: Selector
    count: int

    def select(self, context: SelectionContext) -> list[Candidate]:
        """The wrapped selection, after checking its size."""
        found = self.selector.select(context)
        if len(found) != self.count:
            shown = format_names([c.name for c in found]) if found else "nothing"
            raise InvalidSelection(
                f"{self.selector!r} selects {len(found)} variable(s), but {self.count} were "
                f"expected; it selects {shown}"
            )
        return found


_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


@dataclass(frozen=True)
class Default(Selector):
    """Module outputs at a sensible depth, chosen from the structure of the module calls.

    Starting at the model, each module call made inside a visited call is

    * **visited** in turn if it has nested calls that have nested calls of their own (a
      stack of blocks such as a decoder model or a decoder layer), where containers
      (``nn.Sequential``, ``nn.ModuleList``, ``nn.ModuleDict``) do not count as a level: a
      residual block whose shortcut is an ``nn.Sequential(conv, norm)`` is one block, and so
      is an MLP written as an ``nn.Sequential``; a container is visited if the model calls it
      directly or it holds such blocks (``layer1`` of a ResNet);
    * and **identical siblings are treated alike**: if one call of a class is visited, every
      sibling call of the same class is;
    * skipped if its output does not depend on the input values (rotary tables, position
      embeddings of a fixed length: constants of the context) or if it computes nothing (eval
      dropout);
    * skipped as a **pre-norm** if it makes no nested calls, its output is read only by
      sibling blocks that are variables, and its input is also read by the parent's own code:
      the ``norm`` of a residual block ``x + f(norm(x))`` is part of ``f``'s mechanism;
    * otherwise a variable: its output, or the tensor elements of a tuple it returns
      (``"lstm[0]"``); a call that returns no tensor the model reads is skipped, with a note in the
      ``notes`` of the trace's :class:`~scmnet.tracing.TraceInfo`.

    For a Llama-style decoder this gives the embedding, each layer's attention and MLP, the
    final norm and the unembedding (Gemma's post-block norms also feed the residual stream
    and are kept); for ``nn.Sequential(Linear, ReLU, Linear)`` its three layers.

    Examples
    --------
    >>> import torch
    >>> from scmnet.toys.modules import SelfRepairNet
    >>> from scmnet.tracing import trace
    >>> trace(SelfRepairNet().eval(), torch.zeros(2), variables=Default()).endogenous
    ('x', 'f', 'y')
    """

    def select(self, context: SelectionContext) -> list[Candidate]:
        """The default variables of the traced model."""
        found: list[Candidate] = []
        self._visit(context, context.index.root, found)
        return _ordered(context, found)

    def _descend(self, context: SelectionContext, call: ModuleCall) -> bool:
        if isinstance(context.index.module(call.key), _CONTAINERS):
            return call.parent == "" or _depth(context, call) >= 1
        return _depth(context, call) >= 2

    def _visit(self, context: SelectionContext, call: ModuleCall, found: list[Candidate]) -> None:
        kids = [c for c in context.index.children(call.key) if context.is_live(c)]
        visited = {c.key for c in kids if self._descend(context, c)}
        # identical siblings are treated alike: all of a class are visited if one of them is
        classes = {type(context.index.module(c.key)) for c in kids if c.key in visited}
        visited |= {
            c.key for c in kids if not c.is_leaf and type(context.index.module(c.key)) in classes
        }
        blocks = [c for c in kids if c.key not in visited and not c.is_leaf]
        for child in kids:
            if child.key in visited:
                self._visit(context, child, found)
            elif not (child.is_leaf and _is_prenorm(context, child, call, blocks)):
                found.extend(context.module_candidates(child))


def _depth(context: SelectionContext, call: ModuleCall) -> int:
    """How deep module calls nest inside ``call``: 0 for a leaf, 1 for a block of leaves.

    Containers (``nn.Sequential``...) add no level: a residual block whose shortcut is an
    ``nn.Sequential(conv, norm)`` is as deep as one without it.
    """
    kids = context.index.children(call.key)
    if not kids:
        return 0
    deepest = max(_depth(context, c) for c in kids)
    return deepest if isinstance(context.index.module(call.key), _CONTAINERS) else deepest + 1


def _is_prenorm(
    context: SelectionContext, leaf: ModuleCall, parent: ModuleCall, blocks: list[ModuleCall]
) -> bool:
    """Whether ``leaf`` only prepares the input of sibling blocks on a residual branch."""
    if not blocks:
        return False
    nodes = context.nodes
    users = [u for o in leaf.outputs if o in context.dependent for u in nodes[o].users]
    if not users or not all(any(u.name in b.nodes for b in blocks) for u in users):
        return False
    own = set(parent.direct)
    feeding = {
        arg
        for name in leaf.nodes
        for arg in nodes[name].all_input_nodes
        if arg.name not in leaf.nodes and arg.name in context.dependent
    }
    return any(user.name in own for arg in feeding for user in arg.users)


def resolve(
    selector: Selector | str | Sequence[Selector | str] | None, context: SelectionContext
) -> list[Candidate]:
    """The variables of a traced model: the selection plus the model's outputs.

    A string means :class:`ByPath`, a sequence the union of its items, ``None`` the
    :class:`Default`. Each node becomes one variable (the first name selected for it); model
    outputs that are not selected variables are added as ``"output"`` (``"output.logits"``,
    ``"output[0]"`` where there are several), or by the module call that returns them
    (``"lm_head"``).

    Raises
    ------
    InvalidSelection
        If the selection is empty (the message lists close module paths).
    """
    chosen = _as_selector(selector)
    found = chosen.select(context)
    if not found:
        paths = [c.path for c in context.index if c.key]
        if not paths:
            raise InvalidSelection(
                f"{chosen!r} selects no variable: no submodule of the model computes anything; "
                f"select single operations with ByPredicate(...)"
            )
        hint = did_you_mean(getattr(chosen, "pattern", ""), paths)
        raise InvalidSelection(
            f"{chosen!r} selects no variable{hint}; module paths look like "
            f"{format_names(paths, limit=8)}"
        )
    by_node: dict[str, Candidate] = {}
    for c in found:
        by_node.setdefault(c.node, c)
    taken = {c.name for c in by_node.values()}
    for label, node in context.outputs:
        if node in by_node or node not in context.dependent:
            continue
        if context.nodes[node].op == "placeholder":
            continue  # the model returns an input unchanged
        candidate = _module_output(context, node)
        if candidate is None or candidate.name in taken:
            name = f"output{label}"
            while name in taken:
                name = f"{name}'"
            candidate = Candidate(name, node, context.index.innermost(node).key, "output")
        by_node[node] = candidate
        taken.add(candidate.name)
    return _ordered(context, list(by_node.values()))


def _module_output(context: SelectionContext, node: str) -> Candidate | None:
    """The variable a module call would provide for ``node``, if ``node`` is a call's output."""
    for call in reversed(context.index.enclosing(node)):
        if call.key and node in call.outputs:
            for candidate in context.module_candidates(call):
                if candidate.node == node:
                    return candidate
    return None


def _as_selector(selector: Selector | str | Sequence[Selector | str] | None) -> Selector:
    if selector is None:
        return Default()
    if isinstance(selector, Selector):
        return selector
    if isinstance(selector, str):
        return ByPath(selector)
    if isinstance(selector, Sequence):
        parts = tuple(_as_selector(s) for s in selector)
        if not parts:
            raise InvalidSelection("the list of variable selectors is empty")
        return parts[0] if len(parts) == 1 else AnyOf(parts)
    raise InvalidSelection(
        f"variables must be a selector (ByPath, ByType, ByPredicate, Default), a path glob, "
        f"or a list of them; got {type(selector).__name__}"
    )
