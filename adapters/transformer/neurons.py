"""The last MLP's neurons as units: each neuron's contribution to the residual stream.

An MLP's output projection (``down_proj``, GPT-2's ``c_proj``, ...) is linear in its input, the
neurons' activations, so the MLP's contribution is the sum over neurons n of ``act_n W[:, n]``.
The core's :func:`scmnet.split_heads` with one "head" per input feature writes it so: the
neurons of a layer become a variable of shape ``(B, T, N, d_model)`` of the traced graph
(:func:`neurons_path`), whose direct effects are dot products with the readout row. Rushing &
Nanda (2024, arXiv 2402.15390) read the last layer's MLP neuron by neuron to find
*anti-erasure*: neurons whose direct effect grows when an earlier unit is ablated
(:mod:`~.anti_erasure`).

A family whose MLP output passes through a norm before the residual (Gemma 3's
``post_feedforward_layernorm``) has no additive neuron contributions: :func:`neuron_layout`
refuses it.
"""

from __future__ import annotations

import torch
from torch import nn

from scmnet.errors import UnsupportedModel

from .heads import HeadLayout, projection_child
from .lm import LanguageModel

__all__ = ["MLP_PROJECTION_NAMES", "neuron_layout", "neurons_path"]

#: The names, inside an MLP block, that its output projection goes by: Llama, Mistral, Qwen 2
#: and Gemma (``down_proj``), GPT-2 (``c_proj``), GPT-NeoX (``dense_4h_to_h``), Phi (``fc2``),
#: others (``w2``).
MLP_PROJECTION_NAMES = ("down_proj", "c_proj", "dense_4h_to_h", "fc2", "w2")


def neuron_layout(lm: LanguageModel, layer: int) -> HeadLayout:
    """The output projection of ``layer``'s MLP and its number of neurons (its input width).

    Raises
    ------
    UnsupportedModel
        If the MLP's output reaches the residual through another module (a post-norm, as in
        Gemma 3), or if not exactly one child of the MLP has an output projection's name
        (:data:`MLP_PROJECTION_NAMES`).

    Examples
    --------
    >>> from tests.protocol import tiny_lm
    >>> neuron_layout(tiny_lm("llama"), 2)
    HeadLayout(projection='model.layers.2.mlp.down_proj', n_heads=64)
    """
    spec = lm.spec
    if spec.mlp_out != spec.mlp:
        raise UnsupportedModel(
            f"{lm.name}: the MLP output reaches the residual through {spec.mlp_out!r}, not "
            "directly, so its neurons' contributions do not add up to it; neurons as units need "
            "a family whose MLP adds to the residual (llama, mistral, qwen2, gpt2, gpt_neox, phi)"
        )
    mlp = lm.model.get_submodule(f"{spec.layers}.{layer}.{spec.mlp}")
    name = projection_child(lm, mlp, MLP_PROJECTION_NAMES, f"MLP of layer {layer}")
    projection = mlp.get_submodule(name)
    weight = getattr(projection, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        raise UnsupportedModel(
            f"{lm.name}: the MLP output projection of layer {layer} ({name!r}) has no weight matrix"
        )
    # nn.Linear's weight is (out, in); a transposed linear map's (GPT-2's Conv1D) is (in, out)
    width = projection.in_features if isinstance(projection, nn.Linear) else int(weight.shape[0])
    return HeadLayout(f"{spec.layers}.{layer}.{spec.mlp}.{name}", width)


def neurons_path(lm: LanguageModel, layer: int) -> str:
    """The path of ``layer``'s neurons variable: ``"<projection>.heads"``, shape (B, T, N, d)."""
    return f"{neuron_layout(lm, layer).projection}.heads"
