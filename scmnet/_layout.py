"""Where the boxes and edges of a causal-graph picture go: the layout engine of :mod:`scmnet.draw`.

Nothing here draws. :func:`lay_out` turns a graph into a :class:`Scene` of plain geometry in
data units (a node box is 0.5 units tall and as wide as its label): a :class:`Box` for every
node and every intervention marker, a bend for every edge, and the bounds of it all.
:mod:`scmnet.draw` renders a scene with matplotlib, and draws every panel of a picture from one
scene, so that a node stays in the same spot before and after an intervention. This module
does not import matplotlib, so a layout can be computed (and tested) without it.

The algorithm is a small layered ("Sugiyama") layout, in four steps:

1. **Layers.** A node's layer is its topological generation, the length of the longest
   directed path that reaches it (:func:`networkx.topological_generations`), so every edge
   X -> V points from an earlier layer to a later one; a cycle raises
   :class:`~scmnet.NotADag`. Each source (an exogenous variable, typically) is then moved to
   the layer just before its first child, which keeps its edges short.
2. **Order within layers.** Nodes start in the graph's order; a few sweeps, alternately
   down and up the layers, sort each layer by the mean position of its neighbours in the
   layer before it (the barycentre heuristic), which removes most edge crossings.
3. **Positions.** Layers follow each other along the main axis (left to right for ``"lr"``,
   top to bottom for ``"tb"``), a fixed gap apart beyond their widest boxes; within a layer
   the boxes are stacked across, a fixed gap apart and centred on the axis. A layout given as
   a mapping from every node to ``(x, y)`` replaces steps 2 and 3: its positions are scaled
   so that the two closest nodes are 1.5 units apart.
4. **Edges and markers.** An edge is drawn as matplotlib's ``arc3`` connection, a quadratic
   Bezier curve whose control point lies off the chord's midpoint by ``bend`` times the
   chord, perpendicular to it (:func:`bezier`). Edges between adjacent layers are straight.
   Longer edges (and every edge of a given layout) are routed shortest first: each tries
   straight, then ever stronger bends on either side, and keeps the first curve that clears
   every box and every edge placed before it, or else the one with the fewest points too
   close. Each intervention marker is then put beside its node at the first spot (upstream
   and to a side first, where Figure 5 of the Hydra-effect paper draws it, then straight
   across, then further out) that overlaps the fewest boxes, whose own edge crosses the
   fewest boxes, and that covers the fewest edge points; the edges are routed once more
   with the markers as obstacles.

The bounds enclose every box and every curve, with a margin.

Examples
--------
>>> import networkx as nx
>>> from scmnet._layout import lay_out
>>> graph = nx.DiGraph([("u", "x"), ("u", "f"), ("x", "f"), ("x", "y"), ("f", "y")])
>>> scene = lay_out(graph, {"x": "x = 0.0"}, "lr")
>>> {v: round(box.x, 2) for v, box in scene.boxes.items()}  # one layer each, left to right
{'u': 0.0, 'x': 1.4, 'f': 2.8, 'y': 4.2}
>>> {edge: round(bend, 2) for edge, bend in scene.bends.items() if bend}  # skip a layer: bent
{('u', 'f'): 0.36, ('x', 'y'): -0.36}
>>> sorted(scene.markers)
['x']
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import networkx as nx

from scmnet.errors import InvalidArgument, NotADag, format_names

__all__ = ["Box", "Edge", "Scene", "bezier", "lay_out"]

Edge: TypeAlias = tuple[str, str]
"""An edge ``(parent, child)``, by node name."""

# Geometry, in data units (scmnet.draw shows one data unit as 0.9 inches at the natural size).
_CHAR_WIDTH = 0.11
_NODE_HEIGHT = 0.5
_MARKER_HEIGHT = 0.42
_LAYER_GAP = 0.9
_SIBLING_GAP = 0.45
_MARGIN = 0.3


@dataclass(frozen=True)
class Box:
    """A node's box: centre, width and height in data units.

    Parameters
    ----------
    x, y : float
        The centre.
    w, h : float
        The width and the height.

    Examples
    --------
    >>> box = Box(0.0, 0.0, 2.0, 0.5)
    >>> box.contains(0.9, 0.2), box.contains(0.9, 0.3), box.contains(0.9, 0.3, inflate=0.1)
    (True, False, True)
    >>> box.overlaps(Box(1.4, 0.0, 1.0, 0.5)), box.overlaps(Box(2.0, 0.0, 1.0, 0.5))
    (True, False)
    """

    x: float
    y: float
    w: float
    h: float

    def contains(self, px: float, py: float, inflate: float = 0.0) -> bool:
        """Whether the point ``(px, py)`` lies in the box grown by ``inflate`` on every side."""
        return abs(px - self.x) <= self.w / 2 + inflate and abs(py - self.y) <= self.h / 2 + inflate

    def overlaps(self, other: Box, inflate: float = 0.0) -> bool:
        """Whether the two boxes, each grown by ``inflate / 2`` on every side, overlap."""
        return (
            abs(self.x - other.x) < (self.w + other.w) / 2 + inflate
            and abs(self.y - other.y) < (self.h + other.h) / 2 + inflate
        )


@dataclass(frozen=True)
class Scene:
    """Positions shared by every panel of a picture, so nodes stay put between panels.

    Parameters
    ----------
    boxes : dict of str to Box
        The box of every node.
    markers : dict of str to Box
        The box of the intervention marker of each intervened node, by that node.
    bends : dict of Edge to float
        The ``arc3`` bend of every edge (0 for a straight line; see :func:`bezier`).
    bounds : (float, float, float, float)
        ``(x0, x1, y0, y1)``, enclosing all boxes and edges with a margin.
    """

    boxes: dict[str, Box]
    markers: dict[str, Box]
    bends: dict[Edge, float]
    bounds: tuple[float, float, float, float]


def _width(label: str) -> float:
    return max(_NODE_HEIGHT, _CHAR_WIDTH * len(label) + 0.3)


def bezier(
    a: tuple[float, float], b: tuple[float, float], bend: float, t: float
) -> tuple[float, float]:
    """A point of matplotlib's ``arc3`` connection from ``a`` to ``b`` with ``rad=bend``.

    The connection is a quadratic Bezier curve whose control point lies off the midpoint of
    the chord ``a b`` by ``bend`` times the chord's length, on its right (seen from ``a``) for a
    positive ``bend``.

    Parameters
    ----------
    a, b : (float, float)
        The ends.
    bend : float
        The ``rad`` of ``arc3``; 0 is a straight line.
    t : float
        Where on the curve, from 0 (at ``a``) to 1 (at ``b``).

    Returns
    -------
    (float, float)
        The point.

    Examples
    --------
    >>> bezier((0.0, 0.0), (2.0, 0.0), 0.0, 0.5)
    (1.0, 0.0)
    >>> bezier((0.0, 0.0), (2.0, 0.0), 0.5, 0.5)  # half way to the control point (1, -1)
    (1.0, -0.5)
    """
    dx, dy = b[0] - a[0], b[1] - a[1]
    cx, cy = (a[0] + b[0]) / 2 + bend * dy, (a[1] + b[1]) / 2 - bend * dx
    s = 1.0 - t
    return (
        s * s * a[0] + 2 * s * t * cx + t * t * b[0],
        s * s * a[1] + 2 * s * t * cy + t * t * b[1],
    )


@dataclass(frozen=True)
class _Curve:
    """Points along an edge, with their bounding box for quick rejection."""

    points: tuple[tuple[float, float], ...]
    x0: float
    x1: float
    y0: float
    y1: float

    @classmethod
    def between(cls, a: Box, b: Box, bend: float, n: int = 24) -> _Curve:
        """``n`` points of the edge from the centre of ``a`` to that of ``b``."""
        points = tuple(bezier((a.x, a.y), (b.x, b.y), bend, (i + 0.5) / n) for i in range(n))
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        return cls(points, min(xs), max(xs), min(ys), max(ys))

    def meets(self, x0: float, x1: float, y0: float, y1: float) -> bool:
        """Whether the bounding boxes overlap."""
        return self.x0 <= x1 and x0 <= self.x1 and self.y0 <= y1 and y0 <= self.y1

    def meets_box(self, box: Box, pad: float) -> bool:
        """Whether the bounding box meets ``box`` grown by ``pad`` on every side."""
        return self.meets(
            box.x - box.w / 2 - pad,
            box.x + box.w / 2 + pad,
            box.y - box.h / 2 - pad,
            box.y + box.h / 2 + pad,
        )


# -- layers and positions ----------------------------------------------------------------------


def _layers(graph: nx.DiGraph) -> list[list[str]]:
    """Topological generations, with each source moved to the layer just before its children.

    A node's generation is the length of the longest path reaching it, so every edge points
    to a later layer. Sources (exogenous variables, typically) are then pulled forwards to sit
    next to their first child, which keeps their edges short.
    """
    try:
        generations = [list(g) for g in nx.topological_generations(graph)]
    except nx.NetworkXUnfeasible as e:
        cycle = " -> ".join(str(u) for u, _ in nx.find_cycle(graph))
        raise NotADag(
            f"cannot lay out a graph with a cycle ({cycle}); a causal graph must be acyclic"
        ) from e
    depth = {v: d for d, generation in enumerate(generations) for v in generation}
    for v in generations[0] if generations else []:
        children = list(graph.successors(v))
        if children:
            depth[v] = min(depth[c] for c in children) - 1
    rank = {v: i for i, v in enumerate(graph)}
    layers: list[list[str]] = [[] for _ in generations]
    for v in sorted(graph, key=rank.__getitem__):
        layers[depth[v]].append(v)
    return [layer for layer in layers if layer]


def _order_layers(graph: nx.DiGraph, layers: list[list[str]], sweeps: int = 4) -> None:
    """Reorder each layer by the mean position of its neighbours (the barycentre heuristic)."""

    def centred(layer: list[str]) -> dict[str, float]:
        return {v: i - (len(layer) - 1) / 2 for i, v in enumerate(layer)}

    where: dict[str, float] = {}
    for layer in layers:
        where.update(centred(layer))
    for sweep in range(sweeps):
        down = sweep % 2 == 0
        for layer in layers[1:] if down else layers[-2::-1]:
            here = dict(where)

            def key(v: str, down: bool = down, here: dict[str, float] = here) -> float:
                near = list(graph.predecessors(v) if down else graph.successors(v))
                return sum(here[n] for n in near) / len(near) if near else here[v]

            layer.sort(key=key)
            where.update(centred(layer))


def _layered(
    graph: nx.DiGraph, sizes: Mapping[str, tuple[float, float]], direction: str
) -> dict[str, tuple[float, float]]:
    """Centres of the nodes: one layer per topological generation, along the main axis."""
    layers = _layers(graph)
    _order_layers(graph, layers)
    main_i, cross_i = (0, 1) if direction == "lr" else (1, 0)
    positions: dict[str, tuple[float, float]] = {}
    main = 0.0
    previous = 0.0
    for depth, layer in enumerate(layers):
        half = max(sizes[v][main_i] for v in layer) / 2
        if depth:
            main += previous + _LAYER_GAP + half
        previous = half
        total = sum(sizes[v][cross_i] for v in layer) + _SIBLING_GAP * (len(layer) - 1)
        cross = -total / 2
        for v in layer:
            centre = cross + sizes[v][cross_i] / 2
            cross += sizes[v][cross_i] + _SIBLING_GAP
            positions[v] = (main, -centre) if direction == "lr" else (centre, -main)
    return positions


def _given(
    graph: nx.DiGraph, layout: Mapping[str, Sequence[float]]
) -> dict[str, tuple[float, float]]:
    """Positions from a user's mapping, scaled so that the closest two nodes are 1.5 apart."""
    missing = [v for v in graph if v not in layout]
    if missing:
        raise InvalidArgument(
            f"the layout gives no position for {format_names(missing)}; give an (x, y) pair for "
            f"every node, or use layout='lr' or 'tb'"
        )
    points: dict[str, tuple[float, float]] = {}
    for v in graph:
        p = tuple(float(c) for c in layout[v])
        if len(p) != 2 or not all(math.isfinite(c) for c in p):
            raise InvalidArgument(
                f"the layout position of {v!r} must be two finite numbers, got {p}"
            )
        points[v] = (p[0], p[1])
    values = list(points.values())
    closest = min(
        (math.dist(p, q) for i, p in enumerate(values) for q in values[i + 1 :]),
        default=0.0,
    )
    factor = 1.5 / closest if closest > 0 else 1.0
    return {v: (x * factor, y * factor) for v, (x, y) in points.items()}


