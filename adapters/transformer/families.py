"""What the adapter knows about each Hugging Face model family, declared as typed specs.

A decoder-only language model adds, at every layer l, an attention output a^l and an MLP output
m^l to its residual stream (eqs. 3-6 of the Hydra-effect paper), then unembeds the final
residual through a norm and the unembedding matrix (eq. 7). Families differ in where those
pieces live and how they are wired:

* **sequential** blocks (Llama, Mistral, Qwen2, GPT-2): z' = z + a(z); z'' = z' + m(z');
* **parallel** blocks (GPT-NeoX with ``use_parallel_residual``, Phi): z' = z + a(z) + m(z);
* extra **post-block norms** (Gemma 3): the residual receives ``norm(a(z))`` and ``norm(m(z))``,
  so the contribution to read is the output of the post-norm, not of the block;
* the final **norm** is an RMSNorm (eq. 8; Gemma scales by ``1 + weight``) or a LayerNorm
  (which also centres its input).

:class:`FamilySpec` declares these facts per family; :func:`spec_for` picks the spec from a
model's ``config.model_type`` and refuses, with the list of known families, any other.
Nothing here is guessed from module names at run time. For a decoder of any other family,
:func:`~.finder.find_spec` establishes the same facts numerically from one forward pass of the
model (and finds exactly these specs on the families declared here).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from scmnet.errors import UnsupportedModel, format_names

__all__ = ["FAMILIES", "Block", "FamilySpec", "NormKind", "NormSpec", "spec_for"]


class Block(enum.IntEnum):
    """A residual contribution of a layer: the attention output a^l or the MLP output m^l.

    Examples
    --------
    >>> [(int(b), b.label) for b in Block]
    [(0, 'attn'), (1, 'mlp')]
    """

    ATTN = 0
    MLP = 1

    @property
    def label(self) -> str:
        """``"attn"`` or ``"mlp"``."""
        return "attn" if self is Block.ATTN else "mlp"


class NormKind(enum.Enum):
    """The kind of the final norm."""

    RMS = "rms"
    LAYER = "layer"


@dataclass(frozen=True)
class NormSpec:
    """Where the final norm is and how it scales.

    Attributes
    ----------
    path : str
        Module path from the model root, e.g. ``"model.norm"``.
    kind : NormKind
        RMSNorm (eq. 8) or LayerNorm.
    weight_offset : float
        The gain is ``weight_offset + weight`` (1.0 for Gemma, 0.0 otherwise).
    eps_attr : tuple of str
        Attribute names under which the module stores its epsilon, tried in order.
    """

    path: str
    kind: NormKind
    weight_offset: float = 0.0
    eps_attr: tuple[str, ...] = ("variance_epsilon", "eps")


@dataclass(frozen=True)
class FamilySpec:
    """The structure of one model family.

    Attributes
    ----------
    name : str
        The family's name in scmnet (e.g. ``"llama"``).
    model_types : tuple of str
        The ``config.model_type`` values it covers.
    base : str
        Path of the base model (the decoder stack with the final norm, without the
        unembedding); its output is the normalised final residual.
    embed : str
        Path of the token embedding.
    layers : str
        Path of the list of decoder layers.
    attention, mlp : str
        Paths of the attention and MLP blocks, relative to a layer.
    attention_out, mlp_out : str
        Paths, relative to a layer, of the modules whose outputs the residual stream receives
        (the block itself, or its post-norm).
    final_norm : NormSpec
        The norm before the unembedding.
    unembed : str
        Path of the unembedding (``lm_head``).
    parallel : bool
        Whether attention and MLP read the same residual (parallel blocks).
    parallel_flag : str or None
        A config attribute that, when present, decides ``parallel`` (GPT-NeoX's
        ``use_parallel_residual``).
    """

    name: str
    model_types: tuple[str, ...]
    base: str
    embed: str
    layers: str
    attention: str
    mlp: str
    attention_out: str
    mlp_out: str
    final_norm: NormSpec
    unembed: str = "lm_head"
    parallel: bool = False
    parallel_flag: str | None = None

    def is_parallel(self, config: Any) -> bool:
        """Whether this model's blocks are parallel, reading ``parallel_flag`` if set."""
        if self.parallel_flag is not None and hasattr(config, self.parallel_flag):
            return bool(getattr(config, self.parallel_flag))
        return self.parallel


def _llama_like(name: str, *model_types: str) -> FamilySpec:
    return FamilySpec(
        name=name,
        model_types=model_types,
        base="model",
        embed="model.embed_tokens",
        layers="model.layers",
        attention="self_attn",
        mlp="mlp",
        attention_out="self_attn",
        mlp_out="mlp",
        final_norm=NormSpec("model.norm", NormKind.RMS),
    )


FAMILIES: tuple[FamilySpec, ...] = (
    _llama_like("llama", "llama"),
    _llama_like("mistral", "mistral"),
    _llama_like("qwen2", "qwen2"),
    FamilySpec(
        name="gemma3",
        model_types=("gemma3_text", "gemma3"),
        base="model",
        embed="model.embed_tokens",
        layers="model.layers",
        attention="self_attn",
        mlp="mlp",
        attention_out="post_attention_layernorm",
        mlp_out="post_feedforward_layernorm",
        final_norm=NormSpec("model.norm", NormKind.RMS, weight_offset=1.0),
    ),
    FamilySpec(
        name="gpt2",
        model_types=("gpt2",),
        base="transformer",
        embed="transformer.wte",
        layers="transformer.h",
        attention="attn",
        mlp="mlp",
        attention_out="attn",
        mlp_out="mlp",
        final_norm=NormSpec("transformer.ln_f", NormKind.LAYER),
    ),
    FamilySpec(
        name="gpt_neox",
        model_types=("gpt_neox",),
        base="gpt_neox",
        embed="gpt_neox.embed_in",
        layers="gpt_neox.layers",
        attention="attention",
        mlp="mlp",
        attention_out="attention",
        mlp_out="mlp",
        final_norm=NormSpec("gpt_neox.final_layer_norm", NormKind.LAYER),
        parallel=True,
        parallel_flag="use_parallel_residual",
    ),
    FamilySpec(
        name="phi",
        model_types=("phi",),
        base="model",
        embed="model.embed_tokens",
        layers="model.layers",
        attention="self_attn",
        mlp="mlp",
        attention_out="self_attn",
        mlp_out="mlp",
        final_norm=NormSpec("model.final_layernorm", NormKind.LAYER),
        parallel=True,
    ),
)


def spec_for(model: Any) -> FamilySpec:
    """The :class:`FamilySpec` of a Hugging Face causal LM, from its ``config.model_type``.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        A causal language model (``...ForCausalLM``).

    Raises
    ------
    UnsupportedModel
        If the family is not supported; the message lists the supported ones.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> spec_for(SimpleNamespace(config=SimpleNamespace(model_type="llama"))).layers
    'model.layers'
    >>> spec_for(SimpleNamespace(config=SimpleNamespace(model_type="bert")))
    ...                                       # doctest: +ELLIPSIS +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    scmnet.errors.UnsupportedModel: model type 'bert' is not supported by the transformer
    adapter; supported model types: 'gemma3', ..., 'qwen2'
    """
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    for spec in FAMILIES:
        if model_type in spec.model_types:
            return spec
    supported = [t for spec in FAMILIES for t in spec.model_types]
    raise UnsupportedModel(
        f"model type {model_type!r} is not supported by the transformer adapter; "
        f"supported model types: {format_names(supported)}"
    )
