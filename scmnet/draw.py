"""Pictures of causal graphs, before and after an intervention (Figure 5 of the Hydra-effect paper).

A causal graph has an edge X -> V for every parent X of V. :func:`draw_graph` draws one:
exogenous variables U as grey boxes with a dashed outline (nothing in the model sets them; they
are the context), endogenous variables V as blue boxes. Nodes are placed in layers, left to
right by default: the generations of a topological sort, so every edge points forwards, and an
edge that skips a layer is bent around the nodes in between (the private module
``scmnet._layout`` computes these positions and explains how).

An intervention ``do(Z = z')`` replaces the mechanism of Z by a constant, so Z no longer listens
to its parents: the in-edges of Z disappear from the graph of the intervened model M_Z, and a
new *intervention edge* sets Z from outside. :func:`draw_intervention` draws that change, as in
Figure 5 of the paper: the model before, and the model after, where every cut edge is drawn
faded and crossed out, the intervened node is highlighted, and a marker node carrying the
intervention (e.g. ``x = 0.0``) points into it. A soft intervention (:func:`~scmnet.shift`,
:func:`~scmnet.scale`, :func:`~scmnet.apply`) keeps the in-edges, so nothing is crossed out.

Both functions return a :class:`matplotlib.figure.Figure` drawn with the Agg backend, without
touching pyplot's global state, and write it to ``path`` when one is given (PNG, or the format
that the suffix names: ``.svg``, ``.pdf``), at 150 dots per inch unless ``dpi`` says otherwise:
sharp enough to be shown full width on a projector or a printed page. Every artist carries a
gid that says what it shows, so a picture can be inspected in code (or styled in SVG):
``node:V``, ``label:V``, ``edge:X->V``, ``removed-edge:X->V`` with its cross ``cut:X->V``, and
``intervention:V`` with its text ``intervention-label:V`` and its edge ``intervention-edge:V``.
Matplotlib is an optional dependency: ``pip install 'scmnet[plots]'``.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> import scmnet as sn
>>> from scmnet.draw import draw_intervention
>>> with tempfile.TemporaryDirectory() as tmp:
...     fig = draw_intervention(sn.toys.erasure(), {"x": 0.0}, Path(tmp) / "erasure_do_x.png")
...     print((Path(tmp) / "erasure_do_x.png").read_bytes()[:4])
b'\\x89PNG'
>>> [ax.get_title() for ax in fig.axes]
['before: erasure', 'after: do(x = 0.0)']
>>> [p.get_gid() for p in fig.axes[1].patches if p.get_gid().startswith("removed-edge")]
['removed-edge:u->x']
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import networkx as nx

from scmnet._layout import Box, Edge, Scene, bezier, lay_out
from scmnet.errors import InvalidArgument, InvalidIntervention, require
from scmnet.interventions import Interventions, normalize
from scmnet.model import CausalModel, causal_graph, removed_edges

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

__all__ = ["Layout", "draw_graph", "draw_intervention"]

Layout: TypeAlias = Literal["lr", "tb"] | Mapping[str, Sequence[float]]
"""Where nodes go: ``"lr"`` (layers left to right), ``"tb"`` (top to bottom), or a mapping from
every node to an ``(x, y)`` position, e.g. the output of :func:`networkx.spring_layout`."""

# Sizes in inches and points. The layout (scmnet._layout) works in data units; a figure at its
# natural size shows one data unit as _UNIT_INCHES.
_UNIT_INCHES = 0.9
_MAX_INCHES = 40.0
_FONT_SIZE = 11.0
_TITLE_INCHES = 0.35
_LEGEND_ENTRY_INCHES = 1.45
_LEGEND_ROW_INCHES = 0.24
_PANEL_GAP_INCHES = 0.3


@dataclass(frozen=True)
class _Style:
    """How the box of one kind of node is drawn."""

    facecolor: str
    edgecolor: str
    linewidth: float
    linestyle: str = "-"

    def kwargs(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Colours (colour-blind safe, from ColorBrewer's Blues, Greys and Dark2).
_ENDOGENOUS = _Style("#deebf7", "#3182bd", 1.4)
_EXOGENOUS = _Style("#f0f0f0", "#7f7f7f", 1.2, "--")
_INTERVENED = _Style("#fdd0a2", "#d95f02", 2.2)
_MARKER = _Style("#ffffff", "#d95f02", 1.4)
_REMOVED_COLOR = "#b0b0b0"
_CUT_COLOR = "#d62728"
_EDGE: dict[str, Any] = {"color": "#404040", "linewidth": 1.3}
_REMOVED_EDGE: dict[str, Any] = {"color": _REMOVED_COLOR, "linewidth": 1.2, "linestyle": "--"}
_INTERVENTION_EDGE: dict[str, Any] = {"color": "#d95f02", "linewidth": 1.6}
_TEXT: dict[str, Any] = {"zorder": 3}
_MARKER_TEXT: dict[str, Any] = {"color": "#d95f02"}
_CUT: dict[str, Any] = {"color": _CUT_COLOR, "fontweight": "bold", "zorder": 4}


@dataclass(frozen=True)
class _Panel:
    """What one panel shows: a graph, the edges cut from it, and intervention markers."""

    graph: nx.DiGraph
    removed: tuple[Edge, ...]
    markers: dict[str, str]
    title: str


# -- drawing --------------------------------------------------------------------------------------


def _box_patch(box: Box, style: _Style, rounding: float, gid: str) -> FancyBboxPatch:
    from matplotlib.patches import FancyBboxPatch

    corner = (box.x - box.w / 2, box.y - box.h / 2)
    shape = f"round,pad=0,rounding_size={rounding}"
    patch = FancyBboxPatch(corner, box.w, box.h, boxstyle=shape, zorder=2, **style.kwargs())
    patch.set_gid(gid)
    return patch


def _arrow(
    ends: tuple[FancyBboxPatch, FancyBboxPatch], a: Box, b: Box, bend: float, **style: Any
) -> FancyArrowPatch:
    """An arrow from box ``a`` to box ``b``, clipped to the outlines of their patches."""
    from matplotlib.patches import FancyArrowPatch

    return FancyArrowPatch(
        (a.x, a.y),
        (b.x, b.y),
        patchA=ends[0],
        patchB=ends[1],
        shrinkA=1.5,
        shrinkB=1.5,
        arrowstyle="-|>",
        mutation_scale=13,
        connectionstyle=f"arc3,rad={bend}",
        zorder=1,
        **style,
    )


def _cut_point(a: Box, b: Box, bend: float) -> tuple[float, float]:
    """The middle of the visible part of an edge, where its cross goes."""
    ts = [i / 200 for i in range(201)]
    visible = [
        t
        for t in ts
        if not any(box.contains(*bezier((a.x, a.y), (b.x, b.y), bend, t)) for box in (a, b))
    ]
    t = (visible[0] + visible[-1]) / 2 if visible else 0.5
    return bezier((a.x, a.y), (b.x, b.y), bend, t)


def _font_size(ax: Axes, scene: Scene) -> float:
    """Shrink the text when the axes show a data unit smaller than the natural size."""
    dpi = ax.figure.dpi
    x0, x1, y0, y1 = scene.bounds
    unit = min(ax.bbox.width / dpi / (x1 - x0), ax.bbox.height / dpi / (y1 - y0))
    return max(4.0, _FONT_SIZE * min(1.0, unit / _UNIT_INCHES))


def _draw_panel(ax: Axes, scene: Scene, panel: _Panel, fontsize: float | None) -> None:
    size = fontsize or _font_size(ax, scene)
    boxes = {**scene.boxes, **{f"do:{v}": box for v, box in scene.markers.items()}}
    patches: dict[str, FancyBboxPatch] = {}

    def node(key: str, text: str, style: _Style, gid: str, **font: Any) -> None:
        box = boxes[key]
        rounding = box.h / 2 if key in scene.boxes else 0.08
        patches[key] = _box_patch(box, style, rounding, gid)
        ax.add_patch(patches[key])
        label_gid = f"label:{key}" if key in scene.boxes else f"intervention-label:{key[3:]}"
        write(box.x, box.y, text, label_gid, **font)

    def write(x: float, y: float, text: str, gid: str, **font: Any) -> None:
        ax.text(
            x, y, text, ha="center", va="center", gid=gid, **{**_TEXT, "fontsize": size, **font}
        )

    def arrow(u: str, v: str, bend: float, gid: str, style: Mapping[str, Any]) -> None:
        patch = _arrow((patches[u], patches[v]), boxes[u], boxes[v], bend, **style)
        patch.set_gid(gid)
        ax.add_patch(patch)

    for v in scene.boxes:
        kind = panel.graph.nodes[v].get("kind") if v in panel.graph else None
        style = _EXOGENOUS if kind == "exogenous" else _ENDOGENOUS
        node(v, str(v), _INTERVENED if v in panel.markers else style, f"node:{v}")
    for u, v in panel.graph.edges:
        arrow(u, v, scene.bends[(u, v)], f"edge:{u}->{v}", _EDGE)
    for u, v in panel.removed:
        arrow(u, v, scene.bends[(u, v)], f"removed-edge:{u}->{v}", _REMOVED_EDGE)
        x, y = _cut_point(boxes[u], boxes[v], scene.bends[(u, v)])
        write(x, y, "\u00d7", f"cut:{u}->{v}", **_CUT, fontsize=1.5 * size)
    for v, label in panel.markers.items():
        node(f"do:{v}", label, _MARKER, f"intervention:{v}", **_MARKER_TEXT, fontsize=0.9 * size)
        arrow(f"do:{v}", v, 0.0, f"intervention-edge:{v}", _INTERVENTION_EDGE)

    x0, x1, y0, y1 = scene.bounds
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal", adjustable="box")
    ax.set_axis_off()
    if panel.title:
        ax.set_title(panel.title, fontsize=size)


def _legend_handles(panels: Sequence[_Panel]) -> list[Artist]:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    kinds = {d.get("kind") for p in panels for _, d in p.graph.nodes(data=True)}
    handles: list[Artist] = []
    if "exogenous" in kinds:
        handles.append(Patch(label="exogenous (U)", **_EXOGENOUS.kwargs()))
    handles.append(Patch(label="endogenous (V)", **_ENDOGENOUS.kwargs()))
    if any(p.markers for p in panels):
        handles.append(Patch(label="intervened", **_INTERVENED.kwargs()))
        handles.append(Patch(label="intervention", **_MARKER.kwargs()))
    if any(p.removed for p in panels):
        handles.append(
            Line2D(
                [],
                [],
                color=_REMOVED_COLOR,
                linestyle="--",
                marker="x",
                markeredgecolor=_CUT_COLOR,
                markersize=7,
                label="removed edge",
            )
        )
    return handles


def _render(
    scene: Scene,
    panels: Sequence[_Panel],
    *,
    axes: Sequence[Axes] | None,
    title: str | None,
    legend: bool,
    figsize: tuple[float, float] | None,
    dpi: float,
) -> Figure:
    """Draw the panels into the given axes, or into a new figure sized to the scene."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if axes is not None:
        for ax, panel in zip(axes, panels, strict=True):
            _draw_panel(ax, scene, panel, None)
        fig = axes[0].get_figure(root=True)
        if fig is None:
            raise InvalidArgument("the Axes given belong to no figure; create them with a Figure")
        if legend:  # below the last panel, outside the drawing
            handles = _legend_handles(panels)
            axes[-1].legend(
                handles=handles,
                loc="upper center",
                bbox_to_anchor=(0.5, 0.0),
                ncol=min(3, len(handles)),
                fontsize=7,
                frameon=False,
            )
        if title:
            fig.suptitle(title)
        return fig

    x0, x1, y0, y1 = scene.bounds
    unit = min(_UNIT_INCHES, _MAX_INCHES / (x1 - x0), _MAX_INCHES / (y1 - y0))
    panel_w = max(2.0, (x1 - x0) * unit)
    panel_h = max(1.0, (y1 - y0) * unit)
    titled = any(p.title for p in panels)
    top = _TITLE_INCHES * (bool(title) + titled)
    n = len(panels)
    natural_w = n * panel_w + (n - 1) * _PANEL_GAP_INCHES + 0.2
    handles = _legend_handles(panels) if legend else []
    columns = min(len(handles), max(1, int(natural_w / _LEGEND_ENTRY_INCHES)))
    bottom = 0.12 + _LEGEND_ROW_INCHES * math.ceil(len(handles) / columns) if handles else 0.0
    natural_h = panel_h + top + bottom + 0.1
    # Whole pixels (Agg truncates, so aim a quarter pixel over), so the file has the size shown.
    natural_w, natural_h = ((round(v * dpi) + 0.25) / dpi for v in (natural_w, natural_h))
    fig = Figure(figsize=figsize or (natural_w, natural_h), dpi=dpi)
    FigureCanvasAgg(fig)
    for i, panel in enumerate(panels):
        left = 0.1 + i * (panel_w + _PANEL_GAP_INCHES)
        rect = (
            left / natural_w,
            (bottom + 0.05) / natural_h,
            panel_w / natural_w,
            panel_h / natural_h,
        )
        ax = fig.add_axes(rect)
        _draw_panel(ax, scene, panel, _FONT_SIZE * unit / _UNIT_INCHES if figsize is None else None)
    if title:
        fig.suptitle(title, y=1 - 0.05 / natural_h, va="top")
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=columns, fontsize=8, frameon=False)
    return fig


