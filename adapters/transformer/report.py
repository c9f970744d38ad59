"""The Hydra report: figures in the spirit of the paper's, every number in CSV, a JSON summary.

:func:`write_report` writes, into the sweep's output directory:

* ``fig1_ablation_example.png`` -- per-layer unembedding impacts of one prompt, clean and after
  ablating one attention layer: one thin line per patch and their mean (Figures 1 and 3);
* ``fig2_unembed_vs_ablate.png`` -- unembedding impacts Delta_unembed and ablation drops
  (-Delta_ablate) per layer (per prompt and mean), and per layer their correlation and the
  share of prompts whose unembedding impact exceeds the drop (Figure 2);
* ``fig7_compensation.png`` -- the compensatory effect CE against the ablated layer's
  unembedding impact Delta_unembed (the paper's "direct effect"), coloured by depth, for
  attention and MLP ablations, and the slope and R^2 of CE on Delta_unembed by layer
  (Figure 7);
* ``fig8_compensation_split.png`` -- CE split into the Delta DE of the downstream attention and
  MLP layers after each ablation, with the ablated layer's own Delta DE (Figure 8);
* ``fig_distributions.png`` -- per layer, the spread over prompts of the ablation drop and of
  the compensatory effect (box plots), with the mean and its interval;
* ``prompts.csv`` (one row per prompt and ablated/read layer: ``unembed``, ``ablate``,
  ``drop``, ``own_delta_de``, ``ce``, ``ce_attn``, ``ce_mlp``, ``rest``), ``layers.csv``
  (per-layer statistics, :class:`~scmnet.adapters.transformer.analysis.LayerStats`, each
  with its interval: ``<name>_low``, ``<name>_high``), ``patches.csv`` (the ablation impact
  ``ablate`` of every draw), ``selfrepair.csv`` (one row per prompt and ablated layer: the
  self-repair decomposition of Rushing & Nanda 2024, ``de``, ``ablate``, ``own``, ``sr`` =
  ``sr_attn`` + ``sr_mlp`` + ``sr_norm``; :mod:`~scmnet.adapters.transformer.selfrepair`;
  with ``--anti-erasure`` also ``anti_erasure`` and ``last_mlp_change``);
* ``summary.json`` (the exact settings, package versions and headline numbers, with their
  intervals) and ``summary.md`` (the findings in words).

Every name and sign follows the convention of
:mod:`~scmnet.adapters.transformer.analysis`: ``ablate`` = ``own_delta_de`` + ``ce`` +
``rest`` for every row of ``prompts.csv``, and ``drop`` = -``ablate``.

Every mean is shown with its confidence interval (bands and error bars in the figures, brackets
in ``summary.md``): a percentile bootstrap over prompts seeded with the sweep's seed, so that the
same measures and seed give the same report, interval for interval
(:class:`~scmnet.adapters.transformer.analysis.HydraResults`).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from scmnet.errors import require
from scmnet.intervals import Interval

from .analysis import HydraResults
from .anti_erasure import AntiErasure
from .families import Block
from .head_measures import HeadMeasures
from .identity import package_versions
from .measures import PromptMeasures
from .output_folder import atomic, write_atomic
from .prompts import PromptSet
from .selfrepair import FIELDS, SelfRepair, by_head, by_layer, check_top, self_repair
from .sweep import CleanRun, SweepSettings

__all__ = ["DPI", "write_report"]

DPI = 150
"""The resolution of every figure of the report, in dots per inch (readable on a projector)."""


def _strict(value: Any) -> Any:
    """``value`` as strict JSON: numpy numbers as Python ones, NaN and infinities as ``null``
    (a bare ``NaN`` is not JSON, and strict parsers reject the file).

    >>> _strict({"slope": float("nan"), "r2": np.float64(0.5), "xs": [1, float("inf")]})
    {'slope': None, 'r2': 0.5, 'xs': [1, None]}
    """
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    if isinstance(value, np.ndarray):
        return _strict(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _figure(rows: int, cols: int, size: tuple[float, float]) -> Any:
    require("matplotlib", "plots")
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.subplots(rows, cols, squeeze=False)


def _band(ax: Any, x: np.ndarray, iv: Interval, color: str, alpha: float = 0.25) -> None:
    """Shade the interval ``iv`` (bounds along ``x``) around a plotted mean."""
    low, high = np.asarray(iv.low, dtype=float), np.asarray(iv.high, dtype=float)
    ax.fill_between(x, low, high, color=color, alpha=alpha, lw=0)


def _errors(value: np.ndarray, iv: Interval) -> np.ndarray:
    """Matplotlib's ``yerr`` (distances below and above ``value``) for the interval ``iv``."""
    low, high = np.asarray(iv.low, dtype=float), np.asarray(iv.high, dtype=float)
    return np.asarray(np.nan_to_num(np.stack([value - low, high - value]), nan=0.0).clip(min=0.0))


