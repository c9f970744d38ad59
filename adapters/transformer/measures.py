"""The per-prompt measures of the Hydra-effect paper, for every layer at once.

For a prompt x_<=t whose clean top-1 token is i (eq. 10), :func:`measure_prompt` computes, in
one :func:`scmnet.effect_table` query on the traced model
(:func:`~scmnet.adapters.transformer.causal.hydra_model`):

* the **unembedding impact** Delta_unembed,l = u(a^l_t)_i and u(m^l_t)_i of every attention and
  MLP layer, with the final norm's scale frozen at its clean value (eqs. 7-10); where the
  model softcaps its logits (Gemma 2), minus the direct effect of zeroing the layer through
  that exact readout (the adapter's ``readout`` module);
* for every ablation do(A^k_t = a~) or do(M^k_t = m~), and each of the K draws of a~:
  the centred logit of i, so the **ablation impact** Delta_ablate,k (eq. 12, averaged over
  draws as in eq. 39), and the unembedding impacts of every layer in the ablated run, with the
  norm scale frozen at that run's value (eq. 13).

:class:`PromptMeasures` stores these arrays and derives the rest: the change of direct effect
Delta DE (eq. 34) and the **compensatory effect** CE (eq. 33) of every ablation.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

import scmnet as sn
from scmnet import Outcome, Rule, Site, SiteValues
from scmnet.tracing import TracedModel

from .causal import contribution_sites, hydra_model
from .families import Block, NormKind
from .lm import LanguageModel
from .output_folder import DamagedFile
from .readout import centred_logit, direct_impacts
from .readout_identity import (
    check_identity,
    constant_part,
    first_layer_site,
    identity_columns,
    rounding,
)

__all__ = [
    "Draw",
    "PromptMeasures",
    "downstream_mask",
    "measure_prompt",
    "query_runs",
    "readout_rows",
    "readouts",
]


def downstream_mask(n_layers: int, *, parallel: bool) -> np.ndarray:
    """Which readouts are summed in CE of each ablation (eq. 33): shape (2, L, 2, L), bool.

    ``mask[b, k, c, l]`` is true when contribution (c, l) is downstream of the ablated (b, k):
    attention layers l > k always; MLP layers l >= k after an attention ablation in a
    sequential block (the MLP of layer k reads a^k), l > k otherwise (MLP ablations, and
    parallel blocks, where the MLP of layer k does not read a^k).

    Examples
    --------
    >>> m = downstream_mask(3, parallel=False)
    >>> m[0, 1, 1].tolist(), m[1, 1, 1].tolist(), m[0, 1, 0].tolist()
    ([False, True, True], [False, False, True], [False, False, True])
    """
    layers = np.arange(n_layers)
    later = layers[None, :] > layers[:, None]  # (k, l): l > k
    same_or_later = layers[None, :] >= layers[:, None]
    mask = np.zeros((2, n_layers, 2, n_layers), dtype=bool)
    mask[Block.ATTN, :, Block.ATTN] = later
    mask[Block.ATTN, :, Block.MLP] = later if parallel else same_or_later
    mask[Block.MLP, :, Block.ATTN] = later
    mask[Block.MLP, :, Block.MLP] = later
    return mask


@dataclass(frozen=True, eq=False)
class PromptMeasures:
    """Clean and ablated readouts of one prompt (shapes use L layers and K draws).

    Attributes
    ----------
    prompt : int
        The prompt's index in the analysed set.
    token : int
        i, the clean top-1 token at the final position.
    clean_logit : float
        The clean centred logit of i (eq. 9).
    clean_sigma : float
        The clean final-norm scale sigma(z^L_t).
    unembed : ndarray, shape (2, L)
        Delta_unembed of every attention (row 0) and MLP (row 1) layer (eq. 10).
    ablated_logit : ndarray, shape (2, L, K)
        The centred logit of i after each ablation draw.
    ablated_unembed : ndarray, shape (2, L, K, 2, L)
        ``[b, k, j, c, l]``: the unembedding impact of contribution (c, l) after draw j of the
        ablation of (b, k) (eq. 13).
    ablated_sigma : ndarray, shape (2, L, K)
        The final-norm scale of each ablated run.
    """

    prompt: int
    token: int
    clean_logit: float
    clean_sigma: float
    unembed: np.ndarray
    ablated_logit: np.ndarray
    ablated_unembed: np.ndarray
    ablated_sigma: np.ndarray

    @property
    def n_layers(self) -> int:
        """L."""
        return int(self.unembed.shape[1])

    @property
    def ablate_per_draw(self) -> np.ndarray:
        """Delta_ablate of every ablation and draw (eq. 12): shape (2, L, K)."""
        return np.asarray(self.ablated_logit - self.clean_logit)

    @property
    def ablate(self) -> np.ndarray:
        """Delta_ablate averaged over draws (eqs. 12, 39): shape (2, L)."""
        return np.asarray(self.ablate_per_draw.mean(-1))

    @property
    def unembed_after(self) -> np.ndarray:
        """Delta~^k_unembed,l averaged over draws (eq. 13): shape (2, L, 2, L)."""
        return np.asarray(self.ablated_unembed.mean(2))

    @property
    def delta_de(self) -> np.ndarray:
        """DE_ablated - DE for every readout after every ablation (eq. 34): (2, L, 2, L)."""
        return np.asarray(self.unembed_after - self.unembed[None, None])

    def compensation(self, *, parallel: bool) -> np.ndarray:
        """CE of every ablation (eq. 33): shape (2, L).

        The sum of Delta DE over the attention and MLP layers downstream of the ablated one.
        """
        mask = downstream_mask(self.n_layers, parallel=parallel)
        return np.asarray(np.where(mask, self.delta_de, 0.0).sum((-2, -1)))

    def compensation_split(self, *, parallel: bool) -> np.ndarray:
        """CE split by the kind of the compensating layers: shape (2, L, 2) (Figure 8).

        ``[b, k, 0]`` sums the downstream attention layers, ``[b, k, 1]`` the MLP layers.
        """
        mask = downstream_mask(self.n_layers, parallel=parallel)
        return np.asarray(np.where(mask, self.delta_de, 0.0).sum(-1))

    @classmethod
    def from_rows(
        cls, prompt: int, token: int, logit: np.ndarray, direct: np.ndarray, sigma: np.ndarray
    ) -> PromptMeasures:
        """The measures from per-run arrays: row 0 the clean run, then every (block, layer,
        draw) in that order; ``logit`` and ``sigma`` of shape (rows,), ``direct`` (rows, 2, L)."""
        n = int(direct.shape[-1])
        k = (len(logit) - 1) // (2 * n)
        return cls(
            prompt=prompt,
            token=token,
            clean_logit=float(logit[0]),
            clean_sigma=float(sigma[0]),
            unembed=direct[0],
            ablated_logit=logit[1:].reshape(2, n, k),
            ablated_unembed=direct[1:].reshape(2, n, k, 2, n),
            ablated_sigma=sigma[1:].reshape(2, n, k),
        )

    def save(self, path: str | Path) -> None:
        """Write the measures to an ``.npz`` file."""
        np.savez_compressed(path, **{f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        layers: int | None = None,
        draws: int | None = None,
        prompt: int | None = None,
    ) -> PromptMeasures:
        """Read measures written by :meth:`save`, checking that the file is whole.

        Parameters
        ----------
        path : path
            The ``.npz`` file.
        layers, draws : int, optional
            The number of layers L and of draws K the arrays must have.
        prompt : int, optional
            The prompt index the file must hold.

        Raises
        ------
        DamagedFile
            If the file is truncated or not an ``.npz`` archive, lacks an array, holds arrays of
            the wrong shape or another prompt; the message names the file and says to delete it
            (a sweep then recomputes that prompt).

        Examples
        --------
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "00003.npz"
        >>> _ = path.write_bytes(b"PK\\x03\\x04, cut short")
        >>> try:
        ...     PromptMeasures.load(path)
        ... except DamagedFile as e:
        ...     print(str(e).replace(str(path), "measures/00003.npz"))
        ... # doctest: +ELLIPSIS +NORMALIZE_WHITESPACE
        measures/00003.npz is truncated or not an .npz archive (...); delete measures/00003.npz
        and run again: that prompt is recomputed
        """
        values = _read_arrays(Path(path), [f.name for f in fields(cls)])
        found = _check_shapes(values, layers, draws)
        if found is not None:
            raise _damaged(path, found)
        if prompt is not None and int(values["prompt"]) != prompt:
            raise _damaged(path, f"holds prompt {int(values['prompt'])}, not prompt {prompt}")
        return cls(
            prompt=int(values["prompt"]),
            token=int(values["token"]),
            clean_logit=float(values["clean_logit"]),
            clean_sigma=float(values["clean_sigma"]),
            unembed=values["unembed"],
            ablated_logit=values["ablated_logit"],
            ablated_unembed=values["ablated_unembed"],
            ablated_sigma=values["ablated_sigma"],
        )


_SCALARS = ("prompt", "token", "clean_logit", "clean_sigma")


def _damaged(path: str | Path, problem: str) -> DamagedFile:
    return DamagedFile(f"{path} {problem}; delete {path} and run again: that prompt is recomputed")


def _read_arrays(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    """Every named array of the ``.npz`` file, or :class:`DamagedFile`."""
    unreadable = (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error)
    try:
        data = np.load(path, allow_pickle=False)
    except unreadable as e:
        raise _damaged(path, f"is truncated or not an .npz archive ({_reason(path, e)})") from e
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise _damaged(path, "holds a single array, not an .npz archive of measures")
    with data:
        missing = [n for n in names if n not in data.files]
        if missing:
            raise _damaged(path, f"lacks the array(s) {', '.join(map(repr, missing))}")
        try:
            return {n: np.asarray(data[n]) for n in names}
        except unreadable as e:
            raise _damaged(path, f"is truncated or garbled ({_reason(path, e)})") from e


def _reason(path: Path, error: Exception) -> str:
    """Why numpy could not read ``path``, in a few words."""
    if path.is_file() and path.stat().st_size == 0:
        return "it is empty"
    if isinstance(error, ValueError) and "pickle" in str(error):
        return "it starts with neither a zip nor a NumPy header"
    return f"{type(error).__name__}: {error}"


def _check_shapes(
    values: dict[str, np.ndarray], layers: int | None, draws: int | None
) -> str | None:
    """What is wrong with the arrays' shapes and kinds, or None."""
    for name in _SCALARS:
        if values[name].shape != () or values[name].dtype.kind not in "iuf":
            return f"has {name!r} of shape {values[name].shape}, not a single number"
    unembed, logit = values["unembed"], values["ablated_logit"]
    n = layers if layers is not None else (unembed.shape[1] if unembed.ndim == 2 else 0)
    k = draws if draws is not None else (logit.shape[2] if logit.ndim == 3 else 0)
    expected = {
        "unembed": (2, n),
        "ablated_logit": (2, n, k),
        "ablated_unembed": (2, n, k, 2, n),
        "ablated_sigma": (2, n, k),
    }
    for name, shape in expected.items():
        if values[name].dtype.kind != "f":
            return f"has {name!r} of dtype {values[name].dtype}, not floats"
        if values[name].shape != shape:
            return (
                f"has {name!r} of shape {values[name].shape}, expected {shape} ({n} layers, "
                f"{k} draw{'s' if k != 1 else ''})"
            )
    return None


