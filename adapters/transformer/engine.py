"""The fast path: many interventions at the final position as one batched one-token forward.

Ablating the final position t cannot change any position before t (causal masking). So, after
one clean pass over the prefix x_<t that fills a key/value cache, every run of the sweep --
the clean run and each ablation do(A^k_t = a~) -- is a forward of the single token x_t against
that cache, and all of them go through the model together, one row of the batch each. Each
row carries its own intervention: forward hooks on the residual contributions (attention and
MLP outputs, eqs. 3-6) overwrite the rows that ablate that layer.

Every readout is a dot product. The centred logit of token i (eq. 9) is the normalised final
residual times ``W_U[i] - mean_j W_U[j]``, and the unembedding of a component with the norm
scale frozen (eqs. 7-10) is that row, scaled by the norm's gain, over sigma; the full vocabulary
projection is never computed.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .lm import LanguageModel

__all__ = ["Block", "FinalReadout", "Recorder", "RowPatch", "final_position", "prefix_cache"]


class Block(enum.IntEnum):
    """A residual contribution of a layer: the attention output a^l or the MLP output m^l."""

    ATTN = 0
    MLP = 1

    @property
    def label(self) -> str:
        """``"attn"`` or ``"mlp"``."""
        return "attn" if self is Block.ATTN else "mlp"


@dataclass(frozen=True)
class RowPatch:
    """One row's intervention: ``do(block^layer_t = value)``; ``value`` has shape (d_model,)."""

    block: Block
    layer: int
    value: torch.Tensor


@dataclass(frozen=True)
class FinalReadout:
    """What the final position reads in each row of a batched run.

    Attributes
    ----------
    direct : tensor, shape (rows, 2, L)
        u(c)_i for every contribution c (attention, MLP) of every layer, with the norm scale
        frozen at the row's own sigma (eq. 10; eq. 13 in an ablated row).
    logit : tensor, shape (rows,)
        The centred logit of the read token (eq. 9).
    sigma : tensor, shape (rows,)
        The final norm's scale sigma(z^L_t) (eq. 8).
    """

    direct: torch.Tensor
    logit: torch.Tensor
    sigma: torch.Tensor


