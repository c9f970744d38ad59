"""The model's outputs: every tensor it returns is named, every other value is noted and dropped.

A model may return one tensor, or any structure of tuples, lists, dicts, dataclasses and
Hugging Face ``ModelOutput``\\ s. Each leaf of the eager output gets a **label**, its path from
the output written as Python would reach it:

* ``""`` for a model that returns one tensor;
* ``"[0]"`` for the first element of a tuple or list;
* ``".logits"`` for a field of a dataclass, a ``ModelOutput`` or a named tuple;
* ``"['key']"`` for an entry of a dict.

Tensor leaves become variables named after the module that computes them (``"lm_head"``) or
``"output" + label`` (``"output[0]"``, ``"output.logits"``). Leaves that are not tensors (a
``loss`` of ``None`` at inference, a Python number, a string) are not variables: they are
dropped, each with a note in :attr:`~scmnet.tracing.TraceInfo.notes`.

Examples
--------
>>> import torch
>>> [label for label, _ in output_leaves((torch.zeros(1), None, {"k": torch.ones(1)}))]
['[0]', '[1]', "[2]['k']"]
>>> output_notes((torch.zeros(1), None))
('output[1] is None, not a tensor: it is not a variable',)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
import torch.utils._pytree as pytree

from scmnet.errors import UnsupportedModel

__all__ = ["check_output_structure", "output_leaves", "output_notes", "relabel"]


def _step(container: Any, key: Any) -> tuple[str, Any]:
    """The label of one step into ``container`` and the value it reaches."""
    if isinstance(key, pytree.SequenceKey):
        return f"[{key.idx}]", container[key.idx]
    if isinstance(key, pytree.GetAttrKey):
        return f".{key.name}", getattr(container, key.name)
    if isinstance(key, pytree.MappingKey):
        value = container[key.key]
        if dataclasses.is_dataclass(container) and isinstance(key.key, str):
            return f".{key.key}", value  # a ModelOutput: a dataclass read like a dict
        return f"[{key.key!r}]", value
    return str(key), None


def output_leaves(output: Any) -> list[tuple[str, Any]]:
    """Every leaf of a model output (``None`` included) with its label, in pytree order.

    Parameters
    ----------
    output : object
        What the model returned.

    Returns
    -------
    list of (str, object)
        ``(label, leaf)`` pairs; the tensor leaves are in the order of
        ``torch.utils._pytree.tree_leaves(output)``.
    """
    leaves, _ = pytree.tree_flatten_with_path(output, is_leaf=lambda x: x is None)
    labelled = []
    for path, leaf in leaves:
        label, container = "", output
        for key in path:
            step, container = _step(container, key)
            label += step
        labelled.append((label, leaf))
    return labelled


def _describe(value: Any) -> str:
    if value is None:
        return "None"
    text = repr(value)
    return f"a {type(value).__name__} ({text if len(text) <= 40 else text[:37] + '...'})"


def output_notes(output: Any) -> tuple[str, ...]:
    """One note per leaf of a model output that is not a tensor (and so not a variable)."""
    return tuple(
        f"output{label} is {_describe(leaf)}, not a tensor: it is not a variable"
        for label, leaf in output_leaves(output)
        if not isinstance(leaf, torch.Tensor)
    )


def check_output_structure(model_name: str, output: Any) -> None:
    """Refuse an output that hides its tensors in a container torch cannot look into.

    Raises
    ------
    UnsupportedModel
        If a leaf is a dataclass instance that torch's pytree does not know (the message names
        the class and how to register it), or the output contains no tensor at all.
    """
    for label, leaf in output_leaves(output):
        if dataclasses.is_dataclass(leaf) and not isinstance(leaf, type):
            cls = type(leaf).__name__
            raise UnsupportedModel(
                f"{model_name} returns output{label}, a {cls} dataclass that torch cannot look "
                f"into, so its tensors cannot be traced; register the class once before "
                f"tracing with torch.export.register_dataclass({cls}), or return a tuple, a "
                f"dict or a Hugging Face ModelOutput"
            )
    if not any(isinstance(leaf, torch.Tensor) for _, leaf in output_leaves(output)):
        raise UnsupportedModel(
            f"{model_name} returns no tensor ({_describe(output)}); a traced model's outcomes "
            f"are the tensors its forward returns"
        )


def relabel(
    outputs: Sequence[tuple[str, str]], values: dict[str, Any], eager: Any
) -> tuple[tuple[str, str], ...]:
    """Give the tensor outputs of a verified graph the labels of the eager output's tensors.

    Parameters
    ----------
    outputs : sequence of (str, str)
        ``(label, node name)`` of the graph's output leaves, in pytree order.
    values : dict
        Each node's value in the example run (from :func:`~.build.verify`).
    eager : object
        The eager model's output on the same example.

    Returns
    -------
    tuple of (str, str)
        ``(label, node name)`` for each tensor output.
    """
    nodes = [node for _, node in outputs if isinstance(values.get(node), torch.Tensor)]
    labels = [label for label, leaf in output_leaves(eager) if isinstance(leaf, torch.Tensor)]
    return tuple(zip(labels, nodes, strict=True))
