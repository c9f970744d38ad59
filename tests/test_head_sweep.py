"""``scmnet hydra --units heads``: every head ablated alone after the layers, resumable, in the
report; and its errors."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from scmnet.adapters.transformer.ablations import Ablation, AblationKind
from scmnet.adapters.transformer.command import HYDRA
from scmnet.adapters.transformer.head_measures import HeadMeasures, measure_heads
from scmnet.adapters.transformer.head_sweep import heads_folder, run_head_sweep
from scmnet.adapters.transformer.hydra import run_hydra
from scmnet.adapters.transformer.output_folder import DamagedFile
from scmnet.adapters.transformer.prompts import Prompt, PromptSet
from scmnet.adapters.transformer.sweep import run_sweep
from scmnet.errors import InvalidArgument, UnsupportedModel
from scmnet.testing import assert_close
from tests.protocol import tiny_lm

PROMPTS = PromptSet(tuple(Prompt(t, None) for t in ("abc de", "xyz wv", "hello")), name="3")


def _hydra(folder: Path, prompts: Path, out: Path, *extra: str) -> int:
    parser = argparse.ArgumentParser()
    HYDRA.add_arguments(parser)
    args = ["--model", str(folder), "--prompts", str(prompts), "--out", str(out), "--quiet"]
    return HYDRA.run(parser.parse_args([*args, *extra]))


@pytest.mark.parametrize("ablation", ["zero", "resample"])
def test_the_command_line_writes_every_heads_measures_and_resumes(
    ablation: str, hf_dir_with_tokenizer: Path, tmp_path: Path
) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("the eiffel tower is\nlocated in the city of\nthe city of\n")
    out = tmp_path / "out"
    extra = ["--units", "heads", "--ablation", ablation, "--patches", "1"]
    assert _hydra(hf_dir_with_tokenizer, prompts, out, *extra) == 0
    with open(out / "heads.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    summary = json.loads((out / "summary.json").read_text())
    kept = summary["prompts_kept"]
    assert summary["heads"]["layers"] == 3
    assert summary["heads"]["heads_per_layer"] == 4
    assert len(rows) == kept * 3 * 4
    assert len(summary["heads"]["largest_direct_effect"]) == 12
    sr = np.array([[float(r[k]) for k in ("sr", "sr_heads", "sr_mlp", "sr_norm")] for r in rows])
    assert_close(sr[:, 0], sr[:, 1:].sum(1), rtol=1e-5, atol=1e-5)  # the CSV's 6 digits
    text = (out / "summary.md").read_text()
    assert "## Attention heads (--units heads)" in text
    assert "heads.csv" in text
    before = (out / "heads.csv").read_bytes()
    (heads_folder(out) / "00001.npz").unlink()  # as if interrupted there
    assert _hydra(hf_dir_with_tokenizer, prompts, out, *extra) == 0
    assert (out / "heads.csv").read_bytes() == before


def test_a_layer_run_writes_no_heads(hf_dir_with_tokenizer: Path, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("the eiffel tower is\nlocated in the city of\n")
    out = tmp_path / "out"
    assert _hydra(hf_dir_with_tokenizer, prompts, out, "--ablation", "zero") == 0
    assert not (out / "heads.csv").exists()
    assert not heads_folder(out).exists()
    assert "heads" not in json.loads((out / "summary.json").read_text())


@pytest.mark.parametrize("kind", [AblationKind.MEAN, AblationKind.NOISE])
def test_the_head_sweep_is_measure_heads_with_the_layer_sweeps_ablation(
    kind: AblationKind, tmp_path: Path
) -> None:
    """Every prompt's file is what :func:`measure_heads` gives for it; noise draws are the layer
    sweep's noise (the same seed), read at the heads."""
    lm = tiny_lm("gpt2")
    ablation = Ablation(kind, patches=2)
    clean, _ = run_sweep(lm, PROMPTS, ablation, tmp_path)
    heads = run_head_sweep(lm, clean, ablation, tmp_path)
    assert len(heads) == len(clean)
    if kind is AblationKind.NOISE:
        from scmnet.adapters.transformer.ablations import noised_contributions

        draws = noised_contributions(lm, clean.ids[1], 1, ablation, heads=True)
        assert draws.shape == (2, 3, 4, 32)
    else:
        import scmnet as sn

        draws = [sn.mean([{"input_ids": ids} for ids in clean.donors])]
    direct = measure_heads(lm, clean.ids[1], clean.tokens[1], draws, prompt=1)
    assert_close(heads[1].ablated_logit, direct.ablated_logit, reordered=True)
    assert_close(heads[1].ablated_heads, direct.ablated_heads, reordered=True)


def test_a_head_file_of_other_draws_is_refused(tmp_path: Path) -> None:
    lm = tiny_lm("llama")
    clean, _ = run_sweep(lm, PROMPTS, Ablation(AblationKind.ZERO), tmp_path)
    run_head_sweep(lm, clean, Ablation(AblationKind.ZERO), tmp_path)
    with pytest.raises(DamagedFile, match=r"holds \(3, 4, 1\) \(layers, heads, draws\), not"):
        run_head_sweep(lm, clean, Ablation(AblationKind.RESAMPLE, patches=2), tmp_path)
    found = HeadMeasures.load(heads_folder(tmp_path) / "00000.npz")
    assert found.unembed.shape == (3, 4)


def test_a_family_without_additive_heads_is_refused_before_any_work(tmp_path: Path) -> None:
    lm = tiny_lm("llama")
    clean, _ = run_sweep(lm, PROMPTS, Ablation(AblationKind.ZERO), tmp_path)
    with pytest.raises(UnsupportedModel, match="post_attention_layernorm"):
        run_head_sweep(tiny_lm("gemma3"), clean, Ablation(AblationKind.ZERO), tmp_path / "g")
    assert not heads_folder(tmp_path / "g").exists()


def test_unknown_units_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="--units 'neurons': choose one of layers, heads"):
        run_hydra(units="neurons", out=tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    parser = argparse.ArgumentParser()
    HYDRA.add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--units", "neurons"])


def test_the_donors_head_readings_are_each_donors_own_run() -> None:
    """Donors of one length run together; each one's recorded heads are its own run's."""
    from scmnet.adapters.transformer.causal import hydra_model
    from scmnet.adapters.transformer.head_sweep import recorded_head_readings
    from scmnet.adapters.transformer.heads import head_site

    lm = tiny_lm("gpt2")
    contexts = [
        {"input_ids": torch.tensor([ids])} for ids in ([5, 6, 7], [9, 3, 2], [4, 4], [8, 1, 2])
    ]
    memo = recorded_head_readings(lm, contexts, batch=2)
    model = hydra_model(lm, heads=True)
    for context in contexts:
        for layer, h in ((0, 0), (2, 3)):
            site = head_site(lm, layer, h)
            alone = model.evaluate(context, outputs=[site])[site]
            assert_close(memo(model, site, context), alone, reordered=True)
