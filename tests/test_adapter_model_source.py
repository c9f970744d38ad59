"""What ``scmnet hydra --model`` and ``--out`` accept: every bad value is one clear error,
raised (where the file system and config.json can tell) before any weights load."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from scmnet.adapters.transformer.hydra import run_hydra
from scmnet.adapters.transformer.lm import EMBEDDED_GGUF, embedded_model_dir, load_model
from scmnet.adapters.transformer.model_source import SourceKind, resolve_model
from scmnet.cli import main
from scmnet.errors import InvalidArgument, UnsupportedModel

Hydra = Callable[..., str]


@pytest.fixture
def no_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if transformers is asked to load a model or a tokenizer."""
    import transformers

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("nothing may load before the checks")

    for auto in (transformers.AutoModelForCausalLM, transformers.AutoTokenizer):
        monkeypatch.setattr(auto, "from_pretrained", never)


@pytest.fixture
def hydra(
    no_loading: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Callable[..., str]:
    """``scmnet hydra --model MODEL`` (plus options): asserts it fails with exit status 2 and
    one line, before anything loads, and returns the error."""

    def run(model: str | Path, *options: str) -> str:
        capsys.readouterr()
        args = ["hydra", "--model", str(model), "--ablation", "zero", "--quiet"]
        if "--out" not in options:
            args += ["--out", str(tmp_path / "report")]
        assert main([*args, *options]) == 2
        err = capsys.readouterr().err
        assert err.startswith("scmnet hydra: error: ")
        assert len(err.strip().splitlines()) == 1
        assert not (tmp_path / "report").exists()
        return err

    return run


def _copy(folder: Path, to: Path) -> Path:
    shutil.copytree(folder, to)
    return to


def _embedded() -> Path:
    return embedded_model_dir() / EMBEDDED_GGUF


# -- what --model names -------------------------------------------------------------------------


def test_a_missing_path_says_the_hub_is_offline(
    hydra: Hydra, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    err = hydra("someone/some-model")
    assert "--model 'someone/some-model': no such directory or file" in err
    assert "the hub is offline: HF_HUB_OFFLINE=1" in err
    assert "give a local model directory" in err
    assert "leave --model out for the embedded SmolLM2-135M-Instruct" in err
    (tmp_path / "tiny-llama").mkdir()
    err = hydra(tmp_path / "tiny-lama")
    assert f"--model '{tmp_path / 'tiny-lama'}': no such directory or file" in err
    assert "(did you mean 'tiny-llama'?)" in err


def test_an_empty_directory_and_one_without_config_are_refused(
    hydra: Hydra, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    err = hydra(empty)
    assert f"--model '{empty}': it is an empty directory" in err
    assert "model.save_pretrained(dir) and tokenizer.save_pretrained(dir)" in err
    (empty / "notes.txt").write_text("")
    err = hydra(empty)
    assert "it has no config.json, so it is not a Hugging Face model directory" in err
    assert "(it holds 'notes.txt')" in err
    err = hydra(empty / "notes.txt")
    assert "is a file, not a model directory" in err


def test_a_directory_without_tokenizer_files_is_refused(
    hydra: Hydra, hf_dir: Path, hf_dir_with_tokenizer: Path
) -> None:
    err = hydra(hf_dir)
    assert f"--model '{hf_dir}' has no tokenizer files (looked for tokenizer.json, " in err
    assert "tokenizer.model" in err
    assert "save it there with tokenizer.save_pretrained(dir)" in err
    source = resolve_model(str(hf_dir_with_tokenizer))
    assert source.kind is SourceKind.DIRECTORY
    assert [p.name for p in source.weights] == ["model.safetensors"]


# -- weight files -------------------------------------------------------------------------------


def test_a_truncated_safetensors_file_is_refused_naming_it(
    hydra: Hydra, hf_dir_with_tokenizer: Path, tmp_path: Path
) -> None:
    folder = _copy(hf_dir_with_tokenizer, tmp_path / "cut")
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    err = hydra(folder)
    assert f"--model '{folder}': the weight file model.safetensors looks truncated" in err
    assert f"it has {len(data) // 2} bytes; its header describes {len(data)}" in err
    assert "re-download it, or save the model again with model.save_pretrained(dir)" in err
    weights.write_bytes(b"\x10" + bytes(7) + b"not json at all!")
    err = hydra(folder)
    assert "model.safetensors looks truncated or corrupt (its header is not a safetensors" in err


def test_a_truncated_pytorch_bin_and_a_missing_shard_are_refused(
    hydra: Hydra, hf_dir_with_tokenizer: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    folder = _copy(hf_dir_with_tokenizer, tmp_path / "bin")
    weights = folder / "model.safetensors"
    torch.save(load_file(weights), folder / "pytorch_model.bin")
    weights.unlink()
    data = (folder / "pytorch_model.bin").read_bytes()
    (folder / "pytorch_model.bin").write_bytes(data[:-100])
    err = hydra(folder)
    assert "the weight file pytorch_model.bin looks truncated or corrupt" in err
    (folder / "pytorch_model.bin").unlink()
    err = hydra(folder)
    assert "has a config.json but no weights (model.safetensors or pytorch_model.bin)" in err
    index = {"weight_map": {"lm_head.weight": "model-00002-of-00002.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    err = hydra(folder)
    assert "model.safetensors.index.json lists weight files that are missing" in err
    assert "'model-00002-of-00002.safetensors'" in err


def test_a_failure_inside_transformers_names_the_model_and_its_weights(
    hf_dir_with_tokenizer: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import transformers

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("unexpected end of data")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", broken)
    with pytest.raises(UnsupportedModel) as info:
        load_model(str(hf_dir_with_tokenizer))
    message = str(info.value)
    assert f"could not load the model of '{hf_dir_with_tokenizer}'" in message
    assert "(weight files: 'model.safetensors'): OSError: unexpected end of data" in message
    assert "if a weight file is truncated or corrupt, re-download it" in message


def test_scmnet_graph_names_a_truncated_weight_file(
    hf_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _copy(hf_dir, tmp_path / "cut")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    assert main(["graph", str(folder), "--out", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err
    assert "the weight file model.safetensors looks truncated or corrupt" in err


# -- GGUF ---------------------------------------------------------------------------------------


def test_a_truncated_gguf_file_is_refused_naming_it(hydra: Hydra, tmp_path: Path) -> None:
    cut = tmp_path / "cut.gguf"
    with _embedded().open("rb") as f:
        cut.write_bytes(f.read(2**20))
    err = hydra(cut)
    assert f"--model '{cut}': the weight file cut.gguf looks truncated or corrupt" in err
    assert "re-download it" in err
    cut.write_bytes(b"GGML" + bytes(100))
    assert "(it does not start with the bytes GGUF)" in hydra(cut)


def test_a_gguf_file_or_a_directory_of_one_resolves_to_a_gguf_source(tmp_path: Path) -> None:
    folder = tmp_path / "smol"
    folder.mkdir()
    (folder / "smol.gguf").symlink_to(_embedded())
    for given in (folder, folder / "smol.gguf"):
        source = resolve_model(str(given))
        assert source.kind is SourceKind.GGUF
        assert (source.location, source.gguf_file) == (str(folder), "smol.gguf")
        assert source.label == str(given)


def test_a_directory_of_several_gguf_files_asks_for_one(hydra: Hydra, tmp_path: Path) -> None:
    for name in ("a.Q4_1.gguf", "b.Q8_0.gguf"):
        (tmp_path / name).symlink_to(_embedded())
    err = hydra(tmp_path)
    assert f"--model '{tmp_path}' holds 2 GGUF files ('a.Q4_1.gguf', 'b.Q8_0.gguf')" in err
    assert f"give one of them, e.g. --model '{tmp_path / 'a.Q4_1.gguf'}'" in err


@pytest.mark.slow
def test_a_directory_holding_a_gguf_file_loads(tmp_path: Path) -> None:
    (tmp_path / "smol.gguf").symlink_to(_embedded())
    lm = load_model(str(tmp_path))
    assert lm.name == str(tmp_path)
    assert lm.n_layers == 30
    assert lm.tokenizer("Paris")["input_ids"]


# -- encoders -----------------------------------------------------------------------------------


def _save_config(config: object, folder: Path) -> Path:
    folder.mkdir()
    config.save_pretrained(folder)  # type: ignore[attr-defined]
    return folder


def test_encoder_decoder_and_encoder_models_are_refused_from_their_config(
    hydra: Hydra, tmp_path: Path
) -> None:
    import transformers as tf

    t5 = _save_config(tf.T5Config(d_model=16, num_layers=1, num_heads=2), tmp_path / "t5")
    err = hydra(t5)
    assert f"--model '{t5}' is an encoder-decoder (t5) model; scmnet hydra analyses " in err
    assert "decoder-only causal LMs (e.g. Llama, GPT-2" in err
    bert = _save_config(tf.BertConfig(hidden_size=16, num_hidden_layers=1), tmp_path / "bert")
    assert f"--model '{bert}' is an encoder-only (bert) model; scmnet hydra analyses" in hydra(bert)


def test_scmnet_graph_refuses_a_model_with_no_causal_lm_class(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import transformers as tf

    folder = tmp_path / "t5"
    tf.T5ForConditionalGeneration(
        tf.T5Config(vocab_size=32, d_model=16, d_ff=32, d_kv=8, num_layers=1, num_heads=2)
    ).save_pretrained(folder)
    assert main(["graph", str(folder), "--out", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err
    assert f"'{folder}' is an encoder-decoder (t5) model, so AutoModelForCausalLM cannot" in err
    assert "give MODEL as 'package.module:factory'" in err


# -- --out --------------------------------------------------------------------------------------


def test_an_out_under_a_file_is_refused_before_the_model_loads(
    hydra: Hydra, hf_dir_with_tokenizer: Path, tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    out = tmp_path / "notes.txt" / "report"
    err = hydra(hf_dir_with_tokenizer, "--out", str(out))
    assert f"--out '{out}': it cannot be created, as notes.txt above it is a file" in err
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_an_unwritable_out_is_refused_and_leaves_nothing(
    no_loading: None,
    hf_dir_with_tokenizer: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tempfile

    def denied(*args: object, dir: str | None = None, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", dir)

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    out = tmp_path / "new" / "report"
    with pytest.raises(InvalidArgument) as info:
        run_hydra(model=str(hf_dir_with_tokenizer), out=out, ablation="zero", progress=False)
    assert f"--out '{out}' is not writable (Permission denied: {out})" in str(info.value)
    assert "give a folder you can write to, or change its permissions" in str(info.value)
    assert not (tmp_path / "new").exists()  # the folders made to try it are removed again


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs file permissions")
def test_a_read_only_out_is_refused(
    hydra: Hydra, hf_dir_with_tokenizer: Path, tmp_path: Path
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        err = hydra(hf_dir_with_tokenizer, "--out", str(locked / "report"))
    finally:
        locked.chmod(0o700)
    assert f"--out '{locked / 'report'}' is not writable (Permission denied" in err
