"""The Hydra sign convention (docs/hydra.rst, section "sign convention") on the report's own files.

The report of a real sweep on a tiny Llama is read back from its CSV and JSON files, and every
line of the convention's table is checked there: the drop is minus the ablation impact, the
identity Delta_ablate = own Delta DE + CE + rest holds on every row, the rest is what the
upstream layers and the embedding give through the final norm's scale, a zero ablation's own
Delta DE is minus the unembedding impact, and the Figure-2d share and the restored share are
what their definitions say. Then the restored share of a near-zero loss is undefined, and
``--quiet`` keeps the loading bars of transformers off standard error.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scmnet.adapters.transformer.ablations import Ablation, AblationKind
from scmnet.adapters.transformer.analysis import HydraResults
from scmnet.adapters.transformer.families import Block
from scmnet.adapters.transformer.lm import LanguageModel
from scmnet.adapters.transformer.measures import PromptMeasures, downstream_mask
from scmnet.adapters.transformer.prompts import Prompt, PromptSet
from scmnet.adapters.transformer.report import _markdown, _strict, write_report
from scmnet.adapters.transformer.sweep import SweepSettings, run_sweep
from scmnet.testing import assert_close
from tests.tiny_models import CharTokenizer, tiny_model

PROMPTS = PromptSet(
    tuple(Prompt(text, None) for text in ("abc de", "xyz w", "hello t", "qrs uv", "mnop q")),
    name="tiny",
)

# The CSV files hold 6 significant digits: the tolerance of a sum of a few such numbers.
CSV_TOL = {"rtol": 1e-5, "atol": 1e-5}


@pytest.fixture(scope="module")
def lm() -> LanguageModel:
    return LanguageModel.from_pretrained_model(tiny_model("llama"), CharTokenizer(), "tiny-llama")


def _column(rows: list[dict[str, str]], name: str) -> np.ndarray:
    return np.array([float(r[name]) for r in rows])


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module", params=[AblationKind.ZERO, AblationKind.RESAMPLE])
def report(
    request: pytest.FixtureRequest, lm: LanguageModel, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, AblationKind, list[PromptMeasures]]:
    kind: AblationKind = request.param
    out = tmp_path_factory.mktemp(f"report-{kind.value}")
    ablation = Ablation(kind, patches=2, seed=1)
    clean, measures = run_sweep(lm, PROMPTS, ablation, out)
    settings = SweepSettings.of(lm, PROMPTS, ablation, None)
    write_report(out, measures, clean, PROMPTS, settings, parallel=False)
    return out, kind, measures


def test_prompts_csv_holds_the_identity(report: Any) -> None:
    out, kind, measures = report
    rows = _read_csv(out / "prompts.csv")
    assert len(rows) == len(measures) * 2 * measures[0].n_layers
    ablate, drop = _column(rows, "ablate"), _column(rows, "drop")
    own, ce, rest = (_column(rows, n) for n in ("own_delta_de", "ce", "rest"))
    assert np.abs(ablate).max() > 1e-3  # the ablations do something: the checks below bite
    assert_close(drop, -ablate, **CSV_TOL)
    assert_close(ablate, own + ce + rest, **CSV_TOL)
    assert_close(ce, _column(rows, "ce_attn") + _column(rows, "ce_mlp"), **CSV_TOL)
    if kind is AblationKind.ZERO:
        # A zeroed layer contributes nothing: its own Delta DE is minus its unembedding impact
        # (the direct effect of the zero ablation, eqs. 27-28).
        assert_close(own, -_column(rows, "unembed"), **CSV_TOL)
    # patches.csv: Delta_ablate per draw, whose mean is prompts.csv's (eq. 39).
    draws = _read_csv(out / "patches.csv")
    per_row: dict[tuple[str, str, str], list[float]] = {}
    for d in draws:
        per_row.setdefault((d["prompt"], d["block"], d["layer"]), []).append(float(d["ablate"]))
    means = np.array([np.mean(per_row[(r["prompt"], r["block"], r["layer"])]) for r in rows])
    assert_close(means, ablate, **CSV_TOL)


def test_the_rest_is_what_the_norm_scale_does_to_the_layers_not_downstream(report: Any) -> None:
    """rest = the Delta DE of the layers neither ablated nor downstream (upstream: they change
    only through sigma) + the embedding's readout E, scaled by sigma / sigma_ablated - 1."""
    out, _, measures = report
    rows = _read_csv(out / "prompts.csv")
    n = measures[0].n_layers
    mask = downstream_mask(n, parallel=False)
    expected = []
    for m in measures:
        embedding = m.clean_logit - m.unembed.sum()  # the clean logit is every readout's sum
        for b in Block:
            for k in range(n):
                others = ~mask[b, k]
                others[b, k] = False
                through_sigma = (m.clean_sigma / m.ablated_sigma[b, k] - 1).mean()
                expected.append(m.delta_de[b, k][others].sum() + embedding * through_sigma)
    assert_close(_column(rows, "rest"), np.array(expected), **CSV_TOL)


