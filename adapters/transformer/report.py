"""The Hydra report: figures in the spirit of the paper's, every number in CSV, a JSON summary.

:func:`write_report` writes, into the sweep's output directory:

* ``fig1_ablation_example.png`` -- per-layer unembedding impacts of one prompt, clean and after
  ablating one attention layer: one thin line per patch and their mean (Figures 1 and 3);
* ``fig2_unembed_vs_ablate.png`` -- unembedding impacts and ablation drops (-Delta_ablate)
  per layer (per prompt and mean), and per layer their correlation and the share of prompts
  whose unembedding impact exceeds the drop (Figure 2);
* ``fig7_compensation.png`` -- DE against CE coloured by depth, for attention and MLP
  ablations, and the slope and R^2 of CE on DE by layer (Figure 7);
* ``fig8_compensation_split.png`` -- Delta DE of the downstream attention and MLP layers
  after each ablation (Figure 8);
* ``prompts.csv`` (one row per prompt and ablated/read layer), ``layers.csv`` (per-layer
  statistics), ``patches.csv`` (the ablation impact of every draw);
* ``summary.json`` (the exact settings, package versions and headline numbers) and
  ``summary.md`` (the findings in words).
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

from .analysis import HydraResults
from .families import Block
from .identity import package_versions
from .measures import PromptMeasures
from .output_folder import atomic, write_atomic
from .prompts import PromptSet
from .sweep import CleanRun, SweepSettings

__all__ = ["write_report"]


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
        ax.set(xlabel="layer", ylabel="unembedding impact", title=f"{b.label} layers")
        ax.legend(fontsize=8)
    fig.suptitle(f"Ablating attention layer {k}: {text!r} (thin lines: one per patch)", fontsize=10)
    with atomic(path) as tmp:
        fig.savefig(tmp, dpi=110)


def _fig2(results: HydraResults, path: Path) -> None:
    layers = np.arange(results.n_layers)
    fig, axes = _figure(2, 3, (15, 8))
    for row, b in enumerate(Block):
        for col, (data, name) in enumerate(
            [(results.unembed, "unembedding impact"), (-results.ablate, "ablation drop")]
        ):
            ax = axes[row, col]
            for prompt in data[:, b]:
                ax.plot(layers, prompt, color="grey", alpha=0.15, lw=0.6)
            ax.plot(layers, data[:, b].mean(0), color="tab:blue", lw=2)
            ax.axhline(0, color="black", lw=0.5)
            ax.set(xlabel="layer", ylabel=name, title=f"{b.label}: {name}")
        stats = [s for s in results.layers if s.block == b.label]
        ax = axes[row, 2]
        ax.plot(layers, [s.correlation for s in stats], label="correlation", color="tab:blue")
        ax.plot(
            layers,
            [s.share_unembed_gt_drop for s in stats],
            label="share unembed > drop",
            color="tab:orange",
        )
        ax.set(xlabel="layer", ylim=(-1.05, 1.05), title=f"{b.label}: agreement")
        ax.axhline(0, color="black", lw=0.5)
        ax.legend(fontsize=8)
    fig.suptitle("Unembedding impact vs ablation drop -Δablate (cf. Figure 2)")
    with atomic(path) as tmp:
        fig.savefig(tmp, dpi=110)


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
            xlabel="direct effect of the ablated layer",
            ylabel="compensatory effect",
            title=f"{b.label} ablations (colour: depth)",
        )
    ax = axes[0, 2]
    for b, style in zip(Block, ("-", "--"), strict=True):
        stats = [s for s in results.layers if s.block == b.label]
        ax.plot(layers, [s.r2 for s in stats], style, color="tab:blue", label=f"R² ({b.label})")
        ax.plot(layers, [s.slope for s in stats], style, color="black", label=f"slope ({b.label})")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set(xlabel="ablated layer", title="CE ~ DE regression by layer")
    ax.legend(fontsize=8)
    fig.suptitle("Direct vs compensatory effect (cf. Figure 7)")
    with atomic(path) as tmp:
        fig.savefig(tmp, dpi=110)


def _fig8(results: HydraResults, path: Path) -> None:
    layers = np.arange(results.n_layers)
    split = results.compensation_split.mean(0)  # (2, L, 2)
    fig, axes = _figure(1, 2, (12, 4))
    for col, b in enumerate(Block):
        ax = axes[0, col]
        ax.bar(layers - 0.2, split[b, :, 0], width=0.4, label="attention response")
        ax.bar(layers + 0.2, split[b, :, 1], width=0.4, label="MLP response")
        ax.plot(layers, results.own_delta[:, b].mean(0), "k.-", lw=1, label="own ΔDE")
        ax.axhline(0, color="black", lw=0.5)
        ax.set(
            xlabel=f"ablated {b.label} layer",
            ylabel="mean ΔDE downstream",
            title=f"{b.label} ablations",
        )
        ax.legend(fontsize=8)
    fig.suptitle("Compensation split into attention and MLP responses (cf. Figure 8)")
    with atomic(path) as tmp:
        fig.savefig(tmp, dpi=110)


def _tables(results: HydraResults, clean: CleanRun, out: Path) -> None:
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
                "ce",
                "ce_attn",
                "ce_mlp",
                "own_delta_de",
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
                            f"{results.compensation[p, b, layer]:.6g}",
                            f"{split[0]:.6g}",
                            f"{split[1]:.6g}",
                            f"{results.own_delta[p, b, layer]:.6g}",
                            f"{results.rest[p, b, layer]:.6g}",
                        ]
                    )
    with atomic(out / "layers.csv") as tmp, open(tmp, "w", newline="") as fh:
        rows = [asdict(s) for s in results.layers]
        w2 = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w2.writeheader()
        w2.writerows(rows)
    with atomic(out / "patches.csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["prompt", "block", "layer", "draw", "ablate"])
        for p, m in enumerate(results.measures):
            per = m.ablate_per_draw
            for b in Block:
                for layer in range(results.n_layers):
                    for j, v in enumerate(per[b, layer]):
                        w.writerow([p, b.label, layer, j, f"{v:.6g}"])


def _fmt(x: float, spec: str = "+.2f") -> str:
    return "n/a" if math.isnan(x) else format(x, spec)


def _share(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:+.0%}"


def _markdown(summary: dict[str, Any], results: HydraResults) -> str:
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
        "## Unembedding vs ablation (Figure 2)",
        f"- Correlation of the unembedding impact with the ablation drop (-Delta_ablate), all "
        f"layers and prompts: {_fmt(s['correlation_unembed_drop'])}.",
        f"- Share of (prompt, layer) pairs whose unembedding impact exceeds the drop (the drop "
        f"is smaller than the layer's own direct contribution): "
        f"{s['share_unembed_gt_drop']:.0%}.",
        "",
        "## Where the drop comes from (Figures 7-8)",
        "Every ablation impact splits exactly into the ablated layer's own change of direct "
        "effect, the compensatory effect CE of the downstream layers (eq. 33), and the rest "
        "(upstream layers, changed only through the final norm's scale). Below, each part is "
        "given as its share of the drop (positive: it lowers the logit).",
        "",
    ]
    for block, info in s["blocks"].items():
        d = info["largest_drop"]
        lines.append(
            f"- Largest {block} drop: layer {d['layer']}, drop {_fmt(d['drop'], '.2f')} "
            f"(unembedding impact {_fmt(d['unembed'], '.2f')}) = own {_fmt(-d['own_delta_de'])}"
            f" + downstream {_fmt(-d['ce'])} (attention {_fmt(-d['ce_attn'])}, MLP "
            f"{_fmt(-d['ce_mlp'])}) + rest {_fmt(-d['rest'])}; downstream layers give back "
            f"{_share(d['restored_share'])} of the layer's own loss."
        )
        fit = info["best_fit"]
        if fit is not None:
            lines.append(
                f"- CE against DE for {block} ablations is most linear at layer {fit['layer']}: "
                f"R^2 = {_fmt(fit['r2'], '.2f')}, slope {_fmt(fit['slope'])}."
            )
        comp = info["compensated_layers"]
        lines.append(
            f"- {block} layers whose drop is below their (positive) unembedding impact for most "
            f"prompts: {', '.join(map(str, comp)) if comp else 'none'}."
        )
    hydra = s["hydra_attention"]
    if hydra:
        shown = ", ".join(
            f"{h['layer']} ({h['attention_response']:+.3f}; MLPs {h['mlp_response']:+.3f})"
            for h in hydra
        )
        lines.append(
            f"- Hydra effect, downstream attention layers gaining direct effect after an "
            f"attention ablation (mean gain; MLP response): {shown}."
        )
    else:
        lines.append("- No attention ablation makes downstream attention layers gain on average.")
    erasers = s["erasure_mlps"]
    if erasers:
        shown = ", ".join(
            f"MLP {e['layer']} after attention {e['after_attention']} ({e['delta_de']:+.3f}; "
            f"mean impact {e['unembed_mean']:+.2f})"
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
        "Figures: fig1_ablation_example.png, fig2_unembed_vs_ablate.png, fig7_compensation.png, "
        "fig8_compensation_split.png. Tables: prompts.csv, layers.csv, patches.csv.",
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
) -> dict[str, Any]:
    """Write figures, tables and summaries for a finished sweep; returns the summary."""
    out = Path(out)
    results = HydraResults(measures, parallel=parallel)
    _tables(results, clean, out)
    example_prompt, _ = _example_prompt(results)
    _fig1(
        results, prompts.prompts[clean.kept[example_prompt]].text, out / "fig1_ablation_example.png"
    )
    _fig2(results, out / "fig2_unembed_vs_ablate.png")
    _fig7(results, out / "fig7_compensation.png")
    _fig8(results, out / "fig8_compensation_split.png")
    summary = {
        "settings": settings.to_json(),
        "prompts_total": clean.total,
        "prompts_correct": clean.correct,
        "prompts_kept": len(clean),
        "versions": package_versions(),
        **results.summary(),
    }
    text = json.dumps(_strict(summary), indent=2, allow_nan=False) + "\n"
    write_atomic(out / "summary.json", text)
    write_atomic(out / "summary.md", _markdown(summary, results))
    return summary
