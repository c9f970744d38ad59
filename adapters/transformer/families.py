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
  (which also centres its input);
* the **readout** after the unembedding (:class:`~.readout.Readout`): a logit scale, and Gemma 2's
  final-logit softcapping, read from the config attributes the spec names;
* a **multimodal wrapper** (Gemma 3 from 4B up, ``Gemma3ForConditionalGeneration``) keeps its
  language model under ``model.language_model``: the paths say so.

:class:`FamilySpec` declares these facts per family and :data:`FAMILIES` holds the declared ones;
:func:`~.registry.spec_for` picks the spec of a model (a user adds families with
:func:`~scmnet.adapters.transformer.register_family` or an entry point). Nothing here is
guessed from module names at run time. For a decoder of any other family,
:func:`~.finder.find_spec` establishes the same facts numerically from forward passes of the
model (and finds exactly these specs on the families declared here).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from .readout import Readout

__all__ = ["FAMILIES", "Block", "FamilySpec", "NormKind", "NormSpec", "text_config"]


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
    softcap_attr : str or None
        The config attribute holding the final-logit softcap c, when set (Gemma 2's
        ``final_logit_softcapping``); ``None`` if the family never caps.
    logit_scale_attr : str or None
        The config attribute holding a factor of the logits, when set (Cohere's
        ``logit_scale``); ``None`` if the family never scales.

    Examples
    --------
    A family of your own, laid out like Llama (register it with
    :func:`~scmnet.adapters.transformer.register_family`):

    >>> spec = FamilySpec(
    ...     name="my_llama", model_types=("my_llama",), base="model",
    ...     embed="model.embed_tokens", layers="model.layers",
    ...     attention="self_attn", mlp="mlp", attention_out="self_attn", mlp_out="mlp",
    ...     final_norm=NormSpec("model.norm", NormKind.RMS))
    >>> from types import SimpleNamespace
    >>> spec.readout(SimpleNamespace(final_logit_softcapping=30.0))
    Readout(scale=1.0, softcap=30.0)
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
    softcap_attr: str | None = "final_logit_softcapping"
    logit_scale_attr: str | None = "logit_scale"

    def is_parallel(self, config: Any) -> bool:
        """Whether this model's blocks are parallel, reading ``parallel_flag`` if set."""
        if self.parallel_flag is not None and hasattr(config, self.parallel_flag):
            return bool(getattr(config, self.parallel_flag))
        return self.parallel

    def readout(self, config: Any) -> Readout:
        """The map after the unembedding, from ``config`` (its text config, for a wrapper).

        An attribute that is absent, ``None`` or 0 means no cap (no scale).
        """
        cap = _config_value(config, self.softcap_attr)
        scale = _config_value(config, self.logit_scale_attr)
        return Readout(scale=1.0 if scale is None else scale, softcap=cap)

    def paths(self) -> dict[str, str]:
        """Every module path the spec names, relative to the model root (layer 0 for the
        per-layer ones), by field name."""
        first = f"{self.layers}.0"
        return {
            "base": self.base,
            "embed": self.embed,
            "layers": self.layers,
            "attention": f"{first}.{self.attention}",
            "mlp": f"{first}.{self.mlp}",
            "attention_out": f"{first}.{self.attention_out}",
            "mlp_out": f"{first}.{self.mlp_out}",
            "final_norm": self.final_norm.path,
            "unembed": self.unembed,
        }


def text_config(config: Any) -> Any:
    """The config of the language model: ``config.get_text_config()`` of a multimodal wrapper,
    otherwise ``config`` itself."""
    getter = getattr(config, "get_text_config", None)
    return getter() if callable(getter) else config


def _config_value(config: Any, attr: str | None) -> float | None:
    if attr is None:
        return None
    value = getattr(text_config(config), attr, None)
    if value is None:
        value = getattr(config, attr, None)
    return float(value) if isinstance(value, (int, float)) and value else None


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


def _gemma3(name: str, base: str, *model_types: str) -> FamilySpec:
    """Gemma 3's layout under ``base``: post-norms on both blocks, a (1 + w) RMSNorm."""
    return FamilySpec(
        name=name,
        model_types=model_types,
        base=base,
        embed=f"{base}.embed_tokens",
        layers=f"{base}.layers",
        attention="self_attn",
        mlp="mlp",
        attention_out="post_attention_layernorm",
        mlp_out="post_feedforward_layernorm",
        final_norm=NormSpec(f"{base}.norm", NormKind.RMS, weight_offset=1.0),
    )


FAMILIES: tuple[FamilySpec, ...] = (
    _llama_like("llama", "llama"),
    _llama_like("mistral", "mistral"),
    _llama_like("qwen2", "qwen2"),
    _gemma3("gemma3", "model", "gemma3_text", "gemma3"),
    # Gemma 3 from 4B up: Gemma3ForConditionalGeneration, whose language model is
    # model.language_model (the vision tower and projector are not part of the analysis).
    _gemma3("gemma3_multimodal", "model.language_model", "gemma3"),
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