def test_layers_csv_and_summary_follow_the_definitions(report: Any) -> None:
    out, _, _ = report
    rows = _read_csv(out / "prompts.csv")
    layers = _read_csv(out / "layers.csv")
    summary = json.loads((out / "summary.json").read_text())
    for row in layers:
        mine = [r for r in rows if (r["block"], r["layer"]) == (row["block"], row["layer"])]
        unembed, drop = _column(mine, "unembed"), _column(mine, "drop")
        # Figure 2d: the share of prompts whose unembedding impact exceeds the drop.
        assert_close(float(row["share_unembed_gt_drop"]), float((unembed > drop).mean()))
        assert_close(
            float(row["correlation_unembed_drop"]), np.corrcoef(unembed, drop)[0, 1], **CSV_TOL
        )
        for name in ("unembed", "ablate", "own_delta_de", "ce", "rest"):
            assert_close(float(row[f"{name}_mean"]), _column(mine, name).mean(), **CSV_TOL)
        assert_close(
            float(row["ablate_mean"]),
            float(row["own_delta_de_mean"]) + float(row["ce_mean"]) + float(row["rest_mean"]),
            **CSV_TOL,
        )
        # Figure 7: CE regressed on the unembedding impact.
        slope = np.polyfit(unembed, _column(mine, "ce"), 1)[0]
        assert_close(float(row["ce_on_unembed_slope"]), slope, rtol=1e-3, atol=1e-5)
    for block in ("attn", "mlp"):
        d = summary["blocks"][block]["largest_drop"]
        assert_close(d["drop"], -d["ablate"])
        assert_close(d["ablate"], d["own_delta_de"] + d["ce"] + d["rest"])
        assert (d["drop_low"], d["drop_high"]) == (-d["ablate_high"], -d["ablate_low"])
        if d["restored_share"] is None:
            assert d["restored_share_note"]
        else:
            assert d["restored_share_note"] == ""
            assert_close(d["restored_share"], d["ce"] / -d["own_delta_de"])


# --- The restored share: undefined where the own loss is indistinguishable from 0 ---


def _measures(own: np.ndarray, ce: np.ndarray, n: int = 3, k: int = 2) -> list[PromptMeasures]:
    """Prompts whose attention-0 ablation is the largest drop, with own Delta DE ``own[p]`` and
    CE ``ce[p]`` (all on attention layer 1); nothing else changes."""
    rng = np.random.default_rng(0)
    found = []
    for p, (o, c) in enumerate(zip(own, ce, strict=True)):
        unembed = rng.normal(size=(2, n))
        ablated = np.broadcast_to(unembed, (2, n, k, 2, n)).copy()
        ablated[Block.ATTN, 0, :, Block.ATTN, 0] += o
        ablated[Block.ATTN, 0, :, Block.ATTN, 1] += c
        logit = np.full((2, n, k), 9.9)
        logit[Block.ATTN, 0] = 10.0 + o + c - 5.0  # the largest drop; rest = -5
        found.append(PromptMeasures(p, 7, 10.0, 1.0, unembed, logit, ablated, np.ones((2, n, k))))
    return found


def _summary_line(results: HydraResults) -> tuple[dict[str, Any], str]:
    summary = results.summary()
    settings = {"model": "m", "prompts": "p", "ablation": "zero", "patches": 2, "seed": 0}
    counts = {"prompts_total": len(results), "prompts_correct": len(results)}
    text = _markdown(
        {**summary, **counts, "prompts_kept": len(results), "settings": settings}, results
    )
    line = next(x for x in text.splitlines() if x.startswith("- Largest attn drop"))
    return _strict(summary)["blocks"]["attn"]["largest_drop"], line


