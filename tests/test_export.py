"""Tests of graph export and collapsing (scmnet.export): properties, then examples, then errors."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import scmnet as sn
from tests.strategies import dags
from tests.tiny_models import tiny_model

TOYS = {
    "erasure": sn.toys.erasure,
    "self_repair": sn.toys.self_repair,
    "linear_mediation": sn.toys.linear_mediation,
}


def zoo() -> list[tuple[str, sn.CausalModel]]:
    """The toy SCMs, before and after a hard and a soft intervention, and a traced network."""
    models: list[tuple[str, sn.CausalModel]] = []
    for name, make in TOYS.items():
        m = make()
        models += [
            (name, m),
            (f"{name}-do-x", sn.do(m, {"x": 0.0})),
            (f"{name}-shift", sn.do(m, {"y": sn.shift(1.0)})),
        ]
    traced = sn.trace(sn.toys.self_repair_module(), torch.zeros(2))
    models += [("traced", traced), ("traced-do-x", sn.do(traced, {"x": torch.zeros(2)}))]
    return models


ZOO = zoo()


def dot_edges(text: str) -> list[tuple[str, str, str]]:
    """``(u, v, attributes)`` of every edge line of a DOT text written by to_dot."""
    found = re.findall(r'^  "((?:[^"\\]|\\.)*)" -> "((?:[^"\\]|\\.)*)"(.*);$', text, re.M)
    return [(u, v, rest) for u, v, rest in found]


class SharedNet(nn.Module):
    """A module called twice, around another: grouping both calls makes a cycle."""

    def __init__(self) -> None:
        super().__init__()
        self.shared = nn.Linear(2, 2)
        self.mid = nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shared(torch.relu(self.mid(self.shared(x))))


@pytest.fixture(scope="module")
def llama() -> sn.TracedModel:
    """A tiny 3-layer Llama traced at every module (39 nodes)."""
    ids = torch.randint(0, 101, (1, 6), generator=torch.Generator().manual_seed(0))
    return sn.trace(tiny_model("llama"), {"input_ids": ids}, variables="**")


# -- properties over the zoo and random graphs ----------------------------------------------------


@pytest.mark.parametrize(("name", "model"), ZOO, ids=[n for n, _ in ZOO])
def test_graphml_round_trip_keeps_nodes_edges_and_attributes(
    name: str, model: sn.CausalModel, tmp_path: Path
) -> None:
    back = nx.read_graphml(sn.to_graphml(model, tmp_path / f"{name}.graphml"))
    assert list(back.nodes) == list(model.graph.nodes)
    assert sorted(back.edges) == sorted(model.graph.edges)
    assert back.graph["name"] == model.graph.name
    for v, data in model.graph.nodes(data=True):
        assert back.nodes[v]["kind"] == data["kind"]
        assert back.nodes[v]["intervention"] == (data["intervention"] or "")
        record = data.get("record")
        if record is not None:
            assert back.nodes[v]["module_path"] == record.module_path
            assert back.nodes[v]["op"] == record.op
            assert back.nodes[v]["shape"] == "x".join(map(str, record.shape))
            assert back.nodes[v]["dtype"] == "float32"


@pytest.mark.parametrize(("name", "model"), ZOO, ids=[n for n, _ in ZOO])
def test_dot_has_every_node_edge_and_removed_edge(name: str, model: sn.CausalModel) -> None:
    text = sn.to_dot(model)
    assert text.startswith(f'digraph "{model.graph.name}" {{\n')
    assert text.endswith("}\n")
    for v in model.graph:
        assert re.search(rf'^  "{re.escape(v)}"( \[.*\])?;$', text, re.M), v
    edges = dot_edges(text)
    kept = [(u, v) for u, v, rest in edges if "removed" not in rest]
    removed = [(u, v) for u, v, rest in edges if 'removed="true"' in rest]
    assert sorted(kept) == sorted(model.graph.edges)
    assert removed == list(getattr(model, "removed_edges", ()))
    assert all('style="dashed"' in rest for _, _, rest in edges if "removed" in rest)


@pytest.mark.parametrize(("name", "model"), ZOO, ids=[n for n, _ in ZOO])
def test_collapse_into_single_nodes_is_the_same_graph(name: str, model: sn.CausalModel) -> None:
    blocks = sn.collapse(model, by=lambda v, d: v)
    assert list(blocks.nodes) == list(nx.topological_sort(model.graph))
    assert sorted(blocks.edges) == sorted(model.graph.edges)
    for v, data in blocks.nodes(data=True):
        assert data["members"] == (v,)
        assert data["size"] == 1
        assert data["kind"] == model.graph.nodes[v]["kind"]
        assert data["intervention"] == model.graph.nodes[v]["intervention"]


@settings(max_examples=40, deadline=None)
@given(graph=dags(min_nodes=2, max_nodes=8), data=st.data())
def test_collapse_is_a_dag_of_blocks_that_partition_the_nodes(
    graph: nx.DiGraph, data: st.DataObject
) -> None:
    labels = data.draw(st.lists(st.sampled_from("abc"), min_size=len(graph), max_size=len(graph)))
    chosen = dict(zip(graph, labels, strict=True))
    nx.set_node_attributes(graph, "endogenous", "kind")
    frozen = nx.freeze(graph)
    blocks = sn.collapse(frozen, by=lambda v, d: chosen[v])
    assert nx.is_directed_acyclic_graph(blocks)
    assert nx.number_of_selfloops(blocks) == 0
    block_of = {m: b for b, d in blocks.nodes(data=True) for m in d["members"]}
    assert sorted(block_of) == sorted(graph)  # every node in exactly one block
    assert sum(d["size"] for _, d in blocks.nodes(data=True)) == len(graph)
    expected = {(block_of[u], block_of[v]) for u, v in graph.edges if block_of[u] != block_of[v]}
    assert set(blocks.edges) == expected
    for b in blocks:  # a merged block is the union of the groups of one cycle
        assert {chosen[m] for m in blocks.nodes[b]["members"]} == set(b.split("+"))
    try:
        strict = sn.collapse(frozen, by=lambda v, d: chosen[v], on_cycle="raise")
    except sn.NotADag:
        assert any("+" in b for b in blocks)
    else:
        assert nx.utils.graphs_equal(strict, blocks)


@settings(max_examples=25, deadline=None)
@given(graph=dags(min_nodes=1, max_nodes=6), depth=st.integers(1, 3))
def test_collapse_by_depth_groups_by_path_prefix(graph: nx.DiGraph, depth: int) -> None:
    named = nx.relabel_nodes(graph, {v: f"m.{int(v[1:]) % 2}.{v}" for v in graph})
    nx.set_node_attributes(named, "endogenous", "kind")
    blocks = sn.collapse(named, depth)
    for b, data in blocks.nodes(data=True):
        for m in data["members"]:
            assert b == m or "+" in b or b == ".".join(m.split(".")[:depth])


# -- examples -------------------------------------------------------------------------------------


def test_graphml_of_a_traced_network_carries_its_records(tmp_path: Path) -> None:
    m = sn.trace(sn.toys.erasure_module(), torch.zeros(1, 3))
    back = nx.read_graphml(sn.to_graphml(m, tmp_path / "erasure.graphml"))
    assert back.nodes["f"] == {
        "kind": "endogenous",
        "intervention": "",
        "module_path": "f",
        "module_type": "scmnet.toys.modules.Negate",
        "op": m.records["f"].op,
        "shape": "1x3",
        "dtype": "float32",
        "selected_as": "module",
        "call": "f",
    }
    assert back.nodes["u"]["kind"] == "exogenous"
    assert back.nodes["u"]["selected_as"] == "input"
    scalar = sn.trace(sn.toys.erasure_module(), torch.zeros(()))
    assert nx.read_graphml(sn.to_graphml(scalar, tmp_path / "s.graphml")).nodes["x"]["shape"] == (
        "scalar"
    )


def test_dot_quotes_names_and_escapes_quotes() -> None:
    g = nx.DiGraph(name='a "model"')
    g.add_node("model.layers.3.mlp", kind="endogenous", intervention=None)
    g.add_node('say "hi"', kind="exogenous", intervention=None)
    g.add_edge('say "hi"', "model.layers.3.mlp")
    text = sn.to_dot(g, direction="tb")
    assert text.startswith('digraph "a \\"model\\"" {')
    assert 'rankdir="TB"' in text
    assert '  "say \\"hi\\"" -> "model.layers.3.mlp";' in text
    assert re.search(r'^  "say \\"hi\\"" \[style="rounded,filled,dashed"', text, re.M)


def test_dot_of_an_intervened_traced_model(tmp_path: Path) -> None:
    m = sn.trace(sn.toys.self_repair_module(), torch.zeros(2))
    text = sn.to_dot(sn.do(m, {"x": torch.zeros(2)}), tmp_path / "g.dot")
    assert (tmp_path / "g.dot").read_text() == text
    x = next(line for line in text.splitlines() if line.startswith('  "x" ['))
    assert 'label="x\\nx = Tensor"' in x
    assert 'fillcolor="#fdd0a2"' in x
    assert 'tensor_shape="2"' in x
    assert 'intervention="x = Tensor"' in x
    assert "shape=" not in x.replace("tensor_shape=", "")  # Graphviz's shape is the default box
    assert dot_edges(text)[-1] == ("u", "x", ' [style="dashed", color="#b0b0b0", removed="true"]')


def test_collapsed_tiny_llama_has_one_block_per_layer(llama: sn.TracedModel) -> None:
    blocks = sn.collapse(llama)
    assert list(blocks) == [
        "input_ids",
        "model.embed_tokens",
        "model.rotary_emb",
        "model.layers.0",
        "model.layers.1",
        "model.layers.2",
        "model",
        "lm_head",
    ]
    assert blocks.name == f"{llama.graph.name} by block (depth 3)"
    assert nx.is_directed_acyclic_graph(blocks)
    layer = blocks.nodes["model.layers.1"]
    assert layer["size"] == 11
    assert layer["members"][-1] == "model.layers.1"
    assert all(m.startswith("model.layers.1") for m in layer["members"])
    assert blocks.nodes["model.rotary_emb"]["members"] == (
        "model.rotary_emb/out0",
        "model.rotary_emb/out1",
    )
    # the block output model.layers.1 is a variable, so it carries the residual stream
    assert set(blocks.predecessors("model.layers.2")) == {"model.rotary_emb", "model.layers.1"}
    assert sorted(sn.collapse(llama, 2)) == sorted(
        ["input_ids", "model.embed_tokens", "model.rotary_emb", "model.layers", "model", "lm_head"]
    )


def test_collapsed_graph_exports_and_carries_interventions(
    llama: sn.TracedModel, tmp_path: Path
) -> None:
    zeros = torch.zeros(llama.records["model.layers.1.mlp"].shape)
    blocks = sn.collapse(sn.do(llama, {"model.layers.1.mlp": zeros}))
    assert blocks.nodes["model.layers.1"]["intervention"] == "model.layers.1.mlp = Tensor"
    assert blocks.nodes["model.layers.0"]["intervention"] is None
    back = nx.read_graphml(sn.to_graphml(blocks, tmp_path / "blocks.graphml"))
    assert sorted(back.edges) == sorted(blocks.edges)
    assert back.nodes["model.rotary_emb"] == {
        "kind": "endogenous",
        "intervention": "",
        "members": "model.rotary_emb/out0,model.rotary_emb/out1",
        "size": 2,
    }
    label = "model.layers.1\\nmodel.layers.1.mlp = Tensor\\n(11 nodes)"
    assert f'"model.layers.1" [label="{label}"' in sn.to_dot(blocks)


def test_draw_collapsed_collapses_large_models(llama: sn.TracedModel, tmp_path: Path) -> None:
    fig = sn.draw_collapsed(llama, tmp_path / "blocks.png", max_nodes=20, dpi=40)
    assert (tmp_path / "blocks.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    nodes = sorted(p.get_gid() for p in fig.axes[0].patches if p.get_gid().startswith("node:"))
    assert nodes == sorted(f"node:{b}" for b in sn.collapse(llama))
    small = sn.draw_collapsed(sn.do(sn.toys.erasure(), {"x": 0.0}))
    assert [p.get_gid() for p in small.axes[0].patches if "removed" in p.get_gid()] == [
        "removed-edge:u->x"
    ]
    forced = sn.draw_collapsed(sn.toys.erasure(), by=lambda v, d: "in" if v == "u" else "out")
    assert forced.axes[0].get_title() == "erasure, grouped"


def test_a_shared_module_makes_a_cycle_that_is_merged_or_explained() -> None:
    torch.manual_seed(0)
    m = sn.trace(SharedNet().eval(), torch.zeros(1, 2))
    assert m.endogenous == ("shared", "mid", "shared@1")
    blocks = sn.collapse(m, 1)
    assert list(blocks.nodes) == ["x", "shared+mid"]
    assert blocks.nodes["shared+mid"]["members"] == ("shared", "mid", "shared@1")
    with pytest.raises(sn.NotADag, match=r"'shared' -> 'mid' -> 'shared'.*on_cycle='merge'"):
        sn.collapse(m, 1, on_cycle="raise")


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"depth": 0}, "depth must be a positive int"),
        ({"depth": True}, "depth must be a positive int"),
        ({"depth": 2, "by": lambda v, d: v}, "depth or by, not both"),
        ({"by": lambda v, d: None}, "by must return a block name.*None for 'u'"),
        ({"on_cycle": "ignore"}, "on_cycle must be 'merge' or 'raise'"),
    ],
)
def test_collapse_rejects_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(sn.InvalidArgument, match=match):
        sn.collapse(sn.toys.erasure(), **kwargs)


def test_errors_on_cycles_and_non_graphs(tmp_path: Path) -> None:
    with pytest.raises(sn.NotADag, match="cannot collapse a graph with a cycle"):
        sn.collapse(nx.DiGraph([("a", "b"), ("b", "a")]))
    with pytest.raises(TypeError, match="expected a causal model"):
        sn.to_graphml(object(), tmp_path / "x.graphml")
    with pytest.raises(sn.InvalidArgument, match="direction must be 'lr' or 'tb'"):
        sn.to_dot(sn.toys.erasure(), direction="rl")  # type: ignore[arg-type]
    with pytest.raises(sn.InvalidArgument, match="max_nodes must be a positive int"):
        sn.draw_collapsed(sn.toys.erasure(), max_nodes=0)
