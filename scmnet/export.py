"""Saving causal graphs as GraphML and DOT files, and collapsing large graphs by block.

A causal graph is a :class:`networkx.DiGraph` whose nodes carry ``kind`` (``"exogenous"`` or
``"endogenous"``), ``intervention`` (a label such as ``"x = 0.0"``, or ``None``) and, in a
traced network, ``record`` (a :class:`~scmnet.tracing.NodeRecord`: the module that computed
the variable, its operation, shape and dtype). Two text formats carry it to other tools:

* **GraphML** (:func:`~scmnet.to_graphml`), read by networkx, Gephi, yEd and Cytoscape. GraphML
  attributes are scalars, so each record is written as flat node attributes: ``module_path``,
  ``module_type`` (the module's class), ``op``, ``shape`` (``"1x12x576"``; ``"scalar"`` for a
  0-d value), ``dtype`` (``"float32"``), ``selected_as`` and ``call``. ``intervention`` is
  ``""`` on a node that carries none. :func:`networkx.read_graphml` reads the file back.
* **DOT** (:func:`~scmnet.to_dot`), the language of Graphviz (``dot -Tsvg graph.dot -o graph.svg``),
  drawn in the style of :mod:`scmnet.draw`: exogenous variables dashed and grey, intervened
  variables highlighted with their intervention under their name, and the in-edges that a
  hard intervention ``do(Z = z')`` removed drawn dashed and grey. The scmnet attributes are
  kept as extra DOT attributes, except ``shape``, which Graphviz reserves for the outline of a
  node and which is written as ``tensor_shape``.

A language model traced at the default granularity has a variable for every attention block
and MLP; with finer variables it has hundreds. :func:`~scmnet.collapse` groups the nodes into blocks
by a prefix of their module path (depth 3 maps ``model.layers.3.mlp.up_proj`` to
``model.layers.3``), with an edge between two blocks wherever a member of one is a parent of a
member of the other. :func:`~scmnet.draw_collapsed` draws a large model that way, and a small one in
full.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> import networkx as nx
>>> import scmnet as sn
>>> m = sn.do(sn.toys.erasure(), {"x": 0.0})
>>> with tempfile.TemporaryDirectory() as tmp:
...     g = nx.read_graphml(sn.to_graphml(m, Path(tmp) / "erasure.graphml"))
>>> sorted(g.edges), g.nodes["x"]
([('f', 'y'), ('x', 'f'), ('x', 'y')], {'kind': 'endogenous', 'intervention': 'x = 0.0'})
>>> [line for line in sn.to_dot(m).splitlines() if "removed" in line]
['  "u" -> "x" [style="dashed", color="#b0b0b0", removed="true"];']
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import networkx as nx

from scmnet.errors import InvalidArgument, NotADag
from scmnet.model import CausalModel, causal_graph, removed_edges

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from scmnet.draw import Layout

__all__ = ["MAX_NODES", "GroupBy", "collapse", "draw_collapsed", "to_dot", "to_graphml"]

GroupBy: TypeAlias = Callable[[str, Mapping[str, Any]], str]
"""A function from a node's name and attributes to the name of its group."""

_Scalar: TypeAlias = str | int | float | bool

#: Graphs with more nodes than this are collapsed by :func:`~scmnet.draw_collapsed` by default.
MAX_NODES = 40

# The flat attributes of a traced node's record, in the order they are written.
_RECORD_FIELDS = ("module_path", "module_type", "op", "shape", "dtype", "selected_as", "call")
# The attributes that to_dot writes (others may clash with Graphviz's own), and their DOT names.
_DOT_DATA = {
    "kind": "kind",
    "intervention": "intervention",
    **{f: f for f in _RECORD_FIELDS},
    "shape": "tensor_shape",
    "size": "size",
    "members": "members",
}

# DOT styles, the colours of scmnet.draw.
_NODE_DEFAULTS = {
    "shape": "box",
    "style": "rounded,filled",
    "fontname": "Helvetica",
    "fillcolor": "#deebf7",
    "color": "#3182bd",
}
_EXOGENOUS = {"style": "rounded,filled,dashed", "fillcolor": "#f0f0f0", "color": "#7f7f7f"}
_INTERVENED = {"fillcolor": "#fdd0a2", "color": "#d95f02", "penwidth": "2.2"}
_REMOVED = {"style": "dashed", "color": "#b0b0b0", "removed": "true"}


