"""Anti-erasure in the last MLP: neurons that push the logit back up when a unit is ablated.

Rushing & Nanda (2024, "Explorations of Self-Repair in Language Models", arXiv 2402.15390)
find part of self-repair in the last layer's MLP, neuron by neuron: when an earlier unit is
ablated, some neurons' direct effects on the logit grow ("anti-erasure") while others shrink.
With the last MLP split by neuron (:mod:`~.neurons`), neuron n's direct effect in a run, read
with the clean run's final-norm scale sigma_c (as self-repair reads every direct effect,
:mod:`~.selfrepair`), is ``act_n W[:, n] . s G (W_U[i] - mean W_U) / sigma_c`` (eq. 10), and for
every ablated unit k and draw::

    AE_k = sum_n max(0, DE_n(ablated) - DE_n(clean))

the clamped positive change of direct effect over the neurons. ``total`` is the same sum
unclamped, the last MLP's whole change of direct effect at the clean scale (its SR_MLP share
from the last layer). The last MLP's own ablation replaces its output after the neurons, so
its row is 0.

Examples
--------
>>> import numpy as np
>>> clamped_sums(np.array([[1.0, -1.0, 0.5], [2.0, -3.0, 1.0]]))  # the clean run first
(array([1.5]), array([-0.5]))
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scmnet import Outcome, Site, SiteValues

from .ablations import Ablation
from .causal import hydra_model
from .lm import LanguageModel
from .measures import Draw, _damaged, _read_arrays, layer_treatments, query_runs, readout_rows
from .neurons import neuron_layout, neurons_path
from .sweep import (
    AblationValues,
    CleanRun,
    Progress,
    _no_progress,
    each_prompt,
    prompt_draws,
    saved,
)

__all__ = [
    "AntiErasure",
    "anti_erasure",
    "anti_erasure_folder",
    "clamped_sums",
    "neuron_readouts",
    "run_anti_erasure_sweep",
]


@dataclass(frozen=True)
class AntiErasure:
    """The last MLP's anti-erasure for every ablated unit of one prompt.

    Attributes
    ----------
    positive : ndarray, shape (2, L, K)
        AE: the sum over the last MLP's neurons of their clamped positive change of direct
        effect, per block (attention first), layer and draw.
    total : ndarray, shape (2, L, K)
        The same sum unclamped.
    neurons : int
        N, the last MLP's width.
    """

    positive: np.ndarray
    total: np.ndarray
    neurons: int

    def save(self, path: str | Path) -> None:
        """Write the arrays to an ``.npz`` file."""
        np.savez(path, positive=self.positive, total=self.total, neurons=np.int64(self.neurons))

    @classmethod
    def load(cls, path: str | Path, *, layers: int, draws: int) -> AntiErasure:
        """Read what :meth:`save` wrote, checking the shapes.

        Raises
        ------
        DamagedFile
            If the file cannot be read, or holds another number of layers or draws; the
            message names the file to delete.
        """
        found = _read_arrays(Path(path), ["positive", "total", "neurons"])
        shape = (2, layers, draws)
        for name in ("positive", "total"):
            if found[name].shape != shape:
                raise _damaged(path, f"has {name!r} of shape {found[name].shape}, expected {shape}")
        return cls(found["positive"], found["total"], int(found["neurons"]))


def neuron_readouts(lm: LanguageModel, token: int) -> Outcome:
    """Each run's last-MLP neurons times the readout row (not yet over a scale), and sigma."""
    neuron_layout(lm, lm.n_layers - 1)  # refuses a family whose MLP is not additive
    read = (0, -1)
    _, rows = readout_rows(lm, token)
    neurons = Site(neurons_path(lm, lm.n_layers - 1), index=read)
    sigma = Site(f"{lm.spec.final_norm.path}.scale", index=read)

    def read_runs(found: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        dots = found.to(rows.device).float() @ rows  # (runs, N)
        return torch.cat([dots.double(), scale.reshape(-1, 1).double().to(dots.device)], 1)

    return Outcome((neurons, sigma), read_runs, "last MLP neuron readouts", batched=True)


def clamped_sums(de: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Of direct effects ``de`` (runs, N), the clean run first: each later run's sum over
    neurons of its clamped positive change, and of its change."""
    delta = de[1:] - de[0]
    return np.clip(delta, 0.0, None).sum(-1), delta.sum(-1)


def anti_erasure(
    lm: LanguageModel,
    ids: torch.Tensor,
    token: int,
    draws: Sequence[Draw] | torch.Tensor,
    *,
    chunk: int | None = None,
    memory: int | None = None,
    values: SiteValues | None = None,
) -> AntiErasure:
    """The last MLP's anti-erasure for every unit and draw of a layer sweep of one prompt.

    Parameters
    ----------
    lm, ids, token, draws, chunk, memory, values
        As for :func:`~.measures.measure_prompt`: the same ablations, in the same order.

    Returns
    -------
    AntiErasure

    Raises
    ------
    UnsupportedModel
        If the last MLP reaches the residual through a norm (:func:`~.neurons.neuron_layout`).
    """
    treatments = layer_treatments(lm, draws)
    outcome = neuron_readouts(lm, token)
    runs = query_runs(
        hydra_model(lm, neurons=True),
        lm,
        ids,
        treatments,
        outcome,
        chunk=chunk,
        memory=memory,
        values=values,
    )
    sigma_clean = runs[0, -1]
    positive, total = clamped_sums(runs[:, :-1] / sigma_clean)
    shape = (2, lm.n_layers, len(treatments) // (2 * lm.n_layers))
    return AntiErasure(positive.reshape(shape), total.reshape(shape), runs.shape[1] - 1)


def anti_erasure_folder(out: str | Path) -> Path:
    """Where a sweep's per-prompt anti-erasure is: ``out/anti_erasure``."""
    return Path(out) / "anti_erasure"


def run_anti_erasure_sweep(
    lm: LanguageModel,
    clean: CleanRun,
    ablation: Ablation,
    out: str | Path,
    *,
    chunk: int | None = None,
    memory: int | None = None,
    progress: Progress[Any] = _no_progress,
) -> list[AntiErasure]:
    """Run (or resume) the anti-erasure of every kept prompt of a layer sweep.

    The same ablations as the layer sweep (same draws, seed and donors,
    ``sweep.prompt_draws``); each prompt's result is written to
    ``anti_erasure/NNNNN.npz`` as it is done, atomically, and an interrupted run resumes with
    the prompts whose file is missing (``scmnet hydra --anti-erasure``).

    Raises
    ------
    UnsupportedModel
        If the last MLP reaches the residual through a norm (:func:`~.neurons.neuron_layout`).
    DamagedFile
        If a saved file cannot be read back, or holds another number of layers or draws.
    """
    neuron_layout(lm, lm.n_layers - 1)  # refuse an unsupported family before any work
    folder = anti_erasure_folder(out)
    folder.mkdir(parents=True, exist_ok=True)

    @functools.cache
    def ablation_values() -> AblationValues:  # built once, if a prompt is computed
        return AblationValues.of(lm, clean)

    def compute(j: int) -> AntiErasure:
        values = ablation_values()
        draws = prompt_draws(lm, clean, ablation, values, j)
        found = anti_erasure(
            lm,
            clean.ids[j],
            clean.tokens[j],
            draws,
            chunk=chunk,
            memory=memory,
            values=values.readings,
        )
        hydra_model(lm, neurons=True).clear_cache()  # the prompt's clean run is not read again
        return saved(found, folder, j)

    return each_prompt(
        len(clean),
        folder,
        lambda j, path: AntiErasure.load(path, layers=lm.n_layers, draws=ablation.draws),
        compute,
        progress=progress,
        description="anti-erasure",
    )
