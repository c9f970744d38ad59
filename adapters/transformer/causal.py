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

:func:`hydra_model` is that trace made once per model (dynamic sizes) with the variables the
sweep reads; :func:`final_readings` and :func:`noised_readings` read it in the clean pass and
in noise ablation, and :func:`~.measures.measure_prompt` runs every ablation of a prompt as one
query of it. :func:`ablation_impact` and :func:`unembedding_impact` compute single measures
with the generic effect operators; the tests check that both routes give the same numbers.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

import scmnet as sn
from scmnet.model import Context
from scmnet.tracing import ByPath, Selector, TracedModel
from scmnet.tracing.engine.devices import execution_device

from .families import Block, NormKind
from .heads import HeadLayout, heads_path, split_heads, split_units
from .lm import LanguageModel
from .neurons import neuron_layout, neurons_path

__all__ = [
    "ScaleNorm",
    "ablation_impact",
    "contribution_sites",
    "final_readings",
    "hydra_model",
    "noised_readings",
    "recorded_readings",
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
        self.device = execution_device(norm) or self.weight.device

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """The normed ``z``, with sigma computed by the submodule ``scale``."""
        if z.device != self.device:  # a device map: the norm computes on its own device
            z = z.to(self.device)
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
def _loaded(lm: LanguageModel) -> Iterator[None]:
    """Offloaded weights (a device map's ``"cpu"`` or ``"disk"`` modules, whose parameters are
    empty ``meta`` placeholders between calls) loaded on their execution devices for the
    duration, their hooks' loading switched off: ``torch.export`` cannot trace through the
    hooks' reads of the stored weights, only through the weights themselves.

    The traced graph reads them from the hooks at every run afterwards
    (``scmnet.tracing.engine.devices.stored_value``), so only tracing needs them in place
    (once, all together: the offloaded part must fit on its execution device while tracing).
    """
    hooked: list[tuple[nn.Module, Any]] = []
    for module in lm.model.modules():
        hook: Any = getattr(module, "_hf_hook", None)
        if getattr(hook, "offload", False) and callable(getattr(hook, "pre_forward", None)):
            hooked.append((module, hook))
    for module, hook in hooked:
        hook.pre_forward(module)  # accelerate's own loading onto the execution device
        hook.offload = False
    try:
        yield
    finally:
        for module, hook in hooked:
            hook.offload = True
            hook.post_forward(module, None)  # back to meta placeholders


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


def traced_lm(
    lm: LanguageModel, ids: torch.Tensor, *, heads: bool = False, neurons: bool = False
) -> TracedModel:
    """Trace ``lm`` on the prompt ``ids`` (shape ``(1, T)``) with the paper's variables.

    The model is traced with :class:`ScaleNorm` in place of its final norm (restored after),
    and, where its ``forward`` takes ``logits_to_keep``, with the logits of the final position
    only (the readouts read no other; the vocabulary projection of every position would be the
    largest activation of a long prompt). With ``heads``, every attention output projection is
    traced as the sum of its heads' contributions, each layer's heads a variable
    (:func:`~.heads.split_heads`); with ``neurons``, the last MLP's output projection as the sum
    of its neurons' contributions (:func:`~.neurons.neuron_layout`).
    """
    paths = [lm.module_path(layer, b.label) for layer in range(lm.n_layers) for b in Block]
    scale = f"{lm.spec.final_norm.path}.scale"
    selector: Selector = ByPath(scale)
    for path in paths:
        selector = selector | ByPath(path)
    example: dict[str, Any] = {"input_ids": ids.to(lm.device)}
    if "logits_to_keep" in inspect.signature(lm.model.forward).parameters:
        example["logits_to_keep"] = 1  # a constant of the graph: the final position's logits
    with _loaded(lm), _scale_norm(lm), _split(lm, heads, neurons) as layouts:
        for layout in layouts:
            selector = selector | ByPath(f"{layout.projection}.heads")
        return sn.trace(lm.model, example, variables=selector)


@contextmanager
def _split(lm: LanguageModel, heads: bool, neurons: bool) -> Iterator[list[HeadLayout]]:
    """The projections split for the duration: every attention output by head, and the last
    MLP's output projection by neuron (:func:`~.neurons.neuron_layout`)."""
    layouts = [neuron_layout(lm, lm.n_layers - 1)] if neurons else []
    if heads:
        with split_heads(lm, layouts) as every:
            yield every
        return
    with split_units(lm, layouts):
        yield layouts


_MODELS: weakref.WeakKeyDictionary[LanguageModel, dict[tuple[bool, bool], TracedModel]] = (
    weakref.WeakKeyDictionary()
)


def hydra_model(lm: LanguageModel, *, heads: bool = False, neurons: bool = False) -> TracedModel:
    """``lm`` traced once with the variables the Hydra readouts need (cached per model).

    The variables are the token embedding (where noise ablation adds its noise, eq. 37), every
    a^l and m^l, the first layer's output h^1 (for the readout identity,
    :func:`~.readout_identity.check_identity`), the final norm's scale sigma and the final
    norm's output (whose final position, times ``W_U[i] - mean W_U``, is the centred logit of
    eq. 9); with ``heads``, also every layer's heads (:func:`~.heads.heads_path`, shape
    ``(B, T, H, d_model)``), the model traced with its output projections split by head
    (:func:`~.heads.split_heads`); with ``neurons``, also the last MLP's neurons
    (:func:`~.neurons.neurons_path`, shape ``(B, T, N, d_model)``). The trace has dynamic batch
    and sequence sizes, so it serves every prompt and every batch of prompts of one length.
    """
    cache = _MODELS.setdefault(lm, {})
    found = cache.get((heads, neurons))
    if found is None:
        example = torch.zeros(1, 8, dtype=torch.long)
        traced = traced_lm(lm, example, heads=heads, neurons=neurons)
        norm = lm.spec.final_norm.path
        selector: Selector = ByPath(lm.spec.embed) | ByPath(norm) | ByPath(f"{norm}.scale")
        selector = selector | ByPath(f"{lm.spec.layers}.0")  # h^1, for the readout identity
        for layer in range(lm.n_layers):
            for b in Block:
                selector = selector | ByPath(lm.module_path(layer, b.label))
            if heads:
                selector = selector | ByPath(heads_path(lm, layer))
        if neurons:
            selector = selector | ByPath(neurons_path(lm, lm.n_layers - 1))
        found = traced.with_variables(selector)
        cache[(heads, neurons)] = found
    return found


def contribution_sites(lm: LanguageModel, *, index: Any = (slice(None), -1)) -> list[sn.Site]:
    """The sites of every a^l and m^l (attention first, then MLP), read at ``index``.

    The default index is the final position of every row of a batch; ``(0, -1)`` is the final
    position of the first row, one ``(d_model,)`` vector.
    """
    return [
        sn.Site(lm.module_path(layer, b.label), index=index)
        for b in Block
        for layer in range(lm.n_layers)
    ]


def final_readings(lm: LanguageModel, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The clean run of a batch of prompts of one length, read at the final position.

    Parameters
    ----------
    lm : LanguageModel
        The model.
    ids : tensor, shape (B, T)
        Token ids, one prompt a row (no padding: each row computes what it would alone).

    Returns
    -------
    contributions : tensor, shape (B, 2, L, d_model)
        a^l_t and m^l_t of every row.
    logits : tensor, shape (B, vocab)
        The final position's logits (after any final-logit softcapping).
    """
    model = hydra_model(lm)
    sites = contribution_sites(lm)
    logits = sn.Site(model.outputs[0], index=(slice(None), -1))
    with torch.no_grad():
        values = model.evaluate({"input_ids": ids.to(lm.device)}, outputs=[*sites, logits])
    model.clear_cache()  # one prompt batch's clean run is not read again
    rows = int(ids.shape[0])
    # on one device: a device map leaves each layer's contribution on the layer's device
    contributions = torch.stack([values[s].to(lm.device) for s in sites], dim=1)  # (B, 2L, d)
    return contributions.reshape(rows, 2, lm.n_layers, -1).float().cpu(), values[logits].float()


def recorded_readings(
    lm: LanguageModel, contexts: Sequence[Context], contributions: torch.Tensor
) -> sn.SiteValues:
    """A memo of the clean pass's readings, from which mean and patch values are read.

    Parameters
    ----------
    lm : LanguageModel
        The model.
    contexts : sequence of mappings
        The prompts' contexts (``{"input_ids": ids}``), the objects the rules will name.
    contributions : tensor, shape (len(contexts), 2, L, d_model)
        a^l_t and m^l_t of each prompt, as :func:`final_readings` returns them (float32 on
        the host); they are recorded in the model's dtype, on its device, once.

    Returns
    -------
    scmnet.SiteValues
        For :func:`scmnet.effect_table`'s ``values=``: the final-position sites of
        :func:`contribution_sites` in every context, without running the model again.
    """
    memo = sn.SiteValues(hydra_model(lm))
    sites = contribution_sites(lm)
    held = contributions.to(device=lm.device, dtype=lm.dtype)  # as the sites hold them, once
    for context, found in zip(contexts, held, strict=True):
        for s, value in zip(sites, found.reshape(len(sites), 1, -1), strict=True):
            memo.record(context, s, value)
    return memo


def noised_readings(
    lm: LanguageModel, ids: torch.Tensor, noise: torch.Tensor, *, heads: bool = False
) -> torch.Tensor:
    """a^l_t and m^l_t of one prompt with noise added to its input embeddings (eq. 37).

    Parameters
    ----------
    lm : LanguageModel
        The model.
    ids : tensor, shape (1, T)
        The prompt's token ids.
    noise : tensor, shape (K, T, d_model)
        One draw of eps a row, added to the embedding of every position.
    heads : bool
        Read every attention head's contribution instead (:mod:`.heads`).

    Returns
    -------
    tensor, shape (K, 2, L, d_model), or (K, L, H, d_model) with ``heads``
        The final-position contributions of each noised run: the values A(u + eps), in the
        model's dtype and on its device (they are set as they are: no transfer to the host).
    """
    model = hydra_model(lm, heads=heads)
    embed = sn.Site(lm.spec.embed)
    context = {"input_ids": ids.to(lm.device)}
    with torch.no_grad():
        clean = model.evaluate(context, outputs=[embed])[embed]  # (1, T, d)
        noised = (clean.float() + noise.to(clean.device)).to(clean.dtype)  # added in float32
        sets = [{embed: noised[j : j + 1]} for j in range(int(noise.shape[0]))]
        if heads:
            sites = [sn.Site(heads_path(lm, layer), (0, -1)) for layer in range(lm.n_layers)]
        else:
            sites = contribution_sites(lm, index=(0, -1))
        runs = model.evaluate_stacked(context, sets, outputs=sites)
    stacked = torch.stack([runs[s].to(lm.device) for s in sites], dim=1)  # (K, 2L or L, [H,] d)
    if heads:
        return stacked
    return stacked.reshape(len(sets), 2, lm.n_layers, -1)  # in the model's dtype, on its device


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
    """Delta_ablate (equation 12) as the total effect of do(A^l_t = value) (equations 14-18)."""
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
    """Delta_unembed (equation 10) as minus the direct effect of zeroing A^l_t (equations 24-28).

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