# Directions to try for a marker, as (along the layers, across them): upstream and to a side
# first (where Figure 5 draws the intervention edge), then straight across, then upstream.
_MARKER_DIRECTIONS = (
    (-0.5, 1.0),
    (-0.5, -1.0),
    (0.0, 1.0),
    (0.0, -1.0),
    (-1.0, 0.5),
    (-1.0, -0.5),
    (-1.0, 0.0),
    (0.5, 1.0),
    (0.5, -1.0),
)


_MARKER_REACH = (1.0, 1.5, 2.0, 2.5, 3.0)


def _marker_spots(box: Box, w: float, h: float, direction: str) -> Iterator[tuple[float, Box]]:
    """Spots for a ``w`` x ``h`` marker around ``box``, nearest first, with their reach."""
    main, side = ((0.0, -1.0), (-1.0, 0.0)) if direction == "tb" else ((1.0, 0.0), (0.0, 1.0))
    clear_x, clear_y = (box.w + w) / 2 + 0.3, (box.h + h) / 2 + 0.3
    for reach in _MARKER_REACH:
        for m, s in _MARKER_DIRECTIONS:
            vx, vy = m * main[0] + s * side[0], m * main[1] + s * side[1]
            yield reach, Box(box.x + reach * vx * clear_x, box.y + reach * vy * clear_y, w, h)


