"""The Hydra protocol on a CUDA device: the same numbers as on the host, and no syncs per layer.

These tests need a GPU and are skipped without one (CI has none); ``benchmarks/gpu.sh`` runs them
on a GPU machine, with the GPU benchmarks. What they check:

* every family's tiny model measured on the GPU in float32 agrees with the host within float32
  rounding (64 units of float32's machine epsilon times the largest readout), and in bfloat16
  within the bound of ``tests/test_adapter_dtype.py`` (16 units of bfloat16's);
* a whole sweep on the GPU, for every ablation kind, agrees with the host's;
* a prompt's query makes **the same synchronising calls at the same lines whatever its layers
  and draws** (``torch.cuda.set_sync_debug_mode("warn")`` reports each one: a read back to the
  host, or a copy from the host that waits for the device), so nothing in the loop over layers or
  draws waits for the GPU; the reads back are the three of ``tests/test_adapter_host_reads.py``;
* a model whose layers a device map offloads to the host sweeps to the one-device numbers;
* ``scmnet hydra --device cuda --dtype bfloat16`` writes a report.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import scmnet as sn
from scmnet.adapters.transformer.ablations import Ablation, AblationKind
from scmnet.adapters.transformer.causal import hydra_model
from scmnet.adapters.transformer.command import HYDRA
from scmnet.adapters.transformer.lm import LanguageModel, load_model
from scmnet.adapters.transformer.measures import PromptMeasures, measure_prompt
from scmnet.adapters.transformer.model_source import ModelSource, SourceKind
from scmnet.adapters.transformer.prompts import Prompt, PromptSet
from scmnet.adapters.transformer.sweep import run_sweep
from scmnet.testing import assert_close
from tests.protocol import draws, tiny_lm
from tests.tiny_models import FAMILIES, CharTokenizer, tiny_model

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device: run benchmarks/gpu.sh on a GPU"
)

IDS = torch.tensor([[5, 6, 7, 8, 9, 10, 11]])
PROMPTS = PromptSet(
    tuple(Prompt(text, None) for text in ("abc de", "xyz w", "hello t", "qrs uv")), name="tiny"
)
ULPS = {torch.float32: 64, torch.bfloat16: 16}


def _lm(family: str, device: str, dtype: torch.dtype = torch.float32) -> LanguageModel:
    lm = tiny_lm(family)
    lm.model.to(device=device, dtype=dtype)
    return lm


def _assert_agree(got: PromptMeasures, ref: PromptMeasures, dtype: torch.dtype) -> None:
    """Every readout within ``ULPS[dtype]`` units of ``dtype``'s epsilon times the largest."""
    eps = ULPS[dtype] * torch.finfo(dtype).eps
    scale = max(abs(ref.clean_logit), np.abs(ref.unembed).max(), np.abs(ref.ablated_logit).max())
    for name in ("unembed", "ablated_logit", "ablated_unembed"):
        assert_close(getattr(got, name), getattr(ref, name), rtol=0, atol=eps * scale, msg=name)
    assert_close(got.clean_logit, ref.clean_logit, rtol=0, atol=eps * scale)
    assert_close(got.ablated_sigma, ref.ablated_sigma, rtol=eps, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_on_the_gpu_agrees_with_the_host(family: str, dtype: torch.dtype) -> None:
    ref = measure_prompt(_lm(family, "cpu"), IDS, 3, [sn.zero()])
    lm = _lm(family, "cuda", dtype)
    assert lm.device.type == "cuda"
    got = measure_prompt(lm, IDS, 3, [sn.zero()])
    _assert_agree(got, ref, dtype)


@pytest.mark.parametrize("kind", list(AblationKind))
def test_a_gpu_sweep_agrees_with_the_host_for_every_ablation(
    kind: AblationKind, tmp_path: Path
) -> None:
    ablation = Ablation(kind, patches=3, seed=1)  # the noise is drawn on the host: the same
    _, ref = run_sweep(_lm("llama", "cpu"), PROMPTS, ablation, tmp_path / "cpu")
    _, got = run_sweep(_lm("llama", "cuda"), PROMPTS, ablation, tmp_path / "cuda")
    for a, b in zip(got, ref, strict=True):
        _assert_agree(a, b, torch.float32)


def _syncs(run: Any) -> collections.Counter[str]:
    """The synchronising CUDA calls made by ``run()``, by the file and line that made them."""
    found: collections.Counter[str] = collections.Counter()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    for w in caught:
        if "synchroniz" in str(w.message):
            found[f"{Path(w.filename).name}:{w.lineno}"] += 1
    return found


@pytest.mark.parametrize("kind", [AblationKind.ZERO, AblationKind.RESAMPLE, AblationKind.NOISE])
@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_a_prompt_syncs_the_same_whatever_its_layers_and_draws(
    family: str, kind: AblationKind
) -> None:
    counts = []
    for layers, k in ((3, 1), (3, 3), (2, 3)):
        lm = tiny_lm(family, layers)
        lm.model.to("cuda")  # before the trace: it is made on the device
        found_draws, values = draws(lm, IDS, kind, k)
        measure_prompt(lm, IDS, 3, found_draws, values=values)  # warm: the batching probes
        hydra_model(lm).clear_cache()
        found = _syncs(lambda: measure_prompt(lm, IDS, 3, found_draws, values=values))  # noqa: B023
        hydra_model(lm).clear_cache()
        print(f"{family} {kind.value} L={layers} K={k}: {sum(found.values())} syncs {dict(found)}")
        counts.append(dict(found))
    assert counts[0] == counts[1] == counts[2], counts  # no sync per layer or per draw


def test_a_model_offloaded_to_the_host_sweeps_as_on_the_gpu(tmp_path: Path) -> None:
    """A device map with ``"cpu"`` beside a GPU: accelerate keeps those layers' weights on the
    host and computes them on the GPU, loading them for each call; the sweep equals the one of
    the model held whole on the GPU."""
    folder = tmp_path / "tiny-llama"
    tiny_model("llama").save_pretrained(folder)
    source = ModelSource(SourceKind.DIRECTORY, str(folder), "tiny-llama")
    split = {"model.embed_tokens": 0, "model.rotary_emb": 0, "model.layers.0": 0}
    split |= {"model.layers.1": "cpu", "model.layers.2": "cpu", "model.norm": 0, "lm_head": 0}
    placed = load_model(source, tokenizer=CharTokenizer(), device_map=split)
    devices = {p.device.type for p in placed.model.parameters()}
    print(f"parameters on {sorted(devices)}; map {placed.model.hf_device_map}")
    assert "cuda" in devices
    assert len(devices) == 2
    one = load_model(source, tokenizer=CharTokenizer(), device="cuda")
    worst = 0.0
    for kind in (AblationKind.ZERO, AblationKind.RESAMPLE):
        ablation = Ablation(kind, patches=3, seed=2)
        _, ref = run_sweep(one, PROMPTS, ablation, tmp_path / f"one-{kind.value}")
        _, got = run_sweep(placed, PROMPTS, ablation, tmp_path / f"split-{kind.value}")
        for a, b in zip(got, ref, strict=True):
            for field in dataclasses.fields(a):
                x, y = np.asarray(getattr(a, field.name)), np.asarray(getattr(b, field.name))
                if x.dtype.kind == "f":
                    worst = max(worst, float(np.abs(x - y).max(initial=0.0)))
                assert_close(x, y, rtol=1e-5, atol=1e-5, msg=field.name)
    print(f"largest difference from the one-device sweep: {worst:.3g}")


def test_the_command_line_on_the_gpu(hf_dir_with_tokenizer: Path, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("the eiffel tower is\nlocated in the city of\n")
    parser = argparse.ArgumentParser()
    HYDRA.add_arguments(parser)
    args = ["--model", str(hf_dir_with_tokenizer), "--prompts", str(prompts), "--quiet"]
    args += ["--device", "cuda", "--dtype", "bfloat16", "--ablation", "resample", "--patches", "1"]
    assert HYDRA.run(parser.parse_args([*args, "--out", str(tmp_path / "out")])) == 0
    assert (tmp_path / "out" / "layers.csv").exists()
