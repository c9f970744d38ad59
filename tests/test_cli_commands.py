"""Sub-commands and model loaders that other packages add to the command line (entry points)."""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import pytest
import torch

import scmnet.cli
from scmnet.cli import main
from scmnet.commands import COMMANDS, DIRECTORY_LOADERS, Command, DirectoryLoader


def test_the_adapter_registers_hydra_and_the_hugging_face_loader() -> None:
    (hydra,) = [e for e in entry_points(group=COMMANDS) if e.name == "hydra"]
    assert hydra.value == "scmnet.adapters.transformer.command:HYDRA"
    assert isinstance(hydra.load(), Command)
    (hf,) = [e for e in entry_points(group=DIRECTORY_LOADERS) if e.name == "huggingface"]
    assert isinstance(hf.load(), DirectoryLoader)


def test_help_lists_the_sub_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in ("toys", "graph", "hydra"):
        assert name in out
    assert "the Hydra-effect analysis of a language model" in out


def test_hydra_options_are_parsed_as_before(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["hydra", "--patches", "0"])
    assert exit_info.value.code == 2
    assert "must be a positive integer, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["hydra", "--ablation", "nope"])
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_hydra_without_transformers_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real: Callable[..., Any] = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "transformers" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert main(["hydra", "--out", str(tmp_path / "report"), "--quiet"]) == 2
    assert capsys.readouterr().err == (
        "scmnet hydra: error: the transformer adapter needs transformers; install it with: "
        "pip install 'scmnet[hf]'\n"
    )


def test_a_sub_command_that_fails_to_load_is_listed_and_says_why(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = EntryPoint("broken", "scmnet_no_such_module:COMMAND", COMMANDS)
    monkeypatch.setattr(scmnet.cli, "entry_points", lambda group: [broken])
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "broken" in capsys.readouterr().out
    assert main(["broken", "--any", "option"]) == 2
    assert capsys.readouterr().err == (
        "scmnet broken: error: the broken command could not be loaded: ModuleNotFoundError: "
        "No module named 'scmnet_no_such_module'\n"
    )


def test_a_sub_command_of_another_package(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Hello:
        name, help, description = "hello", "say hello", "Say hello to someone."

        def add_arguments(self, parser: argparse.ArgumentParser) -> None:
            parser.add_argument("who")

        def run(self, args: argparse.Namespace) -> int:
            print(f"hello, {args.who}")
            return 3

    class Entry:  # what importlib.metadata finds for a package that declares the command
        name, value = "hello", "hello_package:HELLO"

        def load(self) -> Any:
            return Hello()

    monkeypatch.setattr(scmnet.cli, "entry_points", lambda group: [Entry()])
    assert main(["hello", "world"]) == 3
    assert capsys.readouterr().out == "hello, world\n"


def test_bad_devices_are_refused_before_the_model_loads(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from scmnet.adapters.transformer import hydra

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model must not load")

    monkeypatch.setattr(hydra, "load_model", never)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device, message in (
        ("cuda", "this machine has no CUDA device"),
        ("gpu0", "'gpu0' is not a torch device"),
    ):
        assert main(["hydra", "--device", device, "--ablation", "zero", "--quiet"]) == 2
        assert message in capsys.readouterr().err
