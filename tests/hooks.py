"""A forward-hooks reference for total, direct and indirect effects on any traced model.

It knows nothing of graphs: it runs the eager model with forward hooks that record each
variable's value (a **clone**: an in-place add such as ``out += identity`` would otherwise change
what the hook kept) and that replace chosen variables' values (with a clone too, for the same
reason). A variable is found from its record: the module path, the call number ``@k`` (the
k-th call of the module in one forward pass), and a tuple index (``"lstm[0]"``). The effects
follow their definitions with every other variable as a mediator (eqs. 14, 19-20, 29).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

import scmnet as sn
from scmnet.tracing.capture.outputs import output_leaves

__all__ = ["HookedReference"]

_INDEX = re.compile(r"\[([^\]]+)\]")


def _replace(value: Any, index: tuple[Any, ...], new: torch.Tensor) -> Any:
    if not index:
        return new.clone()
    head, rest = index[0], index[1:]
    if isinstance(value, tuple):
        return tuple(_replace(v, rest, new) if i == head else v for i, v in enumerate(value))
    if isinstance(value, list):
        return [_replace(v, rest, new) if i == head else v for i, v in enumerate(value)]
    return {k: _replace(v, rest, new) if k == head else v for k, v in value.items()}


def _get(value: Any, index: tuple[Any, ...]) -> Any:
    for i in index:
        value = value[i]
    return value


class HookedReference:
    """Effects computed on the eager model with forward hooks, for a traced model's variables.

    Parameters
    ----------
    model : torch.nn.Module
        The eager model that was traced.
    traced : scmnet.TracedModel
        Its trace; only its records (module path, call, name) and output labels are read.
    """

    def __init__(self, model: nn.Module, traced: sn.TracedModel) -> None:
        self.model, self.traced = model, traced
        self.sites: dict[str, tuple[str, tuple[Any, ...]]] = {}
        self.outputs: dict[str, str] = {}
        labels = {node: label for label, node in traced.network.source.outputs}
        for name in traced.endogenous:
            record = traced.records[name]
            if record.selected_as == "module" and "/" not in name:
                suffix = name[len(record.call) :]
                index = tuple(ast.literal_eval(m) for m in _INDEX.findall(suffix))
                self.sites[name] = (record.call, index)
            elif record.node in labels:
                self.outputs[name] = labels[record.node]

    def run(
        self, context: Mapping[str, torch.Tensor], patch: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Every variable's value in one eager run with ``patch``'s variables set."""
        unknown = set(patch) - set(self.sites)
        if unknown:
            raise ValueError(f"no module output carries {sorted(unknown)}; it cannot be patched")
        seen: dict[str, torch.Tensor] = {}
        counts: dict[str, int] = {}
        handles = []
        by_path: dict[str, list[str]] = {}
        for name, (call, _) in self.sites.items():
            by_path.setdefault(call.split("@")[0], []).append(name)

        def hook(path: str) -> Any:
            def f(module: nn.Module, args: Any, output: Any) -> Any:
                k = counts.get(path, 0)
                counts[path] = k + 1
                call = path if k == 0 else f"{path}@{k}"
                for name in by_path[path]:
                    site_call, index = self.sites[name]
                    if site_call != call:
                        continue
                    if name in patch:
                        output = _replace(output, index, patch[name])
                    seen[name] = _get(output, index).detach().clone()
                return output

            return f

        for path in by_path:
            handles.append(self.model.get_submodule(path).register_forward_hook(hook(path)))
        try:
            with torch.no_grad():
                out = self.model(**context)
        finally:
            for h in handles:
                h.remove()
        leaves = dict(output_leaves(out))
        for name, label in self.outputs.items():
            seen[name] = leaves[label].detach().clone()
        return seen

    def effects(
        self, context: Mapping[str, torch.Tensor], z: str, value: torch.Tensor, y: str
    ) -> dict[str, torch.Tensor]:
        """TE, DE and IE of ``do(z = value)`` on ``y``, every other variable a mediator."""
        clean = self.run(context, {})
        treated = self.run(context, {z: value})
        mediators = [v for v in self.sites if v not in (z, y)]
        held = self.run(context, {z: value, **{m: clean[m] for m in mediators}})
        rewired = self.run(context, {m: treated[m] for m in mediators})
        return {
            "total": treated[y] - clean[y],
            "direct": held[y] - clean[y],
            "indirect": rewired[y] - clean[y],
        }
