"""One forward and one backward run: the gradient of a scalar readout with respect to variables.

Attribution patching (Nanda 2023; Syed, Rager & Conmy 2023, arXiv 2310.10348) estimates the
effect of setting a variable v from its clean value a to a' by the first-order term
``(a' - a) . d y / d v``, for every variable at once, from one forward and one backward run.
:func:`gradient_run` is that run on a traced graph: the executor computes the nodes the readout
needs, in graph order and with gradients on, and each chosen variable's value is its natural
value plus a zero leaf of the autograd graph, so that ``torch.autograd.grad`` gives ``d y / d v``
for each: the total derivative, every later variable (chosen or not) reacting to v. Nothing is
read from or written to the clean-run cache: the run is self-contained.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import fx

from scmnet.tracing.engine.executor import Executor

__all__ = ["gradient_run"]


def gradient_run(
    executor: Executor,
    inputs: Mapping[str, Any],
    targets: Sequence[fx.Node],
    reads: Sequence[fx.Node],
    readout: Callable[[Sequence[Any]], torch.Tensor],
) -> tuple[torch.Tensor, dict[fx.Node, torch.Tensor]]:
    """The readout's value and its gradient with respect to each target node's value.

    Parameters
    ----------
    executor : Executor
        The graph.
    inputs : mapping of str to value
        The context.
    targets : sequence of nodes
        The variables to differentiate with respect to.
    reads : sequence of nodes
        The nodes the readout reads.
    readout : callable
        From the values of ``reads`` to a tensor of one element.

    Returns
    -------
    value : tensor
        The readout, detached.
    gradients : dict of node to tensor
        ``d readout / d value`` of each target the readout reads through, of its value's shape
        (zeros where the readout does not depend on it); a target it cannot reach is absent.
    """
    needed = executor.upstream(reads, within=set(executor.order))
    leaves: dict[fx.Node, torch.Tensor] = {}

    def leaf(node: fx.Node) -> Callable[[Callable[[], Any]], Any]:
        def override(natural: Callable[[], Any]) -> Any:
            value = natural()
            leaves[node] = torch.zeros_like(value, requires_grad=True)
            return value + leaves[node]  # its gradient: the total derivative through v

        return override

    with torch.enable_grad():
        env = executor.run(
            inputs, nodes=needed, overrides={n: leaf(n) for n in targets if n in needed}
        )
        y = readout([env[n] for n in reads])
        present = [n for n in targets if n in leaves]
        if not present:
            return y.detach(), {}
        if not y.requires_grad:  # read only through operations without a gradient
            return y.detach(), {n: torch.zeros_like(leaves[n]) for n in present}
        found = torch.autograd.grad(y, [leaves[n] for n in present], allow_unused=True)
    gradients = {
        node: torch.zeros_like(leaves[node]) if g is None else g.detach()
        for node, g in zip(present, found, strict=True)
    }
    return y.detach(), gradients
