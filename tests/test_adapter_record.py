"""A sweep's record: damaged resume state is a clear error, and ``scmnet hydra --from-record``
re-runs a recorded sweep from its ``settings.json`` alone, to the same tables."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scmnet.adapters.transformer import hydra
from scmnet.adapters.transformer.ablations import Ablation, AblationKind
from scmnet.adapters.transformer.lm import LanguageModel
from scmnet.adapters.transformer.measures import PromptMeasures
from scmnet.adapters.transformer.model_source import ModelSource, SourceKind
from scmnet.adapters.transformer.prompts import Prompt, PromptSet
from scmnet.adapters.transformer.sweep import (
    DamagedFile,
    SettingsMismatch,
    SweepSettings,
    run_sweep,
)
from scmnet.cli import main
from scmnet.errors import InvalidArgument
from tests.tiny_models import CharTokenizer, tiny_model

PROMPTS = PromptSet(
    tuple(Prompt(text, None) for text in ("abc de", "xyz w", "hello t", "qrs uv", "mnop q")),
    name="tiny",
)

LINES = (
    "the eiffel tower is located in the city of",
    "the tower is in",
    "the city of",
    "the eiffel tower is",
    "in the city",
)
"""Prompts in the words of the tokenizer of ``hf_dir_with_tokenizer`` (no targets: the model's
own predictions are analysed, so every prompt is kept)."""


@pytest.fixture(scope="module")
def lm() -> LanguageModel:
    return LanguageModel.from_pretrained_model(tiny_model("llama"), CharTokenizer(), "tiny-llama")


@pytest.fixture(autouse=True)
def named_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--model tiny-llama`` names the in-memory model of :func:`lm` (no such directory)."""
    resolve = hydra.resolve_model

    def resolved(name: str | None) -> ModelSource:
        if name == "tiny-llama":
            return ModelSource(SourceKind.HUB, name, name)
        return resolve(name)

    monkeypatch.setattr(hydra, "resolve_model", resolved)
    load_tokenizer = hydra.load_tokenizer

    def tokenizer(source: ModelSource) -> tuple[Any, int | None]:
        if source.label == "tiny-llama":
            return CharTokenizer(), None
        return load_tokenizer(source)

    monkeypatch.setattr(hydra, "load_tokenizer", tokenizer)


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if ``scmnet hydra`` loads a model."""

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded before the refusal")

    monkeypatch.setattr(hydra, "load_model", fail)


# --- damaged measures ---------------------------------------------------------------------------


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _other_draws(path: Path) -> None:
    m = PromptMeasures.load(path)
    k = m.ablated_logit.shape[-1] + 1
    PromptMeasures(
        m.prompt,
        m.token,
        m.clean_logit,
        m.clean_sigma,
        m.unembed,
        np.zeros((2, m.n_layers, k)),
        np.zeros((2, m.n_layers, k, 2, m.n_layers)),
        np.ones((2, m.n_layers, k)),
    ).save(path)


def _without_sigma(path: Path) -> None:
    with np.load(path) as data:
        kept = {k: data[k] for k in data.files if k != "ablated_sigma"}
    with path.open("wb") as f:
        np.savez(f, **kept)


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (_truncate, r"is truncated or not an \.npz archive \(BadZipFile"),
        (lambda p: p.write_bytes(b""), r"is truncated or not an \.npz archive \(it is empty\)"),
        (_other_draws, r"has 'ablated_logit' of shape \(2, 3, 3\), expected \(2, 3, 2\)"),
        (_without_sigma, r"lacks the array\(s\) 'ablated_sigma'"),
    ],
    ids=["truncated", "empty", "other-shape", "missing-array"],
)
def test_a_damaged_measures_file_names_the_file_and_the_deletion(
    lm: LanguageModel, tmp_path: Path, damage: Any, problem: str
) -> None:
    ablation = Ablation(AblationKind.RESAMPLE, patches=2, seed=1)
    _, first = run_sweep(lm, PROMPTS, ablation, tmp_path)
    path = tmp_path / "measures" / "00003.npz"
    damage(path)
    shown = str(path)
    with pytest.raises(DamagedFile) as caught:
        run_sweep(lm, PROMPTS, ablation, tmp_path)
    message = str(caught.value)
    assert message.startswith(shown + " ")
    assert f"delete {shown} and run again: that prompt is recomputed" in message
    with pytest.raises(DamagedFile, match=problem):
        PromptMeasures.load(path, layers=lm.n_layers, draws=2, prompt=3)
    # Doing as told recomputes that prompt, to the same numbers.
    path.unlink()
    _, again = run_sweep(lm, PROMPTS, ablation, tmp_path)
    np.testing.assert_array_equal(again[3].ablated_unembed, first[3].ablated_unembed)


def test_a_measures_file_of_another_prompt_is_refused(lm: LanguageModel, tmp_path: Path) -> None:
    ablation = Ablation(AblationKind.ZERO)
    run_sweep(lm, PROMPTS, ablation, tmp_path)
    folder = tmp_path / "measures"
    shutil.copy(folder / "00004.npz", folder / "00003.npz")
    with pytest.raises(DamagedFile, match=r"00003\.npz holds prompt 4, not prompt 3; delete"):
        run_sweep(lm, PROMPTS, ablation, tmp_path)


# --- damaged settings.json, refused before the model loads ---------------------------------------


def _recorded(lm: LanguageModel) -> dict[str, Any]:
    return SweepSettings.of(lm, PROMPTS, Ablation(AblationKind.ZERO), None).to_json()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "it is empty"),
        ("  \n", "it is empty"),
        ('{"model": "tiny-llama", "prompts": ', r"it is not valid JSON \(Expecting value"),
        ("[1, 2]", "it holds a list, not an object of settings"),
        ('{"model": "tiny-llama"}', "it lacks the key\\(s\\) 'prompts', 'prompts_hash', "),
        ("PATCHES", r"its 'patches' is \"two\", not an integer >= 1"),
    ],
    ids=["empty", "blank", "garbled", "list", "missing-keys", "wrong-type"],
)
def test_a_damaged_settings_file_is_refused_before_the_model_loads(
    lm: LanguageModel,
    tmp_path: Path,
    no_model: None,
    capsys: pytest.CaptureFixture[str],
    text: str,
    problem: str,
) -> None:
    out = tmp_path / "report"
    out.mkdir()
    if text == "PATCHES":
        text = json.dumps({**_recorded(lm), "patches": "two"})
    (out / "settings.json").write_text(text)
    path = out / "settings.json"
    expected = (
        f"{re.escape(str(path))} is damaged: {problem}.*; the results in {re.escape(str(out))} "
        f"cannot be checked against the settings they were made with: delete the directory "
        f"{re.escape(str(out))}, or write to another --out"
    )
    with pytest.raises(DamagedFile, match=expected):
        hydra.run_hydra(prompts=PROMPTS, out=out, ablation="zero", progress=False)
    # The command line says the same, on one line, and exits with 2.
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("abc de\nxyz w\n")
    args = ["hydra", "--prompts", str(prompts), "--ablation", "zero", "--out", str(out)]
    assert main([*args, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"scmnet hydra: error: {path} is damaged: ")
    assert len(err.strip().splitlines()) == 1
    assert (out / "settings.json").read_text() == text  # left as it was


def test_other_settings_are_refused_before_the_model_loads(
    lm: LanguageModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All but the model's identity is compared before it loads; the identity after."""
    monkeypatch.setattr(hydra, "load_model", lambda name, device, **_: lm)
    out = tmp_path / "report"
    hydra.run_hydra(model="tiny-llama", prompts=PROMPTS, out=out, ablation="zero", progress=False)
    monkeypatch.setattr(hydra, "load_model", lambda name, device, **_: pytest.fail("loaded"))
    with pytest.raises(SettingsMismatch, match=r"ablation: 'zero' there, 'mean' now"):
        hydra.run_hydra(
            model="tiny-llama", prompts=PROMPTS, out=out, ablation="mean", progress=False
        )