def _place_markers(
    boxes: Mapping[str, Box],
    markers: Mapping[str, str],
    direction: str,
    curves: Sequence[_Curve],
) -> dict[str, Box]:
    """Put each intervention marker beside its node, where it covers the fewest boxes and edges.

    A spot is scored by the boxes it overlaps, the boxes its own edge crosses, the edge points
    it covers, and how far out it is; the first spot with the lowest score wins.
    """
    placed: dict[str, Box] = {}
    for node, label in markers.items():
        target = boxes[node]
        others = [b for b in [*boxes.values(), *placed.values()] if b is not target]
        spots = list(_marker_spots(target, _width(label), _MARKER_HEIGHT, direction))
        best = (math.inf, spots[0][1])
        for reach, spot in spots:
            overlaps = sum(spot.overlaps(o, 0.1) for o in [*others, target])
            covered = sum(
                spot.contains(*p, 0.05) for c in curves if c.meets_box(spot, 0.05) for p in c.points
            )
            edge = _Curve.between(spot, target, 0.0, 16)
            crossed = sum(
                o.contains(*p, 0.05) for o in others if edge.meets_box(o, 0.05) for p in edge.points
            )
            score = 1000.0 * overlaps + 20.0 * crossed + 2.0 * covered + 4.0 * (reach - 1.0)
            if score < best[0]:
                best = (score, spot)
            if score == 0:
                break
        placed[node] = best[1]
    return placed


