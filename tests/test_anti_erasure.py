"""Anti-erasure in the last MLP: the neurons' changes of direct effect add up to the MLP's,
the clamped sum matches a naive neuron-by-neuron reference, and post-norm families are refused."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import scmnet as sn
from scmnet.adapters.transformer.anti_erasure import (
    AntiErasure,
    anti_erasure,
    anti_erasure_folder,
)
from scmnet.adapters.transformer.causal import hydra_model
from scmnet.adapters.transformer.command import HYDRA
from scmnet.adapters.transformer.measures import layer_treatments, measure_prompt, readout_rows
from scmnet.adapters.transformer.neurons import neurons_path
from scmnet.adapters.transformer.output_folder import DamagedFile
from scmnet.errors import UnsupportedModel
from scmnet.testing import assert_close
from tests.protocol import tiny_lm

IDS = torch.tensor([[5, 6, 7, 8, 9, 10, 11]])
TOKEN = 3
ADDITIVE = ("llama", "gpt2", "gpt_neox", "phi")


@pytest.mark.parametrize("family", ADDITIVE)
def test_the_neurons_add_up_to_the_last_mlps_change_of_direct_effect(family: str) -> None:
    lm = tiny_lm(family)
    draws = [sn.zero(), sn.scale(3.0)]
    found = anti_erasure(lm, IDS, TOKEN, draws)
    m = measure_prompt(lm, IDS, TOKEN, draws)
    n = lm.n_layers
    clean_scale = m.ablated_unembed[..., 1, n - 1] * m.ablated_sigma / m.clean_sigma
    expected = clean_scale - m.unembed[1, n - 1]
    expected[1, n - 1] = 0.0  # the last MLP's own change is its ablation, not its neurons'
    assert_close(found.total, expected, rtol=1e-4, atol=1e-6)
    assert np.all(found.positive >= np.maximum(found.total, 0.0) - 1e-12)
    assert np.all(found.positive[1, n - 1] == 0.0)  # the last MLP's own ablation: after its neurons
    assert float(np.abs(found.positive).max()) > 0.0


def test_the_clamped_sum_matches_a_naive_neuron_by_neuron_reference() -> None:
    lm = tiny_lm("llama")
    found = anti_erasure(lm, IDS, TOKEN, [sn.zero()])
    model = hydra_model(lm, neurons=True)
    neurons = neurons_path(lm, lm.n_layers - 1)
    scale = f"{lm.spec.final_norm.path}.scale"
    _, rows = readout_rows(lm, TOKEN)
    context = {"input_ids": IDS}
    clean = model.evaluate(context, outputs=[neurons, scale])
    sigma = float(clean[scale][0, -1])
    before = (clean[neurons][0, -1].float() @ rows).double() / sigma
    for r, treatment in enumerate(layer_treatments(lm, [sn.zero()])):
        after = model.evaluate(context, treatment, outputs=[neurons])
        de = (after[neurons][0, -1].float() @ rows).double() / sigma
        b, layer = divmod(r, lm.n_layers)
        expected = float((de - before).clamp(min=0).sum())
        assert_close(found.positive[b, layer, 0], expected, rtol=1e-4, atol=1e-7)


def test_a_post_norm_mlp_is_refused() -> None:
    with pytest.raises(UnsupportedModel, match="post_feedforward_layernorm"):
        anti_erasure(tiny_lm("gemma3"), IDS, TOKEN, [sn.zero()])


@pytest.mark.parametrize("ablation", ["zero", "resample"])
def test_the_command_line_writes_anti_erasure_columns_and_resumes(
    ablation: str, hf_dir_with_tokenizer: Path, tmp_path: Path
) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("the eiffel tower is\nlocated in the city of\nthe city of\n")
    out = tmp_path / "out"
    parser = argparse.ArgumentParser()
    HYDRA.add_arguments(parser)
    args = ["--model", str(hf_dir_with_tokenizer), "--prompts", str(prompts), "--out", str(out)]
    args += ["--quiet", "--anti-erasure", "--ablation", ablation, "--patches", "2"]
    assert HYDRA.run(parser.parse_args(args)) == 0
    with open(out / "selfrepair.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    summary = json.loads((out / "summary.json").read_text())
    assert len(rows) == summary["prompts_kept"] * 2 * 3
    positive = np.array([float(r["anti_erasure"]) for r in rows])
    net = np.array([float(r["last_mlp_change"]) for r in rows])
    assert np.all(positive >= np.maximum(net, 0.0) - 1e-6)
    assert len(summary["anti_erasure"]) == 2 * 3
    assert "## Anti-erasure in the last MLP (--anti-erasure)" in (out / "summary.md").read_text()
    before = (out / "selfrepair.csv").read_bytes()
    (anti_erasure_folder(out) / "00001.npz").unlink()  # as if interrupted there
    assert HYDRA.run(parser.parse_args(args)) == 0
    assert (out / "selfrepair.csv").read_bytes() == before


def test_a_file_of_other_draws_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "00000.npz"
    AntiErasure(np.zeros((2, 3, 1)), np.zeros((2, 3, 1)), 64).save(path)
    with pytest.raises(DamagedFile, match="expected \\(2, 3, 2\\)"):
        AntiErasure.load(path, layers=3, draws=2)
