"""Self-repair decomposed (Rushing & Nanda 2024, arXiv 2402.15390), for every ablated layer.

Ablating a unit k (an attention or MLP layer) changes the centred logit of the clean top-1
token i by Delta_ablate,k (eq. 12). Had the rest of the network not reacted, the change would be
the unit's own change of direct effect. With both direct effects read with the **clean** run's
final-norm scale sigma_c:

    SR_k = Delta_ablate,k - (DE_k(ablated) - DE_k(clean))

is the self-repair: the part of the change that the rest of the network took back. It splits
into what each kind of downstream unit did and what the final norm did:

* SR_attn = sum over the other attention layers l of DE_l(ablated) - DE_l(clean);
* SR_MLP = the same over the other MLP layers;
* SR_norm = SR - SR_attn - SR_MLP: the change of the final norm's scale. In a run whose scale
  is sigma_a, every direct effect and the embedding's share of the logit are read over sigma_a,
  not sigma_c, so SR_norm = (1 - sigma_a / sigma_c) (logit_a - B), with B the logit's constant
  part (the final norm's bias and the unembedding bias through the readout row): the identity
  that ``tests/test_selfrepair.py`` checks on every family.

The Hydra sweep stores every direct effect of every ablated run with that run's own scale
(eq. 13); the clean-scale reading is that times sigma_a / sigma_c, exactly, for a linear
readout. Under a softcapped readout (Gemma 2) direct effects are not rescaled by sigma alone,
and SR_norm then also holds the readout's curvature.

Two estimators of a unit's share of self-repair over prompts, as in the paper (one prompt is
one token here: the final position):

* the **clipped share**: the mean over prompts of clip(SR / DE, 0, 1), DE the unit's clean
  direct effect;
* the **ratio of means**: mean(SR) / mean(DE).

Either can keep only the prompts where the unit's clean direct effect is in its top ``top``
fraction (the paper looks at the top 2% of tokens by a head's direct effect).

Examples
--------
>>> import numpy as np
>>> de = np.array([2.0, 1.0, 4.0, -1.0])
>>> sr = np.array([1.0, 2.0, 1.0, 0.5])
>>> shares(de, sr)  # clip(0.5, 2, 0.25, -0.5) = (0.5, 1, 0.25, 0); ratio 4.5 / 6
(0.4375, 0.75)
>>> shares(de, sr, top=0.5)  # the prompts of DE 4 and 2
(0.375, 0.3333333333333333)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from scmnet.errors import InvalidArgument

from .families import Block
from .measures import PromptMeasures

__all__ = [
    "FIELDS",
    "SelfRepair",
    "by_head",
    "by_layer",
    "check_top",
    "self_repair",
    "shares",
]

#: The decomposition's parts, in the order of ``selfrepair.csv``'s columns.
FIELDS = ("de", "ablate", "own", "total", "attn", "mlp", "norm")


@dataclass(frozen=True, eq=False)
class SelfRepair:
    """The self-repair of every ablated layer of one prompt, averaged over draws (equation 39).

    Every array has shape (2, L): ``[b, k]`` is the ablation of block b (attention 0, MLP 1) of
    layer k.

    Attributes
    ----------
    de : ndarray
        DE_k(clean): the ablated unit's clean direct effect (Delta_unembed, eq. 10).
    ablate : ndarray
        Delta_ablate,k (eq. 12).
    own : ndarray
        DE_k(ablated) - DE_k(clean), both with the clean scale.
    total : ndarray
        SR = ablate - own.
    attn, mlp, norm : ndarray
        SR_attn, SR_MLP and SR_norm, summing to ``total``.
    """

    de: np.ndarray
    ablate: np.ndarray
    own: np.ndarray
    total: np.ndarray
    attn: np.ndarray
    mlp: np.ndarray
    norm: np.ndarray

    @classmethod
    def of_draws(
        cls,
        de: np.ndarray,
        ablate: np.ndarray,
        own: np.ndarray,
        attn: np.ndarray,
        mlp: np.ndarray,
    ) -> SelfRepair:
        """The decomposition averaged over draws (eq. 39), from per-draw arrays whose last axis
        is the draw: Delta_ablate, the unit's own change and the attention units' and MLP
        layers' changes (clean scale); SR and SR_norm follow from them. ``de``: per unit."""
        total = ablate - own
        return cls(
            de=np.asarray(de, dtype=float),
            ablate=ablate.mean(-1),
            own=own.mean(-1),
            total=total.mean(-1),
            attn=attn.mean(-1),
            mlp=mlp.mean(-1),
            norm=(total - attn - mlp).mean(-1),
        )


def self_repair(m: PromptMeasures) -> SelfRepair:
    """The self-repair decomposition of every ablation of one prompt's measures.

    Examples
    --------
    One layer, one draw. The clean logit 3.0 is the attention's 1.0, the MLP's 1.5 and the
    embedding's 0.5, over sigma_c = 2. Ablating the MLP halves the scale, which doubles the
    other shares: the logit stays 3.0, all of it repaired by the norm.

    >>> import numpy as np
    >>> m = PromptMeasures(0, 0, clean_logit=3.0, clean_sigma=2.0,
    ...     unembed=np.array([[1.0], [1.5]]),
    ...     ablated_logit=np.array([2.0, 3.0]).reshape(2, 1, 1),
    ...     ablated_unembed=np.array([[0.0, 1.5], [2.0, 0.0]]).reshape(2, 1, 1, 2, 1),
    ...     ablated_sigma=np.array([2.0, 1.0]).reshape(2, 1, 1))
    >>> sr = self_repair(m)
    >>> [float(x[1, 0]) for x in (sr.ablate, sr.own, sr.total, sr.attn, sr.mlp, sr.norm)]
    [0.0, -1.5, 1.5, 0.0, 0.0, 1.5]
    """
    rescale = m.ablated_sigma / m.clean_sigma  # (2, L, K): sigma_a / sigma_c
    clean_scale = m.ablated_unembed * rescale[..., None, None]  # (2, L, K, 2, L)
    delta = clean_scale - m.unembed[None, None, None]  # every unit's change of DE, per draw
    ablate = m.ablate_per_draw  # (2, L, K)
    b, k = np.indices(ablate.shape[:2])  # the ablated unit of each (b, k)
    own = delta[b, k, :, b, k]  # (2, L, K): the ablated unit's own change
    by_kind = delta.sum(-1)  # (2, L, K, 2): summed over the layers of each kind
    by_kind[b, k, :, b] -= own  # the other units of each kind
    return SelfRepair.of_draws(
        m.unembed, ablate, own, by_kind[..., Block.ATTN], by_kind[..., Block.MLP]
    )


