"""A sweep sharded over the workers of a local Ray cluster: the report of a single process."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ray

from scmnet.adapters.transformer.ablations import Ablation, AblationKind
from scmnet.adapters.transformer.command import HYDRA
from scmnet.adapters.transformer.distributed import ModelRecipe, RayShards, connected
from scmnet.adapters.transformer.hydra import run_hydra
from scmnet.adapters.transformer.lm import LanguageModel, load_model
from scmnet.adapters.transformer.measures import PromptMeasures
from scmnet.adapters.transformer.model_source import resolve_model
from scmnet.adapters.transformer.prompts import PromptSet, load_prompts
from scmnet.adapters.transformer.sweep import CleanRun, SettingsMismatch, clean_pass, run_sweep
from scmnet.errors import InvalidArgument, MissingDependency
from tests.test_adapter_sweep import PROMPTS
from tests.tiny_models import tiny_model


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """A local Ray cluster of two workers, started once for the module."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama with a character-level tokenizer, saved where workers load it."""
    import transformers as tf
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers

    folder = tmp_path_factory.mktemp("tiny-llama-chars")
    tiny_model("llama").save_pretrained(folder)
    chars = ["[UNK]", " ", *"abcdefghijklmnopqrstuvwxyz"]
    tokenizer = Tokenizer(models.WordLevel({c: i for i, c in enumerate(chars)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tf.PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]").save_pretrained(
        folder
    )
    (folder / "prompts.txt").write_text("".join(f"{p.text}\n" for p in PROMPTS))
    return folder


def _sweep(model_dir: Path, out: Path, ablation: str, **how: Any) -> dict[str, Any]:
    return run_hydra(
        model=str(model_dir),
        prompts=model_dir / "prompts.txt",
        ablation=ablation,
        patches=2,
        seed=1,
        out=out,
        progress=False,
        **how,
    )


@pytest.fixture(scope="module")
def single(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The resample sweep run in one process."""
    out = tmp_path_factory.mktemp("single") / "report"
    _sweep(model_dir, out, "resample")
    return out


@pytest.fixture(scope="module")
def lm(model_dir: Path) -> LanguageModel:
    """The saved model, loaded (and traced once) in this process."""
    return load_model(resolve_model(str(model_dir)))


@pytest.fixture(scope="module")
def prompts(model_dir: Path) -> PromptSet:
    """The prompts of the sweep tests, read from the file the command is given."""
    return load_prompts(model_dir / "prompts.txt")


def _shards(lm: LanguageModel, model_dir: Path, ablation: Ablation, out: Path) -> RayShards:
    recipe = ModelRecipe.of(resolve_model(str(model_dir)), lm, "cpu", 1)
    return RayShards(recipe, ablation, out / "measures")


def _assert_same_report(found: Path, expected: Path) -> None:
    """Every table byte for byte, settings.json too, and summary.json but for the timing."""
    tables = sorted(p.name for p in expected.glob("*.csv"))
    assert {"prompts.csv", "patches.csv", "layers.csv"} <= set(tables)
    assert sorted(p.name for p in found.glob("*.csv")) == tables
    for name in [*tables, "settings.json"]:
        assert (found / name).read_bytes() == (expected / name).read_bytes(), name
    there, here = (json.loads((f / "summary.json").read_text()) for f in (expected, found))
    there.pop("seconds", None)
    here.pop("seconds", None)
    assert here == there


def _assert_same_measures(found: list[PromptMeasures], expected: list[PromptMeasures]) -> None:
    """The same numbers, exactly, for every prompt."""
    assert len(found) == len(expected)
    for a, b in zip(found, expected, strict=True):
        for f in fields(PromptMeasures):
            x, y = getattr(a, f.name), getattr(b, f.name)
            assert np.array_equal(x, y), (a.prompt, f.name)


def test_sharded_resample_sweep_is_the_single_process_one(
    cluster: None, model_dir: Path, single: Path, tmp_path: Path
) -> None:
    """scmnet hydra --workers 2 (here on the module's cluster) writes the same report."""
    out = tmp_path / "sharded"
    args = ["--model", str(model_dir), "--prompts", str(model_dir / "prompts.txt")]
    args += ["--patches", "2", "--seed", "1", "--workers", "2", "--out", str(out), "--quiet"]
    parser = argparse.ArgumentParser()
    HYDRA.add_arguments(parser)
    assert HYDRA.run(parser.parse_args(args)) == 0
    _assert_same_report(out, single)
    assert not [p.name for p in out.rglob("*") if ".tmp" in p.name]


def test_sharded_zero_sweep_is_the_single_process_one(
    cluster: None, lm: LanguageModel, model_dir: Path, prompts: PromptSet, tmp_path: Path
) -> None:
    zero = Ablation(AblationKind.ZERO, seed=1)
    _, expected = run_sweep(lm, prompts, zero, tmp_path / "single")
    shards = _shards(lm, model_dir, zero, tmp_path / "sharded")
    _, found = run_sweep(lm, prompts, zero, tmp_path / "sharded", shard=shards)
    _assert_same_measures(found, expected)
    assert (tmp_path / "sharded" / "measures" / "00004.npz").exists()


def test_an_interrupted_sweep_resumes_across_modes(
    cluster: None,
    lm: LanguageModel,
    model_dir: Path,
    single: Path,
    prompts: PromptSet,
    tmp_path: Path,
) -> None:
    """Prompts on disk are not recomputed by the workers, and a sweep left by them resumes
    in one process: the numbers of the single-process run either way."""
    resample = Ablation(AblationKind.RESAMPLE, patches=2, seed=1)
    out = tmp_path / "report"
    shutil.copytree(single, out)
    _, expected = run_sweep(lm, prompts, resample, out)  # all loaded
    measures = out / "measures"
    for j in (1, 3):
        (measures / f"{j:05d}.npz").unlink()
    kept = {p.name: p.stat().st_mtime_ns for p in measures.iterdir()}
    assert sorted(kept) == ["00000.npz", "00002.npz", "00004.npz"]
    computed: list[int] = []
    shards = _shards(lm, model_dir, resample, out)

    def counted(clean: CleanRun, missing: list[int]) -> Iterator[int]:
        computed.extend(missing)
        yield from shards(clean, missing)

    _, found = run_sweep(lm, prompts, resample, out, shard=counted)
    assert computed == [1, 3]
    assert {n: (measures / n).stat().st_mtime_ns for n in kept} == kept  # loaded, not rewritten
    assert sorted(p.name for p in measures.iterdir()) == [f"{j:05d}.npz" for j in range(5)]
    _assert_same_measures(found, expected)

    (measures / "00002.npz").unlink()
    _, found = run_sweep(lm, prompts, resample, out)  # one process resumes the sharded sweep
    _assert_same_measures(found, expected)


def test_a_worker_error_surfaces_with_its_own_text(
    cluster: None, lm: LanguageModel, model_dir: Path, prompts: PromptSet, tmp_path: Path
) -> None:
    clean = clean_pass(lm, prompts)
    recipe = ModelRecipe.of(resolve_model(str(model_dir)), lm, "cpu", 1)
    wrong = ModelRecipe(recipe.source, "cpu", recipe.dtype, "0" * 32, 1)
    folder = tmp_path / "measures"
    folder.mkdir()
    shards = RayShards(wrong, Ablation(AblationKind.ZERO), folder, workers=2)
    with pytest.raises(SettingsMismatch) as info:
        list(shards(clean, [0, 1, 2]))
    assert str(info.value) == (
        f"a Ray worker loaded another model from {str(model_dir)!r} (model_hash: '{'0' * 32}' "
        f"in the driver, '{recipe.identity}' in the worker); give every node of the cluster "
        f"the same model files"
    )
    assert not list(folder.iterdir())


def test_connected_uses_a_running_ray_and_leaves_it_running(cluster: None) -> None:
    from scmnet.adapters.transformer.distributed import Cluster

    found = Cluster.of(2, None)
    assert found is not None
    with connected(found):
        assert ray.is_initialized()
    assert ray.is_initialized()


def test_workers_with_ray_is_refused(model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    with pytest.raises(InvalidArgument) as info:
        _sweep(model_dir, out, "zero", workers=2, ray="auto")
    assert str(info.value) == (
        "--workers 2 starts a local Ray cluster and --ray 'auto' connects to an existing one; "
        "give one of them"
    )
    with pytest.raises(InvalidArgument, match=r"--workers 0: give a positive number"):
        _sweep(model_dir, out, "zero", workers=0)
    with pytest.raises(InvalidArgument, match="--ray '': give the address of a Ray cluster"):
        _sweep(model_dir, out, "zero", ray=" ")
    assert not out.exists()
    args = ["--workers", "2", "--ray", "auto", "--out", str(out), "--quiet"]
    parser = argparse.ArgumentParser()
    HYDRA.add_arguments(parser)
    with pytest.raises(InvalidArgument, match="give one of them"):
        HYDRA.run(parser.parse_args(args))


def test_without_ray_workers_name_the_extra(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails, as where it is missing
    with pytest.raises(MissingDependency, match=r"pip install 'scmnet\[ray\]'"):
        _sweep(model_dir, tmp_path / "report", "zero", workers=2)
    with pytest.raises(MissingDependency, match=r"pip install 'scmnet\[ray\]'"):
        _sweep(model_dir, tmp_path / "report", "zero", ray="auto")
    assert not (tmp_path / "report").exists()
