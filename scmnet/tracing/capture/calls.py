"""Module calls: which operations of a traced graph each ``nn.Module`` call computed.

Both front ends record, on every node, the stack of module calls it ran inside
(``node.meta["nn_module_stack"]``, outermost first). A **module call** is one entry of those
stacks: a module path plus, for a module called more than once, the call number (the second
call of ``f`` is ``"f@1"``, as torch names it). Its nodes are every node whose stack contains
it -- the *whole* call, nested calls included. (Grouping each node by its innermost entry only
splits a call into pieces whose dependencies can form cycles.)

The **outputs** of a call are its nodes whose values are read outside it (or returned by the
model): for a layer, the tensor it returns. A call with exactly one output is a natural
variable: its value is the module's output.

Examples
--------
>>> import torch
>>> from scmnet.toys.modules import ErasureNet
>>> from scmnet.tracing.capture.frontends import bind_example, capture
>>> net = ErasureNet().eval()
>>> index = CallIndex.build(capture(net, bind_example(net, torch.zeros(2))).graph_module, net)
>>> [(c.key, c.outputs) for c in index.children("")]
[('x', ('clone',)), ('f', ('neg',)), ('y', ('add',))]
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from torch import fx, nn

__all__ = ["CallIndex", "ModuleCall"]

_CALL_NUMBER = re.compile(r"@(\d+)$")


@dataclass(frozen=True)
class ModuleCall:
    """One call of a module during the traced forward pass.

    Attributes
    ----------
    key : str
        The module path, with ``"@k"`` appended for the k-th repeated call (``""`` for the root).
    path : str
        The module path (``"model.layers.3.mlp"``).
    number : int
        0 for the first call of the module, k for ``"@k"``.
    module_type : str
        The module's class, qualified (``"torch.nn.modules.linear.Linear"``).
    parent : str or None
        The key of the enclosing call (``None`` for the root).
    children : tuple of str
        The keys of the calls made directly inside this one, in graph order.
    nodes : frozenset of str
        The names of every graph node computed inside this call (nested calls included).
    direct : tuple of str
        The nodes computed by this call's own code, outside any nested call, in graph order.
    outputs : tuple of str
        The nodes whose values leave the call, in graph order.
    """

    key: str
    path: str
    number: int
    module_type: str
    parent: str | None
    children: tuple[str, ...]
    nodes: frozenset[str]
    direct: tuple[str, ...]
    outputs: tuple[str, ...]

    @property
    def is_leaf(self) -> bool:
        """Whether the call made no nested module calls."""
        return not self.children


def _type_name(module_type: Any) -> str:
    if isinstance(module_type, type):
        return f"{module_type.__module__}.{module_type.__qualname__}"
    return str(module_type)


class CallIndex:
    """The module calls of a traced graph, as a tree rooted at the model's own call ``""``.

    Build one with :meth:`build`. Calls are ordered by their first node.
    """

    def __init__(
        self,
        calls: dict[str, ModuleCall],
        innermost: dict[str, str],
        modules: dict[str, nn.Module],
    ) -> None:
        self._calls = MappingProxyType(calls)
        self._innermost = MappingProxyType(innermost)
        self._modules = modules

    @classmethod
    def build(cls, gm: fx.GraphModule, model: nn.Module) -> CallIndex:
        """Index the module calls of ``gm``, a graph traced from ``model``."""
        order: list[str] = [""]
        info: dict[str, tuple[str, int, str, str | None]] = {
            "": ("", 0, _type_name(type(model)), None)
        }
        members: dict[str, list[str]] = {"": []}
        direct: dict[str, list[str]] = {"": []}
        innermost: dict[str, str] = {}
        output_node = gm.graph.output_node()
        real: dict[str, bool] = {}

        def is_module(path: str) -> bool:
            if path not in real:
                try:
                    model.get_submodule(path)
                    real[path] = True
                except AttributeError:
                    real[path] = False
            return real[path]

        for node in gm.graph.nodes:
            if node is output_node:
                continue
            stack = node.meta.get("nn_module_stack") or {}
            parent = ""
            members[""].append(node.name)
            for stack_key, (path, module_type) in stack.items():
                if not path or not is_module(path):
                    continue  # the root, or a marker that names no module
                match = _CALL_NUMBER.search(str(stack_key))
                number = int(match.group(1)) if match else 0
                key = f"{path}@{number}" if number else path
                if key not in info:
                    info[key] = (path, number, _type_name(module_type), parent)
                    order.append(key)
                    members[key] = []
                    direct[key] = []
                members[key].append(node.name)
                parent = key
            direct[parent].append(node.name)
            innermost[node.name] = parent

        by_name = {n.name: n for n in gm.graph.nodes}
        calls: dict[str, ModuleCall] = {}
        children: dict[str, list[str]] = {k: [] for k in order}
        for key in order[1:]:
            parent_key = info[key][3]
            if parent_key is not None:
                children[parent_key].append(key)
        for key in order:
            inside = frozenset(members[key])
            outputs = tuple(
                name
                for name in members[key]
                if any(
                    user.name not in inside or user is output_node for user in by_name[name].users
                )
            )
            path, number, type_name, parent_key = info[key]
            calls[key] = ModuleCall(
                key=key,
                path=path,
                number=number,
                module_type=type_name,
                parent=parent_key,
                children=tuple(children[key]),
                nodes=inside,
                direct=tuple(direct[key]),
                outputs=outputs,
            )
        modules = {key: model.get_submodule(call.path) for key, call in calls.items()}
        return cls(calls, innermost, modules)

    def __getitem__(self, key: str) -> ModuleCall:
        return self._calls[key]

    def __contains__(self, key: object) -> bool:
        return key in self._calls

    def __iter__(self) -> Iterator[ModuleCall]:
        return iter(self._calls.values())

    def __len__(self) -> int:
        return len(self._calls)

    @property
    def root(self) -> ModuleCall:
        """The call of the model itself (key ``""``)."""
        return self._calls[""]

    def children(self, key: str) -> list[ModuleCall]:
        """The calls made directly inside the call ``key``, in graph order."""
        return [self._calls[k] for k in self._calls[key].children]

    def module(self, key: str) -> nn.Module:
        """The module object of the call ``key``."""
        return self._modules[key]

    def innermost(self, node: str) -> ModuleCall:
        """The innermost call that computed the node named ``node`` (the root if none)."""
        return self._calls[self._innermost.get(node, "")]

    def enclosing(self, node: str) -> list[ModuleCall]:
        """Every call that computed ``node``, outermost (the root) first."""
        chain = []
        call: ModuleCall | None = self.innermost(node)
        while call is not None:
            chain.append(call)
            call = self._calls[call.parent] if call.parent is not None else None
        return chain[::-1]
