"""Aggregate statistics of a Hydra sweep over prompts (Figures 2, 7 and 8 of the paper).

:class:`HydraResults` stacks the per-prompt measures and computes, per layer:

* the mean unembedding and ablation impacts, their Pearson correlation across prompts, and the
  share of prompts with Delta_unembed > Delta_ablate (Figure 2d);
* the regression of the compensatory effect CE on the ablated layer's direct effect DE (its
  clean unembedding impact): slope, intercept and R^2 (Figures 7 and 8), with scipy;
* the split of CE into the responses of attention and MLP layers (Figure 8);
* erasure candidates: MLP layers whose mean direct effect opposes the prediction, and how that
  erasure is attenuated when attention layers are ablated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from .engine import Block
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
    share_unembed_gt_ablate: float
    ce_mean: float
    ce_attn_mean: float
    ce_mlp_mean: float
    own_delta_mean: float
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

    def fit(self, block: Block, layer: int) -> LinearFit:
        """The regression of CE on DE for ablations of (block, layer) across prompts."""
        return linear_fit(self.unembed[:, block, layer], self.compensation[:, block, layer])

    @cached_property
    def layers(self) -> list[LayerStats]:
        """Per-layer statistics, attention layers first."""
        rows = []
        for b in Block:
            for layer in range(self.n_layers):
                u, a = self.unembed[:, b, layer], self.ablate[:, b, layer]
                fit = self.fit(b, layer)
                split = self.compensation_split[:, b, layer]
                rows.append(
                    LayerStats(
                        block=b.label,
                        layer=layer,
                        unembed_mean=float(u.mean()),
                        ablate_mean=float(a.mean()),
                        correlation=_pearson(u, a),
                        share_unembed_gt_ablate=float((u > a).mean()),
                        ce_mean=float(self.compensation[:, b, layer].mean()),
                        ce_attn_mean=float(split[:, 0].mean()),
                        ce_mlp_mean=float(split[:, 1].mean()),
                        own_delta_mean=float(self.own_delta[:, b, layer].mean()),
                        slope=fit.slope,
                        intercept=fit.intercept,
                        r2=fit.r2,
                    )
                )
        return rows

    def restored_share(self, block: Block, layer: int) -> float:
        """The mean share of the ablated layer's direct-effect drop that CE restores.

        ``sum(CE) / -sum(own Delta DE)`` over prompts, for ablations of (block, layer).
        """
        drop = -self.own_delta[:, block, layer].sum()
        return float(self.compensation[:, block, layer].sum() / drop) if drop else float("nan")

    def erasure_mlps(self) -> list[dict[str, Any]]:
        """MLP layers whose mean direct effect is negative (they push the prediction down).

        For each: the mean Delta_unembed, and the mean change of its direct effect when the
        attention layers upstream of it are ablated (positive: the erasure is attenuated).
        """
        mask = downstream_mask(self.n_layers, parallel=self.parallel)
        found = []
        for layer in range(self.n_layers):
            mean = float(self.unembed[:, Block.MLP, layer].mean())
            if mean >= 0:
                continue
            upstream = [k for k in range(self.n_layers) if mask[Block.ATTN, k, Block.MLP, layer]]
            response = (
                float(self.delta_de[:, Block.ATTN, upstream, Block.MLP, layer].mean())
                if upstream
                else float("nan")
            )
            found.append({"layer": layer, "unembed_mean": mean, "delta_de_after_attn": response})
        return found

    def summary(self) -> dict[str, Any]:
        """The headline numbers, as a JSON-ready dict."""
        best: dict[str, Any] = {}
        for b in Block:
            stats = [s for s in self.layers if s.block == b.label and not np.isnan(s.r2)]
            if stats:
                top = max(stats, key=lambda s: s.r2)
                best[b.label] = {
                    "layer": top.layer,
                    "r2": top.r2,
                    "slope": top.slope,
                    "restored_share": self.restored_share(b, top.layer),
                }
        u, a = self.unembed.ravel(), self.ablate.ravel()
        return {
            "prompts": len(self),
            "layers": self.n_layers,
            "correlation_all_layers": _pearson(u, a),
            "share_unembed_gt_ablate": float((u > a).mean()),
            "strongest_compensation": best,
            "erasure_mlps": self.erasure_mlps(),
        }