def _level(results: HydraResults) -> str:
    return f"{results.level:.0%} CI"


def _example_prompt(results: HydraResults) -> tuple[int, int]:
    """The prompt and attention layer with the strongest single compensation (for Figure 1)."""
    ce = results.compensation[:, Block.ATTN]  # (prompts, L)
    p, k = np.unravel_index(int(np.argmax(ce)), ce.shape)
    return int(p), int(k)


def _fig1(results: HydraResults, text: str, path: Path) -> None:
    p, k = _example_prompt(results)
    m = results.measures[p]
    layers = np.arange(results.n_layers)
    fig, axes = _figure(1, 2, (11, 4))
    for col, b in enumerate(Block):
        ax = axes[0, col]
        for j in range(m.ablated_unembed.shape[2]):
            ax.plot(
                layers, m.ablated_unembed[Block.ATTN, k, j, b], color="tab:red", alpha=0.2, lw=0.8
            )
        ax.plot(
            layers, m.unembed_after[Block.ATTN, k, b], color="tab:red", lw=2, label="ablated (mean)"
        )
        ax.plot(layers, m.unembed[b], color="black", lw=2, label="clean")
        ax.axvline(k, color="grey", ls=":", lw=1)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set(xlabel="layer", ylabel="unembedding impact Δunembed", title=f"{b.label} layers")
        ax.legend(fontsize=8)
    fig.suptitle(f"Ablating attention layer {k}: {text!r} (thin lines: one per patch)", fontsize=10)
    with atomic(path) as tmp:
        fig.savefig(tmp, dpi=DPI)


def _fig2(results: HydraResults, path: Path) -> None:
    layers = np.arange(results.n_layers)
    iv = results.intervals
    fig, axes = _figure(2, 3, (15, 8))
    for row, b in enumerate(Block):
        for col, (data, name, bounds) in enumerate(
            [
                (results.unembed, "unembedding impact Δunembed", iv["unembed_mean"]),
                (results.drop, "drop −Δablate", -iv["ablate_mean"]),
            ]
        ):
            ax = axes[row, col]
            for prompt in data[:, b]:
                ax.plot(layers, prompt, color="grey", alpha=0.15, lw=0.6)
            _band(ax, layers, bounds.at(b), "tab:blue")
            ax.plot(layers, data[:, b].mean(0), color="tab:blue", lw=2, label="mean")
            ax.axhline(0, color="black", lw=0.5)
            ax.set(xlabel="layer", ylabel=name, title=f"{b.label}: {name}")
            ax.legend(fontsize=8, title=f"band: {_level(results)}", title_fontsize=8)
        stats = [s for s in results.layers if s.block == b.label]
        ax = axes[row, 2]
        for field, label, colour in (
            ("correlation_unembed_drop", "correlation of Δunembed and drop", "tab:blue"),
            ("share_unembed_gt_drop", "share of prompts with Δunembed > drop", "tab:orange"),
        ):
            _band(ax, layers, iv[field].at(b), colour)
            ax.plot(layers, [getattr(s, field) for s in stats], label=label, color=colour)
        ax.set(xlabel="layer", ylim=(-1.05, 1.05), title=f"{b.label}: agreement")
        ax.axhline(0, color="black", lw=0.5)
        ax.legend(fontsize=8)
    fig.suptitle("Unembedding impact Δunembed vs drop −Δablate (cf. Figure 2)")
    with atomic(path) as tmp:
        fig.savefig(tmp, dpi=DPI)


