"""The Hydra protocol on a simulated CUDA device: device discipline and syncs, without a GPU.

``tests/simulated_cuda.py`` makes tensors that say they are on ``cuda:0`` while their data stays
on the host, refuses what CUDA refuses (a device tensor meeting a host tensor in one operation)
and counts what waits for the device (reads back, copies from the host, data-dependent sizes).
Each model is traced on the host, then moved there with its graph rewritten as if traced there.
What a real GPU adds, its arithmetic, ``tests/test_cuda.py`` checks where a GPU is present.

* every family's measures on the simulated device equal the host's within float32 rounding (the
  data and the operations are the host's; copies in other places may take other vectorised
  paths, a unit in the last place, and a value taken from the wrong place differs by far more);
* a whole sweep, for every ablation kind;
* a prompt's query waits for the device the same number of times at the same lines whatever
  its layers and draws: three reads back (two sets of finiteness flags and the readouts) and
  two copies from the host (the prompt's token ids, and where the batch's rows go in the
  result, once for every output);
* what each more prompt of a sweep costs in waits is the same whatever the depth. (Once per
  prompt length, the batching probes read each variable's comparison back, and once per sweep
  the model's identity hashes its weights on the host: waits per layer, but not per prompt.)
* a model split across two simulated GPUs by a device map sweeps to the host's numbers (layers,
  heads and anti-erasure), no operation meeting tensors of two devices; and the core's effect
  operators (total, direct, indirect, mediation, tables, path patching) give the host's values.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

import scmnet as sn
from scmnet.adapters.transformer.ablations import Ablation, AblationKind
from scmnet.adapters.transformer.anti_erasure import run_anti_erasure_sweep
from scmnet.adapters.transformer.causal import hydra_model
from scmnet.adapters.transformer.head_sweep import run_head_sweep
from scmnet.adapters.transformer.lm import LanguageModel, load_model
from scmnet.adapters.transformer.measures import measure_prompt
from scmnet.adapters.transformer.prompts import Prompt, PromptSet
from scmnet.adapters.transformer.sweep import run_sweep
from scmnet.testing import assert_close, tolerance
from scmnet.tracing.engine.devices import placement
from tests.protocol import draws, tiny_lm
from tests.simulated_cuda import (
    CUDA,
    as_traced_on_the_device,
    simulated_cuda,
    to_simulated_device,
)
from tests.tiny_models import FAMILIES

IDS = torch.tensor([[5, 6, 7, 8, 9, 10, 11]])
PROMPTS = PromptSet(
    tuple(Prompt(text, None) for text in ("abc de", "xyz w", "hello t", "qrs uv")), name="tiny"
)


def _on_device(lm: LanguageModel) -> LanguageModel:
    """``lm`` traced on the host, then moved to the simulated device with its graph."""
    as_traced_on_the_device(hydra_model(lm)._net.executor.graph_module)
    to_simulated_device(lm.model)
    return lm


def _assert_equal(got: Any, ref: Any, dtype: torch.dtype = torch.float32) -> None:
    """Every number of a prompt's result (measures, head measures, anti-erasure) equal within
    1e-6 (float32: the same operations on the same data), or within the tolerance of
    ``dtype``; every other field equal."""
    rtol, atol = (1e-6, 1e-6) if dtype == torch.float32 else tolerance(dtype)
    for field in dataclasses.fields(got):
        x, y = getattr(got, field.name), getattr(ref, field.name)
        if isinstance(x, np.ndarray | torch.Tensor | float):
            assert_close(x, y, rtol=rtol, atol=atol, msg=field.name)
        else:
            assert x == y, field.name


def _assert_all_equal(got: Sequence[Any], ref: Sequence[Any]) -> None:
    assert len(got) == len(ref)
    for a, b in zip(got, ref, strict=True):
        _assert_equal(a, b)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_measures_on_the_device_as_on_the_host(family: str) -> None:
    ref = measure_prompt(tiny_lm(family), IDS, 3, [sn.zero()])
    lm = _on_device(tiny_lm(family))
    with simulated_cuda():
        assert lm.device == torch.device("cuda", 0)
        got = measure_prompt(lm, IDS, 3, [sn.zero()])
    _assert_equal(got, ref)


@pytest.mark.parametrize("kind", list(AblationKind))
def test_a_sweep_on_the_device_equals_the_host_sweep(kind: AblationKind, tmp_path: Path) -> None:
    ablation = Ablation(kind, patches=3, seed=1)
    _, ref = run_sweep(tiny_lm("llama"), PROMPTS, ablation, tmp_path / "host")
    lm = _on_device(tiny_lm("llama"))
    with simulated_cuda():
        _, got = run_sweep(lm, PROMPTS, ablation, tmp_path / "device")
    for a, b in zip(got, ref, strict=True):
        _assert_equal(a, b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("kind", [AblationKind.ZERO, AblationKind.RESAMPLE])
def test_a_loaded_models_sweep_gives_the_fused_attention_arguments_that_fit(
    kind: AblationKind, dtype: torch.dtype, hf_dir_with_tokenizer: Path, tmp_path: Path
) -> None:
    """``scmnet hydra --device cuda --dtype bfloat16`` on a tiny Llama died on an H200
    ("Segmentation fault", or "misaligned address" reported by a later operation): the suffix
    search gave cuDNN's attention a key of 4 positions with a value cut to 1, which the host
    rejects and the kernel does not check, and masks of shape ``(1, 1, 4, 1)``, which broadcast
    over the keys and which cuDNN faulted on. The first prompt has 4 tokens, as many as the
    model has heads, so the search tries the head axis as a position axis too. The simulated
    device faults as cuDNN did; the sweep must equal the host's."""
    prompts = PromptSet(
        (Prompt("the eiffel tower is", None), Prompt("located in the city of", None)), name="words"
    )
    ablation = Ablation(kind, patches=1, seed=1)  # two prompts: one other to resample
    _, ref = run_sweep(
        load_model(str(hf_dir_with_tokenizer), dtype=dtype), prompts, ablation, tmp_path / "host"
    )
    lm = _on_device(load_model(str(hf_dir_with_tokenizer), dtype=dtype))
    with simulated_cuda():
        _, got = run_sweep(lm, prompts, ablation, tmp_path / "device")
    for a, b in zip(got, ref, strict=True):
        _assert_equal(a, b, dtype)


