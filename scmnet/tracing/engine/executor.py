"""Running a traced graph with some node values clamped or overridden.

:class:`Executor` is a small interpreter in the style of :class:`torch.fx.Interpreter`: one
method per kind of node (:meth:`~Executor.placeholder`, :meth:`~Executor.get_attr`,
:meth:`~Executor.call_function`, :meth:`~Executor.call_method`,
:meth:`~Executor.call_module`), overridable in a subclass, and a :meth:`~Executor.run` that
executes a chosen list of nodes. Two arguments make interventions cheap and exact:

* ``initial_env`` clamps nodes to given values: the cached values of a clean run, so that only
  the nodes downstream of an intervention are recomputed (the others are read, not run);
* ``overrides`` maps a node to a function of its natural value -- the override point where an
  intervention replaces a variable's value. The natural value is computed lazily, only if the
  override asks for it (a hard ``do(Z = z')`` never runs Z's mechanism).

Because every operation is the one the model runs (``torch.fx``) or its ATen form
(``torch.export``), a value computed here equals the value the eager model produces with the
same activations patched in by forward hooks.

Examples
--------
>>> import torch
>>> from scmnet.toys.modules import ErasureNet
>>> from scmnet.tracing.capture.frontends import bind_example, capture
>>> net = ErasureNet().eval()
>>> cap = capture(net, bind_example(net, torch.zeros(2)))
>>> ex = Executor(cap.graph_module, cap.feeds, net)
>>> clean = ex.run({"u": torch.tensor([1.0, 2.0])})
>>> clean[ex.node("add")]
tensor([0., 0.])
>>> f = ex.node("neg")
>>> patched = ex.run({}, initial_env=clean, nodes=ex.downstream({f}) | {f},
...                  overrides={f: lambda natural: torch.zeros(2)})
>>> patched[ex.node("add")]
tensor([1., 2.])
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import torch
from torch import fx, nn
from torch.fx.node import map_arg

from scmnet.errors import InvalidContext, MechanismError
from scmnet.tracing.engine.devices import live_value, placement, stored_value
from scmnet.tracing.engine.fused_attention import FUSED_ATTENTION, fused_arguments

__all__ = ["Executor", "Feed", "Override", "modified_in_place", "module_path"]

Override = Callable[[Callable[[], Any]], Any]
"""An override point: called with a thunk computing the natural value, returns the value."""


@dataclass(frozen=True)
class Feed:
    """Where the value of one placeholder of the graph comes from.

    ``kind`` is ``"input"`` (a context value, looked up by ``name``), ``"parameter"`` or
    ``"buffer"`` (read from the live model by its path ``name`` at every clean run), or
    ``"constant"`` (``value``, fixed at trace time).
    """

    node: str
    name: str
    kind: Literal["input", "parameter", "buffer", "constant"]
    value: Any = None


class Executor:
    """Executes the nodes of a traced graph (see the module docs).

    Parameters
    ----------
    graph_module : torch.fx.GraphModule
        The graph; ``get_attr`` and ``call_module`` targets live on it.
    feeds : sequence of Feed
        How each placeholder gets its value.
    model : torch.nn.Module
        The live model; parameters and buffers of an exported graph are read from it (an
        offloaded one from its module's hook, :func:`~.devices.stored_value`). Where they sit
        on several devices, each operation runs on the device of the parameters it reads or of
        its module, its arguments moved there (:func:`~.devices.placement`).
    """

    def __init__(
        self, graph_module: fx.GraphModule, feeds: Sequence[Feed], model: nn.Module
    ) -> None:
        self.model = model
        self.graph_module = graph_module
        self.order: tuple[fx.Node, ...] = tuple(
            n for n in graph_module.graph.nodes if n.op != "output"
        )
        self.position: dict[fx.Node, int] = {n: i for i, n in enumerate(self.order)}
        self._by_name: dict[str, fx.Node] = {n.name: n for n in self.order}
        self._feeds: dict[str, Feed] = {f.node: f for f in feeds}
        self.placement = placement(graph_module, feeds, model)
        self._stored: dict[str, Any] = {}  # offloaded weights, read once (not once per run)

    def node(self, name: str) -> fx.Node:
        """The graph node called ``name``."""
        return self._by_name[name]

    # -- the overridable steps, one per kind of node ----------------------------------------------

    def placeholder(self, node: fx.Node, inputs: Mapping[str, Any]) -> Any:
        """The value of a graph input: a context value, a live parameter/buffer or a constant."""
        feed = self._feeds[node.name]
        if feed.kind == "input":
            try:
                return inputs[feed.name]
            except KeyError:
                raise InvalidContext(f"no value was given for the input {feed.name!r}") from None
        if feed.kind in ("parameter", "buffer"):
            if self.placement is None:
                if feed.kind == "parameter":
                    return self.model.get_parameter(feed.name)
                return self.model.get_buffer(feed.name)
            found = self._stored.get(feed.name)
            if found is None:
                found = stored_value(self.model, feed.name, feed.kind)
                if found is not live_value(self.model, feed.name, feed.kind):  # offloaded
                    self._stored[feed.name] = found
            return found
        return feed.value

    def get_attr(self, node: fx.Node) -> Any:
        """The value of an attribute of the graph module (a parameter or a subgraph)."""
        value: Any = self.graph_module
        for part in str(node.target).split("."):
            value = getattr(value, part)
        return value

    def call_function(self, node: fx.Node, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Call a free function or an operator overload."""
        fn: Callable[..., Any] = node.target  # type: ignore[assignment]
        if self.placement is not None:
            args, kwargs = self.placement.place(node, args, kwargs)
        if fn in FUSED_ATTENTION:
            args, kwargs = fused_arguments(args, kwargs)
        return fn(*args, **kwargs)

    def call_method(self, node: fx.Node, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Call a method on the first argument."""
        if self.placement is not None:
            args, kwargs = self.placement.place(node, args, kwargs)
        self_obj, *rest = args
        return getattr(self_obj, str(node.target))(*rest, **kwargs)

    def call_module(self, node: fx.Node, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Call a leaf module kept whole by the tracer."""
        if self.placement is not None:
            args, kwargs = self.placement.place(node, args, kwargs)
        return self.graph_module.get_submodule(str(node.target))(*args, **kwargs)

    # -- running --------------------------------------------------------------------------------

    def compute(
        self, node: fx.Node, lookup: Callable[[fx.Node], Any], inputs: Mapping[str, Any]
    ) -> Any:
        """The natural value of ``node``, reading its arguments with ``lookup``.

        Raises
        ------
        MechanismError
            If the operation raises; the message names the node and its module.
        """
        if node.op == "placeholder":
            return self.placeholder(node, inputs)
        if node.op == "get_attr":
            return self.get_attr(node)
        args = cast(tuple[Any, ...], map_arg(node.args, lookup))
        kwargs = cast(dict[str, Any], map_arg(node.kwargs, lookup))
        try:
            if node.op == "call_function":
                return self.call_function(node, args, kwargs)
            if node.op == "call_method":
                return self.call_method(node, args, kwargs)
            return self.call_module(node, args, kwargs)
        except Exception as e:
            raise MechanismError(
                f"the traced operation {node.name!r} ({node.op} {node.target}) in module "
                f"{module_path(node)!r} raised {type(e).__name__}: {e}"
            ) from e

    def run(
        self,
        inputs: Mapping[str, Any],
        *,
        initial_env: Mapping[fx.Node, Any] | None = None,
        nodes: Collection[fx.Node] | None = None,
        overrides: Mapping[fx.Node, Override] | None = None,
    ) -> dict[fx.Node, Any]:
        """Execute ``nodes`` (default: all) in graph order and return their values.

        Parameters
        ----------
        inputs : mapping of str to value
            The context: a value for each input name.
        initial_env : mapping of node to value, optional
            Values of nodes that are not run (the clean run's cache).
        nodes : collection of nodes, optional
            The nodes to run; every argument they read must be run too or be in
            ``initial_env``.
        overrides : mapping of node to Override, optional
            Override points: the value of such a node is ``override(natural)``, where
            ``natural()`` computes (and is only then run) the node's natural value.

        Returns
        -------
        dict
            The values of the nodes that were run.
        """
        env: dict[fx.Node, Any] = {}
        base: Mapping[fx.Node, Any] = initial_env if initial_env is not None else {}
        hooks: Mapping[fx.Node, Override] = overrides if overrides is not None else {}

        def lookup(n: fx.Node) -> Any:
            if n in env:
                return env[n]
            return base[n]

        def natural(n: fx.Node) -> Callable[[], Any]:
            return lambda: self.compute(n, lookup, inputs)

        chosen = self.order if nodes is None else sorted(nodes, key=self.position.__getitem__)
        versions: dict[fx.Node, int] = {}
        for node in chosen:
            hook = hooks.get(node)
            env[node] = self.compute(node, lookup, inputs) if hook is None else hook(natural(node))
            if isinstance(env[node], torch.Tensor):
                versions[node] = env[node]._version
        for node, version in versions.items():
            if env[node]._version != version:
                raise modified_in_place(node, intervened=node in hooks)
        return env

    def upstream(
        self,
        nodes: Collection[fx.Node],
        *,
        within: Collection[fx.Node],
        stop: Collection[fx.Node] = frozenset(),
    ) -> set[fx.Node]:
        """``nodes`` and the nodes of ``within`` they read, directly or through others of them.

        The search does not look at the arguments of a node in ``stop`` (a node whose value is
        fixed without running it), so what only such a node reads is left out.
        """
        seen: set[fx.Node] = set()
        stack = list(nodes)
        while stack:
            node = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            if node not in stop:
                stack.extend(a for a in node.all_input_nodes if a in within)
        return seen

    def downstream(self, nodes: Collection[fx.Node]) -> set[fx.Node]:
        """Every node that reads (directly or not) one of ``nodes``, excluding those nodes."""
        seen: set[fx.Node] = set()
        stack = [u for n in nodes for u in n.users]
        while stack:
            node = stack.pop()
            if node in seen or node.op == "output":
                continue
            seen.add(node)
            stack.extend(node.users)
        return seen


def module_path(node: fx.Node) -> str:
    """The innermost module call that a graph node belongs to (``"<root>"`` for none)."""
    stack = node.meta.get("nn_module_stack") or {}
    return str(next(reversed(stack.values()))[0]) if stack else "<root>"


def modified_in_place(node: fx.Node, *, intervened: bool) -> MechanismError:
    """The error for a value that an operation reading it overwrote in place.

    Operations that ran before the overwrite read one value and those after it another, so a
    cached or intervened value no longer is what the graph says: an intervention on it would
    silently not hold. The check compares each tensor's version counter (bumped by every
    in-place change) when it was computed and at the end of the run.

    Examples
    --------
    >>> import torch
    >>> g = torch.fx.symbolic_trace(torch.nn.Linear(2, 2))
    >>> node = next(n for n in g.graph.nodes if n.op == "call_function")
    >>> print(modified_in_place(node, intervened=True))  # doctest: +ELLIPSIS
    the intervened value of node 'linear' (module '<root>') was modified in place ...
    """
    readers = ", ".join(sorted(u.name for u in node.users)) or "none"
    what = "intervened value" if intervened else "value"
    harm = "the intervention did not hold" if intervened else "cached values would be wrong"
    return MechanismError(
        f"the {what} of node {node.name!r} (module {module_path(node)!r}) was modified in place "
        f"by an operation that reads it ({readers}): operations before that read one value and "
        f"those after it another, so {harm}; "
        f"make that operation out of place (e.g. a leaf module's x.mul_(2) as x * 2, "
        f"inplace=False), or leave the module out of leaves= so that the tracer sees the operation"
    )
