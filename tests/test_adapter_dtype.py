"""Sweeps in bfloat16 and float16 agree with float32 within the dtype's rounding (``--dtype``).

The tolerance: 16 units of the low dtype's machine epsilon times the largest readout of the
float32 run (the clean centred logit, the unembedding impacts, the ablated logits). The tiny
models' weights are the float32 ones rounded, so the difference is that of computing in the
low dtype (the largest seen here is about 4.3 such units, Gemma 3 in bfloat16).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import scmnet as sn
from scmnet import _values
from scmnet.adapters.transformer.ablations import Ablation, AblationKind
from scmnet.adapters.transformer.lm import LanguageModel
from scmnet.adapters.transformer.measures import PromptMeasures, measure_prompt
from scmnet.adapters.transformer.precision import DTYPES, parse_dtype
from scmnet.adapters.transformer.prompts import Prompt, PromptSet
from scmnet.adapters.transformer.sweep import SettingsMismatch, read_settings, run_sweep
from scmnet.errors import InvalidArgument
from scmnet.testing import assert_close
from tests.tiny_models import FAMILIES, CharTokenizer, tiny_model

LOW = (torch.bfloat16, torch.float16)
ULPS = 16
IDS = torch.tensor([[5, 6, 7, 8, 9, 10, 11]])
PROMPTS = PromptSet(
    tuple(Prompt(text, None) for text in ("abc de", "xyz w", "hello t", "qrs uv")), name="tiny"
)


def _lm(family: str, dtype: torch.dtype = torch.float32) -> LanguageModel:
    return LanguageModel.from_pretrained_model(
        tiny_model(family).to(dtype), CharTokenizer(), f"tiny-{family}"
    )


def _scale(m: PromptMeasures) -> float:
    return float(max(abs(m.clean_logit), np.abs(m.unembed).max(), np.abs(m.ablated_logit).max()))


def _assert_agree(low: PromptMeasures, ref: PromptMeasures, dtype: torch.dtype) -> None:
    atol = ULPS * torch.finfo(dtype).eps * _scale(ref)
    for name in ("unembed", "ablated_logit", "ablated_unembed"):
        assert_close(getattr(low, name), getattr(ref, name), rtol=0, atol=atol, msg=name)
    assert_close(low.clean_logit, ref.clean_logit, rtol=0, atol=atol)
    assert_close(low.ablated_sigma, ref.ablated_sigma, rtol=ULPS * torch.finfo(dtype).eps, atol=0)


@pytest.mark.parametrize("dtype", LOW, ids=str)
@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_agrees_with_float32(family: str, dtype: torch.dtype) -> None:
    ref = measure_prompt(_lm(family), IDS, 3, [sn.zero()])
    lm = _lm(family, dtype)
    assert lm.dtype == dtype
    low = measure_prompt(lm, IDS, 3, [sn.zero()])
    assert low.ablated_unembed.dtype == np.float64  # the readouts are returned in float64
    _assert_agree(low, ref, dtype)


@pytest.mark.parametrize("kind", list(AblationKind))
def test_a_bfloat16_sweep_agrees_with_float32_for_every_ablation(
    kind: AblationKind, tmp_path: Path
) -> None:
    ablation = Ablation(kind, patches=2, seed=1)
    _, ref = run_sweep(_lm("llama"), PROMPTS, ablation, tmp_path / "fp32")
    _, low = run_sweep(_lm("llama", torch.bfloat16), PROMPTS, ablation, tmp_path / "bf16")
    for a, b in zip(low, ref, strict=True):
        _assert_agree(a, b, torch.bfloat16)
    recorded = read_settings(tmp_path / "bf16")
    assert recorded is not None
    assert recorded.dtype == "bfloat16"


def test_a_resume_in_another_dtype_is_refused(tmp_path: Path) -> None:
    ablation = Ablation(AblationKind.ZERO)
    run_sweep(_lm("llama", torch.bfloat16), PROMPTS, ablation, tmp_path, limit=1)
    with pytest.raises(SettingsMismatch, match=r"dtype: 'bfloat16' there, 'float32' now"):
        run_sweep(_lm("llama"), PROMPTS, ablation, tmp_path, limit=1)


def test_a_record_written_before_dtype_existed_reads_as_float32(tmp_path: Path) -> None:
    run_sweep(_lm("llama"), PROMPTS, Ablation(AblationKind.ZERO), tmp_path, limit=1)
    path = tmp_path / "settings.json"
    data = json.loads(path.read_text())
    del data["dtype"]
    path.write_text(json.dumps(data))
    recorded = read_settings(tmp_path)
    assert recorded is not None
    assert recorded.dtype == "float32"
    data["dtype"] = "int8"
    path.write_text(json.dumps(data))
    with pytest.raises(sn.ScmnetError, match=r"its 'dtype' is \"int8\", not one of float32"):
        read_settings(tmp_path)


@given(
    st.lists(st.floats(-1e3, 1e3, allow_nan=False, width=32), min_size=1, max_size=40),
    st.sampled_from(LOW),
)
def test_a_half_precision_mean_is_summed_in_float32(
    values: list[float], dtype: torch.dtype
) -> None:
    rows = [torch.tensor([v], dtype=dtype) for v in values]
    exact = torch.stack(rows).float().mean(0).to(dtype)
    assert torch.equal(_values.mean(rows), exact)


def test_the_command_line_dtype(hf_dir_with_tokenizer: Path, tmp_path: Path) -> None:
    from scmnet.cli import main

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("the tower is in\nthe city of\n")
    out = tmp_path / "report"
    common = ["hydra", "--model", str(hf_dir_with_tokenizer), "--prompts", str(prompts)]
    args = [*common, "--ablation", "zero", "--dtype", "bfloat16", "--out", str(out), "--quiet"]
    assert main(args) == 0
    assert json.loads((out / "settings.json").read_text())["dtype"] == "bfloat16"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["dtype"] == "bfloat16"
    # a re-run from the record computes in the record's dtype; --dtype with it is refused
    again = tmp_path / "again"
    assert main(["hydra", "--from-record", str(out), "--out", str(again), "--quiet"]) == 0
    assert json.loads((again / "settings.json").read_text())["dtype"] == "bfloat16"
    refused = ["hydra", "--from-record", str(out), "--out", str(again), "--dtype", "float16"]
    assert main(refused) == 2
    with pytest.raises(SystemExit, match="2"):  # not a choice: argparse's usage error
        main([*common, "--dtype", "fp8", "--out", str(out)])


def test_parse_dtype_names_the_choices() -> None:
    assert [parse_dtype(n) for n in DTYPES] == list(DTYPES.values())
    assert parse_dtype(torch.float16) is torch.float16
    with pytest.raises(InvalidArgument, match="use float32, bfloat16 or float16"):
        parse_dtype(torch.int8)