@pytest.mark.parametrize("kind", [AblationKind.ZERO, AblationKind.RESAMPLE, AblationKind.NOISE])
@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_a_prompt_waits_for_the_device_the_same_whatever_its_layers_and_draws(
    family: str, kind: AblationKind
) -> None:
    counts: list[collections.Counter[str]] = []
    for layers, k in ((3, 1), (3, 3), (2, 3)):
        lm = _on_device(tiny_lm(family, layers))
        with simulated_cuda():
            found_draws, values = draws(lm, IDS, kind, k)
            measure_prompt(lm, IDS, 3, found_draws, values=values)  # warm: the batching probes
            hydra_model(lm).clear_cache()
        with simulated_cuda() as syncs:
            measure_prompt(lm, IDS, 3, found_draws, values=values)
        counts.append(syncs)
    assert counts[0] == counts[1] == counts[2], counts  # no wait per layer or per draw
    kinds = collections.Counter(where.split(" at ")[0] for where in counts[0].elements())
    assert kinds == {"copy to the host": 3, "copy from the host": 2}, dict(counts[0])


@pytest.mark.parametrize("kind", [AblationKind.ZERO, AblationKind.RESAMPLE])
def test_a_sweeps_prompts_wait_the_same_whatever_the_depth(
    kind: AblationKind, tmp_path: Path
) -> None:
    """What each more prompt of a sweep costs in waits for the device (its clean pass, values,
    query and file: the sweep of 4 prompts against the sweep of 2 of them, all of one length,
    so that the once-per-length probes and the once-per-sweep weight hashing cancel) is the same
    for 2 and 3 layers: no wait per layer in the loop over prompts."""
    texts = ("abc de", "xyz wv", "hello!", "qrs uv")  # one length: one set of probes
    added = []
    for layers in (3, 2):
        counts = []
        for n in (2, 4):
            prompts = PromptSet(tuple(Prompt(t, None) for t in texts[:n]), name=f"{n}")
            lm = _on_device(tiny_lm("llama", layers))
            with simulated_cuda() as syncs:
                ablation = Ablation(kind, patches=1, seed=1)
                run_sweep(lm, prompts, ablation, tmp_path / f"{layers}-{n}")
            counts.append(syncs)
        more = counts[1] - counts[0]
        assert not counts[0] - counts[1], "a larger sweep waits less somewhere"
        added.append(more)
    assert added[0] == added[1], added


SECOND = torch.device("cuda", 1)
TWO_DEVICES = {
    "model.embed_tokens": CUDA,
    "model.rotary_emb": CUDA,
    "model.layers.0": CUDA,
    "model.layers.1": SECOND,
    "model.layers.2": SECOND,
    "model.norm": SECOND,
    "lm_head": SECOND,
}
"""A device map of two GPUs, as accelerate gives a model too large for one."""


def _on_two_devices(lm: LanguageModel) -> LanguageModel:
    """``lm`` split across the simulated ``cuda:0`` and ``cuda:1`` by ``TWO_DEVICES``: traced on
    the host (its layer, head and neuron traces), then each module given the hook accelerate
    puts on it (its execution device) and its weights moved there, and each graph's placement
    found from the hooks, as the trace of a model loaded with the device map finds it."""
    executors = [
        hydra_model(lm, heads=heads, neurons=neurons)._net.executor
        for heads, neurons in ((False, False), (True, False), (False, True))
    ]
    for executor in executors:
        as_traced_on_the_device(executor.graph_module)
    for path, device in TWO_DEVICES.items():
        module = lm.model.get_submodule(path)
        object.__setattr__(module, "_hf_hook", SimpleNamespace(execution_device=device))
        to_simulated_device(module, device)
    for executor in executors:
        feeds = list(executor._feeds.values())
        executor.placement = placement(executor.graph_module, feeds, lm.model)
        assert executor.placement is not None
    return lm