Draw = Rule | torch.Tensor
"""One draw of the ablation values: a core rule applied to every site (:func:`scmnet.zero`,
:func:`scmnet.mean`, :func:`scmnet.patch`), or the values themselves, shape (2, L, d_model)."""


def measure_prompt(
    lm: LanguageModel,
    ids: torch.Tensor,
    token: int,
    draws: Sequence[Draw] | torch.Tensor,
    *,
    prompt: int = 0,
    chunk: int | None = None,
    memory: int | None = None,
    values: SiteValues | None = None,
) -> PromptMeasures:
    """Measure one prompt: the clean run and every ablation of every layer, in one query.

    The measures are one :func:`scmnet.effect_table` query of the traced model
    (:func:`~scmnet.adapters.transformer.causal.hydra_model`): a treatment do(A^k_t = a~) for
    every layer, block and draw of a~; its outcome is :func:`readouts`, which reads every run at
    once. The engine recomputes only the final position of each row from its ablated layer on
    (``scmnet.tracing.engine.staircase``); the table's reference world is the clean run.

    Parameters
    ----------
    lm : LanguageModel
        The model.
    ids : tensor, shape (1, T)
        The prompt's token ids.
    token : int
        i, the token read out (the clean top-1 token).
    draws : sequence of rules or tensors, or a tensor of shape (K, 2, L, d_model)
        The ablation values of each draw j: a rule that every site resolves (``sn.zero()``,
        ``sn.mean(prompts)``, ``sn.patch(donor)``), or the values, ``draws[j][b, k]`` replacing
        contribution (b, k).
    prompt : int
        The prompt's index, recorded in the result.
    chunk : int, optional
        At most this many rows per batched execution (bounds memory); default all at once.
    memory : int, optional
        A budget in bytes for the activations one batched execution holds (see
        :func:`scmnet.effect_table`); default none.
    values : scmnet.SiteValues, optional
        Readings of other prompts that mean and patch rules read
        (:func:`~.causal.recorded_readings`); without it, those prompts are run.

    Returns
    -------
    PromptMeasures
    """
    model = hydra_model(lm)
    n = lm.n_layers
    treatments = layer_treatments(lm, draws)
    runs = query_runs(
        model, lm, ids, treatments, readouts(lm, token), chunk=chunk, memory=memory, values=values
    )
    check_identity(runs[:, -2], runs[:, -1], treatments, prompt=prompt)
    direct = runs[:, : 2 * n].reshape(1 + len(treatments), 2, n)
    return PromptMeasures.from_rows(prompt, token, runs[:, -3], direct, runs[:, -4])