def _save(fig: Figure, path: str | os.PathLike[str] | None, dpi: float | None) -> None:
    if path is None:
        return
    suffix = os.path.splitext(os.fspath(path))[1].lstrip(".").lower()
    fig.savefig(path, format=suffix or "png", dpi=dpi or "figure")


# -- the public functions -------------------------------------------------------------------------


def _markers(graph: nx.DiGraph) -> dict[str, str]:
    return {v: str(d["intervention"]) for v, d in graph.nodes(data=True) if d.get("intervention")}


def _with_edges(graph: nx.DiGraph, edges: Iterable[Edge]) -> nx.DiGraph:
    full = nx.DiGraph(graph)
    full.add_edges_from(edges)
    return full


def _axes_list(ax: Axes | Sequence[Axes] | Any) -> list[Axes]:
    from matplotlib.axes import Axes

    axes = [ax] if isinstance(ax, Axes) else list(ax)
    if not all(isinstance(a, Axes) for a in axes):
        raise TypeError(f"ax must be a matplotlib Axes or a sequence of them, got {ax!r}")
    return axes


def draw_graph(
    model: CausalModel | nx.DiGraph,
    path: str | os.PathLike[str] | None = None,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    layout: Layout | None = None,
    legend: bool = False,
    figsize: tuple[float, float] | None = None,
    dpi: float = 150.0,
) -> Figure:
    """Draw the causal graph of a model.

    Exogenous nodes are grey with a dashed outline, endogenous nodes blue. A model that carries
    interventions (made by :func:`~scmnet.do`) shows them: intervened nodes are highlighted and
    fed by an intervention marker, and the in-edges that hard interventions cut (where the model
    records them, as :attr:`SCM.removed_edges <scmnet.SCM.removed_edges>` does) are drawn faded
    and crossed out, in the positions of the unintervened graph.

    Parameters
    ----------
    model : CausalModel or networkx.DiGraph
        The model (its ``graph`` is drawn), or a graph whose nodes may carry ``kind``
        (``"exogenous"`` or ``"endogenous"``) and ``intervention`` (a label or ``None``).
    path : str or os.PathLike, optional
        Where to write the picture: PNG by default, or the format its suffix names.
    ax : matplotlib.axes.Axes, optional
        Draw into these axes instead of a new figure; text is scaled to fit them.
    title : str, optional
        The title; by default the graph's name (``""`` for none).
    layout : {"lr", "tb"} or mapping, optional
        Layers of the topological generations left to right (``"lr"``, the default) or top to
        bottom (``"tb"``), or a position for every node (scaled so the two closest nodes are
        1.5 units apart; node boxes are 0.5 units tall).
    legend : bool
        Whether to add a legend of the node and edge styles.
    figsize : (float, float), optional
        Size of a new figure in inches; by default it follows the size of the graph.
    dpi : float
        Resolution of a new figure and of the file written, in dots per inch; the default,
        150, is sharp on a projector and on a printed page.

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn into (that of ``ax`` when given).

    Raises
    ------
    MissingDependency
        If matplotlib is not installed.
    NotADag
        If the graph has a cycle.
    ValueError
        If ``layout`` is not ``"lr"``, ``"tb"`` or a position for every node.

    See Also
    --------
    draw_intervention : The graph before and after ``do(...)``, side by side.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import scmnet as sn
    >>> from scmnet.draw import draw_graph
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     fig = draw_graph(sn.toys.self_repair(), Path(tmp) / "self_repair.png", dpi=80)
    ...     print((Path(tmp) / "self_repair.png").stat().st_size > 0)
    True
    >>> sorted(p.get_gid() for p in fig.axes[0].patches if p.get_gid().startswith("edge"))
    ['edge:f->y', 'edge:u->f', 'edge:u->x', 'edge:x->f', 'edge:x->y']

    A model made by :func:`~scmnet.do` is drawn with its intervention:

    >>> fig = draw_graph(sn.do(sn.toys.erasure(), {"x": 0.0}))
    >>> [t.get_text() for t in fig.axes[0].texts if t.get_gid() == "intervention-label:x"]
    ['x = 0.0']
    """
    require("matplotlib", "plots")
    graph = causal_graph(model)
    removed = removed_edges(model)
    markers = _markers(graph)
    scene = lay_out(_with_edges(graph, removed), markers, layout)
    panel = _Panel(graph, removed, markers, graph.name if title is None else title)
    axes = None if ax is None else _axes_list(ax)
    if axes is not None and len(axes) != 1:
        raise InvalidArgument(f"draw_graph draws one panel, so it needs one Axes, got {len(axes)}")
    fig = _render(
        scene,
        [panel],
        axes=axes,
        title=None,
        legend=legend,
        figsize=figsize,
        dpi=dpi,
    )
    _save(fig, path, dpi if ax is None else None)
    return fig