@pytest.mark.parametrize("kind", [AblationKind.ZERO, AblationKind.RESAMPLE, AblationKind.NOISE])
def test_a_sweep_split_across_two_devices_equals_the_host_sweep(
    kind: AblationKind, tmp_path: Path
) -> None:
    """A model larger than one GPU (``--device-map``), split across two simulated GPUs: every
    activation reaches the device of the layer that reads it (an operation that met tensors of
    two devices would raise, as CUDA does), and the layer sweep's numbers are the host's; so
    are the head sweep's and the anti-erasure's (``--units heads``, ``--anti-erasure``) for
    resample ablation."""
    ablation = Ablation(kind, patches=2, seed=1)
    host = tiny_lm("llama")
    clean, ref = run_sweep(host, PROMPTS, ablation, tmp_path / "host")
    resample = kind is AblationKind.RESAMPLE
    unit_sweeps = (run_head_sweep, run_anti_erasure_sweep) if resample else ()
    unit_refs = [units(host, clean, ablation, tmp_path / "host") for units in unit_sweeps]
    lm = _on_two_devices(tiny_lm("llama"))
    with simulated_cuda():
        assert lm.device == CUDA
        assert lm.parameter("lm_head.weight").device == SECOND
        on_devices, got = run_sweep(lm, PROMPTS, ablation, tmp_path / "devices")
        found = [units(lm, on_devices, ablation, tmp_path / "devices") for units in unit_sweeps]
    _assert_all_equal(got, ref)
    for a, b in zip(found, unit_refs, strict=True):
        _assert_all_equal(a, b)


def test_the_simulation_refuses_two_devices_in_one_operation() -> None:
    """What the two-device sweep relies on: CUDA's refusal, and copies between devices."""
    with simulated_cuda() as syncs:
        x, y = torch.ones(3).cuda(), torch.ones(3).to(SECOND)
        assert (x.device, y.device) == (CUDA, SECOND)
        with pytest.raises(RuntimeError, match="cuda:0 and cuda:1"):
            x + y
        moved = y.to(CUDA)
        assert moved.device == CUDA
        assert float((x + moved).sum().cpu()) == 6.0
    assert sum(syncs.values()) == 3  # two copies from the host, one back; none between devices


def _generic_effects(lm: LanguageModel) -> dict[str, torch.Tensor]:
    """The core's effect operators on ``lm``'s traced graph (not the Hydra adapter's query):
    each a number or an array, for a comparison across devices."""
    m = hydra_model(lm)
    u, v = ({"input_ids": ids.to(lm.device)} for ids in (IDS, IDS.roll(1, 1)))
    a0, m1, a2 = (lm.module_path(k, b) for k, b in ((0, "attn"), (1, "mlp"), (2, "attn")))
    y = sn.Outcome((sn.Site(lm.spec.final_norm.path, (0, -1)),), lambda x: x[:4].sum().double())
    last = (slice(None), -1)
    zero = {sn.Site(a0, last): sn.zero()}
    rows = [{sn.Site(p, last): sn.zero()} for p in (a0, m1, a2)]
    both = sn.mediation(m, zero, y, mediators=[m1], context=u)
    found = {
        "total": sn.total_effect(m, {sn.Site(a0, last): sn.patch(v)}, y, context=u),
        "direct": sn.direct_effect(m, zero, y, mediators=[m1], context=u),
        "indirect": sn.indirect_effect(m, zero, y, mediators=[m1], context=u),
        "mediation": [both.te, both.nde_pure, both.nie_total, both.nde_total, both.nie_pure],
        "table": sn.effect_table(m, rows, y, context=u).values,
        "population": sn.effect_table(m, rows, y, context=[u, v]).values,
        "resample": sn.effect_table(
            m, [{sn.Site(a0, last): sn.resample([u, v])}], y, context=u, draws=3
        ).values,
        "path patching": sn.path_patching(
            m, [{sn.Site(a0, last): sn.patch(v)}], y, receivers=[m1], context=u
        ).values,
    }
    return {k: _on_host(x) for k, x in found.items()}


def _on_host(value: Any) -> torch.Tensor:
    """A result (a number, a tensor on a device, an Estimate, or a list of them) on the host."""
    if isinstance(value, list | tuple):
        return torch.stack([_on_host(x) for x in value])
    value = getattr(value, "value", value)  # an Estimate's value
    if isinstance(value, torch.Tensor):
        return value.cpu().double()
    return torch.tensor(float(value), dtype=torch.float64)


def test_the_effect_operators_on_two_devices_equal_the_hosts() -> None:
    """The core's operators on a traced model split across two simulated GPUs (total, direct
    and indirect effects, mediation, tables over contexts and draws, path patching): each
    value the host's, within float32 rounding."""
    ref = _generic_effects(tiny_lm("llama"))
    lm = _on_two_devices(tiny_lm("llama"))
    with simulated_cuda():
        got = _generic_effects(lm)
    for name, value in ref.items():
        assert_close(got[name], value, rtol=1e-6, atol=1e-6, msg=name)
