"""Hypothesis strategies shared by the tests: random DAGs, random linear SCMs, contexts."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import networkx as nx
from hypothesis import strategies as st

import scmnet as sn

#: Values of exogenous variables and treatments: finite, moderate floats.
reals = st.floats(min_value=-10.0, max_value=10.0, allow_nan=False, allow_infinity=False)
weights = st.floats(min_value=-2.0, max_value=2.0, allow_nan=False, allow_infinity=False)


@st.composite
def dags(draw: st.DrawFn, min_nodes: int = 2, max_nodes: int = 6) -> nx.DiGraph:
    """A random DAG on nodes v0..v{n-1}; edges only go from lower to higher index."""
    n = draw(st.integers(min_nodes, max_nodes))
    g = nx.DiGraph()
    g.add_nodes_from(f"v{i}" for i in range(n))
    for j in range(n):
        for i in range(j):
            if draw(st.booleans()):
                g.add_edge(f"v{i}", f"v{j}")
    return g


@dataclass(frozen=True)
class LinearCase:
    """A random linear SCM with its weights, and a context to evaluate it in."""

    model: sn.SCM
    weights: dict[tuple[str, str], float]
    graph: nx.DiGraph
    context: dict[str, float]


@st.composite
def linear_scms(draw: st.DrawFn, min_nodes: int = 2, max_nodes: int = 6) -> LinearCase:
    """A random linear Gaussian SCM over a random DAG, with a random context."""
    g = draw(dags(min_nodes, max_nodes))
    w = {e: draw(weights) for e in g.edges}
    nodes = list(g.nodes)
    model = sn.toys.linear_gaussian(w, nodes=nodes)
    context = {u: draw(reals) for u in model.exogenous}
    return LinearCase(model, w, g, context)


def path_sum(
    graph: nx.DiGraph,
    w: dict[tuple[str, str], float],
    z: str,
    y: str,
    allowed: set[tuple[str, str]] | None = None,
) -> float:
    """The sum over directed paths z -> ... -> y of the products of edge weights.

    With ``allowed``, only the paths made of allowed edges count.
    """
    total = 0.0
    for path in nx.all_simple_paths(graph, z, y):
        edges = list(itertools.pairwise(path))
        if allowed is not None and not all(e in allowed for e in edges):
            continue
        product = 1.0
        for edge in edges:
            product *= w[edge]
        total += product
    return total
