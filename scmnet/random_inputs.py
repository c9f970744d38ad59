"""Seeded random example inputs from a short spec: ``DTYPE:SHAPE[,DTYPE:SHAPE...]``.

``float:1x4`` is a float32 tensor of shape (1, 4) drawn from a standard normal distribution;
``long:1x12`` is token ids drawn uniformly below the model's vocabulary size. ``scmnet graph
--inputs`` takes such a spec, and a loader of model directories may draw its default inputs with
one. Torch is imported only when inputs are drawn.

Examples
--------
>>> from torch import nn
>>> is_random_spec("float:1x4,long:2"), is_random_spec("mypackage.inputs:make")
(True, False)
>>> x, ids = random_inputs("float:1x4,long:2", nn.Embedding(5, 3), seed=0)
>>> tuple(x.shape), ids.dtype, bool((ids < 5).all())
((1, 4), torch.int64, True)
"""

from __future__ import annotations

import re
from typing import Any

from scmnet.errors import InvalidArgument, did_you_mean

__all__ = ["DTYPES", "is_random_spec", "random_inputs", "vocabulary"]

DTYPES = {
    "float": "float32",
    "float32": "float32",
    "double": "float64",
    "float64": "float64",
    "half": "float16",
    "float16": "float16",
    "bfloat16": "bfloat16",
    "long": "int64",
    "int64": "int64",
    "int": "int32",
    "int32": "int32",
    "bool": "bool",
}
"""The dtype names a spec may use, and the torch dtype each means."""

_SHAPE = re.compile(r"[0-9]+(x[0-9]+)*")


def is_random_spec(spec: str) -> bool:
    """Whether ``spec`` asks for random tensors (rather than naming, say, an import path)."""
    head, _, tail = spec.partition(":")
    return head in DTYPES or bool(_SHAPE.fullmatch(tail.partition(",")[0]))


def vocabulary(model: Any) -> int:
    """How many token ids random integers draw from: the model's vocabulary, else 10."""
    from torch import nn

    size = getattr(getattr(model, "config", None), "vocab_size", None)
    if isinstance(size, int) and size > 0:
        return size
    embeddings = [m for m in model.modules() if isinstance(m, nn.Embedding)]
    return int(embeddings[0].num_embeddings) if embeddings else 10


def random_inputs(spec: str, model: Any, seed: int) -> tuple[Any, ...]:
    """Seeded random tensors for ``DTYPE:SHAPE[,DTYPE:SHAPE...]``, one per part.

    Integers are drawn below the vocabulary of ``model`` (:func:`vocabulary`), booleans from
    {0, 1}.

    Raises
    ------
    InvalidArgument
        If a dtype is unknown or a shape is not sizes joined by ``x``.
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    tensors = []
    for part in spec.split(","):
        name, _, shape_text = part.strip().partition(":")
        if name not in DTYPES:
            raise InvalidArgument(
                f"unknown dtype {name!r} in --inputs {spec!r}{did_you_mean(name, DTYPES)}; "
                f"the dtypes are {', '.join(DTYPES)}"
            )
        if not _SHAPE.fullmatch(shape_text):
            raise InvalidArgument(
                f"bad shape {shape_text!r} in --inputs {spec!r}; write the sizes joined by 'x', "
                f"e.g. {name}:1x4"
            )
        shape = tuple(int(d) for d in shape_text.split("x"))
        dtype = getattr(torch, DTYPES[name])
        if dtype.is_floating_point:
            tensors.append(torch.randn(shape, generator=generator).to(dtype))
        else:
            high = 2 if dtype == torch.bool else vocabulary(model)
            tensors.append(torch.randint(0, high, shape, generator=generator).to(dtype))
    return tuple(tensors)