def _fig7(results: HydraResults, path: Path) -> None:
    require("matplotlib", "plots")
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    layers = np.arange(results.n_layers)
    fig, axes = _figure(1, 3, (16, 4.5))
    for col, b in enumerate(Block):
        ax = axes[0, col]
        for layer in layers:
            ax.scatter(
                results.unembed[:, b, layer],
                results.compensation[:, b, layer],
                s=6,
                color=cmap(layer / max(1, results.n_layers - 1)),
            )
        ax.axhline(0, color="black", lw=0.5)
        ax.axvline(0, color="black", lw=0.5)
        ax.set(
            xlabel="unembedding impact Δunembed of the ablated layer",
            ylabel="compensatory effect CE",
            title=f"{b.label} ablations (colour: depth)",
        )
    ax = axes[0, 2]
    for b, style in zip(Block, ("-", "--"), strict=True):
        stats = [s for s in results.layers if s.block == b.label]
        _band(ax, layers, results.intervals["ce_on_unembed_r2"].at(b), "tab:blue")
        r2 = [s.ce_on_unembed_r2 for s in stats]
        ax.plot(layers, r2, style, color="tab:blue", label=f"R² ({b.label})")
        _band(ax, layers, results.intervals["ce_on_unembed_slope"].at(b), "black", alpha=0.12)
        slope = [s.ce_on_unembed_slope for s in stats]
        ax.plot(layers, slope, style, color="black", label=f"slope ({b.label})")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set(
        xlabel="ablated layer",
        title=f"CE on Δunembed, by layer (bands: {_level(results)})",
    )
    ax.legend(fontsize=8)
    fig.suptitle(
        "Compensatory effect CE vs the ablated layer's unembedding impact Δunembed "
        "(the paper's direct effect; cf. Figure 7)"
    )
    with atomic(path) as tmp:
        fig.savefig(tmp, dpi=DPI)


def _fig8(results: HydraResults, path: Path) -> None:
    layers = np.arange(results.n_layers)
    split = results.compensation_split.mean(0)  # (2, L, 2)
    own = results.own_delta_de.mean(0)  # (2, L)
    iv = results.intervals
    fig, axes = _figure(1, 2, (12, 4))
    for col, b in enumerate(Block):
        ax = axes[0, col]
        bars = {"elinewidth": 0.8, "capsize": 2}
        attn_err = _errors(split[b, :, 0], iv["ce_attn_mean"].at(b))
        mlp_err = _errors(split[b, :, 1], iv["ce_mlp_mean"].at(b))
        ax.bar(
            layers - 0.2,
            split[b, :, 0],
            width=0.4,
            yerr=attn_err,
            error_kw=bars,
            label="CE from attention layers",
        )
        ax.bar(
            layers + 0.2,
            split[b, :, 1],
            width=0.4,
            yerr=mlp_err,
            error_kw=bars,
            label="CE from MLP layers",
        )
        _band(ax, layers, iv["own_delta_de_mean"].at(b), "black", alpha=0.12)
        ax.plot(layers, own[b], "k.-", lw=1, label="own ΔDE")
        ax.axhline(0, color="black", lw=0.5)
        ax.set(
            xlabel=f"ablated {b.label} layer",
            ylabel="mean ΔDE",
            title=f"{b.label} ablations",
        )
        ax.legend(fontsize=8)
    fig.suptitle(
        "CE split into the downstream attention and MLP layers' ΔDE, and the ablated "
        "layer's own ΔDE (cf. Figure 8); "
        f"error bars and band: {_level(results)}"
    )
    with atomic(path) as tmp:
        fig.savefig(tmp, dpi=DPI)


