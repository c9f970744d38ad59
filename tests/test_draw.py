"""Tests of the graph pictures (scmnet.draw): layout properties, then examples, then errors."""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path
from typing import Any, Literal

import matplotlib.pyplot as plt
import networkx as nx
import pytest
from hypothesis import given, settings
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

import scmnet as sn
from scmnet.draw import draw_graph, draw_intervention
from tests.strategies import dags


def png_size(path: Path) -> tuple[int, int]:
    """Width and height of a PNG file, read from its IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def gids(ax: Axes, prefix: str) -> list[str]:
    """The gids of the patches and texts of ``ax`` that start with ``prefix``, sorted."""
    found = [a.get_gid() for a in [*ax.patches, *ax.texts]]
    return sorted(g for g in found if g is not None and g.startswith(prefix))


def boxes(ax: Axes) -> dict[str, tuple[float, float, float, float]]:
    """Node boxes of a panel: name to (x0, y0, x1, y1) in data units."""
    out = {}
    for p in ax.patches:
        gid = p.get_gid()
        if isinstance(p, FancyBboxPatch) and gid is not None and gid.startswith("node:"):
            x, y = p.get_x(), p.get_y()
            out[gid[5:]] = (x, y, x + p.get_width(), y + p.get_height())
    return out


def centre(box: tuple[float, float, float, float]) -> tuple[float, float]:
    return ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)


# -- properties of the layout ---------------------------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(graph=dags(min_nodes=2, max_nodes=7))
def test_layered_layout_points_every_edge_forwards_without_overlaps(graph: nx.DiGraph) -> None:
    cases: list[tuple[Literal["lr", "tb"], int, float]] = [("lr", 0, 1.0), ("tb", 1, -1.0)]
    for layout, axis, sign in cases:
        fig = draw_graph(graph, layout=layout)
        placed = boxes(fig.axes[0])
        assert set(placed) == set(graph)
        for u, v in graph.edges:
            assert sign * (centre(placed[v])[axis] - centre(placed[u])[axis]) > 0
        names = sorted(placed)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = placed[a], placed[b]
                assert ax1 <= bx0 or bx1 <= ax0 or ay1 <= by0 or by1 <= ay0, (a, b)
        assert gids(fig.axes[0], "edge:") == sorted(f"edge:{u}->{v}" for u, v in graph.edges)


@pytest.mark.parametrize(
    ("model", "interventions", "removed"),
    [
        (sn.toys.erasure(), {"x": 0.0}, ["u->x"]),
        (sn.toys.self_repair(), {"x": 0.0}, ["u->x"]),
        (sn.toys.self_repair(), {"f": 1.0}, ["u->f", "x->f"]),
        (sn.toys.self_repair(), {"x": 0.0, "f": 1.0}, ["u->f", "u->x", "x->f"]),
        (sn.toys.linear_mediation(), {"m": 2.0}, ["u_m->m", "x->m"]),
        (sn.toys.linear_mediation(), {"m": sn.shift(1.0)}, []),
        (sn.toys.linear_mediation(), {sn.Site("m", index=0): 1.0}, []),
    ],
)
def test_intervened_panel_crosses_out_exactly_the_cut_edges(
    model: sn.SCM, interventions: dict[Any, Any], removed: list[str]
) -> None:
    fig = draw_intervention(model, interventions)
    before, after = fig.axes
    assert gids(before, "removed-edge:") == []
    assert gids(after, "removed-edge:") == [f"removed-edge:{e}" for e in removed]
    assert gids(after, "cut:") == [f"cut:{e}" for e in removed]
    intervened = sn.do(model, interventions)
    assert gids(after, "edge:") == sorted(f"edge:{u}->{v}" for u, v in intervened.graph.edges)
    assert gids(before, "edge:") == sorted(f"edge:{u}->{v}" for u, v in model.graph.edges)
    nodes = sorted({site.node for site in sn.interventions.normalize(interventions).sites})
    assert gids(after, "intervention:") == [f"intervention:{v}" for v in nodes]
    assert gids(after, "intervention-edge:") == [f"intervention-edge:{v}" for v in nodes]
    assert gids(before, "intervention") == []
    assert boxes(before) == boxes(after)  # every node stays in its place


# -- examples -------------------------------------------------------------------------------------


def test_draw_graph_writes_a_png_of_the_requested_size(tmp_path: Path) -> None:
    path = tmp_path / "erasure.png"
    fig = draw_graph(sn.toys.erasure(), path, figsize=(4.0, 3.0), dpi=50)
    assert path.stat().st_size > 0
    assert png_size(path) == (200, 150)
    assert isinstance(fig, Figure)
    assert isinstance(fig.canvas, FigureCanvasAgg)
    assert fig.axes[0].get_title() == "erasure"


def test_natural_size_follows_the_graph(tmp_path: Path) -> None:
    small, large = tmp_path / "small.png", tmp_path / "large.png"
    fig = draw_graph(sn.toys.erasure(), small, dpi=72)
    width, height = (round(float(s) * 72) for s in fig.get_size_inches())  # whole pixels
    assert png_size(small) == (width, height)
    chain = sn.toys.linear_gaussian({(f"v{i}", f"v{i + 1}"): 1.0 for i in range(8)})
    draw_graph(chain, large, dpi=72)
    assert png_size(large)[0] > png_size(small)[0]


def test_draw_intervention_writes_side_by_side_and_single_panels(tmp_path: Path) -> None:
    both, one = tmp_path / "both.png", tmp_path / "one.png"
    fig = draw_intervention(sn.toys.erasure(), {"x": 0.0}, both, dpi=60)
    assert [ax.get_title() for ax in fig.axes] == ["before: erasure", "after: do(x = 0.0)"]
    labels = [t.get_text() for t in fig.axes[1].texts if t.get_gid() == "intervention-label:x"]
    assert labels == ["x = 0.0"]
    single = draw_intervention(sn.toys.erasure(), {"x": 0.0}, one, side_by_side=False, dpi=60)
    assert [ax.get_title() for ax in single.axes] == ["erasure under do(x = 0.0)"]
    assert png_size(both)[0] > png_size(one)[0] > 0


def test_title_and_legend(tmp_path: Path) -> None:
    fig = draw_intervention(sn.toys.self_repair(), {"x": 0.0}, title="Self-repair", legend=True)
    assert fig.get_suptitle() == "Self-repair"
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [
        "exogenous (U)",
        "endogenous (V)",
        "intervened",
        "intervention",
        "removed edge",
    ]
    plain = draw_graph(sn.toys.self_repair(), title="")
    assert plain.axes[0].get_title() == ""
    assert plain.legends == []


def test_soft_intervention_is_labelled_and_keeps_in_edges() -> None:
    fig = draw_intervention(sn.toys.linear_mediation(), {"m": sn.shift(1.0)})
    labels = [t.get_text() for t in fig.axes[1].texts if t.get_gid() == "intervention-label:m"]
    assert labels == ["m += 1.0"]
    assert gids(fig.axes[1], "edge:") == gids(fig.axes[0], "edge:")


def test_draw_graph_of_an_intervened_model_keeps_the_original_places() -> None:
    model = sn.toys.self_repair()
    intervened = sn.do(model, {"x": 0.0})
    fig = draw_graph(intervened)
    assert gids(fig.axes[0], "removed-edge:") == ["removed-edge:u->x"]
    assert gids(fig.axes[0], "intervention:") == ["intervention:x"]
    assert boxes(fig.axes[0]) == boxes(draw_graph(model).axes[0])
    # The model's own interventions show in both panels, the new one only after.
    fig = draw_intervention(sn.do(model, {"f": 1.0}), {"x": 0.0})
    assert gids(fig.axes[0], "removed-edge:") == ["removed-edge:u->f", "removed-edge:x->f"]
    assert len(gids(fig.axes[1], "removed-edge:")) == 3
    assert gids(fig.axes[0], "intervention:") == ["intervention:f"]
    assert gids(fig.axes[1], "intervention:") == ["intervention:f", "intervention:x"]


class BareModel:
    """A causal model whose graph carries no node attributes and that records no cut edges:
    only what the CausalModel protocol promises."""

    def __init__(self, inner: sn.CausalModel) -> None:
        self.inner = inner

    @property
    def graph(self) -> nx.DiGraph:
        return nx.DiGraph(list(self.inner.graph.edges))

    def intervene(self, interventions: Any) -> BareModel:
        return BareModel(self.inner.intervene(interventions))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_any_causal_model_is_drawn_from_the_protocol_alone() -> None:
    fig = draw_intervention(BareModel(sn.toys.self_repair()), {"f": sn.Set(1.0)})
    assert gids(fig.axes[1], "removed-edge:") == ["removed-edge:u->f", "removed-edge:x->f"]
    labels = [t.get_text() for t in fig.axes[1].texts if t.get_gid() == "intervention-label:f"]
    assert labels == ["f = 1.0"]
    assert [ax.get_title() for ax in fig.axes] == ["before: model", "after: do(f = 1.0)"]


def test_single_node_graph() -> None:
    fig = draw_graph(nx.DiGraph({"a": []}))
    assert gids(fig.axes[0], "node:") == ["node:a"]


def test_inputs_are_left_unchanged() -> None:
    model = sn.toys.erasure()
    edges = sorted(model.graph.edges)
    draw_intervention(model, {"x": 0.0})
    assert sorted(model.graph.edges) == edges
    assert not model.interventions


def test_top_down_and_given_layouts() -> None:
    model = sn.toys.linear_mediation()
    placed = boxes(draw_graph(model, layout="tb").axes[0])
    assert centre(placed["x"])[1] > centre(placed["m"])[1] > centre(placed["y"])[1]
    positions = {v: (float(i), float(i % 2)) for i, v in enumerate(model.graph)}
    placed = boxes(draw_graph(model, layout=positions).axes[0])
    xs = [centre(placed[v])[0] for v in model.graph]
    assert xs == sorted(xs)


def test_plain_digraph_and_other_formats(tmp_path: Path) -> None:
    graph = nx.DiGraph([("a", "b"), ("b", "c"), ("a", "c")])
    svg, bare = tmp_path / "graph.svg", tmp_path / "graph"
    draw_graph(graph, svg)
    text = svg.read_text()
    assert text.startswith("<?xml")
    assert 'id="node:a"' in text
    draw_graph(graph, bare)
    assert png_size(bare)[0] > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graph", "graph.svg"]


def test_drawing_into_given_axes_and_no_pyplot_state() -> None:
    open_before = plt.get_fignums()
    fig = Figure(figsize=(8.0, 3.0))
    left, right = fig.subplots(1, 2)
    assert draw_intervention(sn.toys.erasure(), {"x": 0.0}, ax=[left, right]) is fig
    assert gids(right, "removed-edge:") == ["removed-edge:u->x"]
    one = Figure().add_subplot()
    assert draw_intervention(sn.toys.erasure(), {"x": 0.0}, ax=one) is one.figure
    assert gids(one, "removed-edge:") == ["removed-edge:u->x"]
    assert draw_graph(sn.toys.erasure(), ax=one) is one.figure
    draw_graph(sn.toys.erasure())
    assert plt.get_fignums() == open_before


# -- errors ---------------------------------------------------------------------------------------


def test_unknown_node_in_interventions() -> None:
    with pytest.raises(sn.NodeNotFound, match=r"unknown node 'z'.*the endogenous nodes are"):
        draw_intervention(sn.toys.erasure(), {"z": 0.0})
    with pytest.raises(sn.NodeNotFound, match=r"did you mean 'x'"):
        draw_intervention(sn.toys.erasure(), {"xx": 0.0})


def test_invalid_interventions() -> None:
    with pytest.raises(sn.InvalidIntervention, match="exogenous"):
        draw_intervention(sn.toys.erasure(), {"u": 0.0})
    with pytest.raises(sn.InvalidIntervention, match="empty"):
        draw_intervention(sn.toys.erasure(), {})


def test_invalid_layouts() -> None:
    with pytest.raises(ValueError, match="layout must be 'lr', 'tb'"):
        draw_graph(sn.toys.erasure(), layout="diagonal")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"no position for 'f', 'y'"):
        draw_graph(sn.toys.erasure(), layout={"u": (0, 0), "x": (1, 0)})
    with pytest.raises(ValueError, match="two finite numbers"):
        draw_graph(sn.toys.erasure(), layout={v: (0, float("nan")) for v in "uxfy"})


def test_invalid_models_and_axes() -> None:
    with pytest.raises(sn.NotADag, match="cycle"):
        draw_graph(nx.DiGraph([("a", "b"), ("b", "a")]))
    with pytest.raises(ValueError, match="no nodes"):
        draw_graph(nx.DiGraph())
    with pytest.raises(TypeError, match="expected a causal model"):
        draw_graph("erasure")
    with pytest.raises(ValueError, match="got 1 Axes for two panels"):
        draw_intervention(
            sn.toys.erasure(), {"x": 0.0}, ax=Figure().add_subplot(), side_by_side=True
        )
    with pytest.raises(TypeError, match="ax must be a matplotlib Axes"):
        draw_graph(sn.toys.erasure(), ax=[1, 2])  # type: ignore[arg-type]


def test_missing_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    find_spec = importlib.util.find_spec

    def without_matplotlib(name: str, *args: Any) -> Any:
        return None if name == "matplotlib" else find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without_matplotlib)
    with pytest.raises(sn.MissingDependency, match=r"scmnet\[plots\]"):
        draw_graph(sn.toys.erasure())