def check_top(top: float | None) -> float | None:
    """``top``, checked: ``None`` or a fraction of prompts in (0, 1].

    Raises
    ------
    InvalidArgument
        If ``top`` is anything else.

    Examples
    --------
    >>> check_top(0.02)
    0.02
    >>> check_top(2)
    Traceback (most recent call last):
    ...
    scmnet.errors.InvalidArgument: top must be a fraction in (0, 1], e.g. 0.02 for the top 2%, got 2
    """
    if top is not None and (
        isinstance(top, bool) or not (isinstance(top, float | int) and 0 < top <= 1)
    ):
        raise InvalidArgument(
            f"top must be a fraction in (0, 1], e.g. 0.02 for the top 2%, got {top!r}"
        )
    return top


def shares(de: np.ndarray, sr: np.ndarray, *, top: float | None = None) -> tuple[float, float]:
    """A unit's share of self-repair over prompts: (clipped share, ratio of means).

    Parameters
    ----------
    de, sr : ndarray, shape (P,)
        The unit's clean direct effect and its self-repair, per prompt.
    top : float, optional
        Keep the prompts whose ``de`` is in its top ``top`` fraction (at least one prompt),
        e.g. 0.02 for the top 2%. Default: every prompt.

    Returns
    -------
    tuple of float
        The mean of clip(SR / DE, 0, 1) over the prompts (a prompt with DE = 0 counts as 0),
        and mean(SR) / mean(DE) (NaN where mean(DE) is 0).

    Raises
    ------
    InvalidArgument
        If ``top`` is not in (0, 1], or the arrays differ in shape or are empty.
    """
    de, sr = np.asarray(de, dtype=float), np.asarray(sr, dtype=float)
    if de.shape != sr.shape or de.ndim != 1 or de.size == 0:
        raise InvalidArgument(
            f"de and sr must be one value per prompt, of the same length, got shapes "
            f"{de.shape} and {sr.shape}"
        )
    if top is not None:
        check_top(top)
        keep = max(1, math.ceil(top * de.size))
        order = np.argsort(-de, kind="stable")[:keep]
        de, sr = de[order], sr[order]
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(de != 0, np.clip(sr / de, 0.0, 1.0), 0.0)
    mean_de = float(de.mean())
    ratio = float(sr.mean()) / mean_de if mean_de != 0 else math.nan
    return float(share.mean()), ratio


def by_layer(
    parts: Sequence[SelfRepair], *, top: float | None = None
) -> list[dict[str, float | int | str]]:
    """Per ablated layer, over prompts: the mean of each part and the unit's two shares.

    ``parts`` holds one :func:`self_repair` per prompt. One dict per (block, layer), attention
    first: ``block``, ``layer``, the mean over prompts of each of :data:`FIELDS`,
    ``clipped_share`` and ``ratio_of_means`` (:func:`shares`, with ``top``).

    Raises
    ------
    InvalidArgument
        If ``parts`` is empty.
    """
    rows = _by_unit(parts, top)
    for row in rows:
        b, layer = row.pop("unit")
        row["block"], row["layer"] = Block(b).label, layer
    return [_first(row, "block", "layer") for row in rows]


def by_head(
    parts: Sequence[SelfRepair], *, top: float | None = None
) -> list[dict[str, float | int | str]]:
    """Per ablated head, over prompts: :func:`~scmnet.adapters.transformer.selfrepair.by_layer`
    for heads. ``parts`` have shape (L, H) (one
    :meth:`~.head_measures.HeadMeasures.self_repair` per prompt); one dict per (layer, head),
    layer-major, with ``layer`` and ``head``; ``attn`` is SR_heads.

    Raises
    ------
    InvalidArgument
        If ``parts`` is empty.
    """
    rows = _by_unit(parts, top)
    for row in rows:
        row["layer"], row["head"] = row.pop("unit")
    return [_first(row, "layer", "head") for row in rows]


def _by_unit(parts: Sequence[SelfRepair], top: float | None) -> list[dict[str, Any]]:
    if not parts:
        raise InvalidArgument("no prompts: the self-repair table needs at least one")
    stacked = {f: np.stack([getattr(p, f) for p in parts]) for f in FIELDS}  # (P, *units)
    rows: list[dict[str, Any]] = []
    for unit in np.ndindex(stacked["de"].shape[1:]):
        at = (slice(None), *unit)
        row: dict[str, Any] = {"unit": tuple(int(i) for i in unit)}
        row.update({f: float(stacked[f][at].mean()) for f in FIELDS})
        row["clipped_share"], row["ratio_of_means"] = shares(
            stacked["de"][at], stacked["total"][at], top=top
        )
        rows.append(row)
    return rows


def _first(row: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {**{k: row[k] for k in keys}, **{k: v for k, v in row.items() if k not in keys}}