def _as_tensor(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output  # type: ignore[no-any-return]


def _replace(output: Any, tensor: torch.Tensor) -> Any:
    if isinstance(output, tuple):
        return (tensor, *output[1:])
    return tensor


class Recorder:
    """Forward hooks that patch rows of each contribution and read every contribution.

    For every row and every contribution c it records ``c . readout_row`` and ``mean(c)`` (and
    ``c`` itself with ``collect=True``), and the final norm's scale sigma.
    """

    def __init__(
        self, lm: LanguageModel, rows: int, readout: torch.Tensor, *, collect: bool = False
    ) -> None:
        self.lm = lm
        self.readout = readout  # (rows, d): G (W_U[i] - mean W_U)
        n = lm.n_layers
        self.dots = torch.zeros(rows, 2, n)
        self.means = torch.zeros(rows, 2, n)
        self.contributions = torch.zeros(rows, 2, n, lm.d_model) if collect else None
        self.sigma = torch.zeros(rows)
        self.active = rows  # rows present in the batch now (a prefix of all rows)
        self.patches: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def collected(self) -> torch.Tensor:
        """The recorded contributions, ``(rows, 2, L, d_model)`` (needs ``collect=True``)."""
        if self.contributions is None:
            raise ValueError("this recorder was made with collect=False")
        return self.contributions

    def set_patches(self, patches: Sequence[RowPatch | None]) -> None:
        grouped: dict[tuple[int, int], tuple[list[int], list[torch.Tensor]]] = {}
        for row, patch in enumerate(patches):
            if patch is None:
                continue
            rows, values = grouped.setdefault((int(patch.block), patch.layer), ([], []))
            rows.append(row)
            values.append(patch.value)
        self.patches = {
            key: (torch.tensor(rows), torch.stack(values))
            for key, (rows, values) in grouped.items()
        }

    def contribution_hook(self, block: Block, layer: int) -> Any:
        def hook(module: nn.Module, args: Any, output: Any) -> Any:
            x = _as_tensor(output)  # (rows, 1, d)
            patch = self.patches.get((int(block), layer))
            if patch is not None:
                rows, values = patch
                x = x.clone()
                x[rows, -1] = values.to(device=x.device, dtype=x.dtype)
            last = x[:, -1].float()  # (active rows, d)
            n = last.shape[0]
            self.dots[:n, block, layer] = (last * self.readout[:n]).sum(-1).cpu()
            self.means[:n, block, layer] = last.mean(-1).cpu()
            if self.contributions is not None:
                self.contributions[:n, block, layer] = last.cpu()
            return _replace(output, x) if patch is not None else None

        return hook

    def norm_hook(self, module: nn.Module, args: Any) -> None:
        z = args[0][:, -1]  # (rows, d): the final residual z^L_t
        self.sigma[: z.shape[0]] = self.lm.norm_scale(z).cpu()

    def fill_below(self, starts: Sequence[int]) -> None:
        """Give each row that joined at layer s the clean row's readings of layers below s.

        Row 0 must be a row that starts at layer 0.
        """
        for row, s in enumerate(starts):
            if s:
                self.dots[row, :, :s] = self.dots[0, :, :s]
                self.means[row, :, :s] = self.means[0, :, :s]
                if self.contributions is not None:
                    self.contributions[row, :, :s] = self.contributions[0, :, :s]

    @contextmanager
    def attached(self) -> Iterator[None]:
        handles = []
        try:
            for layer in range(self.lm.n_layers):
                handles.append(
                    self.lm.attention_out(layer).register_forward_hook(
                        self.contribution_hook(Block.ATTN, layer)
                    )
                )
                handles.append(
                    self.lm.mlp_out(layer).register_forward_hook(
                        self.contribution_hook(Block.MLP, layer)
                    )
                )
            handles.append(self.lm.final_norm.register_forward_pre_hook(self.norm_hook))
            yield
        finally:
            for h in handles:
                h.remove()


def prefix_cache(lm: LanguageModel, ids: torch.Tensor) -> Any:
    """Run the clean prefix x_<t of a ``(1, T)`` prompt and return its key/value cache.

    Returns ``None`` for a one-token prompt (nothing precedes the final position).
    """
    if ids.shape[1] < 2:
        return None
    base = lm.model.get_submodule(lm.spec.base)
    with torch.no_grad():
        out = base(input_ids=ids[:, :-1].to(lm.device), use_cache=True)
    return out.past_key_values


def _bias_term(lm: LanguageModel, token: int) -> float:
    bias = lm.unembedding_bias
    if bias is None:
        return 0.0
    return float(bias[token] - bias.float().mean())


@dataclass(frozen=True)
class _CleanStep:
    """What the clean one-token run feeds each decoder layer: its input and its arguments."""

    hidden: torch.Tensor  # (1, 1, d): the residual entering the layer
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


def _clean_steps(lm: LanguageModel, ids: torch.Tensor, cache: Any) -> list[_CleanStep]:
    """Run the final token once, clean, recording each decoder layer's input and arguments.

    The arguments (rotary embeddings, masks, positions) are those of the final position, the
    same for every row, so the staircase below can call each layer directly with them.
    """
    base = lm.model.get_submodule(lm.spec.base)
    steps: list[_CleanStep] = []

    def record(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if args:
            hidden, rest = args[0], args[1:]
        else:
            kwargs = dict(kwargs)
            hidden, rest = kwargs.pop("hidden_states"), ()
        steps.append(_CleanStep(hidden.detach().clone(), rest, kwargs))

    handles = [layer.register_forward_pre_hook(record, with_kwargs=True) for layer in lm.layers]
    try:
        with torch.no_grad():
            kv = copy.deepcopy(cache) if cache is not None else None
            base(input_ids=ids[:, -1:].to(lm.device), past_key_values=kv, use_cache=kv is not None)
    finally:
        for h in handles:
            h.remove()
    return steps


def _swap_cache(values: Sequence[Any], old: Any, new: Any) -> list[Any]:
    return [new if (old is not None and v is old) else v for v in values]


def _staircase(
    lm: LanguageModel,
    steps: list[_CleanStep],
    cache: Any,
    starts: list[int],
    recorder: Recorder,
) -> torch.Tensor:
    """Run rows sorted by start layer: a row joins at its start layer, from the clean residual.

    Rows that start at layer s are identical to the clean row below s, so layers below s are
    not computed for them: the batch grows layer by layer (a staircase). Returns the final
    residual ``(rows, 1, d)``.
    """
    old = steps[0].kwargs.get("past_key_values") if steps else None
    for step in steps:  # the cache object the clean run passed (positionally or by any name)
        for v in (*step.args, *step.kwargs.values()):
            if v is not None and hasattr(v, "layers") and hasattr(v, "update"):
                old = v
    kv = copy.deepcopy(cache) if cache is not None else None
    hidden: torch.Tensor | None = None
    for layer, step in enumerate(steps):
        joining = sum(1 for s in starts if s == layer)
        if joining:
            fresh = step.hidden.expand(joining, -1, -1)
            hidden = fresh if hidden is None else torch.cat([hidden, fresh])
        if hidden is None:
            continue
        n = hidden.shape[0]
        recorder.active = n
        if kv is not None:
            kv.layers[layer].keys = cache.layers[layer].keys.repeat_interleave(n, 0)
            kv.layers[layer].values = cache.layers[layer].values.repeat_interleave(n, 0)
        args = _swap_cache(step.args, old, kv)
        kwargs = dict(
            zip(step.kwargs, _swap_cache(list(step.kwargs.values()), old, kv), strict=True)
        )
        hidden = _as_tensor(lm.layers[layer](hidden, *args, **kwargs))
    if hidden is None:
        raise ValueError("no row to run")
    return hidden


def final_position(
    lm: LanguageModel,
    ids: torch.Tensor,
    token: int,
    patches: Sequence[RowPatch | None],
    *,
    cache: Any = None,
    chunk: int = 256,
) -> FinalReadout:
    """Run the final position of a prompt once per row, each row with its own patch.

    Rows are run bottom-up in a staircase: a row patched at layer k joins the batch at layer k
    (below it, it equals the clean row), against the clean cache of the prefix.

    Parameters
    ----------
    lm : LanguageModel
        The model.
    ids : tensor, shape (1, T)
        The prompt's token ids.
    token : int
        i, the token whose centred logit is read.
    patches : sequence of RowPatch or None
        One entry per row: ``None`` for a clean row, else the row's intervention.
    cache : optional
        :func:`prefix_cache` of the prompt (computed if not given).
    chunk : int
        At most this many rows per staircase (bounds memory).

    Returns
    -------
    FinalReadout
        In the order of ``patches``.
    """
    if cache is None:
        cache = prefix_cache(lm, ids)
    steps = _clean_steps(lm, ids, cache)
    readout_row = lm.centred_readout(torch.tensor([token]))[0].to(lm.device)  # (d,)
    w_bar = (lm.unembedding.float()[token] - lm.unembedding.float().mean(0)).to(lm.device)
    order = sorted(range(len(patches)), key=lambda r: 0 if patches[r] is None else patches[r].layer)  # type: ignore[union-attr]
    parts: list[FinalReadout] = []
    with torch.no_grad():
        step = max(1, chunk - 1)
        for begin in range(0, len(order), step):
            # Each chunk starts with a clean row: rows that join late copy its lower layers.
            rows: list[RowPatch | None] = [None, *(patches[r] for r in order[begin : begin + step])]
            starts = [0 if p is None else p.layer for p in rows]
            n = len(rows)
            recorder = Recorder(lm, n, readout_row.expand(n, -1))
            recorder.set_patches(rows)
            with recorder.attached():
                final = _staircase(lm, steps, cache, starts, recorder)
                recorder.active = n
                normed = lm.final_norm(final)[:, -1].float()  # (rows, d)
            recorder.fill_below(starts)
            logit = (normed @ w_bar).cpu() + _bias_term(lm, token)
            dots = recorder.dots
            if lm.norm_kind.value == "layer":  # the LayerNorm centres every contribution
                dots = dots - recorder.means * float(readout_row.sum())
            sigma = recorder.sigma
            parts.append(FinalReadout((dots / sigma[:, None, None])[1:], logit[1:], sigma[1:]))
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[torch.tensor(order)] = torch.arange(len(order))
    return FinalReadout(
        torch.cat([p.direct for p in parts])[inverse],
        torch.cat([p.logit for p in parts])[inverse],
        torch.cat([p.sigma for p in parts])[inverse],
    )