def layer_treatments(
    lm: LanguageModel, draws: Sequence[Draw] | torch.Tensor
) -> list[dict[Site, Any]]:
    """The ablations of a layer sweep, block-major then layer then draw: do(A^l_t = a~) with
    a~ from each draw (a rule, or the values ``draws[j][b, l]``)."""
    last = (slice(None), -1)
    treatments: list[dict[Site, Any]] = []
    for b in Block:
        for layer in range(lm.n_layers):
            where = Site(lm.module_path(layer, b.label), index=last)
            treatments += [{where: d if isinstance(d, Rule) else d[b, layer]} for d in draws]
    return treatments


def query_runs(
    model: TracedModel,
    lm: LanguageModel,
    ids: torch.Tensor,
    treatments: Sequence[dict[Site, Any]],
    outcome: Outcome,
    *,
    chunk: int | None,
    memory: int | None,
    values: SiteValues | None,
) -> np.ndarray:
    """One :func:`scmnet.effect_table` query of a prompt's ablations: the outcome of every run
    on the host, the clean run first, then one row per treatment."""
    table = sn.effect_table(
        model,
        treatments,
        outcome,
        context={"input_ids": ids.to(lm.device)},
        chunk=chunk,
        memory=memory,
        values=values,
    )
    return np.asarray(torch.cat([table.reference[:1], table.treated]).cpu().numpy())