def test_a_settings_file_of_the_previous_version_still_resumes(
    lm: LanguageModel, tmp_path: Path
) -> None:
    """``prompts_source`` is new: a settings.json without it resumes (it is not compared)."""
    ablation = Ablation(AblationKind.ZERO)
    _, first = run_sweep(lm, PROMPTS, ablation, tmp_path, limit=2)
    recorded = json.loads((tmp_path / "settings.json").read_text())
    del recorded["prompts_source"]
    (tmp_path / "settings.json").write_text(json.dumps(recorded))
    (tmp_path / "measures" / "00001.npz").unlink()
    _, second = run_sweep(lm, PROMPTS, ablation, tmp_path, limit=2)
    np.testing.assert_array_equal(first[1].ablated_logit, second[1].ablated_logit)


# --- --from-record ------------------------------------------------------------------------------


def _model_and_prompts(hf_dir_with_tokenizer: Path, tmp_path: Path) -> tuple[Path, Path]:
    model = tmp_path / "model"
    shutil.copytree(hf_dir_with_tokenizer, model)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(LINES) + "\n")
    return model, prompts


@pytest.fixture
def recorded(hf_dir_with_tokenizer: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """A sweep recorded by ``scmnet hydra`` with every setting given: resample ablation with
    two patches, seed 3, limit 4, over a small prompt file, on a copy of a tiny model
    directory. Returns the model directory, the prompt file and the report directory."""
    model, prompts = _model_and_prompts(hf_dir_with_tokenizer, tmp_path)
    out = tmp_path / "first"
    args = ["hydra", "--model", str(model), "--prompts", str(prompts), "--ablation", "resample"]
    args += ["--patches", "2", "--seed", "3", "--limit", "4", "--out", str(out), "--quiet"]
    assert main(args) == 0
    return model, prompts, out


@pytest.fixture
def settings_only(hf_dir_with_tokenizer: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """As :func:`recorded`, but only the ``settings.json`` of the sweep (for the refusals,
    which come before any prompt is measured)."""
    from scmnet.adapters.transformer.lm import load_model
    from scmnet.adapters.transformer.prompts import load_prompts

    model, prompts = _model_and_prompts(hf_dir_with_tokenizer, tmp_path)
    out = tmp_path / "first"
    out.mkdir()
    ablation = Ablation(AblationKind.RESAMPLE, patches=2, seed=3)
    settings = SweepSettings.of(load_model(str(model)), load_prompts(prompts), ablation, 4)
    (out / "settings.json").write_text(json.dumps(settings.to_json()))
    return model, prompts, out


def _timeless(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k != "seconds"}


def _same_report(first: Path, second: Path) -> None:
    tables = sorted(p.name for p in first.glob("*.csv"))
    assert tables == sorted(p.name for p in second.glob("*.csv"))
    assert {"layers.csv", "prompts.csv", "patches.csv"} <= set(tables)
    for name in tables:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    files = sorted(p.name for p in (first / "measures").glob("*.npz"))
    assert files == sorted(p.name for p in (second / "measures").glob("*.npz"))
    assert len(files) == 4
    for name in files:
        with np.load(first / "measures" / name) as a, np.load(second / "measures" / name) as b:
            assert a.files == b.files
            for key in a.files:
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name}: {key}")
    a, b = (json.loads((f / "summary.json").read_text()) for f in (first, second))
    assert _timeless(a) == _timeless(b)
    assert json.loads((first / "settings.json").read_text()) == json.loads(
        (second / "settings.json").read_text()
    )


def test_from_record_gives_the_same_tables(
    recorded: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, prompts, first = recorded
    settings = json.loads((first / "settings.json").read_text())
    assert settings["prompts_source"] == str(prompts.resolve())
    assert (settings["ablation"], settings["patches"], settings["seed"]) == ("resample", 2, 3)
    assert settings["limit"] == 4
    second = tmp_path / "second"
    assert main(["hydra", "--from-record", str(first), "--out", str(second), "--quiet"]) == 0
    assert f"scmnet hydra: wrote {second}" in capsys.readouterr().out
    _same_report(first, second)
    # From Python, too.
    third = tmp_path / "third"
    summary = hydra.rerun(first, out=third, progress=False)
    assert summary["prompts_kept"] == 4
    assert _timeless(summary) == json.loads((first / "summary.json").read_text())
    _same_report(first, third)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--seed", "3"], "--seed"),
        (["--ablation", "resample"], "--ablation"),  # given, even if it is the recorded value
        (["--model", "m", "--prompts", "p.txt", "--limit", "2"], "--model, --prompts, --limit"),
        (["--patches", "4"], "--patches"),
    ],
)
def test_from_record_with_an_option_that_changes_the_numbers_is_refused(
    tmp_path: Path,
    no_model: None,
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    named: str,
) -> None:
    record = tmp_path / "first"
    args = ["hydra", "--from-record", str(record), *options, "--out", str(tmp_path / "again")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"from {record / 'settings.json'}; drop {named}, which would" in err
    assert "or run without --from-record" in err
    assert not (tmp_path / "again").exists()


def test_from_record_into_the_recorded_directory_is_refused(
    settings_only: tuple[Path, Path, Path], no_model: None
) -> None:
    _, _, first = settings_only
    before = {p: p.read_bytes() for p in first.rglob("*") if p.is_file()}
    with pytest.raises(InvalidArgument, match=r"is the recorded directory itself; .* another"):
        hydra.rerun(first, out=first / ".." / first.name)
    assert {p: p.read_bytes() for p in first.rglob("*") if p.is_file()} == before


def test_from_record_refuses_a_changed_prompt_file(
    settings_only: tuple[Path, Path, Path],
    tmp_path: Path,
    no_model: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, prompts, first = settings_only
    prompts.write_text(prompts.read_text().replace("the city of\n", "the tower is\n"))
    again = tmp_path / "again"
    assert main(["hydra", "--from-record", str(first), "--out", str(again), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"the prompts of {prompts.resolve()} have changed since {first} was recorded" in err
    assert re.search(r"\(prompts_hash: '[0-9a-f]+' there, '[0-9a-f]+' now\)", err)
    assert not again.exists()
    prompts.unlink()
    assert main(["hydra", "--from-record", str(first), "--out", str(again), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"was recorded with the prompts of {prompts.resolve()}, which cannot be read" in err


def test_from_record_refuses_a_changed_model(
    settings_only: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, _, first = settings_only
    config = json.loads((model / "config.json").read_text())
    config["rms_norm_eps"] = config["rms_norm_eps"] * 10  # the same path, another model
    (model / "config.json").write_text(json.dumps(config))
    again = tmp_path / "again"
    assert main(["hydra", "--from-record", str(first), "--out", str(again), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{first} cannot be re-run as recorded (model_hash: '" in err
    assert not again.exists()


def test_from_record_needs_a_record(tmp_path: Path, no_model: None) -> None:
    with pytest.raises(InvalidArgument, match=r"holds no settings\.json"):
        hydra.rerun(tmp_path, out=tmp_path / "again")
    (tmp_path / "settings.json").write_text("{")
    with pytest.raises(DamagedFile, match=r"is damaged: it is not valid JSON .*a re-run needs"):
        hydra.rerun(tmp_path, out=tmp_path / "again")


def test_a_record_of_prompts_given_in_python_cannot_be_rerun(
    lm: LanguageModel, tmp_path: Path, no_model: None
) -> None:
    run_sweep(lm, PROMPTS, Ablation(AblationKind.ZERO), tmp_path, limit=1)
    with pytest.raises(InvalidArgument, match=r"does not say where its prompts \('tiny'\) came"):
        hydra.rerun(tmp_path, out=tmp_path / "again")


def test_identity_does_not_depend_on_where_the_model_was_loaded_from() -> None:
    """The same weights and config loaded from two folders (or venvs) are the same model."""
    from scmnet.adapters.transformer.identity import model_identity

    here, there = tiny_model("llama"), tiny_model("llama")
    here.config._name_or_path, there.config._name_or_path = "/venv-a/model", "/venv-b/model"
    same = [
        model_identity(LanguageModel.from_pretrained_model(m, CharTokenizer(), "tiny-llama"))
        for m in (here, there)
    ]
    assert same[0] == same[1]
    there.config.rms_norm_eps = here.config.rms_norm_eps * 2  # what it computes: another model
    other = LanguageModel.from_pretrained_model(there, CharTokenizer(), "tiny-llama")
    assert model_identity(other) != same[0]
