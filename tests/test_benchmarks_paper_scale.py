"""The benchmarks' pieces that run without a GPU: the paper-scale dry run prints every figure,
each a finite number; the FLOP counts; the peers benchmark's timer of a query's parts.

Nothing here checks how fast anything runs (no speed assertion in the tests): the timer's test
checks that the parts are timed and add up within the query, not how long they take.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "paper_scale.py"
FIELDS = (
    "seconds per prompt (median)",
    "clean run seconds per prompt (median)",
    "tokens/s",
    "forward-equivalent tokens/s",
    "achieved TFLOP/s",
    "matmul TFLOP/s",
    "achieved / matmul",
    "peak memory MiB",
    "estimated wall time for 1209 prompts x 64 layers x 15 patches",
)


@pytest.fixture(scope="module")
def printed() -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, str(SCRIPT), "--dry-run", "--threads", "1"]
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [line.partition(": ") for line in out.stdout.splitlines()]
    return {name: value for name, sep, value in lines if sep}


def _number(text: str) -> float:
    found = re.match(r"[-+]?\d+(\.\d*)?(e[-+]?\d+)?", text)
    assert found is not None, f"no number at the start of {text!r}"
    return float(found.group(0))


@pytest.mark.parametrize("field", FIELDS)
def test_dry_run_prints_a_finite_positive_figure(printed: dict[str, str], field: str) -> None:
    assert field in printed, f"{field!r} not printed; got {sorted(printed)}"
    value = _number(printed[field])
    assert math.isfinite(value)
    assert value >= 0


def test_dry_run_describes_the_tiny_model_and_protocol(printed: dict[str, str]) -> None:
    assert printed["model"].startswith("random-weight Llama (tiny), 4 layers, d_model 64")
    assert "3 resample patches, 25 runs per prompt" in printed["protocol"]
    assert " h (" in printed[FIELDS[-1]]  # hours and days


def test_estimate_scales_by_the_flop_ratio() -> None:
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from _common import Shape, protocol_flops
    finally:
        sys.path.remove(str(SCRIPT.parent))
    shape = Shape(layers=4, d_model=64, d_ff=128, d_q=64, d_kv=32, vocab=1000)
    deep = Shape(layers=64, d_model=64, d_ff=128, d_q=64, d_kv=32, vocab=1000)
    small, big = protocol_flops(shape, 10, 15), protocol_flops(deep, 10, 15)
    # the ablated part grows as L (L - 1) per draw, the clean run as L
    per_layer = shape.layer(10)
    assert big["ablated"] - 64 * 15 * shape.mlp() == 64 * 63 * 15 * per_layer
    assert small["ablated"] - 4 * 15 * shape.mlp() == 4 * 3 * 15 * per_layer
    assert big["clean"] == 16 * small["clean"]


def test_forward_flops_equal_torch_count_of_a_forward() -> None:
    """The peers benchmark's FLOP ratio: a full forward's matmuls as torch's counter sees them
    (eager attention counts every query against every key; the formula, causal pairs only)."""
    pytest.importorskip("transformers")
    from torch.utils.flop_counter import FlopCounterMode

    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from _common import Shape, forward_flops, random_llama
    finally:
        sys.path.remove(str(SCRIPT.parent))
    lm = random_llama(2, 64, d_ff=96, heads=4, kv_heads=2, vocab=50)
    lm.model.config._attn_implementation = "eager"
    shape, rows, tokens = Shape.of(lm.config), 3, 5
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        lm.model(input_ids=torch.zeros(rows, tokens, dtype=torch.long))
    causal = rows * shape.layers * shape.mixing(1) * tokens * (tokens + 1) // 2
    every_pair = rows * shape.layers * shape.mixing(tokens) * tokens
    expected = forward_flops(shape, rows, tokens) - causal + every_pair
    assert counter.get_total_flops() == expected


def test_peers_phase_timer_times_a_query_and_restores_the_engine() -> None:
    """``hydra_peers.py --phases``: the clean run and the staircase of a real query each take
    time, together no more than the query, and the engine's entry points are the originals
    after the block (an error inside it too)."""
    pytest.importorskip("transformers")
    import time

    import scmnet as sn
    from scmnet.adapters.transformer.measures import measure_prompt
    from scmnet.tracing import TracedModel
    from scmnet.tracing.engine import batched
    from tests.protocol import tiny_lm

    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from hydra_peers import phase_timer
    finally:
        sys.path.remove(str(SCRIPT.parent))
    lm = tiny_lm("llama")
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    entry_points = (batched.run_rows, TracedModel._clean)
    with phase_timer() as spent:
        start = time.perf_counter()
        measure_prompt(lm, ids, 3, [sn.zero()])
        query = time.perf_counter() - start
    assert (batched.run_rows, TracedModel._clean) == entry_points
    assert spent["clean"] > 0
    assert spent["rows"] > 0
    assert spent["clean"] + spent["rows"] <= query
    with pytest.raises(RuntimeError), phase_timer():
        raise RuntimeError("a failing query")
    assert (batched.run_rows, TracedModel._clean) == entry_points