def test_a_restored_share_of_a_clear_loss_is_the_ratio_of_the_means() -> None:
    own = -2.0 + 0.1 * np.sin(np.arange(30))  # a loss of 2, clearly away from 0
    results = HydraResults(_measures(own, np.full(30, 0.5)), parallel=False)
    assert_close(results.restored_share(Block.ATTN, 0), 0.5 / -own.mean())
    d, line = _summary_line(results)
    assert d["restored_share_note"] == ""
    assert d["restored_share_low"] <= d["restored_share"] <= d["restored_share_high"]
    assert_close(d["rest"], -5.0)
    assert f"give back (CE / -own ΔDE): {d['restored_share']:+.0%} [" in line
    assert "(they compensate)" in line  # a positive share is compensation, not a deepening
    assert "deepen it" not in line


def test_a_restored_share_of_a_near_zero_loss_is_undefined() -> None:
    """The issue's "give back -6119%": a mean loss of 0.001 whose interval straddles 0."""
    own = 0.05 * np.where(np.arange(30) % 2 == 0, 1.0, -1.0) - 0.001
    results = HydraResults(_measures(own, np.full(30, 0.5)), parallel=False)
    assert 0.5 / -own.mean() > 100  # what the naive ratio would say: 50,000%
    assert math.isnan(results.restored_share(Block.ATTN, 0))
    note = results.restored_share_note(Block.ATTN, 0)
    assert note == "the layer's own loss is indistinguishable from 0"
    d, line = _summary_line(results)
    assert d["restored_share"] is None  # NaN in Python, null in summary.json
    assert (d["restored_share_low"], d["restored_share_high"]) == (None, None)
    assert d["restored_share_note"] == note
    assert "give back (CE / -own ΔDE): undefined (the layer's own loss is indistinguishable" in line
    assert "%" not in line


def test_a_restored_share_of_a_layer_that_loses_nothing_is_undefined() -> None:
    own = 1.0 + 0.1 * np.sin(np.arange(30))  # the layer gains direct effect: no loss
    results = HydraResults(_measures(own, np.full(30, 0.5)), parallel=False)
    assert math.isnan(results.restored_share(Block.ATTN, 0))
    assert "loses no direct effect" in results.restored_share_note(Block.ATTN, 0)
    _, line = _summary_line(results)
    assert "undefined (the layer loses no direct effect" in line


# --- --quiet: no loading bar of transformers / huggingface_hub on stderr ---


def _load(folder: Path) -> None:
    from scmnet.adapters.transformer.lm import load_model, load_tokenizer
    from scmnet.adapters.transformer.model_source import resolve_model

    source = resolve_model(str(folder))
    tokenizer, _ = load_tokenizer(source)
    load_model(source, tokenizer=tokenizer)


def test_loading_shows_a_bar_unless_quiet(
    hf_dir_with_tokenizer: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The control: without quiet_libraries the load prints transformers' bar (so the quiet
    test below can fail); with it, nothing reaches stderr, and the switches come back."""
    from huggingface_hub.utils import are_progress_bars_disabled
    from transformers.utils import logging

    from scmnet.adapters.transformer.lm import quiet_libraries

    hub_before = are_progress_bars_disabled()
    _load(hf_dir_with_tokenizer)
    assert "Loading weights" in capfd.readouterr().err
    with quiet_libraries():
        assert are_progress_bars_disabled()
        _load(hf_dir_with_tokenizer)
    assert capfd.readouterr().err == ""
    assert logging.is_progress_bar_enabled()
    assert are_progress_bars_disabled() == hub_before


def test_hydra_quiet_writes_nothing_to_stderr(
    hf_dir_with_tokenizer: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from scmnet.cli import main

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("the eiffel tower is located in the city of\nthe tower is in\n")
    args = ["hydra", "--model", str(hf_dir_with_tokenizer), "--prompts", str(prompts)]
    args += ["--ablation", "zero", "--out", str(tmp_path / "report"), "--quiet"]
    capfd.readouterr()
    assert main(args) == 0
    captured = capfd.readouterr()
    assert captured.err == ""
    assert captured.out.startswith("scmnet hydra: wrote")