def _fig_distributions(results: HydraResults, path: Path) -> None:
    """Per layer, the spread over prompts of the ablation drop and the compensatory effect."""
    n = results.n_layers
    layers = np.arange(n)
    iv = results.intervals
    fig, axes = _figure(4, 1, (min(max(10.0, 0.22 * n + 3), 30.0), 13))
    panels = [
        (results.drop, "drop −Δablate", -iv["ablate_mean"]),
        (results.compensation, "compensatory effect CE", iv["ce_mean"]),
    ]
    for row, b in enumerate(Block):
        for col, (data, name, bounds) in enumerate(panels):
            ax = axes[2 * row + col, 0]
            ax.boxplot(
                data[:, b],
                positions=layers,
                widths=0.6,
                manage_ticks=False,
                patch_artist=True,
                boxprops={"facecolor": "lightsteelblue", "linewidth": 0.8},
                medianprops={"color": "black", "linewidth": 1},
                whiskerprops={"linewidth": 0.8},
                capprops={"linewidth": 0.8},
                flierprops={"marker": ".", "markersize": 3, "alpha": 0.5},
            )
            mean = data[:, b].mean(0)
            ax.errorbar(
                layers,
                mean,
                yerr=_errors(mean, bounds.at(b)),
                fmt="o",
                color="tab:red",
                markersize=3,
                elinewidth=1,
                capsize=2,
                label=f"mean and {_level(results)}",
            )
            ax.axhline(0, color="black", lw=0.5)
            ax.set_xticks(layers if n <= 32 else layers[:: max(1, n // 16)])
            ax.set(
                xlabel=f"ablated {b.label} layer",
                ylabel=name,
                title=f"{b.label} ablations: {name} over {len(results)} prompts",
            )
            ax.legend(fontsize=8, loc="best")
    fig.suptitle(
        "Per-prompt distributions (boxes: quartiles; whiskers: 1.5 IQR; dots: outliers)",
        fontsize=11,
    )
    with atomic(path) as tmp:
        fig.savefig(tmp, dpi=DPI)


def _tables(
    results: HydraResults,
    repairs: Sequence[SelfRepair],
    clean: CleanRun,
    out: Path,
    erasure: Sequence[AntiErasure] = (),
) -> None:
    with atomic(out / "prompts.csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "prompt",
                "set_index",
                "token",
                "block",
                "layer",
                "unembed",
                "ablate",
                "drop",
                "own_delta_de",
                "ce",
                "ce_attn",
                "ce_mlp",
                "rest",
            ]
        )
        for p, m in enumerate(results.measures):
            for b in Block:
                for layer in range(results.n_layers):
                    split = results.compensation_split[p, b, layer]
                    w.writerow(
                        [
                            p,
                            clean.kept[p],
                            m.token,
                            b.label,
                            layer,
                            f"{results.unembed[p, b, layer]:.6g}",
                            f"{results.ablate[p, b, layer]:.6g}",
                            f"{results.drop[p, b, layer]:.6g}",
                            f"{results.own_delta_de[p, b, layer]:.6g}",
                            f"{results.compensation[p, b, layer]:.6g}",
                            f"{split[0]:.6g}",
                            f"{split[1]:.6g}",
                            f"{results.rest[p, b, layer]:.6g}",
                        ]
                    )
    with atomic(out / "layers.csv") as tmp, open(tmp, "w", newline="") as fh:
        rows = [asdict(s) for s in results.layers]
        w2 = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w2.writeheader()
        w2.writerows(rows)
    extra = ["anti_erasure", "last_mlp_change"] if erasure else []
    with atomic(out / "selfrepair.csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["prompt", "set_index", "token", "block", "layer", *_SR_COLUMNS, *extra])
        for p, (m, sr) in enumerate(zip(results.measures, repairs, strict=True)):
            for b in Block:
                for layer in range(results.n_layers):
                    ae = (
                        [
                            f"{erasure[p].positive[b, layer].mean():.6g}",
                            f"{erasure[p].total[b, layer].mean():.6g}",
                        ]
                        if erasure
                        else []
                    )
                    w.writerow(
                        [p, clean.kept[p], m.token, b.label, layer]
                        + [f"{getattr(sr, f)[b, layer]:.6g}" for f in FIELDS]
                        + ae
                    )
    with atomic(out / "patches.csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["prompt", "block", "layer", "draw", "ablate"])
        for p, m in enumerate(results.measures):
            per = m.ablate_per_draw
            for b in Block:
                for layer in range(results.n_layers):
                    for j, v in enumerate(per[b, layer]):
                        w.writerow([p, b.label, layer, j, f"{v:.6g}"])


#: selfrepair.csv's names of :data:`~scmnet.adapters.transformer.selfrepair.FIELDS`.
_SR_COLUMNS = ("de", "ablate", "own", "sr", "sr_attn", "sr_mlp", "sr_norm")


def _self_repair_lines(repairs: Sequence[SelfRepair], top: float | None) -> list[str]:
    """summary.md's self-repair table: the mean parts and the two shares of every layer."""
    among = (
        "every prompt"
        if top is None
        else f"the prompts where the layer's clean direct effect is in its top {top:.0%} "
        f"(--repair-top {top:g})"
    )
    lines = [
        "## Self-repair decomposed (Rushing & Nanda 2024)",
        "With both direct effects read with the clean run's final-norm scale, the self-repair "
        "of an ablated layer is SR = Δ_ablate - own ΔDE = SR_attn + SR_MLP + SR_norm: what the "
        "other attention layers, the other MLP layers and the final norm's change of scale took "
        "back. SR_norm is also the norm-mediated effect of Stolfo et al. (2024), the total "
        "effect minus the direct effect with the final norm's scale frozen. Means over "
        "prompts; the layer's share of self-repair as the mean of clip(SR / DE, 0, 1) and as "
        f"mean(SR) / mean(DE), DE its clean direct effect, over {among}. Every prompt's "
        "numbers: selfrepair.csv.",
        "",
        "| ablated | layer | DE | Δ_ablate | SR | SR_attn | SR_MLP | SR_norm | clipped share "
        "| ratio of means |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_repair_row(row, "block", "layer") for row in by_layer(repairs, top=top)]
    return [*lines, ""]


def _repair_row(row: dict[str, Any], *keys: str) -> str:
    """A self-repair table's row: the unit's ``keys``, the parts' means and the two shares."""
    cells = [row[f] for f in ("de", "ablate", "total", "attn", "mlp", "norm")]
    return (
        "| "
        + " | ".join(str(row[k]) for k in keys)
        + " | "
        + " | ".join(_fmt(float(c), "+.3f") for c in cells)
        + f" | {_fmt(float(row['clipped_share']), '.0%')} | "
        f"{_fmt(float(row['ratio_of_means']), '+.2f')} |"
    )


def _fmt(x: float, spec: str = "+.2f") -> str:
    return "n/a" if math.isnan(x) else format(x, spec)


def _ci(d: dict[str, Any], key: str, spec: str = "+.2f") -> str:
    """``d[key]`` as "x [low, high]" from ``d[key + "_low"]``, ``d[key + "_high"]``; just "x"
    where the interval is missing (NaN), "n/a" where the number is.

    >>> _ci({"ce": -0.5, "ce_low": -0.75, "ce_high": -0.25}, "ce")
    '-0.50 [-0.75, -0.25]'
    >>> _ci({"r2": 0.5, "r2_low": float("nan"), "r2_high": float("nan")}, "r2", ".2f")
    '0.50'
    """
    value, low, high = d[key], d.get(f"{key}_low", math.nan), d.get(f"{key}_high", math.nan)
    text = _fmt(value, spec)
    if math.isnan(value) or math.isnan(low) or math.isnan(high):
        return text
    return f"{text} [{_fmt(low, spec)}, {_fmt(high, spec)}]"


def _interval_line(summary: dict[str, Any]) -> str:
    """The one statement of how the bracketed intervals were made (or why there are none)."""
    iv = summary["intervals"]
    if iv["note"]:
        return f"No confidence intervals: {iv['note']}."
    return (
        f"Numbers in brackets are {iv['level']:.0%} confidence intervals: a percentile "
        f"bootstrap over the {summary['prompts']} analysed prompts ({iv['resamples']} "
        f"resamples, seed {iv['seed']}); for slopes, from the slope's standard error (t)."
    )


def _markdown(
    summary: dict[str, Any],
    results: HydraResults,
    repair_top: float | None = None,
    repairs: Sequence[SelfRepair] | None = None,
    head_rows: Sequence[dict[str, Any]] | None = None,
) -> str:
    s = summary
    settings = s["settings"]
    lines = [
        f"# Hydra-effect analysis of {settings['model']}",
        "",
        f"Prompts: {s['prompts_total']} in {settings['prompts']!r}; the model predicts the "
        f"expected object top-1 for {s['prompts_correct']}; {s['prompts_kept']} of those "
        f"analysed. Ablation: {settings['ablation']} ({settings['patches']} draw(s) per "
        f"ablation, seed {settings['seed']}). Logits are centred (eq. 9); impacts are on the "
        f"clean top-1 token.",
        "",
        _interval_line(s),
        "",
        "## Unembedding impact vs drop (Figure 2)",
        "Signs: the unembedding impact Δ_unembed (eq. 10) and the drop -Δ_ablate are positive "
        "when the layer helps the prediction; the ablation impact Δ_ablate (eq. 12) is then "
        "negative.",
        "",
        f"- Correlation of the unembedding impact Δ_unembed with the drop -Δ_ablate, all "
        f"layers and prompts: {_ci(s, 'correlation_unembed_drop')}.",
        f"- Share of (prompt, layer) pairs whose unembedding impact exceeds the drop (the "
        f"drop is smaller than the layer's own direct contribution): "
        f"{_ci(s, 'share_unembed_gt_drop', '.0%')}.",
        "",
        "## Where the drop comes from (Figures 7-8)",
        "Every ablation impact splits exactly into the ablated layer's own change of direct "
        "effect (own ΔDE), the compensatory effect CE of the downstream layers (eq. 33) and the "
        "rest (upstream layers and the embedding, changed only through the final norm's scale): "
        "Δ_ablate = own ΔDE + CE + rest. Each part is shown with its own sign: negative lowers "
        "the logit (deepens the drop), positive gives back (CE > 0 is compensation).",
        "",
    ]
    for block, info in s["blocks"].items():
        d = info["largest_drop"]
        head = (
            f"- Largest {block} drop: layer {d['layer']}, drop {_ci(d, 'drop', '.2f')} "
            f"(unembedding impact {_ci(d, 'unembed', '.2f')}): Δ_ablate "
            f"{_ci(d, 'ablate')} = own ΔDE {_ci(d, 'own_delta_de')}"
        )
        if d.get("downstream_layers", 1):
            note = d.get("restored_share_note", "")
            if note:
                share = f"undefined ({note})"
            else:
                sense = "they deepen it" if d["restored_share"] < 0 else "they compensate"
                share = f"{_ci(d, 'restored_share', '+.0%')} ({sense})"
            lines.append(
                f"{head} + CE {_ci(d, 'ce')} (attention {_ci(d, 'ce_attn')}, MLP "
                f"{_ci(d, 'ce_mlp')}) + rest {_ci(d, 'rest')}; the share of the layer's own loss "
                f"that the downstream layers give back (CE / -own ΔDE): {share}."
            )
        else:
            lines.append(
                f"{head} + rest {_ci(d, 'rest')}; no layer is downstream of it, so nothing can "
                f"compensate."
            )
        fit = info["best_ce_on_unembed_fit"]
        if fit is not None:
            lines.append(
                f"- CE on the ablated layer's unembedding impact Δ_unembed (the paper's direct "
                f"effect) for {block} ablations is most linear at layer {fit['layer']}: "
                f"R^2 = {_ci(fit, 'r2', '.2f')}, slope {_ci(fit, 'slope')}."
            )
        comp = info["compensated_layers"]
        lines.append(
            f"- {block} layers whose drop is below their (positive) unembedding impact for most "
            f"prompts: {', '.join(map(str, comp)) if comp else 'none'}."
        )
    hydra = s["hydra_attention"]
    if hydra:
        shown = ", ".join(
            f"{h['layer']} ({_ci(h, 'ce_attn', '+.3f')}; MLPs {_ci(h, 'ce_mlp', '+.3f')})"
            for h in hydra
        )
        lines.append(
            f"- Hydra effect, attention ablations after which the downstream attention layers "
            f"gain direct effect (mean CE from attention layers; from MLP layers): {shown}."
        )
    else:
        lines.append("- No attention ablation makes downstream attention layers gain on average.")
    erasers = s["erasure_mlps"]
    if erasers:
        shown = ", ".join(
            f"MLP {e['layer']} after attention {e['after_attention']} "
            f"({_ci(e, 'delta_de', '+.3f')}; mean impact {_ci(e, 'unembed_mean')})"
            for e in erasers
        )
        lines.append(
            f"- Erasure: MLP layers whose direct effect rises most when an upstream attention "
            f"layer is ablated (mean rise; the MLP's mean unembedding impact): {shown}."
        )
    else:
        lines.append("- Erasure: no MLP layer's direct effect rises after an attention ablation.")
    lines += [
        "",
        *_self_repair_lines(
            [self_repair(m) for m in results.measures] if repairs is None else repairs,
            repair_top,
        ),
        *([] if head_rows is None else _head_lines(head_rows, repair_top)),
        *_erasure_lines(s.get("anti_erasure")),
        "Figures: fig1_ablation_example.png, fig2_unembed_vs_ablate.png, fig7_compensation.png, "
        "fig8_compensation_split.png, fig_distributions.png (the spread over prompts of every "
        "layer's drop and compensatory effect). Tables: prompts.csv, layers.csv (with "
        "intervals), patches.csv, selfrepair.csv"
        + ("" if head_rows is None else ", heads.csv")
        + ".",
        "",
    ]
    return "\n".join(lines)


def write_report(
    out: str | Path,
    measures: Sequence[PromptMeasures],
    clean: CleanRun,
    prompts: PromptSet,
    settings: SweepSettings,
    *,
    parallel: bool,
    seed: int | None = None,
    level: float = 0.95,
    resamples: int = 2000,
    repair_top: float | None = None,
    heads: Sequence[HeadMeasures] = (),
    anti_erasure: Sequence[AntiErasure] = (),
) -> dict[str, Any]:
    """Write figures, tables and summaries for a finished sweep; returns the summary.

    Parameters
    ----------
    out : str or Path
        The sweep's output directory.
    measures, clean, prompts, settings
        The sweep's results, clean pass, prompt set and settings.
    parallel : bool
        Whether the model's blocks are parallel.
    seed : int, optional
        The seed of the bootstrap over prompts; by default the sweep's (``settings.seed``), so
        that the same sweep always gives the same intervals.
    level : float
        The confidence level of every interval.
    resamples : int
        The number of bootstrap resamples.
    repair_top : float, optional
        In summary.md's self-repair table, the shares over only the prompts where the ablated
        layer's clean direct effect is in its top ``repair_top`` fraction (``--repair-top``;
        :func:`~scmnet.adapters.transformer.selfrepair.shares`). Default: every prompt.
    heads : sequence of HeadMeasures, optional
        The head sweep's measures (``--units heads``; :mod:`~.head_sweep`), one per kept
        prompt: written to heads.csv, and the heads of largest direct effect to summary.md and
        to summary.json's ``heads``.
    anti_erasure : sequence of AntiErasure, optional
        The last MLP's anti-erasure of every kept prompt (``--anti-erasure``;
        :func:`~.anti_erasure.run_anti_erasure_sweep`): two columns of selfrepair.csv, the
        means by unit in summary.json's ``anti_erasure`` and the largest in summary.md.

    Raises
    ------
    InvalidArgument
        If ``repair_top`` is not a fraction in (0, 1].
    """
    check_top(repair_top)
    out = Path(out)
    results = HydraResults(
        measures,
        parallel=parallel,
        seed=settings.seed if seed is None else seed,
        level=level,
        resamples=resamples,
    )
    repairs = [self_repair(m) for m in measures]  # for selfrepair.csv and summary.md
    _tables(results, repairs, clean, out, anti_erasure)
    example_prompt, _ = _example_prompt(results)
    _fig1(
        results, prompts.prompts[clean.kept[example_prompt]].text, out / "fig1_ablation_example.png"
    )
    _fig2(results, out / "fig2_unembed_vs_ablate.png")
    _fig7(results, out / "fig7_compensation.png")
    _fig8(results, out / "fig8_compensation_split.png")
    _fig_distributions(results, out / "fig_distributions.png")
    summary = {
        "settings": settings.to_json(),
        "prompts_total": clean.total,
        "prompts_correct": clean.correct,
        "prompts_kept": len(clean),
        "versions": package_versions(),
        "self_repair_top": repair_top,
        **results.summary(),
    }
    head_rows = None
    if heads:
        head_repairs = [m.self_repair() for m in heads]
        _head_table(heads, head_repairs, clean, out)
        head_rows = by_head(head_repairs, top=repair_top)
        summary["heads"] = {
            "layers": int(heads[0].unembed.shape[0]),
            "heads_per_layer": int(heads[0].unembed.shape[1]),
            "largest_direct_effect": _largest(head_rows),
        }
    if anti_erasure:
        summary["anti_erasure"] = _erasure_rows(anti_erasure)
    text = json.dumps(_strict(summary), indent=2, allow_nan=False) + "\n"
    write_atomic(out / "summary.json", text)
    markdown = _markdown(summary, results, repair_top, repairs, head_rows)
    write_atomic(out / "summary.md", markdown)
    return summary


#: How many heads summary.md and summary.json show: those of largest mean direct effect.
SHOWN_HEADS = 12

#: heads.csv's names of :data:`~scmnet.adapters.transformer.selfrepair.FIELDS`.
_HEAD_COLUMNS = ("de", "ablate", "own", "sr", "sr_heads", "sr_mlp", "sr_norm")


def _largest(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: -float(r["de"]))[:SHOWN_HEADS]


def _head_table(
    heads: Sequence[HeadMeasures], repairs: Sequence[SelfRepair], clean: CleanRun, out: Path
) -> None:
    with atomic(out / "heads.csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["prompt", "set_index", "token", "layer", "head", *_HEAD_COLUMNS])
        for p, (m, sr) in enumerate(zip(heads, repairs, strict=True)):
            for layer, head in np.ndindex(m.unembed.shape):
                w.writerow(
                    [p, clean.kept[p], m.token, layer, head]
                    + [f"{getattr(sr, f)[layer, head]:.6g}" for f in FIELDS]
                )


def _erasure_rows(found: Sequence[AntiErasure]) -> list[dict[str, Any]]:
    """The mean over prompts (and draws) of each ablated unit's anti-erasure and of the last
    MLP's net change of direct effect."""
    positive = np.mean([f.positive.mean(-1) for f in found], axis=0)
    total = np.mean([f.total.mean(-1) for f in found], axis=0)
    return [
        {
            "block": b.label,
            "layer": layer,
            "anti_erasure": float(positive[b, layer]),
            "last_mlp_change": float(total[b, layer]),
        }
        for b in Block
        for layer in range(positive.shape[1])
    ]


#: How many units summary.md's anti-erasure table shows: those of largest mean anti-erasure.
SHOWN_ERASURE = 6


def _erasure_lines(rows: Sequence[dict[str, Any]] | None) -> list[str]:
    """summary.md's table of the units whose ablation the last MLP's neurons answer most."""
    if not rows:
        return []
    lines = [
        "## Anti-erasure in the last MLP (--anti-erasure)",
        "The sum over the last MLP's neurons of their clamped positive change of direct effect "
        "(clean scale) when the unit is ablated, and the MLP's net change; the "
        f"{SHOWN_ERASURE} units of largest mean anti-erasure. Every prompt: selfrepair.csv.",
        "",
        "| block | layer | anti-erasure | last MLP's net change |",
        "|---|---|---|---|",
    ]
    shown = sorted(rows, key=lambda r: -float(r["anti_erasure"]))[:SHOWN_ERASURE]
    lines += [
        f"| {r['block']} | {r['layer']} | {r['anti_erasure']:+.3f} | {r['last_mlp_change']:+.3f} |"
        for r in shown
    ]
    return [*lines, ""]


def _head_lines(rows: Sequence[dict[str, Any]], top: float | None) -> list[str]:
    """summary.md's table of the heads of largest mean direct effect."""
    lines = [
        "## Attention heads (--units heads)",
        f"Every head ablated alone at the final position, with the same ablation; the "
        f"{min(SHOWN_HEADS, len(rows))} of the {len(rows)} heads with the largest mean clean "
        "direct effect. SR_heads is the change of every other head's direct effect (its own "
        "layer's included), with the clean scale. Shares as above"
        + ("" if top is None else f", over the prompts where the head's DE is in its top {top:.0%}")
        + ". Every prompt and head: heads.csv.",
        "",
        "| layer | head | DE | Δ_ablate | SR | SR_heads | SR_MLP | SR_norm | clipped share "
        "| ratio of means |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_repair_row(row, "layer", "head") for row in _largest(rows)]
    return [*lines, ""]
