"""Any model a user brings: the zoo traced with the defaults, its effects checked against hooks.

One acceptance test over every model of :mod:`tests.zoo`: trace with the default variables;
the total, direct and indirect effects of setting an internal variable equal those of the eager
model patched by forward hooks (:class:`tests.hooks.HookedReference`, which clones what it keeps)
to the float32 tolerance; and ``sn.effect_table`` equals the loop of single queries. Then the
rules a user relies on before tracing (names, outputs, tuple-returning modules), then the
errors of a model that cannot be traced.
"""

from __future__ import annotations

from typing import Any

import networkx as nx
import pytest
import torch
from torch import nn

import scmnet as sn
from scmnet.testing import assert_close
from tests.hooks import HookedReference
from tests.zoo import ZOO, Animal, GatedNet, ResNet

KINDS = ("total", "direct", "indirect")
ONE = {"total": sn.total_effect, "direct": sn.direct_effect, "indirect": sn.indirect_effect}


def _internal(traced: sn.TracedModel, reference: HookedReference, y: str) -> list[str]:
    """The variables that can be patched by a hook and lie strictly upstream of ``y``."""
    upstream = nx.ancestors(traced.graph, y)
    return [v for v in traced.endogenous if v in reference.sites and v in upstream]


@pytest.mark.parametrize("animal", ZOO, ids=[a.name for a in ZOO])
def test_zoo_effects_equal_hooked_eager_runs(animal: Animal) -> None:
    model = animal.model()
    traced = sn.trace(model, animal.inputs(0), **animal.trace_kwargs)
    assert traced.info.frontend == animal.frontend, traced.info.failures
    reference = HookedReference(model, traced)
    y = traced.outputs[0]
    internal = _internal(traced, reference, y)
    assert len(internal) >= 2, traced.endogenous
    # every mediator the reference cannot hook is off the paths to y
    unhooked = set(traced.endogenous) - set(reference.sites) - {y}
    assert not unhooked & nx.ancestors(traced.graph, y), unhooked
    context = animal.context(model, 1)
    z = internal[len(internal) // 2]
    natural = traced.evaluate(context, outputs=[z])[z]
    value = natural + torch.randn(natural.shape, generator=torch.Generator().manual_seed(2))
    expected = reference.effects(context, z, value, y)
    for kind in KINDS:
        got = ONE[kind](traced, {z: value}, y, context=context)
        assert_close(got, expected[kind], msg=f"{kind} effect of {z} on {y}")
    # a table of several treatments equals the loop of single queries
    treatments: list[dict[Any, Any]] = [{v: sn.scale(0.5)} for v in internal[:3]]
    treatments.append({z: value})
    for kind in KINDS:
        table = sn.effect_table(traced, treatments, y, kind=kind, context=context)  # type: ignore[arg-type]
        for r, t in enumerate(treatments):
            assert_close(table.values[r], ONE[kind](traced, t, y, context=context), reordered=True)


# -- the rules a user relies on before tracing ------------------------------------------------


def test_names_of_a_resnet_can_be_written_before_tracing() -> None:
    """The naming rule: a variable is named by its module path (``model.named_modules()``);
    the k-th further call of the same module in one forward pass adds ``@k``; a module that
    returns a tuple gives its tensor elements as ``path[i]``. Identical sibling blocks are
    treated alike: each block of a stage is one variable, with or without a shortcut."""
    model = _animal("resnet").model()
    assert isinstance(model, ResNet)
    traced = sn.trace(model, torch.randn(2, 3, 8, 8))
    blocks = [name for name, m in model.named_modules() if type(m).__name__ == "BasicBlock"]
    assert blocks == ["layer1.0", "layer1.1", "layer2.0", "layer2.1"]
    assert traced.endogenous == ("conv1", "bn1", "relu", *blocks, "avgpool", "fc")
    # inside a block, the reused ReLU's second call is "relu@1", as the rule predicts
    fine = traced.with_variables("layer2.0.*")
    assert fine.endogenous == (
        "layer2.0.conv1", "layer2.0.bn1", "layer2.0.relu", "layer2.0.conv2", "layer2.0.bn2",
        "layer2.0.downsample", "layer2.0.relu@1", "fc",
    )  # fmt: skip
    assert fine.records["layer2.0.relu@1"].module_path == "layer2.0.relu"


def _animal(name: str) -> Animal:
    return next(a for a in ZOO if a.name == name)


def test_tuple_outputs_become_named_outcomes_and_none_is_noted() -> None:
    gpt = _animal("gpt_logits_loss")
    traced = sn.trace(gpt.model(), gpt.inputs(0))
    assert traced.outputs == ("lm_head",)
    assert traced.info.notes == ("output[1] is None, not a tensor: it is not a variable",)
    keywords = _animal("keywords_dataclass")
    traced = sn.trace(keywords.model(), keywords.inputs(0))
    assert traced.exogenous == ("input_ids", "attention_mask")
    assert traced.outputs == ("output.logits", "act")  # computed by forward's own code, by act


def test_outputs_computed_by_the_model_are_named_by_their_path() -> None:
    class Several(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> dict[str, Any]:
            h = self.fc(x)
            return {"pair": (h * 2.0, None), "count": 3, "neg": -h}

    traced = sn.trace(Several().eval(), torch.randn(1, 3))
    assert traced.outputs == ("output['pair'][0]", "output['neg']")
    assert traced.info.notes == (
        "output['pair'][1] is None, not a tensor: it is not a variable",
        "output['count'] is a int (3), not a tensor: it is not a variable",
    )


def test_a_module_returning_a_tuple_gives_its_tensor_elements() -> None:
    lstm = _animal("lstm")
    model = lstm.model()
    traced = sn.trace(model, lstm.inputs(0), variables="rnn")
    assert traced.endogenous == ("rnn[0]", "fc")
    assert traced.records["rnn[0]"].module_path == "rnn"

    class FinalState(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.GRU(4, 4, batch_first=True)
            self.fc = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            _, h = self.rnn(x)  # (layers, B, d)
            return self.fc(h[-1])  # type: ignore[no-any-return]

    traced = sn.trace(FinalState().eval(), torch.randn(2, 3, 4))
    assert traced.endogenous == ("rnn[1]", "fc")


class Pair(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.a(x), {"b": self.b(x)}


class Twin(Pair):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        return self.a(x), self.b(x)


class ReadsPairs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pair, self.whole, self.fc = Pair(), Twin(), nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, rest = self.pair(x)
        both = torch.stack(self.whole(x)).sum(0)  # the tuple is read whole, not indexed
        return self.fc(first + rest["b"] + both)  # type: ignore[no-any-return]


def test_tuple_elements_are_named_by_index_and_a_tuple_read_whole_is_noted() -> None:
    traced = sn.trace(ReadsPairs().eval(), torch.randn(2, 4), leaves=[Pair, Twin])
    assert traced.info.frontend == "fx"
    assert traced.endogenous == ("pair[0]", "pair[1]['b']", "fc")
    assert traced.info.notes == (
        "module call 'whole' (Twin) returns no tensor that the model reads, so it is not a "
        "variable",
    )


# -- a model that cannot be traced ------------------------------------------------------------


def test_control_flow_on_values_is_refused_quietly_with_both_workarounds(
    capfd: pytest.CaptureFixture[str],
) -> None:
    model = GatedNet().eval()
    with pytest.raises(sn.UntraceableModel) as caught:
        sn.trace(model, torch.randn(2, 4))
    message = str(caught.value)
    assert "if h.sum() > 0:" in message
    assert "torch.cond" in message
    assert "leaves=" in message
    assert caught.value.details  # what torch said is kept with the error...
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")  # ...and not printed


def test_an_unregistered_dataclass_output_is_refused_with_the_fix() -> None:
    from dataclasses import dataclass

    @dataclass
    class Result:
        logits: torch.Tensor

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> Result:
            return Result(self.fc(x))

    with pytest.raises(sn.UnsupportedModel, match=r"register_dataclass\(Result\)"):
        sn.trace(Model().eval(), torch.randn(1, 3))
