"""Device maps: a model split by accelerate sweeps to the same numbers as on one device.

This machine has no GPU, so the split that really runs is the one accelerate makes here: some
modules on the host, the others offloaded to disk (their parameters are empty ``meta``
placeholders and the graph reads the stored weights through the modules' hooks). Every
operation then computes on the host, as on one device, so the sweep must agree to the last bit
(tolerance 0). Moving activations between two computing devices is checked on the graph's
placement (fake CUDA devices, nothing run) and, for the moves themselves, with ``meta`` as the
second device; a whole sweep across two GPUs runs on simulated ones in
``tests/test_simulated_cuda.py`` (where the devices are, not their arithmetic: that two real
GPUs give the same numbers only a multi-GPU machine can show).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

from scmnet.adapters.transformer.ablations import Ablation, AblationKind
from scmnet.adapters.transformer.causal import hydra_model
from scmnet.adapters.transformer.command import HYDRA
from scmnet.adapters.transformer.device_map import check_device_map, parse_max_memory
from scmnet.adapters.transformer.hydra import run_hydra
from scmnet.adapters.transformer.lm import LanguageModel, load_model
from scmnet.adapters.transformer.model_source import ModelSource, SourceKind
from scmnet.adapters.transformer.prompts import Prompt, PromptSet
from scmnet.adapters.transformer.sweep import run_sweep
from scmnet.errors import InvalidArgument
from scmnet.testing import assert_close
from scmnet.tracing.capture.frontends import bind_example, capture
from scmnet.tracing.engine.devices import placement
from scmnet.tracing.engine.executor import Executor
from tests.tiny_models import CharTokenizer, tiny_model

PROMPTS = PromptSet(
    tuple(Prompt(text, None) for text in ("abc de", "xyz w", "hello t", "qrs uv")), name="tiny"
)

SPLIT = {
    "model.embed_tokens": "cpu",
    "model.rotary_emb": "cpu",
    "model.layers.0": "cpu",
    "model.layers.1": "disk",
    "model.layers.2": "disk",
    "model.norm": "disk",
    "lm_head": "disk",
}
"""An explicit map: the embedding and the first layer on the host, the rest offloaded."""


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> ModelSource:
    folder = tmp_path_factory.mktemp("tiny-llama")
    tiny_model("llama").save_pretrained(folder)
    return ModelSource(SourceKind.DIRECTORY, str(folder), "tiny-llama")


@pytest.fixture(scope="module")
def one_device(source: ModelSource) -> LanguageModel:
    """The reference: the same weight files, loaded whole on the host."""
    return load_model(source, tokenizer=CharTokenizer())


def offloaded(lm: LanguageModel) -> list[str]:
    return [n for n, p in lm.model.named_parameters() if p.device.type == "meta"]


@pytest.fixture(scope="module")
def split(source: ModelSource, tmp_path_factory: pytest.TempPathFactory) -> LanguageModel:
    folder = tmp_path_factory.mktemp("offload")
    lm = load_model(source, tokenizer=CharTokenizer(), device_map=SPLIT, offload_folder=folder)
    assert "lm_head.weight" in offloaded(lm)
    assert "model.layers.0.mlp.up_proj.weight" not in (offloaded(lm))
    return lm


def sweep(lm: LanguageModel, kind: AblationKind, out: Path) -> list[Any]:
    _, results = run_sweep(lm, PROMPTS, Ablation(kind, patches=3, seed=2), out)
    return results


@pytest.mark.parametrize("kind", [AblationKind.ZERO, AblationKind.RESAMPLE])
def test_split_sweep_equals_one_device(
    one_device: LanguageModel, split: LanguageModel, tmp_path: Path, kind: AblationKind
) -> None:
    """Every measure of every prompt, bit for bit: the split model computes every operation on
    the host from the same stored weights, read through the offload hooks."""
    expected = sweep(one_device, kind, tmp_path / "one")
    got = sweep(split, kind, tmp_path / "split")
    assert hydra_model(split)._net.executor.placement is not None  # the offload path ran
    assert len(got) == len(expected) == len(PROMPTS)
    for a, b in zip(got, expected, strict=True):
        for field in dataclasses.fields(a):
            assert_close(getattr(a, field.name), getattr(b, field.name), rtol=0, atol=0)
    assert offloaded(split)  # the sweep left the offloaded weights offloaded


def test_auto_map_with_a_memory_budget(hf_dir_with_tokenizer: Path, tmp_path: Path) -> None:
    """``scmnet hydra --device-map auto`` with a host budget smaller than the model offloads
    its tail to disk; the report's tables and its settings.json (the model's identity
    included: device settings change how, not what) are those of the one-device run, byte for
    byte."""
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("the eiffel tower is\nlocated in the city of\n")
    common = ["--model", str(hf_dir_with_tokenizer), "--prompts", str(prompts), "--quiet"]
    common += ["--ablation", "zero"]  # resample: the sweep test above
    placed = ["--device-map", "auto", "--max-memory", "cpu=90KB"]
    placed += ["--offload-folder", str(tmp_path / "offload")]
    parser = argparse.ArgumentParser()
    HYDRA.add_arguments(parser)
    for out, extra in (("one", []), ("split", placed)):
        assert HYDRA.run(parser.parse_args([*common, *extra, "--out", str(tmp_path / out)])) == 0
    for name in ("settings.json", "layers.csv", "prompts.csv"):
        one, split = (
            (tmp_path / "one" / name).read_bytes(),
            (tmp_path / "split" / name).read_bytes(),
        )
        assert one == split, name
    lm = load_model(
        str(hf_dir_with_tokenizer),
        device_map="auto",
        max_memory="cpu=90KB",
        offload_folder=tmp_path / "offload",
    )
    assert set(lm.model.hf_device_map.values()) == {"cpu", "disk"}
    assert offloaded(lm)


# -- where each operation runs, and the moves between devices ------------------------------------


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 4)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.linear(h)


class TwoLayers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(4, 4)
        self.second = Residual()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(torch.relu(self.first(x)))  # the relu belongs to no layer


def test_placement_follows_the_hooks_execution_devices() -> None:
    """Each operation goes to the execution device of the parameters it reads (the hooks'
    devices, fake CUDA devices here: nothing runs); the others follow their arguments."""
    net = TwoLayers().eval()
    cap = capture(net, bind_example(net, torch.zeros(2, 4)), frontend="export")
    for name, index in (("first", 0), ("second", 1), ("second.linear", 1)):  # as accelerate
        hook = SimpleNamespace(execution_device=torch.device("cuda", index))
        object.__setattr__(net.get_submodule(name), "_hf_hook", hook)
    found = placement(cap.graph_module, cap.feeds, net)
    assert found is not None
    nodes = {n.name: n for n in cap.graph_module.graph.nodes}
    linear = [n for n in nodes.values() if n.op == "call_function" and "linear" in n.name]
    assert [str(found.devices[n.name]) for n in linear] == ["cuda:0", "cuda:1"]
    add = next(n for n in nodes.values() if n.op == "call_function" and "add" in n.name)
    assert str(found.devices[add.name]) == "cuda:1"  # the residual add of the second layer
    relu = next(n for n in nodes.values() if n.op == "call_function" and "relu" in n.name)
    assert relu.name not in found.devices  # no layer: it runs where its argument is


def test_values_move_to_the_device_of_the_parameters_they_meet() -> None:
    """With the second layer computing on another device (``meta``, the only second device of
    a CPU machine), the graph moves the activation and the weights it reads there; the first
    layer computes on the host as before."""
    net = TwoLayers().eval()
    x = torch.randn(2, 4)
    cap = capture(net, bind_example(net, x), frontend="export")
    clean = Executor(cap.graph_module, cap.feeds, net).run({"x": x})
    hook = SimpleNamespace(execution_device=torch.device("meta"))
    for module in (net.second, net.second.linear):
        object.__setattr__(module, "_hf_hook", hook)
    executor = Executor(cap.graph_module, cap.feeds, net)
    assert executor.placement is not None
    run = executor.run({"x": x})
    relu = next(n for n in run if "relu" in str(n.target))
    assert torch.equal(run[relu], clean[relu])  # the host part is computed as before
    out = next(n for n in run if "add" in str(n.target))
    assert run[out].device.type == "meta"
    assert run[out].shape == (2, 4)
    assert net.second.linear.weight.device.type == "cpu"  # moved for the operation only


def test_one_device_has_no_placement() -> None:
    net = TwoLayers().eval()
    cap = capture(net, bind_example(net, torch.zeros(2, 4)), frontend="export")
    assert Executor(cap.graph_module, cap.feeds, net).placement is None


# -- errors -------------------------------------------------------------------------------------


def test_a_device_this_machine_lacks_is_named() -> None:
    with pytest.raises(InvalidArgument, match=r"'cuda:3'.*its devices are .*cpu, disk"):
        check_device_map({"model.layers.0": "cuda:3", "lm_head": "cpu"})
    with pytest.raises(InvalidArgument, match=r"'cuda:3', which this machine does not have"):
        check_device_map("cuda:3")
    with pytest.raises(InvalidArgument, match=r"'cuda:7'"):
        parse_max_memory("cuda:7=2GiB")


def test_unknown_strategy_and_missing_offload_folder(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match=r"'fastest' is neither a strategy \(auto"):
        check_device_map("fastest")
    with pytest.raises(InvalidArgument, match=r"--offload-folder"):
        check_device_map({"lm_head": "disk"})
    bad = tmp_path / "map.json"
    bad.write_text('["cpu"]')
    with pytest.raises(InvalidArgument, match="one JSON object"):
        check_device_map(bad)
    good = tmp_path / "good.json"
    good.write_text('{"": "cpu"}')
    assert check_device_map(good) == {"": "cpu"}


def test_device_map_with_device_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="takes no --device"):
        run_hydra(device_map="auto", device="meta", out=tmp_path / "out", progress=False)
    parser = argparse.ArgumentParser()
    HYDRA.add_arguments(parser)
    args = parser.parse_args(["--device-map", "auto", "--device", "cpu"])
    with pytest.raises(InvalidArgument, match="drop --device cpu"):
        HYDRA.run(args)
    with pytest.raises(InvalidArgument, match="only apply with a device map"):
        run_hydra(max_memory="cpu=1GiB", out=tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
