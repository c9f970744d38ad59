"""The Hydra measures and the self-repair decomposition with attention heads as the units.

:func:`measure_heads` ablates every head of every layer at the final position, each with every
draw of its ablation value, in one :func:`scmnet.effect_table` query of the model traced with
its heads as variables (:func:`~.causal.hydra_model` with ``heads=True``). Every run is read
out at once: the direct effect of every head and every MLP layer with the run's own final-norm
scale (eqs. 10 and 13 of the paper, a head's contribution W_O^h o_h in place of a^l), the scale
itself and the centred logit of the clean top-1 token (eq. 9).

:meth:`HeadMeasures.self_repair` is Rushing & Nanda's (2024) decomposition for every head:
with direct effects read with the clean scale, the self-repair of head (k, h)

    SR = Delta_ablate - (DE_kh(ablated) - DE_kh(clean)) = SR_heads + SR_MLP + SR_norm,

SR_heads the change of the other heads' direct effects (every layer's, the head's own layer
included), SR_MLP the MLP layers', SR_norm that of the final norm's scale, which is
(1 - sigma_a / sigma_c)(logit_a - B) (see :mod:`.selfrepair`).

Examples
--------
>>> import torch, scmnet as sn
>>> from tests.protocol import tiny_lm
>>> lm = tiny_lm("llama")
>>> m = measure_heads(lm, torch.tensor([[5, 9, 2, 7]]), token=3, draws=[sn.zero()])
>>> m.unembed.shape, m.ablated_logit.shape  # (layers, heads) and one draw
((3, 4), (3, 4, 1))
>>> sr = m.self_repair()
>>> bool(abs(sr.total - sr.attn - sr.mlp - sr.norm).max() < 1e-12)
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scmnet import Outcome, Rule, Site, SiteValues
from scmnet.errors import UnsupportedModel

from .causal import hydra_model
from .families import Block
from .heads import head_layout, head_site, heads_path
from .lm import LanguageModel
from .measures import Draw, _damaged, _read_arrays, query_runs, readout_rows
from .readout_identity import (
    check_identity,
    constant_part,
    first_layer_site,
    identity_columns,
    rounding,
)
from .selfrepair import SelfRepair

__all__ = ["HeadMeasures", "head_readouts", "measure_heads"]


@dataclass(frozen=True, eq=False)
class HeadMeasures:
    """Clean and ablated readouts of one prompt, attention heads as units (L layers of H
    heads, K draws).

    Attributes
    ----------
    prompt : int
        The prompt's index in the analysed set.
    token : int
        i, the clean top-1 token at the final position.
    clean_logit, clean_sigma : float
        The clean centred logit of i (eq. 9) and the clean final-norm scale.
    unembed : ndarray, shape (L, H)
        The clean direct effect of every head, W_O^h o_h read out as in eq. 10.
    mlp_unembed : ndarray, shape (L,)
        The clean direct effect of every MLP layer.
    ablated_logit, ablated_sigma : ndarray, shape (L, H, K)
        The centred logit of i and the final-norm scale after each ablation draw.
    ablated_heads : ndarray, shape (L, H, K, L, H)
        ``[k, h, j, l, g]``: the direct effect of head (l, g) after draw j of the ablation of
        head (k, h), with that run's own scale (eq. 13).
    ablated_mlps : ndarray, shape (L, H, K, L)
        The same for the MLP layers.
    """

    prompt: int
    token: int
    clean_logit: float
    clean_sigma: float
    unembed: np.ndarray
    mlp_unembed: np.ndarray
    ablated_logit: np.ndarray
    ablated_sigma: np.ndarray
    ablated_heads: np.ndarray
    ablated_mlps: np.ndarray

    @property
    def ablate(self) -> np.ndarray:
        """Delta_ablate of every head, averaged over draws (eqs. 12, 39): shape (L, H)."""
        return np.asarray((self.ablated_logit - self.clean_logit).mean(-1))

    def self_repair(self) -> SelfRepair:
        """The self-repair decomposition of every head's ablation, averaged over draws.

        Every array of the result has shape (L, H); ``attn`` is SR_heads, the other heads'
        share.
        """
        rescale = self.ablated_sigma / self.clean_sigma  # (L, H, K): sigma_a / sigma_c
        heads = self.ablated_heads * rescale[..., None, None] - self.unembed  # (L,H,K,L,H)
        mlps = self.ablated_mlps * rescale[..., None] - self.mlp_unembed  # (L, H, K, L)
        ablate = self.ablated_logit - self.clean_logit  # (L, H, K)
        k, h = np.indices(ablate.shape[:2])
        own = heads[k, h, :, k, h]  # (L, H, K)
        others = heads.sum((-2, -1)) - own
        mlp = mlps.sum(-1)
        return SelfRepair.of_draws(self.unembed, ablate, own, others, mlp)

    @classmethod
    def from_rows(
        cls,
        prompt: int,
        token: int,
        logit: np.ndarray,
        heads: np.ndarray,
        mlps: np.ndarray,
        sigma: np.ndarray,
    ) -> HeadMeasures:
        """The measures from per-run arrays: row 0 the clean run, then every (layer, head, draw)
        in that order; ``logit`` and ``sigma`` of shape (rows,), ``heads`` (rows, L, H),
        ``mlps`` (rows, L)."""
        n, h = heads.shape[1:]
        k = (len(logit) - 1) // (n * h)
        return cls(
            prompt=prompt,
            token=token,
            clean_logit=float(logit[0]),
            clean_sigma=float(sigma[0]),
            unembed=heads[0],
            mlp_unembed=mlps[0],
            ablated_logit=logit[1:].reshape(n, h, k),
            ablated_sigma=sigma[1:].reshape(n, h, k),
            ablated_heads=heads[1:].reshape(n, h, k, n, h),
            ablated_mlps=mlps[1:].reshape(n, h, k, n),
        )

    def save(self, path: str | Path) -> None:
        """Write the measures to an ``.npz`` file."""
        np.savez_compressed(path, **{f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def load(cls, path: str | Path, *, prompt: int | None = None) -> HeadMeasures:
        """Read measures written by :meth:`save`, checking that the file is whole.

        Raises
        ------
        DamagedFile
            If the file is not a whole ``.npz`` archive of these arrays with consistent shapes,
            or holds another prompt; the message names the file and says to delete it.
        """
        values = _read_arrays(Path(path), [f.name for f in fields(cls)])
        problem = _check_shapes(values)
        if problem is not None:
            raise _damaged(path, problem)
        if prompt is not None and int(values["prompt"]) != prompt:
            raise _damaged(path, f"holds prompt {int(values['prompt'])}, not prompt {prompt}")
        return cls(
            prompt=int(values["prompt"]),
            token=int(values["token"]),
            clean_logit=float(values["clean_logit"]),
            clean_sigma=float(values["clean_sigma"]),
            **{f.name: values[f.name] for f in fields(cls)[4:]},
        )


def _check_shapes(values: dict[str, np.ndarray]) -> str | None:
    for name in ("prompt", "token", "clean_logit", "clean_sigma"):
        if values[name].shape != ():
            return f"has {name!r} of shape {values[name].shape}, not a single number"
    logit = values["ablated_logit"]
    if logit.ndim != 3:
        return f"has 'ablated_logit' of shape {logit.shape}, not (layers, heads, draws)"
    n, h, k = logit.shape
    expected = {
        "unembed": (n, h),
        "mlp_unembed": (n,),
        "ablated_sigma": (n, h, k),
        "ablated_heads": (n, h, k, n, h),
        "ablated_mlps": (n, h, k, n),
    }
    for name, shape in expected.items():
        if values[name].shape != shape:
            return f"has {name!r} of shape {values[name].shape}, expected {shape}"
    return None


def head_readouts(lm: LanguageModel, token: int) -> Outcome:
    """The readouts of a run with heads as units, one batched outcome of the traced model.

    For every run, in float64: the direct effect of every head (layer-major) and of every MLP
    layer with the run's own final-norm scale, the scale, and the centred logit of i. A head's
    direct effect is its contribution times ``s G (W_U[i] - mean W_U)`` over the scale, as a
    layer's is (:func:`~.measures.readouts`).

    Raises
    ------
    UnsupportedModel
        If the model softcaps its logits (a direct effect is then not a dot product).
    """
    readout = lm.readout
    if not readout.linear:
        raise UnsupportedModel(
            f"{lm.name} softcaps its logits; heads as units read direct effects as dot "
            "products, which a softcap does not allow"
        )
    read = (0, -1)
    n = lm.n_layers
    heads = [Site(heads_path(lm, layer), index=read) for layer in range(n)]
    mlps = [Site(lm.module_path(layer, Block.MLP.label), index=read) for layer in range(n)]
    sigma = Site(f"{lm.spec.final_norm.path}.scale", index=read)
    normed = Site(lm.spec.final_norm.path, index=read)
    w_bar, rows = readout_rows(lm, token)
    bias = lm.centred_bias(token)
    constant = constant_part(lm, w_bar, token)
    projection_bias = [_projection_bias(lm, layer, rows) for layer in range(n)]
    relative = rounding(lm, n * (head_layout(lm, 0).n_heads + 2))

    def read_runs(*values: torch.Tensor) -> torch.Tensor:
        found = [v.to(rows.device) for v in values]
        head_values, mlp_values = found[:n], found[n : 2 * n]
        scale, z, first = found[2 * n :]
        s = scale.reshape(-1).float()
        per_head = torch.cat([v.float() @ rows for v in head_values], dim=1)  # (runs, L*H)
        per_mlp = torch.stack([v.float() @ rows for v in mlp_values], dim=1)  # (runs, L)
        direct = torch.cat([per_head, per_mlp], dim=1) / s[:, None]
        logit = ((z.float() @ w_bar).double() + bias) * readout.scale
        later = [head_values[k].float().sum(-2) + projection_bias[k] for k in range(1, n)]
        gap, bound = identity_columns(
            first=first,
            later=[*later, *mlp_values[1:]],
            rows=rows,
            sigma=s,
            logit=logit,
            constant=constant,
            relative=relative,
        )
        columns = [s.double()[:, None], logit[:, None], gap[:, None], bound[:, None]]
        return torch.cat([direct.double(), *columns], 1)

    sites = (*heads, *mlps, sigma, normed, first_layer_site(lm, read))
    return Outcome(sites, read_runs, "head readouts", batched=True)


def _projection_bias(lm: LanguageModel, layer: int, rows: torch.Tensor) -> torch.Tensor:
    """The output projection's bias of ``layer`` (zero without one): the part of the attention
    output that no head carries."""
    bias = getattr(lm.model.get_submodule(head_layout(lm, layer).projection), "bias", None)
    if not isinstance(bias, torch.Tensor):
        return torch.zeros_like(rows)
    return bias.detach().float().to(rows.device)


def measure_heads(
    lm: LanguageModel,
    ids: torch.Tensor,
    token: int,
    draws: Sequence[Draw] | torch.Tensor,
    *,
    prompt: int = 0,
    chunk: int | None = None,
    memory: int | None = None,
    values: SiteValues | None = None,
) -> HeadMeasures:
    """Measure one prompt with heads as units: the clean run and every head's ablation.

    Parameters
    ----------
    lm : LanguageModel
        The model (a family whose attention adds to the residual: :func:`~.heads.head_layout`).
    ids : tensor, shape (1, T)
        The prompt's token ids.
    token : int
        i, the token read out.
    draws : sequence of rules or tensors, or a tensor of shape (K, L, H, d_model)
        The ablation values of each draw j: a rule every head site resolves (``sn.zero()``,
        ``sn.mean(prompts)``, ``sn.patch(donor)``), or the values, ``draws[j][k, h]`` replacing
        head (k, h)'s contribution.
    prompt : int
        The prompt's index, recorded in the result.
    chunk, memory : int, optional
        As for :func:`scmnet.effect_table`.
    values : scmnet.SiteValues, optional
        Readings of other prompts that mean and patch rules read.

    Returns
    -------
    HeadMeasures
    """
    model = hydra_model(lm, heads=True)
    n = lm.n_layers
    n_heads = head_layout(lm, 0).n_heads
    treatments: list[dict[Site, Any]] = []
    for layer in range(n):
        for h in range(n_heads):
            where = head_site(lm, layer, h)
            treatments += [{where: d if isinstance(d, Rule) else d[layer, h]} for d in draws]
    runs = query_runs(
        model,
        lm,
        ids,
        treatments,
        head_readouts(lm, token),
        chunk=chunk,
        memory=memory,
        values=values,
    )
    rows = 1 + len(treatments)
    heads = runs[:, : n * n_heads].reshape(rows, n, n_heads)
    mlps = runs[:, n * n_heads : n * n_heads + n]
    check_identity(runs[:, -2], runs[:, -1], treatments, prompt=prompt, what="heads and MLPs")
    return HeadMeasures.from_rows(prompt, token, runs[:, -3], heads, mlps, runs[:, -4])
