"""Aggregate statistics of a Hydra sweep over prompts (Figures 2, 7 and 8 of the paper).

Every quantity follows the one sign convention of the Hydra page (its table "sign
convention"): with i the clean top-1 token and every logit centred (eq. 9),

* ``unembed`` -- the **unembedding impact** Delta_unembed (eq. 10): the layer's clean
  contribution to the centred logit of i through the final norm (its scale sigma held) and the
  unembedding; positive when the layer helps. It is minus the direct effect of a zero ablation
  of the layer (eqs. 25-28);
* ``ablate`` -- the **ablation impact** Delta_ablate (eq. 12): the centred logit after the
  ablation minus the clean one, averaged over draws (eq. 39); negative when the layer helps.
  It is the total effect of the ablation;
* ``drop`` = -Delta_ablate, positive when the layer helps;
* ``own_delta_de`` -- **own Delta DE**: eq. 34 for the ablated layer itself, the change of its
  own unembedding impact under the ablation (for a zero ablation exactly -Delta_unembed, the
  direct effect of the ablation, eqs. 27-28);
* ``ce`` -- the **compensatory effect** CE (eq. 33): the summed Delta DE of the downstream
  layers; positive when they make up for the loss, negative when they deepen it;
* ``rest`` = Delta_ablate - own Delta DE - CE: the layers that are neither ablated nor
  downstream (upstream, or parallel) and the embedding, which change only through the final
  norm's scale.

So Delta_ablate = own Delta DE + CE + rest, exactly, for every prompt and ablation.
:class:`HydraResults` stacks the per-prompt measures and computes, per layer:

* the means of all of them, the Pearson correlation across prompts of the unembedding impact
  with the drop, and the share of prompts whose unembedding impact exceeds the drop (Figure
  2d: "we would expect the ablation-based measure to be greater than or equal to the
  unembedding measure" compares the unembedding impact with the size of the drop);
* the regression of CE on the ablated layer's unembedding impact Delta_unembed (what the
  paper's Figure 7 calls its direct effect DE(a^l, u)): slope, intercept and R^2 (Figures 7
  and 8), with scipy;
* the split of CE into the responses of the downstream attention and MLP layers (Figure 8);
* the **restored share** CE / (-own Delta DE), the share of the ablated layer's own loss of
  direct effect that the downstream layers give back -- undefined (NaN) where that loss is
  indistinguishable from 0 (:meth:`HydraResults.restored_share_note`);
* erasure candidates: MLP layers whose direct effect rises when an upstream attention layer is
  ablated (their push against the prediction weakens).

Every mean, correlation and :math:`R^2` carries a confidence interval from a percentile bootstrap
over prompts (:func:`scmnet.intervals.bootstrap`: one set of resampled prompts, seeded, for all
the statistics), and every slope its t-based interval (:func:`scmnet.intervals.slope_interval`).
The same measures and seed give the same intervals, bit for bit.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from scmnet import intervals as ci
from scmnet.intervals import Interval

from .families import Block
from .measures import PromptMeasures, downstream_mask

__all__ = ["INTERVAL_FIELDS", "HydraResults", "LayerStats", "linear_fit"]


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


#: The statistics of :class:`LayerStats` that carry an interval (``<name>_low``, ``<name>_high``).
INTERVAL_FIELDS = (
    "unembed_mean",
    "ablate_mean",
    "correlation_unembed_drop",
    "share_unembed_gt_drop",
    "ce_mean",
    "ce_attn_mean",
    "ce_mlp_mean",
    "own_delta_de_mean",
    "rest_mean",
    "ce_on_unembed_slope",
    "ce_on_unembed_r2",
)


@dataclass(frozen=True)
class LayerStats:
    """Statistics of one ablated/read layer (one row of ``layers.csv``).

    The names follow the module's sign convention: ``unembed_mean`` (Delta_unembed),
    ``ablate_mean`` (Delta_ablate; the drop is its negative), ``own_delta_de_mean``,
    ``ce_mean`` (split into ``ce_attn_mean`` and ``ce_mlp_mean``) and ``rest_mean``, with
    ``ablate_mean = own_delta_de_mean + ce_mean + rest_mean``; ``correlation_unembed_drop``
    and ``share_unembed_gt_drop`` compare Delta_unembed with the drop (Figure 2d);
    ``ce_on_unembed_slope``, ``ce_on_unembed_intercept`` and ``ce_on_unembed_r2`` are the
    regression of CE on Delta_unembed (Figure 7).

    Each ``<name>_low``, ``<name>_high`` pair is the confidence interval of ``<name>`` at the
    results' level (``HydraResults.level``): a bootstrap over prompts for the means, the
    correlation, the share and :math:`R^2`, t-based for the slope; NaN for too few prompts.
    """

    block: str
    layer: int
    unembed_mean: float
    unembed_mean_low: float
    unembed_mean_high: float
    ablate_mean: float
    ablate_mean_low: float
    ablate_mean_high: float
    correlation_unembed_drop: float
    correlation_unembed_drop_low: float
    correlation_unembed_drop_high: float
    share_unembed_gt_drop: float
    share_unembed_gt_drop_low: float
    share_unembed_gt_drop_high: float
    ce_mean: float
    ce_mean_low: float
    ce_mean_high: float
    ce_attn_mean: float
    ce_attn_mean_low: float
    ce_attn_mean_high: float
    ce_mlp_mean: float
    ce_mlp_mean_low: float
    ce_mlp_mean_high: float
    own_delta_de_mean: float
    own_delta_de_mean_low: float
    own_delta_de_mean_high: float
    rest_mean: float
    rest_mean_low: float
    rest_mean_high: float
    ce_on_unembed_slope: float
    ce_on_unembed_slope_low: float
    ce_on_unembed_slope_high: float
    ce_on_unembed_intercept: float
    ce_on_unembed_r2: float
    ce_on_unembed_r2_low: float
    ce_on_unembed_r2_high: float


def _bounds(iv: Interval, name: str) -> dict[str, float]:
    """``{name + "_low": low, name + "_high": high}`` of a scalar interval."""
    return {f"{name}_low": float(iv.low), f"{name}_high": float(iv.high)}


class HydraResults:
    """The measures of every analysed prompt, stacked, with the paper's statistics.

    Parameters
    ----------
    measures : sequence of PromptMeasures
        One per prompt, all with the same number of layers and draws.
    parallel : bool
        Whether the model's blocks are parallel (changes which MLPs are downstream, eq. 33).
    seed : int
        The seed of the bootstrap over prompts (a report uses the sweep's seed).
    level : float
        The confidence level of every interval.
    resamples : int
        The number of bootstrap resamples.
    """

    def __init__(
        self,
        measures: Sequence[PromptMeasures],
        *,
        parallel: bool,
        seed: int = 0,
        level: float = 0.95,
        resamples: int = 2000,
    ) -> None:
        if not measures:
            raise ValueError("HydraResults needs at least one prompt's measures")
        self.measures = tuple(measures)
        self.parallel = parallel
        self.n_layers = measures[0].n_layers
        self.seed = seed
        self.level = level
        self.resamples = resamples

    def __len__(self) -> int:
        return len(self.measures)

    @cached_property
    def unembed(self) -> np.ndarray:
        """The unembedding impact Delta_unembed (eq. 10): (prompts, 2, L); positive when the
        layer helps."""
        return np.stack([m.unembed for m in self.measures])

    @cached_property
    def ablate(self) -> np.ndarray:
        """The ablation impact Delta_ablate (eq. 12) averaged over draws: (prompts, 2, L);
        negative when the layer helps."""
        return np.stack([m.ablate for m in self.measures])

    @property
    def drop(self) -> np.ndarray:
        """The drop -Delta_ablate: (prompts, 2, L); positive when the layer helps."""
        return np.asarray(-self.ablate)

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
    def own_delta_de(self) -> np.ndarray:
        """Own Delta DE: eq. 34 for the ablated layer itself, (prompts, 2, L); negative when
        the ablation takes away a helpful contribution."""
        idx = np.arange(self.n_layers)
        return np.stack([self.delta_de[:, b, idx, b, idx] for b in (Block.ATTN, Block.MLP)], axis=1)

    @cached_property
    def rest(self) -> np.ndarray:
        """Delta_ablate - own Delta DE - CE: (prompts, 2, L).

        What the layers neither ablated nor downstream and the embedding contribute to the
        ablation impact: they change only through the final norm's scale sigma.
        """
        return np.asarray(self.ablate - self.own_delta_de - self.compensation)

    def fit(self, block: Block, layer: int) -> LinearFit:
        """The regression of CE on the ablated layer's unembedding impact Delta_unembed (the
        paper's "direct effect" DE(a^l, u) of Figure 7) for ablations of (block, layer)."""
        return linear_fit(self.unembed[:, block, layer], self.compensation[:, block, layer])

    def _bootstrap(self, data: np.ndarray, statistic: ci.Statistic | None = None) -> Interval:
        """The bootstrap interval over prompts (the first axis of ``data``)."""
        return ci.bootstrap(
            data, statistic, level=self.level, resamples=self.resamples, seed=self.seed
        )

    @cached_property
    def intervals(self) -> dict[str, Interval]:
        """The interval of every statistic in ``INTERVAL_FIELDS``, bounds of shape (2, L).

        One set of resampled prompts (the seed's) serves every statistic.
        """
        split = self.compensation_split
        drop = self.drop
        per_prompt = {
            "unembed_mean": self.unembed,
            "ablate_mean": self.ablate,
            "share_unembed_gt_drop": (self.unembed > drop).astype(np.float64),
            "ce_mean": self.compensation,
            "ce_attn_mean": split[..., 0],
            "ce_mlp_mean": split[..., 1],
            "own_delta_de_mean": self.own_delta_de,
            "rest_mean": self.rest,
        }
        found = self._bootstrap(np.stack(list(per_prompt.values()), axis=1))  # (prompts, 8, 2, L)
        out = {name: found.at(i) for i, name in enumerate(per_prompt)}
        kw: dict[str, Any] = {"level": self.level, "resamples": self.resamples, "seed": self.seed}
        out["correlation_unembed_drop"] = ci.correlation_interval(self.unembed, drop, **kw)
        out["ce_on_unembed_r2"] = ci.r2_interval(self.unembed, self.compensation, **kw)
        out["ce_on_unembed_slope"] = ci.slope_interval(
            self.unembed, self.compensation, level=self.level
        )
        return {name: out[name] for name in INTERVAL_FIELDS}

    @cached_property
    def layers(self) -> list[LayerStats]:
        """Per-layer statistics, attention layers first."""
        rows = []
        for b in Block:
            for layer in range(self.n_layers):
                u, drop = self.unembed[:, b, layer], self.drop[:, b, layer]
                fit = self.fit(b, layer)
                split = self.compensation_split[:, b, layer]
                values = {
                    "unembed_mean": float(u.mean()),
                    "ablate_mean": float(-drop.mean()),
                    "correlation_unembed_drop": _pearson(u, drop),
                    "share_unembed_gt_drop": float((u > drop).mean()),
                    "ce_mean": float(self.compensation[:, b, layer].mean()),
                    "ce_attn_mean": float(split[:, 0].mean()),
                    "ce_mlp_mean": float(split[:, 1].mean()),
                    "own_delta_de_mean": float(self.own_delta_de[:, b, layer].mean()),
                    "rest_mean": float(self.rest[:, b, layer].mean()),
                    "ce_on_unembed_slope": fit.slope,
                    "ce_on_unembed_r2": fit.r2,
                }
                bounds: dict[str, float] = {}
                for name in INTERVAL_FIELDS:
                    bounds.update(_bounds(self.intervals[name].at((b, layer)), name))
                rows.append(
                    LayerStats(
                        block=b.label,
                        layer=layer,
                        ce_on_unembed_intercept=fit.intercept,
                        **values,
                        **bounds,
                    )
                )
        return rows

    @cached_property
    def restored_shares(self) -> tuple[np.ndarray, Interval]:
        """:meth:`restored_share` of every layer, (2, L), and its bootstrap interval (NaN
        where the share is undefined)."""
        data = np.stack([self.compensation, self.own_delta_de], axis=1)  # (prompts, 2, 2, L)

        def share(m: np.ndarray) -> np.ndarray:
            loss = -m[:, 1]
            with np.errstate(all="ignore"):
                return np.where(loss > 0, m[:, 0] / loss, np.nan)

        value = np.array([[self.restored_share(b, k) for k in range(self.n_layers)] for b in Block])
        found = self._bootstrap(data, share)
        undefined = np.isnan(value)
        low = np.where(undefined, np.nan, np.asarray(found.low, dtype=float))
        high = np.where(undefined, np.nan, np.asarray(found.high, dtype=float))
        return value, dataclasses.replace(found, low=low, high=high)

    @cached_property
    def pooled(self) -> dict[str, tuple[float, Interval]]:
        """The correlation of the unembedding impact with the drop, and the share of
        unembedding impacts above the drop, over all layers and prompts, with intervals
        from a bootstrap over prompts (a prompt's layers stay together)."""
        u, drop = self.unembed.reshape(len(self), -1), -self.ablate.reshape(len(self), -1)
        flat = ci.moments(u.ravel(), drop.ravel()).reshape(len(self), -1, 5)
        per_prompt = flat.mean(1)  # (prompts, 5): each prompt's mean moments
        above = (u > drop).mean(1)
        return {
            "correlation_unembed_drop": (
                _pearson(u.ravel(), drop.ravel()),
                self._bootstrap(per_prompt, ci.pearson),
            ),
            "share_unembed_gt_drop": (float((u > drop).mean()), self._bootstrap(above)),
        }

    def restored_share_note(self, block: Block, layer: int) -> str:
        """Why :meth:`restored_share` is undefined for ablations of (block, layer); ``""`` when
        it is defined.

        The share divides by the layer's own loss of direct effect, -own Delta DE. It is
        undefined when that loss is indistinguishable from 0 -- its confidence interval (the
        bootstrap interval of the mean own Delta DE) contains 0 -- since a ratio to a
        denominator that may be 0 can be any size (thousands of percent) and any sign; and
        when the layer loses nothing on average (own Delta DE >= 0). Without an interval (fewer
        than two prompts) only the second rule applies.
        """
        own = self.own_delta_de[:, block, layer]
        iv = self.intervals["own_delta_de_mean"].at((block, layer))
        low, high = float(iv.low), float(iv.high)
        if not (math.isnan(low) or math.isnan(high)) and low <= 0 <= high:
            return "the layer's own loss is indistinguishable from 0"
        if own.mean() >= 0:
            return "the layer loses no direct effect: its own ΔDE is not negative on average"
        return ""

    def restored_share(self, block: Block, layer: int) -> float:
        """``mean(CE) / -mean(own Delta DE)`` over prompts, for ablations of (block, layer).

        The share of the ablated layer's own loss of direct effect that the downstream layers
        give back: positive when they compensate, negative when they deepen the loss. NaN when
        it is undefined (:meth:`restored_share_note` says why).
        """
        if self.restored_share_note(block, layer):
            return float("nan")
        loss = -self.own_delta_de[:, block, layer].mean()
        return float(self.compensation[:, block, layer].mean() / loss)

    def erasure_mlps(self, top: int = 5) -> list[dict[str, Any]]:
        """MLP layers that push back less when an upstream attention layer is ablated.

        An erasure MLP (Section 2.5.2 of the paper) opposes what the attention layers before it
        write: ablate one of them and the MLP's direct effect rises. For every MLP layer, the
        upstream attention ablation after which its direct effect rises most on average (mean
        Delta DE); the ``top`` layers with a positive rise, largest first, with their mean direct
        effect, and the intervals of both (``delta_de_low``, ...).
        """
        mask = downstream_mask(self.n_layers, parallel=self.parallel)
        mean = self.delta_de.mean(0)  # (2, L, 2, L)
        found: list[dict[str, Any]] = []
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
        chosen = sorted(found, key=lambda e: -e["delta_de"])[:top]
        if chosen:
            rises = self._bootstrap(
                np.stack(
                    [
                        self.delta_de[:, Block.ATTN, e["after_attention"], Block.MLP, e["layer"]]
                        for e in chosen
                    ],
                    axis=1,
                )
            )
            impact = self.intervals["unembed_mean"]
            for i, e in enumerate(chosen):
                e.update(_bounds(impact.at((Block.MLP, e["layer"])), "unembed_mean"))
                e.update(_bounds(rises.at(i), "delta_de"))
        return chosen

    def interval_settings(self) -> dict[str, Any]:
        """How the intervals were made, and why they are missing (``note``) if they are."""
        reason = self.intervals["unembed_mean"].reason
        return {
            "level": self.level,
            "method": f"{ci.BOOTSTRAP} over prompts",
            "resamples": self.resamples,
            "seed": self.seed,
            "slope_method": "t (from the slope's standard error)",
            "note": reason if len(self) < 2 else "",
        }

    def summary(self) -> dict[str, Any]:
        """The headline numbers, as a JSON-ready dict.

        Every number ``x`` that is a mean, a share, a correlation, a slope or an :math:`R^2`
        comes with its interval, ``x_low`` and ``x_high``; ``intervals`` says how they were
        made (:meth:`interval_settings`). The names follow the sign convention of the module's
        docstring: per block, ``largest_drop`` holds ``ablate`` = ``own_delta_de`` + ``ce`` +
        ``rest``, ``drop`` = -``ablate``, and ``restored_share`` (NaN where undefined, with
        ``restored_share_note`` saying why); ``best_ce_on_unembed_fit`` is the most linear
        regression of CE on the unembedding impact.
        """
        iv = self.intervals
        shares, share_iv = self.restored_shares
        mask = downstream_mask(self.n_layers, parallel=self.parallel)
        blocks: dict[str, Any] = {}
        for b in Block:
            stats = [s for s in self.layers if s.block == b.label]
            largest = max(stats, key=lambda s: -s.ablate_mean)
            at = (b, largest.layer)
            fitted = [s for s in stats if not np.isnan(s.ce_on_unembed_r2)]
            best = max(fitted, key=lambda s: s.ce_on_unembed_r2) if fitted else None
            blocks[b.label] = {
                "largest_drop": {
                    "layer": largest.layer,
                    "downstream_layers": int(mask[b, largest.layer].sum()),
                    "ablate": largest.ablate_mean,
                    **_bounds(iv["ablate_mean"].at(at), "ablate"),
                    "drop": -largest.ablate_mean,
                    **_bounds(-iv["ablate_mean"].at(at), "drop"),
                    "unembed": largest.unembed_mean,
                    **_bounds(iv["unembed_mean"].at(at), "unembed"),
                    "own_delta_de": largest.own_delta_de_mean,
                    **_bounds(iv["own_delta_de_mean"].at(at), "own_delta_de"),
                    "ce": largest.ce_mean,
                    **_bounds(iv["ce_mean"].at(at), "ce"),
                    "ce_attn": largest.ce_attn_mean,
                    **_bounds(iv["ce_attn_mean"].at(at), "ce_attn"),
                    "ce_mlp": largest.ce_mlp_mean,
                    **_bounds(iv["ce_mlp_mean"].at(at), "ce_mlp"),
                    "rest": largest.rest_mean,
                    **_bounds(iv["rest_mean"].at(at), "rest"),
                    "restored_share": float(shares[at]),
                    **_bounds(share_iv.at(at), "restored_share"),
                    "restored_share_note": self.restored_share_note(*at),
                },
                "best_ce_on_unembed_fit": None
                if best is None
                else {
                    "layer": best.layer,
                    "r2": best.ce_on_unembed_r2,
                    "r2_low": best.ce_on_unembed_r2_low,
                    "r2_high": best.ce_on_unembed_r2_high,
                    "slope": best.ce_on_unembed_slope,
                    "slope_low": best.ce_on_unembed_slope_low,
                    "slope_high": best.ce_on_unembed_slope_high,
                },
                "compensated_layers": [
                    s.layer for s in stats if s.unembed_mean > 0 and s.share_unembed_gt_drop > 0.5
                ],
            }
        hydra = [s for s in self.layers if s.block == "attn" and s.ce_attn_mean > 0]
        correlation, correlation_iv = self.pooled["correlation_unembed_drop"]
        share, above_iv = self.pooled["share_unembed_gt_drop"]
        return {
            "prompts": len(self),
            "layers": self.n_layers,
            "intervals": self.interval_settings(),
            "correlation_unembed_drop": correlation,
            **_bounds(correlation_iv, "correlation_unembed_drop"),
            "share_unembed_gt_drop": share,
            **_bounds(above_iv, "share_unembed_gt_drop"),
            "blocks": blocks,
            "hydra_attention": sorted(
                (
                    {
                        "layer": s.layer,
                        "ce_attn": s.ce_attn_mean,
                        "ce_attn_low": s.ce_attn_mean_low,
                        "ce_attn_high": s.ce_attn_mean_high,
                        "ce_mlp": s.ce_mlp_mean,
                        "ce_mlp_low": s.ce_mlp_mean_low,
                        "ce_mlp_high": s.ce_mlp_mean_high,
                    }
                    for s in hydra
                ),
                key=lambda d: -d["ce_attn"],
            )[:5],
            "erasure_mlps": self.erasure_mlps(),
        }