def draw_intervention(
    model: CausalModel,
    interventions: Interventions | Mapping[Any, Any],
    path: str | os.PathLike[str] | None = None,
    *,
    ax: Axes | Sequence[Axes] | None = None,
    title: str | None = None,
    layout: Layout | None = None,
    side_by_side: bool | None = None,
    legend: bool = True,
    figsize: tuple[float, float] | None = None,
    dpi: float = 150.0,
) -> Figure:
    """Draw a model before and after ``do(...)``, as in Figure 5 of the Hydra-effect paper.

    The right panel is the intervened model M_Z: each in-edge of a hard-intervened node is
    drawn faded, dashed and crossed out (the mechanism no longer reads that parent), the node
    is highlighted, and a marker node carrying the intervention (e.g. ``x = 0.0``) points into
    it. Soft interventions keep the in-edges. Both panels place every node in the same spot.

    Parameters
    ----------
    model : CausalModel
        The model before the intervention (any :class:`~scmnet.CausalModel`).
    interventions : mapping or Interventions
        As for :func:`~scmnet.do`: node names or :class:`~scmnet.Site` objects to values or
        rules.
    path : str or os.PathLike, optional
        Where to write the picture: PNG by default, or the format its suffix names.
    ax : Axes or sequence of two Axes, optional
        Draw into these axes: one Axes for the intervened panel only, two for both panels.
    title : str, optional
        A title over the whole picture.
    layout : {"lr", "tb"} or mapping, optional
        As for :func:`draw_graph`; the layers come from the graph before the intervention.
    side_by_side : bool, optional
        Draw both panels (the default) or only the intervened one (``False``); by default
        taken from the number of ``ax`` given.
    legend : bool
        Whether to add a legend of the node and edge styles.
    figsize : (float, float), optional
        Size of a new figure in inches; by default it follows the size of the graph.
    dpi : float
        Resolution of a new figure and of the file written, in dots per inch; the default,
        150, is sharp on a projector and on a printed page.

    Returns
    -------
    matplotlib.figure.Figure
        The figure; its axes are ``[before, after]``, or ``[after]`` for a single panel.

    Raises
    ------
    NodeNotFound
        If an intervention names a node the model does not have.
    InvalidIntervention
        If the interventions are empty or name an exogenous variable.
    MissingDependency
        If matplotlib is not installed.
    ValueError
        If ``ax`` and ``side_by_side`` disagree, or ``layout`` is invalid.

    See Also
    --------
    scmnet.do : The intervened model itself.
    draw_graph : One panel for any model.

    Examples
    --------
    >>> import scmnet as sn
    >>> from scmnet.draw import draw_intervention
    >>> fig = draw_intervention(sn.toys.self_repair(), {"x": 0.0}, side_by_side=False)
    >>> [ax.get_title() for ax in fig.axes]
    ['self-repair under do(x = 0.0)']
    >>> sorted(p.get_gid() for p in fig.axes[0].patches if p.get_gid().startswith("removed"))
    ['removed-edge:u->x']

    A soft intervention keeps the in-edges of its node:

    >>> fig = draw_intervention(sn.toys.linear_mediation(), {"m": sn.shift(1.0)})
    >>> [p.get_gid() for p in fig.axes[1].patches if p.get_gid().startswith("removed")]
    []
    """
    iv = normalize(interventions)
    if not iv:
        raise InvalidIntervention(
            "there is nothing to draw: the interventions are empty; name at least one node "
            "and its value, e.g. {'x': 0.0}"
        )
    after_model = model.intervene(iv)  # validates the nodes before any drawing
    require("matplotlib", "plots")
    axes = None if ax is None else _axes_list(ax)
    both = side_by_side if side_by_side is not None else (axes is None or len(axes) == 2)
    if axes is not None and len(axes) != (2 if both else 1):
        raise InvalidArgument(
            f"got {len(axes)} Axes for {'two panels' if both else 'one panel'}; pass two Axes "
            f"with side_by_side=True, or one with side_by_side=False"
        )

    before, after = causal_graph(model), causal_graph(after_model)
    cut_before = removed_edges(model)
    cut_after = tuple(
        dict.fromkeys(
            [*removed_edges(after_model), *(e for e in before.edges if e not in after.edges)]
        )
    )
    markers_after = _markers(after)
    for node in iv.nodes:  # a model whose graph does not label its interventions
        if node not in markers_after:
            markers_after[node] = "; ".join(f"{s} {r.label()}" for s, r in iv.on(node))
    markers_before = _markers(before)
    widest = {
        v: max(markers_before.get(v, ""), markers_after.get(v, ""), key=len)
        for v in {*markers_before, *markers_after}
    }
    scene = lay_out(_with_edges(before, [*cut_before, *cut_after]), widest, layout)

    name = before.name
    applied = ", ".join(f"{site} {rule.label()}" for site, rule in iv)
    panels = [_Panel(after, cut_after, markers_after, f"after: do({applied})")]
    if both:
        panels.insert(0, _Panel(before, cut_before, markers_before, f"before: {name or 'model'}"))
    else:
        panels[0] = _Panel(
            after,
            cut_after,
            markers_after,
            f"{name} under do({applied})" if name else f"do({applied})",
        )
    fig = _render(scene, panels, axes=axes, title=title, legend=legend, figsize=figsize, dpi=dpi)
    _save(fig, path, dpi if ax is None else None)
    return fig