def readout_rows(lm: LanguageModel, token: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The two readout rows of token i, in float32 on the model's device.

    ``W_U[i] - mean W_U`` reads the centred logit off the normed residual (eq. 9), and
    ``s G (W_U[i] - mean W_U)`` reads a contribution's direct effect times its run's final-norm
    scale (eq. 10; centred for a LayerNorm, which centres every contribution:
    ``(c - mean c) . r = c . (r - mean r)``).
    """
    w_bar = (lm.unembedding[token].float() - lm.unembedding_mean).to(lm.device)
    rows = w_bar * lm.norm_gain.to(lm.device) * lm.readout.scale
    if lm.norm_kind is NormKind.LAYER:
        rows = rows - rows.mean()
    return w_bar, rows


def readouts(lm: LanguageModel, token: int) -> Outcome:
    """The readouts of a run, as one batched outcome of the traced model.

    For every run it returns, in float64, the unembedding impacts of every a^l_t and m^l_t
    (attention first; eqs. 10, 13), the final-norm scale sigma and the centred logit of i
    (eq. 9). The centred logit is the normed residual times ``W_U[i] - mean W_U``; the
    unembedding impact of a contribution is the contribution times ``G (W_U[i] - mean W_U)``
    over the run's own sigma (times the logit scale, if any). These are dot products, so the
    readout of every run of a query is a handful of matrix products. Where the model softcaps
    its logits, both are read through the exact readout over the whole vocabulary instead, the
    unembedding impact being minus the direct effect of zeroing the contribution with sigma and
    every other variable held (the ``readout`` module, eqs. 19-20, 25).

    Two more columns check each run: the gap between the centred logit (before any softcap)
    and the sum of the layers' direct effects, the embedding's and the bias terms, and the
    rounding bound of that gap; :func:`measure_prompt` raises where a gap exceeds its bound
    (:func:`~.readout_identity.check_identity`).
    """
    read = (0, -1)
    contributions = contribution_sites(lm, index=read)
    sigma = Site(f"{lm.spec.final_norm.path}.scale", index=read)
    normed = Site(lm.spec.final_norm.path, index=read)
    w_bar, rows = readout_rows(lm, token)
    gain = lm.norm_gain.to(lm.device)
    readout = lm.readout
    bias = lm.centred_bias(token)
    unembedding_bias = lm.unembedding_bias

    constant = constant_part(lm, w_bar, token)
    relative = rounding(lm, len(contributions))
    n = lm.n_layers

    def read_runs(*values: torch.Tensor) -> torch.Tensor:
        # each (runs, d_model), sigma (runs, 1); a device map leaves each on its layer's device
        *found, scale, z, first = (v.to(rows.device) for v in values)
        s = scale.reshape(-1).float()
        before_cap = ((z.float() @ w_bar).double() + bias) * readout.scale
        gap, bound = identity_columns(
            first=first,
            later=[found[b * n + layer] for b in range(2) for layer in range(1, n)],
            rows=rows,
            sigma=s,
            logit=before_cap,
            constant=constant,
            relative=relative,
        )
        if readout.linear:
            dots = torch.stack([c.float() @ rows for c in found], dim=1)  # (runs, 2L)
            direct = dots / s[:, None]
            logit = before_cap
        else:  # a softcap: the exact readout over the whole vocabulary (see .readout)
            parts = torch.stack([c.float() for c in found], dim=1)  # (runs, 2L, d)
            if lm.norm_kind is NormKind.LAYER:
                parts = parts - parts.mean(-1, keepdim=True)
            w = lm.unembedding.float().to(rows.device)
            x = z.float() @ w.T  # (runs, vocab): W_U h + b
            if unembedding_bias is not None:
                x = x + unembedding_bias.float().to(x.device)
            direct = direct_impacts(readout, x, parts / s[:, None, None] * gain, w, token)
            logit = centred_logit(readout, x, token).double()
        columns = [s.double()[:, None], logit[:, None], gap[:, None], bound[:, None]]
        return torch.cat([direct.double(), *columns], 1)

    sites = (*contributions, sigma, normed, first_layer_site(lm, read))
    return Outcome(sites, read_runs, "Hydra readouts", batched=True)
