"""Position as a dimension of the graph: interventions at one position recompute only its suffix.

On a causal sequence model an intervention at position t cannot change positions before t:
attention reads keys and values of earlier positions only. So the nodes downstream of the
intervention need to be recomputed for positions t, t+1, ... only -- for the final position,
for one position -- while everything they read about earlier positions (the keys and values of
the prefix included) is the clean run's value. This module finds, for every node of a traced
graph, how to compute that **suffix** of its value from suffixes of its arguments, and proves
it on the clean run; :mod:`scmnet.tracing.engine.staircase` then executes the plan.

A node's value in such a run is held in one **form**:

* ``Cut(axis)``: positions ``t:`` along ``axis`` only (the rest is, or would be, not needed);
* ``FULL``: the whole value (an operation that no suffix of its arguments determines, such as
  ``scaled_dot_product_attention(..., is_causal=True)``, whose causal mask is aligned to the
  start of the query).

For each node the plan records a :class:`Recipe`: its form, and how it reads each argument --
an argument's own form, a ``Cut`` value **materialised** to the full value (the clean prefix
concatenated with the suffix; allowed only where the suffix is all that changed), a ``FULL``
value cut, or a clean value cut or whole. The recipe is found by search, cheapest first, and
accepted only if it reproduces the node's value in a **probe**: the clean run with the
intervened variables perturbed at position t (random values), computed in full. So every
recipe is checked on real values, node by node; a graph where position t leaks into earlier
positions (a bidirectional encoder) finds no plan, and its interventions run in full. As with
the batch probe, it is a check on one context, not a proof.

Examples
--------
>>> import torch
>>> from torch import nn
>>> import scmnet as sn
>>> from scmnet.tracing import trace
>>> _ = torch.manual_seed(0)
>>> net = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
>>> m = trace(net, torch.zeros(1, 5, 4))  # (batch, position, feature)
>>> u = {"input": torch.randn(1, 5, 4)}
>>> sets = [{sn.Site("1", index=(slice(None), -1)): sn.scale(s)} for s in (0.0, 2.0)]
>>> many = m.evaluate_many(u, sets, outputs=["2"])
>>> m.info.batching.positions
'suffix from position 4 of 5'
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, cast

import torch
from torch import fx
from torch.fx.node import map_arg

from scmnet.errors import MechanismError
from scmnet.tracing.engine.executor import Executor, module_path
from scmnet.tracing.engine.fused_attention import PARAMETERS
from scmnet.tracing.engine.prefix_attention import prefix_attention
from scmnet.tracing.engine.run_values import run_values, tensorish

__all__ = [
    "FULL",
    "ArgUse",
    "Cut",
    "Form",
    "NoSuffixPlan",
    "Partial",
    "Recipe",
    "SuffixPlan",
    "close",
    "plan_suffix",
]


@dataclass(frozen=True)
class Cut:
    """Positions ``t:`` along ``axis``."""

    axis: int


FULL: Literal["full"] = "full"
Form: TypeAlias = "Cut | Literal['full']"


@dataclass(frozen=True)
class ArgUse:
    """How a recipe reads one argument.

    ``how`` is ``"own"`` (the argument's form as it is), ``"materialise"`` (a ``Cut`` value
    with the clean prefix put back), ``"cut"`` (a ``FULL`` or clean value cut along ``axis``)
    or ``"clean"`` (the clean value, whole).
    """

    how: Literal["own", "materialise", "cut", "clean"]
    axis: int | None = None


@dataclass(frozen=True)
class Recipe:
    """How a node's value is computed in a suffix run: its form and each argument's use.

    ``causal`` marks a causal attention (``scaled_dot_product_attention(..., is_causal=True)``)
    computed for the suffix of its queries: its mask, aligned to the first query, is replaced
    by the explicit mask of the suffix's positions (query t + i sees keys up to t + i).

    ``resize`` marks a shape-taking operation (``view``, ``reshape``, ``expand``) whose shape
    names the number of positions: ``(entry, size)`` replaces that entry of the shape by the
    suffix's size (the graph's sizes are the whole sequence's).

    ``prefix`` marks an attention computed by
    :func:`~scmnet.tracing.engine.prefix_attention.prefix_attention`: its queries, keys and
    values are the rows' suffixes, and the keys and values before ``t`` (along axis
    ``prefix``) are read once from the clean run, shared by every row instead of copied.
    """

    form: Form
    args: Mapping[fx.Node, ArgUse]
    causal: bool = False
    resize: tuple[int, int] | None = None
    prefix: int | None = None


def _attention_args(node: fx.Node) -> dict[str, Any] | None:
    """The bound arguments of a ``scaled_dot_product_attention`` node (None for other nodes)."""
    if node.op != "call_function" or "scaled_dot_product_attention" not in str(node.target):
        return None
    return dict(zip(PARAMETERS, node.args, strict=False)) | dict(node.kwargs)


def _is_causal_attention(node: fx.Node) -> bool:
    bound = _attention_args(node)
    return bound is not None and bound.get("is_causal") is True and bound.get("attn_mask") is None


def compute(
    executor: Executor,
    node: fx.Node,
    recipe: Recipe | None,
    lookup: Callable[[fx.Node], Any],
    inputs: Mapping[str, Any],
    clean_prefix: Callable[[fx.Node, int], Any] | None = None,
) -> Any:
    """The value of ``node`` with its arguments read by ``lookup``, as ``recipe`` says.

    ``clean_prefix(node, axis)`` gives a node's clean positions before ``t`` along ``axis``,
    for a recipe that reads a shared prefix.
    """
    if recipe is not None and recipe.resize is not None:
        return _resized(executor, node, recipe.resize, lookup)
    if recipe is not None and recipe.prefix is not None:
        assert clean_prefix is not None
        return _shared_prefix(node, recipe.prefix, lookup, clean_prefix)
    if recipe is None or not recipe.causal:
        return executor.compute(node, lookup, inputs)
    args = map_arg(node.args, lookup)
    kwargs = dict(map_arg(node.kwargs, lookup))
    bound: dict[str, Any] = dict(zip(PARAMETERS, args, strict=False)) | kwargs
    query, key = bound["query"], bound["key"]
    offset = key.shape[-2] - query.shape[-2]  # the first query's position
    mask = torch.ones(query.shape[-2], key.shape[-2], dtype=torch.bool, device=query.device)
    bound["attn_mask"], bound["is_causal"] = mask.tril(diagonal=offset), False
    try:
        return executor.call_function(node, (), bound)  # placed and checked as any call
    except Exception as e:
        raise MechanismError(
            f"the causal attention {node.name!r} in module {module_path(node)!r} raised "
            f"{type(e).__name__} on the suffix of its queries: {e}"
        ) from e


def _shared_prefix(
    node: fx.Node,
    axis: int,
    lookup: Callable[[fx.Node], Any],
    clean_prefix: Callable[[fx.Node, int], Any],
) -> Any:
    """An attention node over the rows' suffixes and the one clean prefix of its keys/values."""
    bound = _attention_args(node)
    assert bound is not None
    key, value = bound["key"], bound["value"]
    args = dict(map_arg(bound, lookup))
    try:
        return prefix_attention(
            args["query"],
            args["key"],
            args["value"],
            clean_prefix(key, axis),
            clean_prefix(value, axis),
            causal=args.get("is_causal") is True,
            mask=args.get("attn_mask"),
            scale=args.get("scale"),
        )
    except Exception as e:
        raise MechanismError(
            f"the attention {node.name!r} in module {module_path(node)!r} raised "
            f"{type(e).__name__} over the shared prefix of its keys and values: {e}"
        ) from e