# -- flat attributes --------------------------------------------------------------------------


def _shape_text(shape: Sequence[int]) -> str:
    """``(1, 12, 576)`` as ``"1x12x576"``; a 0-d shape as ``"scalar"``."""
    return "x".join(str(int(d)) for d in shape) if len(shape) else "scalar"


def _record_attributes(record: Any) -> dict[str, _Scalar]:
    """The fields of a :class:`~scmnet.tracing.NodeRecord` as GraphML scalars."""
    out: dict[str, _Scalar] = {}
    for field in _RECORD_FIELDS:
        value = getattr(record, field, None)
        if value is None:
            continue
        if field == "shape":
            out[field] = _shape_text(value)
        elif field == "dtype":
            out[field] = str(value).removeprefix("torch.")
        else:
            out[field] = str(value)
    return out


def _flat(data: Mapping[str, Any]) -> dict[str, _Scalar]:
    """Attributes as scalars: records expanded, sequences comma-joined, ``None`` dropped."""
    out: dict[str, _Scalar] = {}
    if "kind" in data:
        out["kind"] = str(data["kind"])
    if "intervention" in data:
        out["intervention"] = "" if data["intervention"] is None else str(data["intervention"])
    for key, value in data.items():
        if key in ("kind", "intervention") or value is None:
            continue
        if key == "record":
            out.update(_record_attributes(value))
        elif isinstance(value, str | int | float | bool):
            out[str(key)] = value
        elif isinstance(value, list | tuple | set | frozenset):
            items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
            out[str(key)] = ",".join(str(item) for item in items)
        else:
            out[str(key)] = str(value)
    return out


# -- GraphML and DOT --------------------------------------------------------------------------


def to_graphml(model: CausalModel | nx.DiGraph, path: str | os.PathLike[str]) -> Path:
    """Write the causal graph of ``model`` as a GraphML file.

    Every node keeps its attributes as GraphML scalars: ``kind``; ``intervention`` (its label,
    or ``""``); for a traced network the fields of its record, ``module_path``, ``module_type``,
    ``op``, ``shape`` (``"1x12x576"``, or ``"scalar"``), ``dtype`` (``"float32"``),
    ``selected_as`` and ``call``; for a graph made by :func:`collapse`, ``size`` (the number
    of members) and ``members`` (their names, comma-joined). The graph's name is kept.

    Parameters
    ----------
    model : CausalModel or networkx.DiGraph
        A model (its ``graph`` is written) or a graph, such as one made by :func:`collapse`.
    path : str or os.PathLike
        The file to write (its folder must exist).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    TypeError
        If ``model`` is neither a causal model nor a :class:`networkx.DiGraph`.

    See Also
    --------
    to_dot : The same graph in Graphviz's language.
    networkx.read_graphml : Read the file back.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import networkx as nx
    >>> import scmnet as sn
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = sn.to_graphml(sn.toys.self_repair(), Path(tmp) / "self_repair.graphml")
    ...     g = nx.read_graphml(path)
    >>> g.graph["name"], sorted(g.edges)
    ('self-repair', [('f', 'y'), ('u', 'f'), ('u', 'x'), ('x', 'f'), ('x', 'y')])
    >>> g.nodes["u"]
    {'kind': 'exogenous', 'intervention': ''}

    A traced network's nodes carry their records:

    >>> import torch
    >>> m = sn.trace(sn.toys.erasure_module(), torch.zeros(1, 3))
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     g = nx.read_graphml(sn.to_graphml(m, Path(tmp) / "erasure.graphml"))
    >>> g.nodes["f"]["module_type"], g.nodes["f"]["shape"], g.nodes["f"]["dtype"]
    ('scmnet.toys.modules.Negate', '1x3', 'float32')
    """
    graph = causal_graph(model)
    flat = nx.DiGraph()
    if graph.name:
        flat.graph["name"] = str(graph.name)
    for v, data in graph.nodes(data=True):
        flat.add_node(str(v), **_flat(data))
    for u, v, data in graph.edges(data=True):
        flat.add_edge(str(u), str(v), **_flat(data))
    target = Path(path)
    nx.write_graphml(flat, target)
    return target


