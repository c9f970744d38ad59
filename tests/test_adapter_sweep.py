"""The Hydra sweep and report end to end on a tiny model: resumable, settings-checked."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from scmnet.adapters.transformer import measures as measures_module
from scmnet.adapters.transformer.ablations import Ablation, AblationKind
from scmnet.adapters.transformer.analysis import INTERVAL_FIELDS
from scmnet.adapters.transformer.lm import LanguageModel
from scmnet.adapters.transformer.model_source import ModelSource, SourceKind
from scmnet.adapters.transformer.prompts import Prompt, PromptSet, load_prompts
from scmnet.adapters.transformer.report import write_report
from scmnet.adapters.transformer.sweep import SettingsMismatch, SweepSettings, run_sweep
from scmnet.errors import InvalidDataset, InvalidIntervention
from scmnet.testing import assert_close
from tests.tiny_models import CharTokenizer, tiny_model

PROMPTS = PromptSet(
    tuple(Prompt(text, None) for text in ("abc de", "xyz w", "hello t", "qrs uv", "mnop q")),
    name="tiny",
)


@pytest.fixture(scope="module")
def lm() -> LanguageModel:
    return LanguageModel.from_pretrained_model(tiny_model("llama"), CharTokenizer(), "tiny-llama")


@pytest.mark.parametrize("kind", list(AblationKind))
def test_sweep_and_report(lm: LanguageModel, tmp_path: Path, kind: AblationKind) -> None:
    ablation = Ablation(kind, patches=2, seed=1)
    clean, results = run_sweep(lm, PROMPTS, ablation, tmp_path)
    assert len(clean) == len(results) == 5  # no targets: every prompt is kept
    assert results[0].ablated_logit.shape == (2, 3, ablation.draws)
    settings = SweepSettings.of(lm, PROMPTS, ablation, None)
    summary = write_report(tmp_path, results, clean, PROMPTS, settings, parallel=False)
    assert summary["prompts_kept"] == 5

    def no_bare_constants(name: str) -> None:
        raise AssertionError(f"summary.json holds a bare {name}, which is not JSON")

    text = (tmp_path / "summary.json").read_text()
    assert json.loads(text, parse_constant=no_bare_constants)["settings"]["ablation"] == kind.value
    assert not [p.name for p in tmp_path.rglob("*") if ".tmp" in p.name]  # all renamed in place
    for name in (
        "fig1_ablation_example",
        "fig2_unembed_vs_ablate",
        "fig7_compensation",
        "fig8_compensation_split",
        "fig_distributions",
    ):
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    rows = (tmp_path / "prompts.csv").read_text().splitlines()
    assert len(rows) == 1 + 5 * 2 * 3
    text = (tmp_path / "summary.md").read_text()
    assert text.startswith("# Hydra-effect analysis of tiny-llama")
    assert "## Self-repair decomposed (Rushing & Nanda 2024)" in text
    with open(tmp_path / "selfrepair.csv", newline="") as fh:
        repair = list(csv.DictReader(fh))
    assert len(repair) == 5 * 2 * 3  # one row per prompt and ablated layer
    for row in repair:  # SR = SR_attn + SR_MLP + SR_norm = ablate - own, to the printed digits
        sr, attn, mlp, norm, ablate, own = (
            float(row[k]) for k in ("sr", "sr_attn", "sr_mlp", "sr_norm", "ablate", "own")
        )
        size = max(abs(sr), abs(attn), abs(mlp), abs(norm), abs(ablate), abs(own), 1e-3)
        assert abs(sr - (attn + mlp + norm)) <= 2e-5 * size, row
        assert abs(sr - (ablate - own)) <= 2e-5 * size, row


def test_report_intervals_are_reproducible_and_hold_the_means(
    lm: LanguageModel, tmp_path: Path
) -> None:
    """Every mean in layers.csv has a finite interval around it; the bootstrap is seeded with
    the sweep's seed, so two reports of the same sweep are identical, byte for byte."""
    ablation = Ablation(AblationKind.ZERO, seed=4)
    clean, results = run_sweep(lm, PROMPTS, ablation, tmp_path / "sweep")
    settings = SweepSettings.of(lm, PROMPTS, ablation, None)
    first, second = tmp_path / "first", tmp_path / "second"
    for out in (first, second):
        out.mkdir()
        write_report(out, results, clean, PROMPTS, settings, parallel=False)
    for name in ("layers.csv", "summary.json", "summary.md", "prompts.csv", "selfrepair.csv"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    assert (first / "fig_distributions.png").read_bytes()[:4] == b"\x89PNG"

    with open(first / "layers.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * 3
    for name in INTERVAL_FIELDS:
        assert {f"{name}_low", f"{name}_high"} <= set(rows[0]), name
    for row in rows:
        for name in INTERVAL_FIELDS:
            value, low, high = (float(row[name + end]) for end in ("", "_low", "_high"))
            if math.isnan(value):  # a slope or R^2 where DE is constant across prompts
                assert math.isnan(low)
                assert math.isnan(high)
                continue
            assert math.isfinite(low), (name, row)
            assert math.isfinite(high), (name, row)
            assert low <= high, (name, row)
            if name.endswith("_mean") or name in ("share_unembed_gt_drop", "ce_on_unembed_slope"):
                assert low <= value <= high, (name, row)

    summary = json.loads((first / "summary.json").read_text())
    assert summary["intervals"] == {
        "level": 0.95,
        "method": "percentile bootstrap over prompts",
        "resamples": 2000,
        "seed": 4,
        "slope_method": "t (from the slope's standard error)",
        "note": "",
    }
    drop = summary["blocks"]["attn"]["largest_drop"]
    assert drop["drop_low"] <= drop["drop"] <= drop["drop_high"]
    assert drop["ce_low"] <= drop["ce"] <= drop["ce_high"]
    low, high = summary["correlation_unembed_drop_low"], summary["correlation_unembed_drop_high"]
    assert -1 <= low <= high <= 1
    text = (first / "summary.md").read_text()
    assert "Numbers in brackets are 95% confidence intervals" in text
    assert f"drop {drop['drop']:.2f} [{drop['drop_low']:.2f}, {drop['drop_high']:.2f}]" in text
    assert "fig_distributions.png" in text

    other = tmp_path / "other-seed"
    other.mkdir()
    write_report(other, results, clean, PROMPTS, settings, parallel=False, seed=5)
    assert (other / "layers.csv").read_bytes() != (first / "layers.csv").read_bytes()


def test_a_report_of_one_prompt_has_no_intervals_and_says_why(
    lm: LanguageModel, tmp_path: Path
) -> None:
    ablation = Ablation(AblationKind.ZERO)
    clean, results = run_sweep(lm, PROMPTS, ablation, tmp_path, limit=1)
    settings = SweepSettings.of(lm, PROMPTS, ablation, 1)
    summary = write_report(tmp_path, results, clean, PROMPTS, settings, parallel=False)
    reason = "an interval needs at least 2 observations; got 1"
    assert summary["intervals"]["note"] == reason
    assert f"No confidence intervals: {reason}." in (tmp_path / "summary.md").read_text()
    with open(tmp_path / "layers.csv", newline="") as fh:
        row = next(csv.DictReader(fh))
    assert math.isnan(float(row["ce_mean_low"]))
    assert math.isnan(float(row["ce_mean_high"]))
    stored = json.loads((tmp_path / "summary.json").read_text())
    assert stored["correlation_unembed_drop_low"] is None  # NaN, written as null
    assert (tmp_path / "fig_distributions.png").exists()


def test_sweep_resumes_where_it_stopped(
    lm: LanguageModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ablation = Ablation(AblationKind.RESAMPLE, patches=2)
    _, first = run_sweep(lm, PROMPTS, ablation, tmp_path)
    (tmp_path / "measures" / "00003.npz").unlink()  # as if interrupted before prompt 3
    calls: list[int] = []
    real = measures_module.measure_prompt

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(kwargs["prompt"])
        return real(*args, **kwargs)

    monkeypatch.setattr("scmnet.adapters.transformer.sweep.measure_prompt", counting)
    _, second = run_sweep(lm, PROMPTS, ablation, tmp_path)
    assert calls == [3]
    for a, b in zip(first, second, strict=True):
        assert_close(a.ablated_unembed, b.ablated_unembed)


def test_sweep_refuses_other_settings(lm: LanguageModel, tmp_path: Path) -> None:
    run_sweep(lm, PROMPTS, Ablation(AblationKind.ZERO), tmp_path, limit=2)
    with pytest.raises(SettingsMismatch, match=r"ablation: 'zero' there, 'mean' now"):
        run_sweep(lm, PROMPTS, Ablation(AblationKind.MEAN), tmp_path, limit=2)


def test_limit_and_kept_prompts(lm: LanguageModel, tmp_path: Path) -> None:
    clean, results = run_sweep(lm, PROMPTS, Ablation(AblationKind.ZERO), tmp_path, limit=2)
    assert (len(results), clean.correct, clean.total) == (2, 5, 5)
    impossible = PromptSet((Prompt("abc", " zzzz"),), name="none")
    with pytest.raises(InvalidDataset, match="none of the 1 prompts"):
        run_sweep(lm, impossible, Ablation(AblationKind.ZERO), tmp_path / "other")


def test_resample_numbers_do_not_depend_on_limit(lm: LanguageModel, tmp_path: Path) -> None:
    """The donors are every correct prompt, not only the analysed ones (issue: --limit)."""
    ablation = Ablation(AblationKind.RESAMPLE, patches=3, seed=2)
    _, whole = run_sweep(lm, PROMPTS, ablation, tmp_path / "all")
    _, limited = run_sweep(lm, PROMPTS, ablation, tmp_path / "two", limit=2)
    for a, b in zip(limited, whole[:2], strict=True):
        assert_close(a.ablated_logit, b.ablated_logit, reordered=True)
        assert_close(a.ablated_unembed, b.ablated_unembed, reordered=True)


def test_more_draws_than_donors_is_refused(lm: LanguageModel, tmp_path: Path) -> None:
    too_many = Ablation(AblationKind.RESAMPLE, patches=5)
    with pytest.raises(InvalidIntervention, match=r"--patches 5 .* with 5 prompts .* only 4"):
        run_sweep(lm, PROMPTS, too_many, tmp_path / "out")
    assert not (tmp_path / "out" / "measures").exists()  # refused before any prompt ran
    Ablation(AblationKind.ZERO, patches=5)  # zero ablation has one value: K is not used


def test_hydra_command_on_a_local_model_directory(
    hf_dir_with_tokenizer: Path, tmp_path: Path
) -> None:
    from scmnet.cli import main

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("the eiffel tower is located in the city of\nthe tower is in\nthe city of\n")
    out = tmp_path / "report"
    args = [
        "hydra",
        "--model",
        str(hf_dir_with_tokenizer),
        "--prompts",
        str(prompts),
        "--ablation",
        "mean",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["model"] == str(hf_dir_with_tokenizer)
    assert summary["settings"]["prompts"] == "prompts.txt"
    assert summary["prompts_kept"] == 3  # no targets: the model's own predictions are analysed
    # A second run with other settings is refused, naming the setting.
    other = [a if a != "mean" else "zero" for a in args]
    assert main(other) == 2


def _branching_llama(monkeypatch: pytest.MonkeyPatch) -> None:
    """``scmnet hydra`` gets a tiny Llama with data-dependent control flow in one layer: its
    family is fine, but tracing fails (torch prints its own lines first)."""
    from scmnet.adapters.transformer import hydra

    model = tiny_model("llama")

    def branch(module: object, args: object, out: torch.Tensor) -> torch.Tensor:
        return out * 2 if out.sum() > 0 else out

    model.model.layers[1].mlp.register_forward_hook(branch)
    lm = LanguageModel.from_pretrained_model(model, CharTokenizer(), "branching")
    source = ModelSource(SourceKind.HUB, "x", "x")  # "x" names no directory
    monkeypatch.setattr(hydra, "resolve_model", lambda name: source)
    monkeypatch.setattr(hydra, "load_tokenizer", lambda source: (lm.tokenizer, lm.context_length))
    monkeypatch.setattr(hydra, "load_model", lambda name, device, **_: lm)


def _tree(folder: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None
        for p in sorted(folder.rglob("*"))
    }


def test_failed_trace_leaves_out_as_found_and_holds_back_torch_output(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from scmnet.cli import main

    _branching_llama(monkeypatch)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("abc de\nxyz w\n")
    fresh = tmp_path / "new" / "report"
    args = ["hydra", "--model", "x", "--prompts", str(prompts), "--ablation", "zero", "--quiet"]
    args.append("--out")
    assert main([*args, str(fresh)]) == 2
    err = capsys.readouterr().err
    assert not (tmp_path / "new").exists()  # nothing created, not even the parent
    assert err.startswith("scmnet hydra: error: could not trace LlamaForCausalLM")
    assert "see them with --verbose" in err
    assert len(err.strip().splitlines()) == 1  # one line: torch's own output is held back
    # An existing folder with earlier results is left exactly as it was ...
    earlier = tmp_path / "earlier"
    (earlier / "measures").mkdir(parents=True)
    # (its settings those of this run, or it would be refused before the model loads)
    planned = SweepSettings.planned("x", load_prompts(prompts), Ablation(AblationKind.ZERO), None)
    (earlier / "settings.json").write_text(json.dumps(planned.to_json()))
    (earlier / "measures" / "00000.npz").write_bytes(b"an earlier result")
    before = _tree(earlier)
    assert main([*args, str(earlier), "--verbose"]) == 2
    assert _tree(earlier) == before
    # ... and with --verbose torch's output is shown, before the error.
    err = capsys.readouterr().err
    assert "torch's output while tracing branching:" in err
    assert len(err.strip().splitlines()) > 5
    assert "see them with --verbose" not in err


def test_run_failing_before_its_first_result_leaves_no_settings(
    lm: LanguageModel, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from scmnet.adapters.transformer import hydra, sweep

    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(hydra, "load_tokenizer", lambda source: (lm.tokenizer, lm.context_length))
    monkeypatch.setattr(hydra, "load_model", lambda name, device, **_: lm)
    monkeypatch.setattr(sweep, "measure_prompt", fail)  # after settings.json and the clean pass
    out = tmp_path / "report"
    with pytest.raises(RuntimeError, match="out of memory"):
        hydra.run_hydra(prompts=PROMPTS, out=out, ablation="zero", progress=False)
    assert not out.exists()
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(RuntimeError, match="out of memory"):
        hydra.run_hydra(prompts=PROMPTS, out=out, ablation="zero", progress=False)
    assert _tree(out) == {"notes.txt": b"mine"}


def test_a_prompt_past_the_context_is_refused(lm: LanguageModel, tmp_path: Path) -> None:
    limit = lm.context_length
    assert limit is not None
    long = PromptSet((Prompt("ab", None), Prompt("x" * (limit + 1), None)), name="long")
    with pytest.raises(
        InvalidDataset, match=rf"prompt 1 .* is {limit + 1} tokens long, past the {limit}"
    ):
        run_sweep(lm, long, Ablation(AblationKind.ZERO), tmp_path)


def test_a_resume_with_another_model_at_the_same_name_is_refused(tmp_path: Path) -> None:
    """The identity is the weights and config, not the path (settings.json records it)."""
    first = LanguageModel.from_pretrained_model(tiny_model("llama"), CharTokenizer(), "same")
    run_sweep(first, PROMPTS, Ablation(AblationKind.ZERO), tmp_path, limit=1)
    recorded = json.loads((tmp_path / "settings.json").read_text())
    assert recorded["model_hash"]
    assert recorded["versions"]["torch"] == torch.__version__
    replaced = LanguageModel.from_pretrained_model(
        tiny_model("llama", seed=1), CharTokenizer(), "same"
    )
    with pytest.raises(SettingsMismatch, match=r"model_hash: '[0-9a-f]+' there, '[0-9a-f]+' now"):
        run_sweep(replaced, PROMPTS, Ablation(AblationKind.ZERO), tmp_path, limit=1)
    recorded["versions"]["torch"] = "0.0"
    (tmp_path / "settings.json").write_text(json.dumps(recorded))
    with pytest.raises(SettingsMismatch, match=r"versions\[torch\]: '0.0' there"):
        run_sweep(first, PROMPTS, Ablation(AblationKind.ZERO), tmp_path, limit=1)


def test_a_prompt_past_the_context_is_refused_before_the_weights_load(
    hf_dir_with_tokenizer: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Only the tokenizer and the config are read: the check comes before the weights."""
    from scmnet.adapters.transformer import hydra

    folder = tmp_path / "short-context"
    shutil.copytree(hf_dir_with_tokenizer, folder)
    config = json.loads((folder / "config.json").read_text())
    config["max_position_embeddings"] = 4
    (folder / "config.json").write_text(json.dumps(config))
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("the tower is in\nthe eiffel tower is located in the city of\n")

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the weights must not load")

    monkeypatch.setattr(hydra, "load_model", never)
    with pytest.raises(InvalidDataset, match=r"prompt 1 .* is 9 tokens long, past the 4 tokens"):
        hydra.run_hydra(model=str(folder), prompts=prompts, out=tmp_path / "out", ablation="zero")
    assert not (tmp_path / "out").exists()