# Shape-taking operations: (call_function target names, call_method names). Their shape is
# args[1] (a list) or, for methods, the arguments after the tensor.
_SHAPED = ("aten.view.default", "aten.reshape.default", "aten._unsafe_view.default")
_SHAPED_EXPAND = ("aten.expand.default",)
_SHAPED_METHODS = ("view", "reshape", "expand")


def _shape_entries(node: fx.Node) -> tuple[int, bool] | None:
    """Where a shape-taking node's shape is: (first argument index, given as one list?)."""
    if node.op == "call_function" and str(node.target) in _SHAPED + _SHAPED_EXPAND:
        return 1, True
    if node.op == "call_method" and node.target in _SHAPED_METHODS and len(node.args) >= 2:
        return (1, True) if isinstance(node.args[1], list | tuple) else (1, False)
    return None


def _resized(
    executor: Executor, node: fx.Node, resize: tuple[int, int], lookup: Callable[[fx.Node], Any]
) -> Any:
    """A shape-taking node with entry ``resize[0]`` of its shape set to ``resize[1]``."""
    entry, size = resize
    args = list(cast(tuple[Any, ...], map_arg(node.args, lookup)))
    found = _shape_entries(node)
    assert found is not None
    start, as_list = found
    if as_list:
        shape = list(args[start])
        shape[entry] = size
        args[start] = shape
    else:
        args[start + entry] = size
    kwargs = dict(map_arg(node.kwargs, lookup))
    try:
        if node.op == "call_function":
            return executor.call_function(node, tuple(args), kwargs)
        return executor.call_method(node, tuple(args), kwargs)
    except Exception as e:
        if _is_view(node) and isinstance(args[0], torch.Tensor):
            # A view that held at trace time, on a suffix laid out differently in memory (the
            # shared-prefix attention's output is not strided as the fused kernel's): the same
            # values as a reshape, which copies only when it must.
            shape = args[1] if as_list else args[1:]
            with contextlib.suppress(RuntimeError):
                return torch.reshape(args[0], tuple(shape))
        raise MechanismError(
            f"the operation {node.name!r} in module {module_path(node)!r} raised "
            f"{type(e).__name__} on the suffix of its positions: {e}"
        ) from e