def _quote(text: str) -> str:
    """A DOT quoted string: backslashes and quotes escaped, newlines as ``\\n``."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _attributes(attributes: Mapping[str, str]) -> str:
    return ", ".join(f"{key}={_quote(value)}" for key, value in attributes.items())


def _dot_node(name: str, data: Mapping[str, Any]) -> dict[str, str]:
    """The DOT attributes of one node: its label, its style and its scmnet data."""
    flat = _flat(data)
    attributes: dict[str, str] = {}
    label = name
    if data.get("intervention"):
        label += f"\n{data['intervention']}"
    if isinstance(flat.get("size"), int) and int(flat["size"]) > 1:
        label += f"\n({flat['size']} nodes)"
    if label != name:
        attributes["label"] = label
    if data.get("kind") == "exogenous":
        attributes.update(_EXOGENOUS)
    if data.get("intervention"):
        attributes.update(_INTERVENED)
    if "module_type" in flat:
        details = [flat.get(k, "") for k in ("module_type", "op", "shape", "dtype")]
        attributes["tooltip"] = " ".join(str(d) for d in details if d != "")
    for key, dot_key in _DOT_DATA.items():
        if key in flat:
            attributes[dot_key] = str(flat[key]).lower() if flat[key] is True else str(flat[key])
    return attributes


def to_dot(
    model: CausalModel | nx.DiGraph,
    path: str | os.PathLike[str] | None = None,
    *,
    direction: Literal["lr", "tb"] = "lr",
) -> str:
    """The causal graph of ``model`` in Graphviz's DOT language, optionally written to ``path``.

    Nodes are boxes named by their variable (always quoted, so names such as
    ``"model.layers.3.mlp"`` are safe). Exogenous variables are dashed and grey; an intervened
    variable is highlighted, with its intervention on a second line; the in-edges that the
    model's hard interventions removed are drawn dashed and grey, with ``removed="true"``. The
    scmnet attributes are kept as extra DOT attributes (see the module docstring); a traced
    node also gets a ``tooltip`` with its module class, operation, shape and dtype.

    Parameters
    ----------
    model : CausalModel or networkx.DiGraph
        A model (its ``graph`` is written, with the edges its interventions removed) or a
        graph, such as one made by :func:`collapse`.
    path : str or os.PathLike, optional
        Where to write the text (UTF-8) as well.
    direction : {"lr", "tb"}
        Lay the graph out left to right (``rankdir=LR``) or top to bottom.

    Returns
    -------
    str
        The DOT text.

    Raises
    ------
    InvalidArgument
        If ``direction`` is not ``"lr"`` or ``"tb"``.
    TypeError
        If ``model`` is neither a causal model nor a :class:`networkx.DiGraph`.

    See Also
    --------
    to_graphml : The same graph for networkx, Gephi or yEd.
    scmnet.draw.draw_graph : A picture drawn with matplotlib.

    Examples
    --------
    >>> import scmnet as sn
    >>> print(sn.to_dot(sn.do(sn.toys.erasure(), {"x": 0.0})))
    digraph "erasure" {
      graph [rankdir="LR"];
      node [shape="box", style="rounded,filled", fontname="Helvetica", fillcolor="#deebf7", color="#3182bd"];
      edge [color="#404040"];
      "u" [style="rounded,filled,dashed", fillcolor="#f0f0f0", color="#7f7f7f", kind="exogenous", intervention=""];
      "x" [label="x\\nx = 0.0", fillcolor="#fdd0a2", color="#d95f02", penwidth="2.2", kind="endogenous", intervention="x = 0.0"];
      "f" [kind="endogenous", intervention=""];
      "y" [kind="endogenous", intervention=""];
      "x" -> "f";
      "x" -> "y";
      "f" -> "y";
      "u" -> "x" [style="dashed", color="#b0b0b0", removed="true"];
    }
    <BLANKLINE>
    """  # noqa: E501
    if direction not in ("lr", "tb"):
        raise InvalidArgument(f"direction must be 'lr' or 'tb', got {direction!r}")
    graph = causal_graph(model)
    lines = [
        f"digraph {_quote(str(graph.name or 'G'))} {{",
        f"  graph [{_attributes({'rankdir': direction.upper()})}];",
        f"  node [{_attributes(_NODE_DEFAULTS)}];",
        '  edge [color="#404040"];',
    ]
    for v, data in graph.nodes(data=True):
        attributes = _dot_node(str(v), data)
        suffix = f" [{_attributes(attributes)}]" if attributes else ""
        lines.append(f"  {_quote(str(v))}{suffix};")
    for u, v in graph.edges:
        lines.append(f"  {_quote(str(u))} -> {_quote(str(v))};")
    for u, v in removed_edges(model):
        lines.append(f"  {_quote(u)} -> {_quote(v)} [{_attributes(_REMOVED)}];")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text


# -- collapsing by block ----------------------------------------------------------------------


def _path_of(name: str, data: Mapping[str, Any]) -> str:
    """The dotted path a node is grouped by: its module path, else its own name."""
    if data.get("kind") == "exogenous":
        return name
    module_path = getattr(data.get("record"), "module_path", "")
    return str(module_path) if module_path else name


def _block_depth(graph: nx.DiGraph) -> int:
    """The depth of the repeated blocks: one past the commonest place of a numeric segment.

    ``model.layers.3.mlp`` has its first numeric segment at place 3, so a decoder's blocks are
    at depth 3; a graph without numeric segments (an SCM) is grouped at depth 1.
    """
    places: Counter[int] = Counter()
    for v, data in graph.nodes(data=True):
        segments = _path_of(str(v), data).split(".")
        place = next((i + 1 for i, s in enumerate(segments) if s.isdigit()), None)
        if place is not None:
            places[place] += 1
    return min(places, key=lambda p: (-places[p], p)) if places else 1


def _topological(graph: nx.DiGraph) -> list[str]:
    rank = {v: i for i, v in enumerate(graph)}
    try:
        return list(nx.lexicographical_topological_sort(graph, key=rank.__getitem__))
    except nx.NetworkXUnfeasible as e:
        cycle = " -> ".join(str(u) for u, _ in nx.find_cycle(graph))
        raise NotADag(f"cannot collapse a graph with a cycle ({cycle})") from e


def _quotient(graph: nx.DiGraph, group: Mapping[str, str]) -> nx.DiGraph:
    """One node per group, in order of first member, and an edge wherever members are joined."""
    blocks = nx.DiGraph()
    blocks.add_nodes_from(dict.fromkeys(group.values()))
    blocks.add_edges_from((group[u], group[v]) for u, v in graph.edges if group[u] != group[v])
    return blocks


def _cycle_error(graph: nx.DiGraph, blocks: nx.DiGraph, group: Mapping[str, str]) -> NotADag:
    cycle = nx.find_cycle(blocks)
    shown = " -> ".join([*(repr(a) for a, _ in cycle), repr(cycle[0][0])])
    a, b = cycle[0]
    u, v = next((u, v) for u, v in graph.edges if group[u] == a and group[v] == b)
    return NotADag(
        f"grouping makes a cycle between blocks, {shown} (e.g. {u!r}, in block {a!r}, is a "
        f"parent of {v!r}, in block {b!r}); group differently (another depth or by=), or "
        f"pass on_cycle='merge' to merge the blocks of every cycle"
    )


def _merged(graph: nx.DiGraph, group: dict[str, str]) -> dict[str, str]:
    """Merge the groups of every cycle (strongly connected component) into one group.

    The merged group is named by its groups joined with ``"+"``, in topological order of their
    first members, so the result does not depend on anything but the graph and the grouping.
    """
    blocks = _quotient(graph, group)
    rank = {b: i for i, b in enumerate(blocks)}
    rename: dict[str, str] = {}
    for component in nx.strongly_connected_components(blocks):
        if len(component) > 1:
            ordered = sorted(component, key=rank.__getitem__)
            for b in ordered:
                rename[b] = "+".join(ordered)
    return {v: rename.get(g, g) for v, g in group.items()}


def collapse(
    model: CausalModel | nx.DiGraph,
    depth: int | None = None,
    *,
    by: GroupBy | None = None,
    on_cycle: Literal["merge", "raise"] = "merge",
) -> nx.DiGraph:
    """The graph of ``model`` with its nodes grouped into blocks.

    By default a node's block is its module path (its name in an SCM) cut to ``depth``
    segments: at depth 3, ``model.layers.3.mlp`` and ``model.layers.3.self_attn.q_proj`` both
    belong to ``model.layers.3``, and a path with fewer segments (``lm_head``) is its own
    block. Exogenous variables always keep their own block. The collapsed graph has an edge
    A -> B wherever a member of A is a parent of a member of B in another block; edges within a
    block are dropped.

    Grouping can make a cycle: a module called before and after another block (a shared
    module, or a group cut across the data flow) is both upstream and downstream of it. Then
    the blocks of each cycle are merged into one, named by their names joined with ``"+"``,
    so the result is always acyclic (``on_cycle="raise"`` raises instead). A decoder language
    model grouped at its layer depth has no such cycle.

    The blocks carry the interventions of their members, but the collapsed graph has no
    record of the edges they removed: :func:`to_dot` draws those only for a model itself.

    Parameters
    ----------
    model : CausalModel or networkx.DiGraph
        A model (its ``graph`` is collapsed) or a causal graph.
    depth : int, optional
        How many segments of the module path name a block. Default: the depth of the repeated
        blocks, one past the commonest place of the first numeric segment (3 for
        ``model.layers.3.mlp``; 1 where no path has one).
    by : callable, optional
        Instead of ``depth``: a function of a node's name and attributes that returns its
        block's name.
    on_cycle : {"merge", "raise"}
        What to do when the grouping makes a cycle.

    Returns
    -------
    networkx.DiGraph
        A new, frozen graph, named after the original and the grouping
        (``"erasure by block (depth 1)"``, ``"erasure, grouped"`` with ``by``). Each block
        carries ``kind``
        (``"exogenous"`` if all its members are), ``intervention`` (its members' labels
        joined with ``"; "``, or ``None``), ``members`` (a tuple of the member names, in
        topological order) and ``size`` (their number).

    Raises
    ------
    InvalidArgument
        If ``depth`` is not a positive int, both ``depth`` and ``by`` are given, ``by``
        returns something other than a non-empty str, or ``on_cycle`` is invalid.
    NotADag
        If the graph has a cycle, or the grouping makes one and ``on_cycle="raise"``.

    See Also
    --------
    draw_collapsed : Draw a large model collapsed by block.
    networkx.quotient_graph : The general construction.

    Examples
    --------
    Group the variables x and f of the self-repair motif (eq. 32) into one block:

    >>> import scmnet as sn
    >>> m = sn.toys.self_repair()
    >>> b = sn.collapse(m, by=lambda v, d: "xf" if v in ("x", "f") else v)
    >>> list(b.edges), b.nodes["xf"]["members"], b.nodes["xf"]["size"]
    ([('u', 'xf'), ('xf', 'y')], ('x', 'f'), 2)

    Grouping x with y in the erasure motif makes a cycle x, y -> f -> x, y; its blocks merge:

    >>> b = sn.collapse(sn.toys.erasure(), by=lambda v, d: "xy" if v in ("x", "y") else v)
    >>> list(b.nodes), list(b.edges)
    (['u', 'xy+f'], [('u', 'xy+f')])

    A traced network is grouped by module path, here at the depth of its numbered blocks:

    >>> import torch
    >>> from torch import nn
    >>> block = lambda: nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    >>> net = nn.Sequential(block(), block()).eval()
    >>> m = sn.trace(net, torch.zeros(1, 2), variables="*.*")
    >>> m.endogenous
    ('0.0', '0.1', '1.0', '1.1')
    >>> b = sn.collapse(m)
    >>> list(b.edges), b.nodes["1"]["members"]
    ([('input', '0'), ('0', '1')], ('1.0', '1.1'))
    """
    if depth is not None and by is not None:
        raise InvalidArgument("give depth or by, not both: by names the blocks itself")
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 1):
        raise InvalidArgument(f"depth must be a positive int (segments of a path), got {depth!r}")
    if on_cycle not in ("merge", "raise"):
        raise InvalidArgument(f"on_cycle must be 'merge' or 'raise', got {on_cycle!r}")
    graph = causal_graph(model)
    order = _topological(graph)
    name = str(graph.name or "graph")
    if by is None:
        cut = depth if depth is not None else _block_depth(graph)
        title = f"{name} by block (depth {cut})"

        def by_path(v: str, data: Mapping[str, Any]) -> str:
            return ".".join(_path_of(v, data).split(".")[:cut])

        by = by_path
    else:
        title = f"{name}, grouped"
    group: dict[str, str] = {}
    for v in order:
        name = by(v, graph.nodes[v])
        if not isinstance(name, str) or not name:
            raise InvalidArgument(
                f"by must return a block name (a non-empty str) for every node, got {name!r} "
                f"for {v!r}"
            )
        group[v] = name
    blocks = _quotient(graph, group)
    if not nx.is_directed_acyclic_graph(blocks):
        if on_cycle == "raise":
            raise _cycle_error(graph, blocks, group)
        group = _merged(graph, group)
        blocks = _quotient(graph, group)

    members: dict[str, list[str]] = {b: [] for b in blocks}
    for v in order:
        members[group[v]].append(v)
    result = nx.DiGraph(name=title)
    for b, names in members.items():
        data = [graph.nodes[v] for v in names]
        labels = [str(d["intervention"]) for d in data if d.get("intervention")]
        result.add_node(
            b,
            kind="exogenous" if all(d.get("kind") == "exogenous" for d in data) else "endogenous",
            intervention="; ".join(labels) if labels else None,
            members=tuple(names),
            size=len(names),
        )
    result.add_edges_from(blocks.edges)
    return nx.freeze(result)


def draw_collapsed(
    model: CausalModel | nx.DiGraph,
    path: str | os.PathLike[str] | None = None,
    *,
    depth: int | None = None,
    by: GroupBy | None = None,
    max_nodes: int = MAX_NODES,
    title: str | None = None,
    layout: Layout | None = None,
    legend: bool = True,
    dpi: float = 150.0,
) -> Figure:
    """Draw a model, collapsed by block when it is large.

    With neither ``depth`` nor ``by``, a graph of at most ``max_nodes`` nodes is drawn in full
    by :func:`~scmnet.draw.draw_graph` (with its interventions and removed edges), and a larger
    one is collapsed by :func:`collapse` at its automatic depth first. With ``depth`` or
    ``by``, the graph is always collapsed.

    Parameters
    ----------
    model : CausalModel or networkx.DiGraph
        The model, or a causal graph.
    path : str or os.PathLike, optional
        Where to write the picture: PNG by default, or the format its suffix names.
    depth : int, optional
        Collapse at this depth (see :func:`collapse`).
    by : callable, optional
        Collapse into the blocks this function names (see :func:`collapse`).
    max_nodes : int
        The largest graph drawn in full when neither ``depth`` nor ``by`` is given.
    title : str, optional
        The title; by default the name of the graph drawn.
    layout : {"lr", "tb"} or mapping, optional
        As for :func:`~scmnet.draw.draw_graph`.
    legend : bool
        Whether to add a legend of the node and edge styles.
    dpi : float
        Resolution of the figure and of the file written, in dots per inch (150 by default,
        as for :func:`~scmnet.draw.draw_graph`).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    MissingDependency
        If matplotlib is not installed.
    InvalidArgument
        As for :func:`collapse`, or if ``max_nodes`` is not a positive int.

    See Also
    --------
    collapse, scmnet.draw.draw_graph

    Examples
    --------
    >>> import scmnet as sn
    >>> fig = sn.draw_collapsed(sn.toys.self_repair())  # small: drawn in full
    >>> sorted(p.get_gid() for p in fig.axes[0].patches if p.get_gid().startswith("node"))
    ['node:f', 'node:u', 'node:x', 'node:y']
    >>> fig = sn.draw_collapsed(sn.toys.self_repair(), max_nodes=3)  # large: collapsed
    >>> fig.axes[0].get_title()
    'self-repair by block (depth 1)'
    """
    from scmnet.draw import draw_graph

    if isinstance(max_nodes, bool) or not isinstance(max_nodes, int) or max_nodes < 1:
        raise InvalidArgument(f"max_nodes must be a positive int, got {max_nodes!r}")
    graph = causal_graph(model)
    if depth is None and by is None and len(graph) <= max_nodes:
        return draw_graph(model, path, title=title, layout=layout, legend=legend, dpi=dpi)
    blocks = collapse(model, depth, by=by)
    return draw_graph(blocks, path, title=title, layout=layout, legend=legend, dpi=dpi)
