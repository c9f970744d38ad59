"""Ablation values a~ for do(A^k_t = a~) (Appendix A of the Hydra-effect paper, eqs. 35-39).

* zero ablation, a~ = 0 (eq. 35);
* mean ablation, a~ = E_u[A(u)], the mean over the prompt set (eq. 36);
* noise ablation, a~ = A(u + eps) with eps ~ N(0, s^2) added to the input embeddings of every
  position (eq. 37); s defaults to 3 standard deviations of the embedding matrix, as in causal
  tracing (Meng et al., 2022);
* resample ablation, a~ = A(u') for other prompts u' of the same set (eq. 38), the paper's
  default, with 15 patches whose effects are averaged (eq. 39) -- not the same as mean ablation.

An :class:`Ablation` is the setting. Its values are the core's rules, resolved by the effect
query (:func:`scmnet.effect_table`): :func:`scmnet.zero`, :func:`scmnet.mean` over the analysed
prompts, and for resample ablation one :func:`scmnet.patch` per draw, from the K donor prompts
that :func:`donors` picks. Mean and patch values read the clean pass's readings, recorded in a
:class:`scmnet.SiteValues` memo (:func:`~.causal.recorded_readings`), so no prompt runs twice.
Noise values A(u + eps) are the readings of runs with noised embeddings
(:func:`noised_contributions`), given to the query as plain values.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import torch

from scmnet.errors import InvalidIntervention

from .causal import noised_readings
from .lm import LanguageModel

__all__ = [
    "Ablation",
    "AblationKind",
    "donors",
    "embedding_std",
    "noised_contributions",
]


class AblationKind(enum.Enum):
    """How a~ is chosen: the names of the core's rules (``sn.zero``, ``sn.mean``, ...)."""

    ZERO = "zero"
    MEAN = "mean"
    NOISE = "noise"
    RESAMPLE = "resample"


@dataclass(frozen=True)
class Ablation:
    """An ablation setting.

    Parameters
    ----------
    kind : AblationKind
        zero, mean, noise or resample (default, as in the paper).
    patches : int
        K, the number of draws averaged for noise and resample ablation (eq. 39).
    seed : int
        Seed of the draws.
    noise_scale : float
        For noise ablation: the standard deviation of eps in units of the standard deviation of
        the embedding matrix.

    Examples
    --------
    >>> Ablation().draws
    15
    >>> Ablation(AblationKind.ZERO).draws
    1
    """

    kind: AblationKind = AblationKind.RESAMPLE
    patches: int = 15
    seed: int = 0
    noise_scale: float = 3.0

    def __post_init__(self) -> None:
        if not isinstance(self.kind, AblationKind):
            raise InvalidIntervention(
                f"unknown ablation {self.kind!r}; choose one of "
                f"{', '.join(k.value for k in AblationKind)}"
            )
        if self.patches < 1:
            raise InvalidIntervention(f"patches must be >= 1, got {self.patches}")
        if not self.noise_scale > 0:
            raise InvalidIntervention(f"noise_scale must be > 0, got {self.noise_scale}")

    @property
    def draws(self) -> int:
        """How many ablation values each site gets: K for noise/resample, 1 otherwise."""
        return self.patches if self.kind in (AblationKind.NOISE, AblationKind.RESAMPLE) else 1


def donors(prompt: int, pool: int, ablation: Ablation) -> np.ndarray:
    """The K prompts whose activations patch ``prompt`` (resample ablation, equation 38).

    Drawn without replacement from the other prompts of a pool of ``pool`` prompts, with a
    generator seeded by ``(ablation.seed, prompt)`` so that every prompt's draw is reproducible
    on its own (a resumed sweep draws the same patches). Fewer than K other prompts are
    refused: a silent cap would make K a lie.

    Examples
    --------
    >>> donors(2, 5, Ablation(patches=2)).tolist()
    [0, 3]
    """
    others = np.array([i for i in range(pool) if i != prompt])
    if len(others) == 0:
        raise InvalidIntervention(
            "resample ablation needs at least two prompts (one to patch from); use a larger "
            "prompt set or --ablation zero/mean"
        )
    if ablation.patches > len(others):
        raise InvalidIntervention(
            f"{ablation.patches} resample draws asked for, but prompt {prompt} has only "
            f"{len(others)} other prompts to draw from; ask for {len(others)} or fewer"
        )
    rng = np.random.default_rng([ablation.seed, prompt])
    return np.sort(rng.choice(others, size=ablation.patches, replace=False))


def noised_contributions(
    lm: LanguageModel, ids: torch.Tensor, prompt: int, ablation: Ablation, *, heads: bool = False
) -> torch.Tensor:
    """A(u + eps) at the final position for K noise draws (eq. 37): shape (K, 2, L, d_model),
    or every head's, (K, L, H, d_model), with ``heads``.

    The noise is added to the input embeddings of every position of the prompt; a prompt's
    noise is the same draw for layers and heads.
    """
    scale = ablation.noise_scale * embedding_std(lm)
    generator = torch.Generator().manual_seed(int(ablation.seed) * 1_000_003 + prompt)
    eps = torch.randn((ablation.patches, int(ids.shape[1]), lm.d_model), generator=generator)
    return noised_readings(lm, ids, eps * scale, heads=heads)


def embedding_std(lm: LanguageModel) -> float:
    """The standard deviation of the token embeddings as the model uses them.

    Families that scale their embeddings (Gemma multiplies by sqrt(d_model)) are measured
    after that scale.
    """
    embed = lm.model.get_submodule(lm.spec.embed)
    weight = lm.parameter(f"{lm.spec.embed}.weight").detach().float()
    return float(weight.std()) * float(getattr(embed, "embed_scale", 1.0))
