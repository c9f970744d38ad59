"""Attention heads as units of a language model: where each layer's heads are, and its sites.

The core's :func:`scmnet.split_heads` writes an attention output projection as
the sum of its heads' contributions ``W_O^h o_h`` (Elhage et al. 2021), each layer's heads then
a variable of shape ``(B, T, H, d_model)`` of the traced graph. This module finds, for every
layer of a supported family, the projection and the number of heads (:func:`head_layout`), and
names the variable (:func:`heads_path`) and one head's site (:func:`head_site`). Ablating head
h of layer l at the final position is ``do(head_site(lm, l, h) = value)``.

A family whose attention output passes through a norm before the residual (Gemma 3's
``post_attention_layernorm``) has no additive head contributions: :func:`head_layout` refuses
it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from torch import nn

import scmnet as sn
from scmnet.errors import UnsupportedModel
from scmnet.tracing.heads import split_heads as split_projections

from .families import text_config
from .lm import LanguageModel

__all__ = [
    "PROJECTION_NAMES",
    "HeadLayout",
    "head_layout",
    "head_site",
    "heads_path",
    "split_heads",
    "split_units",
]

#: The names, inside an attention block, that its output projection goes by: Llama, Mistral,
#: Qwen 2 and Gemma (``o_proj``), GPT-2 (``c_proj``), GPT-NeoX and Phi (``dense``), others
#: (``out_proj``, ``wo``).
PROJECTION_NAMES = ("o_proj", "c_proj", "dense", "out_proj", "wo")


@dataclass(frozen=True)
class HeadLayout:
    """Where a layer's heads are: the output projection's path, and the number of heads."""

    projection: str
    n_heads: int


def head_layout(lm: LanguageModel, layer: int) -> HeadLayout:
    """The output projection of ``layer``'s attention and its number of heads.

    Raises
    ------
    UnsupportedModel
        If the attention's output reaches the residual through another module (a post-norm,
        as in Gemma 3), if the config gives no number of heads, or if not exactly one child of the
        attention block has an output projection's name (:data:`PROJECTION_NAMES`).
    """
    spec = lm.spec
    if spec.attention_out != spec.attention:
        raise UnsupportedModel(
            f"{lm.name}: the attention output reaches the residual through "
            f"{spec.attention_out!r}, not directly, so the heads' contributions do not add up "
            "to it; heads as units need a family whose attention adds to the residual (llama, "
            "mistral, qwen2, gpt2, gpt_neox, phi)"
        )
    n_heads = getattr(text_config(lm.config), "num_attention_heads", None)
    if not isinstance(n_heads, int) or n_heads < 1:
        raise UnsupportedModel(
            f"{lm.name}: the config has no num_attention_heads ({n_heads!r}); heads as units "
            "need the number of heads"
        )
    name = projection_child(
        lm, lm.attention(layer), PROJECTION_NAMES, f"attention block of layer {layer}"
    )
    return HeadLayout(f"{spec.layers}.{layer}.{spec.attention}.{name}", n_heads)


def projection_child(lm: LanguageModel, block: nn.Module, names: tuple[str, ...], what: str) -> str:
    """The one child of ``block`` named as an output projection (one of ``names``).

    Raises
    ------
    UnsupportedModel
        If no child, or several, have such a name.
    """
    children = dict(block.named_children())
    found = [name for name in names if name in children]
    if len(found) != 1:
        raise UnsupportedModel(
            f"{lm.name}: the {what} has {'no child' if not found else 'several children'} "
            f"named as an output projection ({', '.join(names)}); its children are "
            f"{sorted(children)}"
        )
    return found[0]


def heads_path(lm: LanguageModel, layer: int) -> str:
    """The path of ``layer``'s heads variable: ``"<projection>.heads"``, shape (B, T, H, d)."""
    return f"{head_layout(lm, layer).projection}.heads"


def head_site(lm: LanguageModel, layer: int, head: int, index: Any = (slice(None), -1)) -> sn.Site:
    """Head ``head`` of ``layer`` at ``index`` (by default the final position of every row).

    Examples
    --------
    >>> from tests.protocol import tiny_lm
    >>> str(head_site(tiny_lm("llama"), 2, 1))
    'model.layers.2.self_attn.o_proj.heads[:, -1, 1]'
    """
    n = head_layout(lm, layer).n_heads
    if not 0 <= head < n:
        raise sn.InvalidIntervention(
            f"head {head} of layer {layer}: the layer has heads 0 to {n - 1}"
        )
    parts = index if isinstance(index, tuple) else (index,)
    return sn.Site(heads_path(lm, layer), index=(*parts, head))


@contextmanager
def split_heads(lm: LanguageModel, extra: Sequence[HeadLayout] = ()) -> Iterator[list[HeadLayout]]:
    """Every layer's output projection split by head for the duration (restored after):
    :func:`scmnet.split_heads`; yields the layers'
    :class:`~scmnet.adapters.transformer.heads.HeadLayout`, then ``extra``'s, other projections
    split the same way (the last MLP's by neuron, :func:`~.neurons.neuron_layout`)."""
    layouts = [*(head_layout(lm, layer) for layer in range(lm.n_layers)), *extra]
    with split_units(lm, layouts):
        yield layouts


@contextmanager
def split_units(lm: LanguageModel, layouts: Sequence[HeadLayout]) -> Iterator[None]:
    """The projections of ``layouts`` split into their units for the duration (restored
    after); nothing is split for none."""
    if not layouts:
        yield
        return
    with split_projections(lm.model, {layout.projection: layout.n_heads for layout in layouts}):
        yield
