"""Aggregate statistics of a Hydra sweep over prompts (Figures 2, 7 and 8 of the paper).

:class:`HydraResults` stacks the per-prompt measures and computes, per layer:

* the mean unembedding and ablation impacts, the Pearson correlation across prompts of the
  unembedding impact with the ablation *drop* -Delta_ablate, and the share of prompts whose
  unembedding impact exceeds the drop (Figure 2d). Eq. 12 defines Delta_ablate as the change of
  the logit (negative when the layer helps); the paper's comparison -- "we would expect the
  ablation-based measure to be greater than or equal to the unembedding measure" -- is between
  the unembedding impact and the size of the drop, so that is what is compared here;
* the decomposition of every ablation impact (exact, by construction):
  Delta_ablate = own Delta DE (the ablated layer's) + CE (the downstream layers', eq. 33)
  + the rest (the layers upstream, whose contributions change only through the final norm's
  scale sigma, and the embedding);
* the regression of the compensatory effect CE on the ablated layer's direct effect DE (its
  clean unembedding impact): slope, intercept and R^2 (Figures 7 and 8), with scipy;
* the split of CE into the responses of attention and MLP layers (Figure 8);
* erasure candidates: MLP layers whose direct effect rises when an upstream attention layer is
  ablated (their push against the prediction weakens).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from .families import Block
from .measures import PromptMeasures, downstream_mask

__all__ = ["HydraResults", "LayerStats", "linear_fit"]


@dataclass(frozen=True)
class LinearFit:
    """A least-squares line y = slope x + intercept, with R^2 and the number of points."""

    slope: float
    intercept: float
    r2: float
    n: int


def linear_fit(x: np.ndarray, y: np.ndarray) -> LinearFit:
    """Regress y on x with :func:`scipy.stats.linregress` (NaN where x is constant).

    >>> linear_fit(np.array([0.0, 1.0, 2.0]), np.array([1.0, 3.0, 5.0])).slope
    2.0
    """
    from scipy import stats

    if len(x) < 3 or np.ptp(x) == 0:
        return LinearFit(float("nan"), float("nan"), float("nan"), len(x))
    fit = stats.linregress(x, y)
    return LinearFit(float(fit.slope), float(fit.intercept), float(fit.rvalue**2), len(x))


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


@dataclass(frozen=True)
class LayerStats:
    """Statistics of one ablated/read layer (one row of ``layers.csv``)."""

    block: str
    layer: int
    unembed_mean: float
    ablate_mean: float
    correlation: float
    share_unembed_gt_drop: float
    ce_mean: float
    ce_attn_mean: float
    ce_mlp_mean: float
    own_delta_mean: float
    rest_mean: float
    slope: float
    intercept: float
    r2: float


class HydraResults:
    """The measures of every analysed prompt, stacked, with the paper's statistics.

    Parameters
    ----------
    measures : sequence of PromptMeasures
        One per prompt, all with the same number of layers and draws.
    parallel : bool
        Whether the model's blocks are parallel (changes which MLPs are downstream, eq. 33).
    """

    def __init__(self, measures: Sequence[PromptMeasures], *, parallel: bool) -> None:
        if not measures:
            raise ValueError("HydraResults needs at least one prompt's measures")
        self.measures = tuple(measures)
        self.parallel = parallel
        self.n_layers = measures[0].n_layers

    def __len__(self) -> int:
        return len(self.measures)

    @cached_property
    def unembed(self) -> np.ndarray:
        """Delta_unembed: (prompts, 2, L)."""
        return np.stack([m.unembed for m in self.measures])

    @cached_property
    def ablate(self) -> np.ndarray:
        """Delta_ablate averaged over draws: (prompts, 2, L)."""
        return np.stack([m.ablate for m in self.measures])

    @cached_property
    def delta_de(self) -> np.ndarray:
        """Delta DE: (prompts, 2, L, 2, L) (eq. 34)."""
        return np.stack([m.delta_de for m in self.measures])

    @cached_property
    def compensation(self) -> np.ndarray:
        """CE: (prompts, 2, L) (eq. 33)."""
        return np.stack([m.compensation(parallel=self.parallel) for m in self.measures])

    @cached_property
    def compensation_split(self) -> np.ndarray:
        """CE by compensating block: (prompts, 2, L, 2) (Figure 8)."""
        return np.stack([m.compensation_split(parallel=self.parallel) for m in self.measures])

    @cached_property
    def own_delta(self) -> np.ndarray:
        """Delta DE of the ablated layer itself: (prompts, 2, L)."""
        idx = np.arange(self.n_layers)
        return np.stack([self.delta_de[:, b, idx, b, idx] for b in (Block.ATTN, Block.MLP)], axis=1)

    @cached_property
    def rest(self) -> np.ndarray:
        """Delta_ablate - own Delta DE - CE: what sigma does to the rest: (prompts, 2, L)."""
        return np.asarray(self.ablate - self.own_delta - self.compensation)

    def fit(self, block: Block, layer: int) -> LinearFit:
        """The regression of CE on DE for ablations of (block, layer) across prompts."""
        return linear_fit(self.unembed[:, block, layer], self.compensation[:, block, layer])

    @cached_property
    def layers(self) -> list[LayerStats]:
        """Per-layer statistics, attention layers first."""
        rows = []
        for b in Block:
            for layer in range(self.n_layers):
                u, drop = self.unembed[:, b, layer], -self.ablate[:, b, layer]
                fit = self.fit(b, layer)
                split = self.compensation_split[:, b, layer]
                rows.append(
                    LayerStats(
                        block=b.label,
                        layer=layer,
                        unembed_mean=float(u.mean()),
                        ablate_mean=float(-drop.mean()),
                        correlation=_pearson(u, drop),
                        share_unembed_gt_drop=float((u > drop).mean()),
                        ce_mean=float(self.compensation[:, b, layer].mean()),
                        ce_attn_mean=float(split[:, 0].mean()),
                        ce_mlp_mean=float(split[:, 1].mean()),
                        own_delta_mean=float(self.own_delta[:, b, layer].mean()),
                        rest_mean=float(self.rest[:, b, layer].mean()),
                        slope=fit.slope,
                        intercept=fit.intercept,
                        r2=fit.r2,
                    )
                )
        return rows

    def restored_share(self, block: Block, layer: int) -> float:
        """``sum(CE) / -sum(own Delta DE)`` over prompts, for ablations of (block, layer).

        The share of the ablated layer's own loss of direct effect that the downstream layers
        give back: positive when they compensate, negative when they deepen the loss. NaN when
        the layer loses no direct effect on average.
        """
        loss = -self.own_delta[:, block, layer].sum()
        if loss <= 0:
            return float("nan")
        return float(self.compensation[:, block, layer].sum() / loss)

    def erasure_mlps(self, top: int = 5) -> list[dict[str, Any]]:
        """MLP layers that push back less when an upstream attention layer is ablated.

        An erasure MLP (Section 2.5.2 of the paper) opposes what the attention layers before it
        write: ablate one of them and the MLP's direct effect rises. For every MLP layer, the
        upstream attention ablation after which its direct effect rises most on average (mean
        Delta DE); the ``top`` layers with a positive rise, largest first, with their mean direct
        effect.
        """
        mask = downstream_mask(self.n_layers, parallel=self.parallel)
        mean = self.delta_de.mean(0)  # (2, L, 2, L)
        found = []
        for layer in range(self.n_layers):
            upstream = [k for k in range(self.n_layers) if mask[Block.ATTN, k, Block.MLP, layer]]
            if not upstream:
                continue
            k = max(upstream, key=lambda j: mean[Block.ATTN, j, Block.MLP, layer])
            rise = float(mean[Block.ATTN, k, Block.MLP, layer])
            if rise > 0:
                found.append(
                    {
                        "layer": layer,
                        "unembed_mean": float(self.unembed[:, Block.MLP, layer].mean()),
                        "after_attention": k,
                        "delta_de": rise,
                    }
                )
        return sorted(found, key=lambda e: -e["delta_de"])[:top]

    def summary(self) -> dict[str, Any]:
        """The headline numbers, as a JSON-ready dict."""
        u, drop = self.unembed.ravel(), -self.ablate.ravel()
        blocks: dict[str, Any] = {}
        for b in Block:
            stats = [s for s in self.layers if s.block == b.label]
            largest = max(stats, key=lambda s: -s.ablate_mean)
            fitted = [s for s in stats if not np.isnan(s.r2)]
            best = max(fitted, key=lambda s: s.r2) if fitted else None
            blocks[b.label] = {
                "largest_drop": {
                    "layer": largest.layer,
                    "drop": -largest.ablate_mean,
                    "unembed": largest.unembed_mean,
                    "own_delta_de": largest.own_delta_mean,
                    "ce": largest.ce_mean,
                    "ce_attn": largest.ce_attn_mean,
                    "ce_mlp": largest.ce_mlp_mean,
                    "rest": largest.rest_mean,
                    "restored_share": self.restored_share(b, largest.layer),
                },
                "best_fit": None
                if best is None
                else {"layer": best.layer, "r2": best.r2, "slope": best.slope},
                "compensated_layers": [
                    s.layer for s in stats if s.unembed_mean > 0 and s.share_unembed_gt_drop > 0.5
                ],
            }
        hydra = [s for s in self.layers if s.block == "attn" and s.ce_attn_mean > 0]
        return {
            "prompts": len(self),
            "layers": self.n_layers,
            "correlation_unembed_drop": _pearson(u, drop),
            "share_unembed_gt_drop": float((u > drop).mean()),
            "blocks": blocks,
            "hydra_attention": sorted(
                (
                    {
                        "layer": s.layer,
                        "attention_response": s.ce_attn_mean,
                        "mlp_response": s.ce_mlp_mean,
                    }
                    for s in hydra
                ),
                key=lambda d: -d["attention_response"],
            )[:5],
            "erasure_mlps": self.erasure_mlps(),
        }
