"""Families a user adds without editing the package: :func:`register_family` and the entry
points of group ``scmnet.families``.

A tiny Llama whose ``model_type`` no family covers stands for the user's model; registered
either way, the adapter uses the user's spec (not the finder's) and its measures equal the
hooked reference.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from typing import Any

import pytest

from scmnet.adapters.transformer import (
    ENTRY_POINT_GROUP,
    FAMILIES,
    FamilySpec,
    LanguageModel,
    families,
    register_family,
    registry,
    spec_for,
    unregister_family,
)
from scmnet.errors import InvalidArgument, UnsupportedModel
from tests.reference import check_measures
from tests.tiny_models import tiny_model

LLAMA = next(spec for spec in FAMILIES if spec.name == "llama")

ENTRY_SPEC = dataclasses.replace(LLAMA, name="plugged", model_types=("plugged",))
"""The spec a simulated installed package declares as an entry point."""


def _model_of_type(model_type: str) -> Any:
    model = tiny_model("llama")
    model.config.model_type = model_type  # a family no one declared
    return model


@pytest.fixture
def clean_registry() -> Iterator[None]:
    before = dict(registry._REGISTERED)
    yield
    registry._REGISTERED.clear()
    registry._REGISTERED.update(before)


def _entry_points(*entries: EntryPoint) -> Any:
    def fake(*, group: str) -> list[EntryPoint]:
        return [e for e in entries if e.group == group]

    return fake


def test_registered_family_is_used_and_agrees_with_the_reference(clean_registry: None) -> None:
    spec = dataclasses.replace(LLAMA, name="mine", model_types=("mine",))
    model = _model_of_type("mine")
    register_family(spec)
    assert spec_for(model) is spec
    lm = LanguageModel.from_pretrained_model(model, None, "mine")
    assert lm.spec is spec
    check_measures(lm)
    assert unregister_family("mine") is spec
    assert spec not in families()


def test_entry_point_family_is_used_and_agrees_with_the_reference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entry = EntryPoint("plugged", f"{__name__}:ENTRY_SPEC", ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", _entry_points(entry))
    assert families()[0] is ENTRY_SPEC  # before the declared families
    lm = LanguageModel.from_pretrained_model(_model_of_type("plugged"), None, "plugged")
    assert lm.spec is ENTRY_SPEC
    check_measures(lm)


def test_registered_family_overrides_entry_points_and_declared(
    clean_registry: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = EntryPoint("plugged", f"{__name__}:ENTRY_SPEC", ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", _entry_points(entry))
    mine = dataclasses.replace(LLAMA, name="plugged_mine", model_types=("plugged",))
    with pytest.raises(
        InvalidArgument,
        match=r"^model type 'plugged' already has the family 'plugged' \(entry point "
        r"'plugged'\); pass replace=True to replace it$",
    ):
        register_family(mine)
    register_family(mine, replace=True)
    assert spec_for(_model_of_type("plugged")) is mine
    own_llama = dataclasses.replace(LLAMA, name="llama_mine")
    register_family(own_llama, replace=True)
    assert spec_for(tiny_model("llama")) is own_llama


def test_broken_entry_point_is_named_when_a_model_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = EntryPoint("broken", "no_such_package.families:SPEC", ENTRY_POINT_GROUP)
    wrong = EntryPoint("wrong", f"{__name__}:LLAMA.name", ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", _entry_points(broken, wrong))
    assert spec_for(tiny_model("llama")) is LLAMA  # the others stay usable
    with pytest.raises(
        UnsupportedModel,
        match=r"model type 'bert' is not supported .*the entry point 'broken' "
        r"\(no_such_package\.families:SPEC\) of group 'scmnet\.families' failed: "
        r"ModuleNotFoundError: .*the entry point 'wrong' .* failed: InvalidArgument: .* gives "
        r"str 'llama', not a FamilySpec",
    ):
        spec_for(_model_of_type("bert"))


def test_spec_whose_modules_the_model_lacks_is_refused_before_it_runs(
    clean_registry: None,
) -> None:
    spec = dataclasses.replace(LLAMA, name="mine", model_types=("mine",), layers="model.blocks")
    register_family(spec)
    model = _model_of_type("mine")
    calls: list[int] = []
    model.register_forward_pre_hook(lambda m, a: calls.append(1))
    with pytest.raises(
        UnsupportedModel,
        match=r"^model type 'mine' is not supported by the transformer adapter: its families "
        r"name modules that this LlamaForCausalLM lacks: 'mine' \(registered\) names "
        r"'model\.blocks'; register a family with this model's paths",
    ):
        LanguageModel.from_pretrained_model(model, None, "mine")
    assert not calls  # refused before the model ran


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("llama", r"register_family\(spec\) gives str 'llama', not a FamilySpec"),
        (
            dataclasses.replace(LLAMA, name="x", model_types=()),
            r"the family 'x' of register_family\(spec\) covers no model type",
        ),
        (LLAMA, r"model type 'llama' already has the family 'llama' \(declared\)"),
    ],
)
def test_bad_registrations(spec: Any, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        register_family(spec)


def test_unregister_unknown_family() -> None:
    with pytest.raises(InvalidArgument, match=r"no family 'llama' was registered"):
        unregister_family("llama")
    assert isinstance(families()[0], FamilySpec)