def _is_view(node: fx.Node) -> bool:
    return (node.op == "call_function" and str(node.target) == "aten.view.default") or (
        node.op == "call_method" and node.target == "view"
    )


class NoSuffixPlan(Exception):
    """Internal: why the suffix of a set of interventions cannot be computed alone."""


# -- values that may be tensors or tuples of tensors -----------------------------------------------


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, tuple | list):
        yield from (v for v in value if isinstance(v, torch.Tensor))


def _map(value: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, tuple | list):
        return type(value)(fn(v) if isinstance(v, torch.Tensor) else v for v in value)
    return value


def _zip_map(a: Any, b: Any, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Any:
    if isinstance(a, torch.Tensor):
        return fn(a, b)
    return type(a)(
        fn(x, y) if isinstance(x, torch.Tensor) else x for x, y in zip(a, b, strict=True)
    )


def cut(value: Any, axis: int, t: int) -> Any:
    """Positions ``t:`` of ``value`` along ``axis`` (a view)."""
    return _map(value, lambda v: v.narrow(axis, t, v.shape[axis] - t))


def materialise(clean: Any, suffix: Any, axis: int, t: int) -> Any:
    """The full value: the clean prefix ``:t`` along ``axis`` followed by ``suffix``.

    ``suffix`` may hold several rows (a multiple of the clean value's leading axis): the prefix
    is repeated for each.
    """

    def one(c: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        prefix = c.narrow(axis, 0, t)
        rows = s.shape[0] // max(c.shape[0], 1) if c.dim() and axis != 0 else 1
        if rows == 1:
            return torch.cat([prefix, s], dim=axis)
        # one copy of each part: the prefix broadcast over the rows, then the suffix
        shape = list(s.shape)
        shape[axis] = c.shape[axis]
        out = torch.empty(shape, dtype=s.dtype, device=s.device)
        head = out.narrow(axis, 0, t)
        head.view(rows, c.shape[0], *head.shape[1:]).copy_(prefix.unsqueeze(0))
        out.narrow(axis, t, s.shape[axis]).copy_(s)
        return out

    return _zip_map(clean, suffix, one)


@dataclass(eq=False)
class Partial:
    """A value of which only positions ``t:`` along ``axis`` were recomputed; the rest is clean.

    :meth:`full` puts the clean prefix back (a copy); :meth:`at` reads an index, without that
    copy where the index lies in the suffix.

    Examples
    --------
    >>> p = Partial(torch.zeros(1, 3, 2), torch.ones(1, 1, 2), axis=1, t=2)
    >>> p.at((0, -1)).tolist(), p.full()[0, :, 0].tolist()
    ([1.0, 1.0], [0.0, 0.0, 1.0])
    """

    clean: torch.Tensor
    suffix: torch.Tensor
    axis: int
    t: int
    _full: torch.Tensor | None = field(default=None, repr=False)

    def full(self) -> torch.Tensor:
        """The whole value."""
        if self._full is None:
            self._full = materialise(self.clean, self.suffix, self.axis, self.t)
        return self._full

    def at(self, index: Any) -> Any:
        """``value[index]``, read from the suffix where the index names a position in it."""
        parts = list(index) if isinstance(index, tuple) else [index]
        if len(parts) > self.axis and all(p is not Ellipsis for p in parts[: self.axis + 1]):
            p = parts[self.axis]
            if isinstance(p, int) and not isinstance(p, bool):
                position = p % self.clean.shape[self.axis]
                if position >= self.t:
                    parts[self.axis] = position - self.t
                    return self.suffix[tuple(parts)]
        return self.full()[index]


def axes_of_length(value: Any, length: int) -> tuple[int, ...]:
    """The axes after the batch axis along which every tensor of ``value`` has ``length``."""
    shapes = [tuple(v.shape) for v in _tensors(value)]
    if not shapes:
        return ()
    ndim = min(len(s) for s in shapes)
    return tuple(a for a in range(1, ndim) if all(s[a] == length for s in shapes))


_PIECE = 1 << 20
"""Elements compared at once by :func:`close` (its temporaries are a few pieces, not a few
copies of a large activation)."""


def _pieces(a: torch.Tensor, b: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    flat_a, flat_b = a.reshape(-1), b.reshape(-1)
    for start in range(0, flat_b.numel(), _PIECE):
        yield flat_a[start : start + _PIECE], flat_b[start : start + _PIECE]


def _finite_max(piece: torch.Tensor) -> float:
    finite = piece[torch.isfinite(piece)]
    return float(finite.abs().max()) if finite.numel() else 0.0


def close(a: Any, b: Any) -> bool:
    """Equal up to the rounding that another kernel shape (more rows, fewer positions) causes.

    >>> close(torch.ones(2), torch.ones(2) + 1e-7), close((1, torch.ones(1)), (1, torch.zeros(1)))
    (True, False)
    """
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        if not (b.is_floating_point() or b.is_complex()):
            return torch.equal(a, b)
        pieces = list(_pieces(a, b))  # compared a piece at a time: few temporaries at once
        scale = max((_finite_max(y) for _, y in pieces), default=0.0)
        rtol = max(1e-4, 4 * torch.finfo(b.dtype).eps)
        atol = rtol * 0.1 * scale + 1e-12
        return all(torch.allclose(x, y, rtol=rtol, atol=atol, equal_nan=True) for x, y in pieces)
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return False
    try:
        return bool(a == b)
    except Exception:
        return False


# -- the plan --------------------------------------------------------------------------------------


@dataclass
class SuffixPlan:
    """Recipes for the nodes downstream of interventions at position ``t`` of ``length``.

    Attributes
    ----------
    t, length : int
        The first recomputed position, and the number of positions.
    region : frozenset of torch.fx.Node
        The intervened variables and every node downstream of them.
    recipes : dict of node to Recipe
        The recipe of every region node that holds tensors (found on demand, memoised).
    confined : dict of node to tuple of int
        For every region node, the axes along which its positions before ``t`` stay clean.
    """

    t: int
    length: int
    region: frozenset[fx.Node]
    recipes: dict[fx.Node, Recipe] = field(default_factory=dict)
    confined: dict[fx.Node, tuple[int, ...]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """E.g. ``'suffix from position 11 of 12'``."""
        return f"suffix from position {self.t} of {self.length}"


class _Search:
    """Finds recipes node by node on the probe (see the module docs)."""

    def __init__(
        self,
        executor: Executor,
        inputs: Mapping[str, Any],
        clean: Mapping[fx.Node, Any],
        probe: Mapping[fx.Node, Any],
        naturals: Mapping[fx.Node, Any],
        starts: Mapping[fx.Node, int],
        plan: SuffixPlan,
    ) -> None:
        self.executor, self.inputs, self.clean, self.probe, self.plan = (
            executor,
            inputs,
            clean,
            probe,
            plan,
        )
        self.naturals, self.starts = naturals, starts
        # each region node's value in its form; an intervened variable's is its probe value
        self.values: dict[fx.Node, Any] = {n: cut(probe[n], a, plan.t) for n, a in starts.items()}
        self.variants: dict[tuple[fx.Node, bool], Any] = {}  # non-tensor nodes: (cut?, value)
        self.failed: dict[fx.Node, str] = {}

    # values of arguments ------------------------------------------------------------------------

    def variant(self, node: fx.Node, is_cut: bool) -> Any:
        """A non-tensor region node computed from arguments in cut (or full) forms."""
        key = (node, is_cut)
        if key not in self.variants:

            def lookup(a: fx.Node) -> Any:
                if a not in self.plan.region:
                    return self.clean[a]
                if tensorish(self.probe[a]):
                    return self.value(a) if is_cut else self.full_value(a)
                return self.variant(a, is_cut)

            self.variants[key] = self.executor.compute(node, lookup, self.inputs)
        return self.variants[key]

    def value(self, node: fx.Node) -> Any:
        """A tensor region node's value in its form (searching its recipe first)."""
        if node not in self.values:
            recipe = self.recipe(node)
            self.values[node] = self._run(node, recipe)
        return self.values[node]

    def form(self, node: fx.Node) -> Form:
        """The form of a region node: an intervened variable is cut along its position axis."""
        if node in self.starts:
            return Cut(self.starts[node])
        return self.recipe(node).form

    def full_value(self, node: fx.Node) -> Any:
        form = self.form(node)
        if form == FULL:
            return self.value(node)
        assert isinstance(form, Cut)
        if form.axis not in self.plan.confined.get(node, ()):
            raise NoSuffixPlan(f"{_where(node)} changes before position {self.plan.t}")
        return materialise(self.clean[node], self.value(node), form.axis, self.plan.t)

    def arg(self, a: fx.Node, use: ArgUse) -> Any:
        t = self.plan.t
        if use.how == "clean":
            return self.clean[a]
        if a not in self.plan.region:
            assert use.axis is not None
            return cut(self.clean[a], use.axis, t)
        if use.how == "own":
            return self.value(a)
        if use.how == "materialise":
            return self.full_value(a)
        assert use.axis is not None
        return cut(self.value(a), use.axis, t)

    def _run(self, node: fx.Node, recipe: Recipe) -> Any:
        is_cut = isinstance(recipe.form, Cut)

        def lookup(a: fx.Node) -> Any:
            if a in recipe.args:
                return self.arg(a, recipe.args[a])
            if a in self.plan.region:
                return self.variant(a, is_cut)
            return self.clean[a]

        def clean_prefix(a: fx.Node, axis: int) -> Any:
            return cut_prefix(self.clean[a], axis, self.plan.t)

        return compute(self.executor, node, recipe, lookup, self.inputs, clean_prefix)

    # the search ----------------------------------------------------------------------------------

    def recipe(self, node: fx.Node) -> Recipe:
        found = self.plan.recipes.get(node)
        if found is not None:
            return found
        if node in self.failed:
            raise NoSuffixPlan(self.failed[node])
        forms: list[Form]
        if node in self.starts:  # the natural value, which the rows' interventions act on
            expected = self.naturals[node]
            forms = [Cut(self.starts[node])]
        else:
            expected = self.probe[node]
            forms = [Cut(a) for a in axes_of_length(expected, self.plan.length)]
            forms.append(FULL)
        for form in forms:
            for recipe in self._candidates(node, form):
                try:
                    value = self._run(node, recipe)
                except (MechanismError, NoSuffixPlan):
                    continue
                want = expected if form == FULL else cut(expected, form.axis, self.plan.t)
                if close(value, want):
                    self.plan.recipes[node] = recipe
                    self.values.setdefault(node, value)
                    return recipe
        reason = (
            f"no suffix of the arguments of {_where(node)} reproduces its value when position "
            f"{self.plan.t} changes"
        )
        self.failed[node] = reason
        raise NoSuffixPlan(reason)

    def _options(self, a: fx.Node, form: Form) -> list[ArgUse]:
        length = self.plan.length
        if a not in self.plan.region:
            if form == FULL:
                return [ArgUse("clean")]
            cuts = [ArgUse("cut", k) for k in axes_of_length(self.clean[a], length)]
            return [*cuts, ArgUse("clean")]
        own = self.form(a)
        confined = self.plan.confined.get(a, ())
        if form == FULL:
            if own == FULL:
                return [ArgUse("own")]
            return [ArgUse("materialise")] if own.axis in confined else []
        if own == FULL:
            return [*(ArgUse("cut", k) for k in confined), ArgUse("own")]
        options = [ArgUse("own")]
        if own.axis in confined:
            options.append(ArgUse("materialise"))
        return options

    def _candidates(self, node: fx.Node, form: Form) -> Iterator[Recipe]:
        if isinstance(form, Cut):  # an attention over the shared prefix: the cheapest
            yield from self._shared(node, form)
        args = [a for a in node.all_input_nodes if tensorish(self._any_value(a))]
        try:
            options = [self._options(a, form) for a in args]
        except NoSuffixPlan:
            return
        cheap = {"own", "cut"}
        combos = sorted(
            itertools.product(*options),
            key=lambda uses: sum(u.how not in cheap for u in uses),
        )
        for uses in combos[:64]:
            yield Recipe(form, dict(zip(args, uses, strict=True)))
        if isinstance(form, Cut) and _shape_entries(node) is not None:
            yield from self._resized(node, form, args, options)
        if isinstance(form, Cut) and _is_causal_attention(node):
            yield from self._causal(node, form)

    def _resized(
        self, node: fx.Node, form: Cut, args: list[fx.Node], options: list[list[ArgUse]]
    ) -> Iterator[Recipe]:
        """A view, reshape or expand of cut arguments, its shape's positions entry cut too."""
        found = _shape_entries(node)
        assert found is not None
        start, as_list = found
        shape = node.args[start] if as_list else node.args[start:]
        if not isinstance(shape, list | tuple) or form.axis >= len(shape):
            return
        uses = {a: next(iter(o)) for a, o in zip(args, options, strict=True) if o}
        if len(uses) != len(args) or any(u.how not in ("own", "cut") for u in uses.values()):
            return
        yield Recipe(form, uses, resize=(form.axis, self.plan.length - self.plan.t))

    def _shared(self, node: fx.Node, form: Cut) -> Iterator[Recipe]:
        """An attention over the rows' suffixes and the clean prefix (no copy of it per row).

        Its keys and values must be cut along their position axis (the one before the last),
        their positions before ``t`` clean; a mask must be clean (it is cut to the suffix's
        queries); no dropout.
        """
        bound = _attention_args(node)
        if bound is None or bound.get("dropout_p", 0.0):
            return
        mask = bound.get("attn_mask")
        if mask is not None and (not isinstance(mask, fx.Node) or mask in self.plan.region):
            return
        q, k, v = (bound.get(name) for name in ("query", "key", "value"))
        nodes = [a for a in (q, k, v) if isinstance(a, fx.Node) and a in self.plan.region]
        if len(nodes) != 3:
            return
        q, k, v = nodes
        try:
            forms = [self.form(a) for a in nodes]
        except NoSuffixPlan:  # an argument has no recipe: the node has none either
            return
        axes = {f.axis if isinstance(f, Cut) else None for f in forms}
        rank = self._any_value(k).dim()
        if axes != {rank - 2} or any(rank - 2 not in self.plan.confined.get(a, ()) for a in (k, v)):
            return
        own = ArgUse("own")
        uses = {q: own, k: own, v: own}
        if isinstance(mask, fx.Node):
            shape = tuple(self.clean[mask].shape)
            if len(shape) < 2 or shape[-2:] != (self.plan.length, self.plan.length):
                return
            uses[mask] = ArgUse("cut", len(shape) - 2)
        yield Recipe(form, uses, prefix=rank - 2)

    def _causal(self, node: fx.Node, form: Cut) -> Iterator[Recipe]:
        """A causal attention with its queries cut and its keys and values whole."""
        q, k, v = (
            node.args[i] if i < len(node.args) else node.kwargs[PARAMETERS[i]] for i in range(3)
        )
        if not (isinstance(q, fx.Node) and isinstance(k, fx.Node) and isinstance(v, fx.Node)):
            return
        for q_use in self._options(q, form):
            if q_use.how not in ("own", "cut"):
                continue
            uses: dict[fx.Node, ArgUse] = {q: q_use}
            for a in (k, v):
                whole = self._options(a, FULL)
                if not whole:
                    return
                uses[a] = whole[0]
            yield Recipe(form, uses, causal=True)

    def _any_value(self, a: fx.Node) -> Any:
        return self.probe[a] if a in self.plan.region else self.clean[a]


def _where(node: fx.Node) -> str:
    return f"the operation {node.name!r} ({node.target}) in module {module_path(node)!r}"


def plan_suffix(
    executor: Executor,
    inputs: Mapping[str, Any],
    clean: Mapping[fx.Node, Any],
    starts: Mapping[fx.Node, int],
    t: int,
    length: int,
    needed: Collection[fx.Node],
    *,
    constant: Collection[fx.Node] = frozenset(),
    seed: int = 0,
) -> SuffixPlan:
    """Find and check recipes for the ``needed`` nodes of a suffix run from position ``t``.

    Parameters
    ----------
    executor : Executor
        Runs the graph.
    inputs, clean
        The context's inputs and every node's clean value.
    starts : mapping of node to int
        The intervened variables and the axis of each that holds positions.
    t, length : int
        The intervened position and the number of positions.
    needed : collection of torch.fx.Node
        The nodes the run computes.
    constant : collection of torch.fx.Node
        Intervened variables whose natural value no row needs (no recipe is searched for those
        that the rows change; their form is their position axis).
    seed : int
        Seed of the probe's perturbation.

    Raises
    ------
    NoSuffixPlan
        If some needed node has no recipe, or the probe changes positions before ``t``.
    """
    region = frozenset(executor.downstream(set(starts)) | set(starts))
    plan = SuffixPlan(t, length, region)
    generator = torch.Generator().manual_seed(seed)

    def perturbed(node: fx.Node, axis: int) -> Any:
        value = clean[node]
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise NoSuffixPlan(f"the variable at {_where(node)} holds no floating-point tensor")
        noise = torch.randn(cut(value, axis, t).shape, generator=generator, dtype=value.dtype)
        noise = noise.to(value.device)  # drawn on the host: the same probe on every device
        scale = float(value.abs().mean()) or 1.0
        return torch.cat([value.narrow(axis, 0, t), noise * scale], dim=axis)

    naturals: dict[fx.Node, Any] = {}

    def override(node: fx.Node, axis: int) -> Callable[[Callable[[], Any]], Any]:
        def apply(natural: Callable[[], Any]) -> Any:
            if node not in constant:
                naturals[node] = natural()
            return perturbed(node, axis)

        return apply

    overrides = {n: override(n, a) for n, a in starts.items()}
    order = sorted(region, key=executor.position.__getitem__)
    with torch.no_grad():  # the probe stores no more of its values than a clean run does
        probe = run_values(
            executor, inputs, base=clean, nodes=order, overrides=overrides, keep=set(starts)
        )
        for node in order:  # in graph order: each dropped value is recomputed once
            value, base = probe[node], clean[node]
            if not tensorish(value):
                continue
            plan.confined[node] = tuple(
                a
                for a in axes_of_length(value, length)
                if close(cut_prefix(value, a, t), cut_prefix(base, a, t))
            )
    for node, axis in starts.items():
        if axis not in plan.confined.get(node, ()):
            raise NoSuffixPlan(
                f"the intervened variable at {_where(node)} has no position axis {axis}"
            )
    search = _Search(executor, inputs, clean, probe, naturals, starts, plan)
    with torch.no_grad():
        for node in sorted(needed, key=executor.position.__getitem__):
            if (
                node in region
                and tensorish(probe[node])
                and not (node in constant and node in starts)
            ):
                search.recipe(node)
    return plan


def cut_prefix(value: Any, axis: int, t: int) -> Any:
    """Positions ``:t`` of ``value`` along ``axis`` (a view)."""
    return _map(value, lambda v: v.narrow(axis, 0, t))