def _bend(u: Box, v: Box, obstacles: Sequence[Box], routed: Sequence[_Curve]) -> float:
    """The ``arc3`` bend for an edge: straight if that is clear, else the clearest curve."""
    length = math.dist((u.x, u.y), (v.x, v.y))
    r = min(0.5, max(0.15, 1.0 / length)) if length > 0 else 0.3
    best, best_score = 0.0, math.inf
    for bend in (0.0, r, -r, 1.7 * r, -1.7 * r, 2.5 * r, -2.5 * r):
        curve = _Curve.between(u, v, bend)
        near_boxes = [
            o for o in obstacles if o is not u and o is not v and curve.meets_box(o, 0.12)
        ]
        hits = sum(1 for p in curve.points for o in near_boxes if o.contains(*p, 0.12))
        pad = 0.15
        near_curves = [
            c
            for c in routed
            if c.meets(curve.x0 - pad, curve.x1 + pad, curve.y0 - pad, curve.y1 + pad)
        ]
        inner = curve.points[len(curve.points) // 5 : -len(curve.points) // 5]  # ends meet
        near = sum(1 for p in inner for c in near_curves for q in c.points if math.dist(p, q) < pad)
        score = 10.0 * hits + near
        if score == 0:
            return bend
        if score < best_score:
            best, best_score = bend, score
    return best


def _route(
    graph: nx.DiGraph,
    boxes: Mapping[str, Box],
    markers: Sequence[Box],
    depth: Mapping[str, int],
    direction: str,
) -> tuple[dict[Edge, float], list[_Curve]]:
    """Bends for every edge: edges between adjacent layers go straight, longer ones are bent
    (shortest first) around the boxes and the edges already placed."""
    bends: dict[Edge, float] = {}
    curves: list[_Curve] = []
    longer: list[Edge] = []
    for u, v in graph.edges:
        if direction != "given" and depth[v] - depth[u] == 1:
            bends[(u, v)] = 0.0
            curves.append(_Curve.between(boxes[u], boxes[v], 0.0))
        else:
            longer.append((u, v))
    obstacles = [*boxes.values(), *markers]
    for u, v in sorted(longer, key=lambda e: (depth[e[1]] - depth[e[0]], depth[e[0]])):
        bends[(u, v)] = _bend(boxes[u], boxes[v], obstacles, curves)
        curves.append(_Curve.between(boxes[u], boxes[v], bends[(u, v)]))
    return bends, curves


def lay_out(
    graph: nx.DiGraph,
    markers: Mapping[str, str],
    layout: str | Mapping[str, Sequence[float]] | None,
) -> Scene:
    """Place the nodes, intervention markers and edges of a graph (see the module docstring).

    Parameters
    ----------
    graph : networkx.DiGraph
        The graph, with every edge that any panel will draw (cut edges included).
    markers : mapping of str to str
        The label of the intervention marker of each intervened node, by that node.
    layout : {"lr", "tb"} or mapping or None
        Layers left to right (``"lr"``, also for ``None``) or top to bottom (``"tb"``), or an
        ``(x, y)`` position for every node.

    Returns
    -------
    Scene
        The boxes, the markers' boxes, the edges' bends and the bounds.

    Raises
    ------
    InvalidArgument
        If the graph is empty, or ``layout`` is not ``"lr"``, ``"tb"`` or a finite position
        for every node.
    NotADag
        If the graph has a cycle.

    Examples
    --------
    >>> import networkx as nx
    >>> scene = lay_out(nx.DiGraph([("a", "b"), ("a", "c")]), {}, "tb")
    >>> scene.boxes["b"], scene.boxes["c"]  # side by side, one layer below a
    (Box(x=-0.475, y=-1.4, w=0.5, h=0.5), Box(x=0.475, y=-1.4, w=0.5, h=0.5))
    >>> scene.bends
    {('a', 'b'): 0.0, ('a', 'c'): 0.0}
    """
    if len(graph) == 0:
        raise InvalidArgument("the graph has no nodes, so there is nothing to draw")
    labels = {v: str(v) for v in graph}
    sizes = {v: (_width(labels[v]), _NODE_HEIGHT) for v in graph}
    if layout is None or isinstance(layout, str):
        direction: str = layout or "lr"
        if direction not in ("lr", "tb"):
            raise InvalidArgument(
                f"layout must be 'lr', 'tb' or a mapping from nodes to (x, y), got {layout!r}"
            )
        centres = _layered(graph, sizes, direction)
    else:
        direction = "given"
        centres = _given(graph, layout)
    boxes = {v: Box(*centres[v], *sizes[v]) for v in graph}
    depth = {v: d for d, layer in enumerate(_layers(graph)) for v in layer}
    bends, curves = _route(graph, boxes, [], depth, direction)
    marker_boxes = _place_markers(boxes, markers, direction, curves)
    if marker_boxes:
        bends, curves = _route(graph, boxes, list(marker_boxes.values()), depth, direction)

    xs: list[float] = []
    ys: list[float] = []
    for b in [*boxes.values(), *marker_boxes.values()]:
        xs += [b.x - b.w / 2, b.x + b.w / 2]
        ys += [b.y - b.h / 2, b.y + b.h / 2]
    for c in curves:
        xs += [c.x0, c.x1]
        ys += [c.y0, c.y1]
    bounds = (min(xs) - _MARGIN, max(xs) + _MARGIN, min(ys) - _MARGIN, max(ys) + _MARGIN)
    return Scene(boxes, marker_boxes, bends, bounds)
