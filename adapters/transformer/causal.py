"""A language model as a traced SCM whose variables are the paper's: a^l, m^l, sigma, logits.

The Hydra measures are effects in a causal model (Section 3 of the paper): the ablation impact
is a total effect (eqs. 14-18) and the unembedding impact is minus the direct effect of zeroing
the layer while every other variable -- the final norm's scale sigma included -- is held
(eqs. 19-20, 24-28). :func:`traced_lm` builds that causal model with :func:`scmnet.trace`:

* its variables are each layer's attention contribution a^l and MLP contribution m^l (the
  modules of the family spec), the final norm's scale sigma and the logits;
* the final norm is traced through :class:`ScaleNorm`, the same computation written with sigma
  as its own submodule, so that sigma is a variable for every family (a fused LayerNorm has no
  separate scale to hold).

The functions :func:`ablation_impact` and :func:`unembedding_impact` then compute the measures
with the generic effect operators; the tests check that they equal the adapter's fast path.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

import scmnet as sn
from scmnet.tracing import ByPath, Selector, TracedModel

from .engine import Block
from .families import NormKind
from .lm import LanguageModel

__all__ = [
    "ScaleNorm",
    "ablation_impact",
    "hydra_model",
    "site",
    "traced_lm",
    "unembedding_impact",
]


class NormScale(nn.Module):
    """sigma(z) over the last axis, kept with a trailing axis: ``(..., d) -> (..., 1)`` (eq. 8)."""

    def __init__(self, kind: NormKind, eps: float) -> None:
        super().__init__()
        self.kind = kind
        self.eps = eps

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = z.float()
        if self.kind is NormKind.LAYER:
            z = z - z.mean(-1, keepdim=True)
        return torch.sqrt(z.pow(2).mean(-1, keepdim=True) + self.eps)


class ScaleNorm(nn.Module):
    """The final norm, written so that its scale sigma is the output of a submodule.

    RMSNorm: ``z / sigma * G``; LayerNorm: ``(z - mean z) / sigma * G + b``. It holds the
    original norm's own ``weight`` and ``bias`` parameters under the same names, so a graph
    traced through it reads the same parameters from the restored model.
    """

    def __init__(self, lm: LanguageModel) -> None:
        super().__init__()
        norm = lm.final_norm
        self.kind = lm.norm_kind
        self.offset = lm.spec.final_norm.weight_offset
        self.scale = NormScale(lm.norm_kind, lm.norm_eps)
        self.weight = norm.get_parameter("weight")
        bias = getattr(norm, "bias", None)
        self.bias = bias if isinstance(bias, nn.Parameter) else None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        sigma = self.scale(z)
        x = z.float()
        if self.kind is NormKind.LAYER:
            x = x - x.mean(-1, keepdim=True)
        out = x / sigma * (self.weight.float() + self.offset)
        if self.bias is not None:
            out = out + self.bias
        result: torch.Tensor = out.to(z.dtype)
        return result


@contextmanager
def _scale_norm(lm: LanguageModel) -> Iterator[None]:
    parent_path, _, name = lm.spec.final_norm.path.rpartition(".")
    parent = lm.model.get_submodule(parent_path) if parent_path else lm.model
    original = getattr(parent, name)
    setattr(parent, name, ScaleNorm(lm).eval())
    try:
        yield
    finally:
        setattr(parent, name, original)


def site(lm: LanguageModel, block: Block, layer: int) -> sn.Site:
    """The final position of a^l (``block=ATTN``) or m^l (``MLP``): ``A^l_t`` of the paper."""
    return sn.Site(lm.module_path(layer, block.label), index=(slice(None), -1))


def traced_lm(lm: LanguageModel, ids: torch.Tensor) -> TracedModel:
    """Trace ``lm`` on the prompt ``ids`` (shape ``(1, T)``) with the paper's variables.

    The model is traced with :class:`ScaleNorm` in place of its final norm (restored after).
    """
    paths = [lm.module_path(layer, b.label) for layer in range(lm.n_layers) for b in Block]
    scale = f"{lm.spec.final_norm.path}.scale"
    selector: Selector = ByPath(scale)
    for path in paths:
        selector = selector | ByPath(path)
    with _scale_norm(lm):
        return sn.trace(lm.model, {"input_ids": ids.to(lm.device)}, variables=selector)


_HYDRA_MODELS: weakref.WeakKeyDictionary[LanguageModel, TracedModel] = weakref.WeakKeyDictionary()


def hydra_model(lm: LanguageModel) -> TracedModel:
    """``lm`` traced once with the variables the Hydra readouts need (cached per model).

    The variables are every a^l and m^l, the final norm's scale sigma and the final norm's
    output (whose final position, times ``W_U[i] - mean W_U``, is the centred logit of eq. 9).
    The trace has dynamic batch and sequence sizes, so it serves every prompt.
    """
    found = _HYDRA_MODELS.get(lm)
    if found is None:
        example = torch.zeros(1, 8, dtype=torch.long)
        traced = traced_lm(lm, example)
        norm = lm.spec.final_norm.path
        selector: Selector = ByPath(norm) | ByPath(f"{norm}.scale")
        for layer in range(lm.n_layers):
            for b in Block:
                selector = selector | ByPath(lm.module_path(layer, b.label))
        found = traced.with_variables(selector)
        _HYDRA_MODELS[lm] = found
    return found


def centred_logit(model: TracedModel, token: int) -> sn.Outcome:
    """The outcome: the centred logit of ``token`` at the final position (eq. 9)."""
    logits = model.outputs[0]

    def read(values: torch.Tensor) -> torch.Tensor:
        last = values[0, -1].double()
        return last[token] - last.mean()

    return sn.Outcome((logits,), read)


def ablation_impact(
    model: TracedModel,
    lm: LanguageModel,
    ids: torch.Tensor,
    token: int,
    block: Block,
    layer: int,
    value: Any,
) -> float:
    """Delta_ablate (eq. 12) as the total effect of do(A^l_t = value) (eqs. 14-18)."""
    te = sn.total_effect(
        model,
        {site(lm, block, layer): value},
        centred_logit(model, token),
        context={"input_ids": ids.to(lm.device)},
    )
    return float(te)


def unembedding_impact(
    model: TracedModel,
    lm: LanguageModel,
    ids: torch.Tensor,
    token: int,
    block: Block,
    layer: int,
) -> float:
    """Delta_unembed (eq. 10) as minus the direct effect of zeroing A^l_t (eqs. 24-28).

    Every other variable, sigma included, is held at its value in ``model``'s run: apply
    :func:`scmnet.do` first to read the impact in an ablated run (eq. 13).
    """
    de = sn.direct_effect(
        model,
        {site(lm, block, layer): sn.zero()},
        centred_logit(model, token),
        context={"input_ids": ids.to(lm.device)},
    )
    return -float(de)
