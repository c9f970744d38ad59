"""Batched ``evaluate_many``: many intervention sets as the rows of one execution of the graph.

The batched path must give what evaluating the sets one by one gives (``batched=False``, the
reference), within float32 rounding, for hard, soft and indexed interventions and mixtures of
them; it must take the batched path where that is exact, and fall back to the loop -- still
correct, saying why in ``info.batching`` -- where rows are not independent or the graph is
specialised to one batch size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import scmnet as sn
from scmnet.interventions import Interventions, normalize
from scmnet.testing import assert_close
from scmnet.tracing import TracedModel, trace
from scmnet.tracing.engine import batched
from tests.test_trace_parity import TinyGPT
from tests.tiny_models import VOCAB, tiny_model

SEQ = 6


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 3)
    ).eval()


@pytest.fixture(scope="module")
def mlp() -> TracedModel:
    return trace(_mlp(), torch.zeros(1, 4))


@pytest.fixture(scope="module")
def gpt() -> TracedModel:
    torch.manual_seed(0)
    return trace(TinyGPT().eval(), torch.zeros(1, SEQ, dtype=torch.long))


@pytest.fixture(scope="module")
def llama() -> TracedModel:
    """Traced with a dynamic batch dimension (export needs an example of batch 2 for that)."""
    ids = torch.randint(0, VOCAB, (2, SEQ), generator=_gen(0))
    batch = torch.export.Dim("batch")
    return trace(tiny_model("llama"), {"input_ids": ids}, dynamic_shapes={"input_ids": {0: batch}})


def assert_batched_equals_looped(
    model: TracedModel,
    context: dict[str, Any],
    sets: Sequence[Any],
    *,
    outputs: Sequence[str] | None = None,
    path: str | None = "batched",
    chunk: int | None = None,
) -> list[dict[str, Any]]:
    """Evaluate ``sets`` both ways; the values agree, and the batched call took ``path``.

    The batched call comes last, so that ``model.info.batching`` describes it afterwards.
    """
    looped = model.evaluate_many(context, sets, outputs=outputs, batched=False)
    assert model.info.batching.path in ("looped", "clean")
    many = model.evaluate_many(context, sets, outputs=outputs, chunk=chunk)
    info = model.info.batching
    assert len(many) == len(looped) == len(sets)
    for got, want in zip(many, looped, strict=True):
        assert list(got) == list(want)
        for name in want:
            assert_close(got[name], want[name], msg=name)
    if path is not None:
        assert info.path == path, info
    return many


# -- properties ---------------------------------------------------------------------------------


@st.composite
def mlp_sets(draw: st.DrawFn, model: TracedModel) -> list[dict[sn.Site, Any]]:
    """2-5 intervention sets of 0-3 hard, soft or indexed interventions on the MLP's variables.

    The contexts have batch size 2, and every variable has shape (2, width).
    """
    sets = []
    for _ in range(draw(st.integers(2, 5))):
        items: dict[sn.Site, Any] = {}
        for _ in range(draw(st.integers(0, 3))):
            node = draw(st.sampled_from(model.endogenous))
            width = model.records[node].shape[-1]
            column = st.integers(-width, width - 1)
            index = draw(
                st.one_of(
                    st.none(),
                    st.tuples(st.just(slice(None)), column),
                    st.tuples(st.integers(0, 1), column),
                    st.integers(0, 1),
                )
            )
            number = draw(st.floats(-3.0, 3.0, allow_nan=False, width=32))
            kind = draw(st.sampled_from(["number", "tensor", "scale", "shift", "reverse"]))
            if kind == "tensor":  # a value of the site's shape
                shape = torch.zeros(2, width)[index].shape if index is not None else (2, width)
                seed = draw(st.integers(0, 2**16))
                rule: Any = torch.randn(shape, generator=_gen(seed))
            elif kind == "scale":
                rule = sn.scale(number)
            elif kind == "shift":
                rule = sn.shift(number)
            elif kind == "reverse":
                rule = sn.apply(lambda v: v.flip(-1), "reverse")
            else:
                rule = number
            items[sn.Site(node, index=index)] = rule
        sets.append(items)
    return sets


@settings(max_examples=40)
@given(data=st.data())
def test_random_mlp_sets_batched_equal_looped(mlp: TracedModel, data: Any) -> None:
    sets = data.draw(mlp_sets(mlp), label="sets")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    context = {"input": torch.randn(2, 4, generator=_gen(seed))}
    pending = sum(1 for s in sets if s)
    expected = "batched" if pending >= 2 else "looped" if pending else "clean"
    assert_batched_equals_looped(mlp, context, sets, path=expected)


# -- examples: exact where batching is exact ----------------------------------------------------


def _gpt_like_sets(model: TracedModel, width: int, seed: int) -> list[Any]:
    """Hard, soft and indexed interventions on every block, alone and mixed, and an empty set."""
    gen = _gen(seed)
    blocks = [v for v in model.endogenous if v.endswith(("attn", "mlp"))]
    last = (slice(None), -1)
    sets: list[Any] = [{}]
    sets += [{sn.Site(v, index=last): torch.randn(width, generator=gen)} for v in blocks]
    sets += [{v: sn.scale(0.5)} for v in blocks]
    sets += [{sn.Site(v, index=(0, 2)): sn.shift(1.0)} for v in blocks[:2]]
    sets.append({blocks[0]: sn.scale(0.0), sn.Site(blocks[-1], index=last): 0.0})
    sets.append({sn.Site(blocks[1], index=last): sn.scale(2.0), blocks[-1]: sn.shift(-1.0)})
    sets.append({sn.Site(blocks[0], index=(slice(None), 1)): 1.0, blocks[0]: sn.scale(3.0)})
    return sets


@pytest.mark.parametrize("batch", [1, 2])
def test_gpt_batched_equals_looped(gpt: TracedModel, batch: int) -> None:
    context = {"idx": torch.randint(0, 50, (batch, SEQ), generator=_gen(1))}
    sets = _gpt_like_sets(gpt, 32, seed=2)
    many = assert_batched_equals_looped(gpt, context, sets)
    assert_batched_equals_looped(gpt, context, sets, outputs=["lm_head"])
    info = gpt.info.batching
    assert (info.sets, info.batched, info.looped, info.runs) == (len(sets), len(sets) - 1, 0, 1)
    clean = gpt.evaluate(context)
    for name, value in many[0].items():  # the empty set is the clean run itself
        assert value is clean[name]
    for values in many[1:]:
        assert values["lm_head"].shape == clean["lm_head"].shape == (batch, SEQ, 50)
        assert not torch.equal(values["lm_head"], clean["lm_head"])  # the interventions act


@pytest.mark.parametrize("batch", [1, 2])
def test_llama_batched_equals_looped(llama: TracedModel, batch: int) -> None:
    context = {"input_ids": torch.randint(0, VOCAB, (batch, SEQ), generator=_gen(3))}
    sets = _gpt_like_sets(llama, 32, seed=4)
    assert_batched_equals_looped(llama, context, sets, outputs=["lm_head"])
    assert_batched_equals_looped(llama, context, sets[:6])


def test_first_row_equals_the_unbatched_evaluation(llama: TracedModel) -> None:
    context = {"input_ids": torch.randint(0, VOCAB, (1, SEQ), generator=_gen(5))}
    sets = _gpt_like_sets(llama, 32, seed=6)[1:]
    many = llama.evaluate_many(context, sets, outputs=["lm_head"])
    assert llama.info.batching.path == "batched"
    assert_close(
        many[0]["lm_head"], llama.evaluate(context, sets[0], outputs=["lm_head"])["lm_head"]
    )


def test_chunks_bound_the_batch(gpt: TracedModel) -> None:
    context = {"idx": torch.randint(0, 50, (1, SEQ), generator=_gen(7))}
    sets = _gpt_like_sets(gpt, 32, seed=8)[1:8]  # 7 non-empty sets
    assert_batched_equals_looped(gpt, context, sets, chunk=3, path="mixed")
    many = gpt.evaluate_many(context, sets, chunk=3)
    info = gpt.info.batching
    assert (info.batched, info.looped, info.runs) == (6, 1, 2)  # 3 + 3 batched, 1 alone
    assert "single intervention set" in info.reason
    gpt.evaluate_many(context, sets, chunk=7)
    assert (gpt.info.batching.runs, gpt.info.batching.path) == (1, "batched")
    assert len(many) == 7


def test_interventions_the_model_carries_apply_to_every_row(gpt: TracedModel) -> None:
    context = {"idx": torch.randint(0, 50, (2, SEQ), generator=_gen(9))}
    intervened = sn.do(gpt, {"h.0.mlp": sn.scale(0.5)})
    sets = [{}, {"h.1.attn": sn.scale(2.0)}, {sn.Site("h.0.mlp", index=(slice(None), -1)): 0.0}]
    many = assert_batched_equals_looped(intervened, context, sets, outputs=["lm_head"])
    expected = gpt.evaluate(context, {"h.0.mlp": sn.scale(0.5)}, outputs=["lm_head"])
    assert_close(many[0]["lm_head"], expected["lm_head"])


def test_only_empty_sets_are_read_from_the_clean_run(mlp: TracedModel) -> None:
    context = {"input": torch.randn(1, 4, generator=_gen(10))}
    many = mlp.evaluate_many(context, [{}, None, Interventions()])
    assert mlp.info.batching.path == "clean"
    clean = mlp.evaluate(context)
    assert all(values["4"] is clean["4"] for values in many)


def test_elementwise_model_without_batch_axis_batches_along_its_first_axis() -> None:
    traced = trace(sn.toys.self_repair_module(), torch.zeros(3))
    context = {"u": torch.tensor([1.0, 2.0, 3.0])}
    sets = [{"x": 0.0}, {sn.Site("x", index=1): sn.scale(5.0)}, {"f": sn.shift(1.0)}]
    assert_batched_equals_looped(traced, context, sets)


# -- examples: the loop where batching would not be exact ---------------------------------------


class Coupled(nn.Module):
    """An MLP whose hidden layer is normalised across the rows of the batch (in eval mode)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.a = nn.Linear(4, 8)
        self.mid = nn.Linear(8, 8)
        self.b = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        if self.kind == "sum":
            h = h / h.sum(0, keepdim=True)
        elif self.kind == "centre":
            h = h - h.mean(0)
        else:  # "first": every row reads the first one
            h = h + h[:1]
        return self.b(torch.tanh(self.mid(h)))


@pytest.mark.parametrize("kind", ["sum", "centre", "first"])
def test_rows_that_interact_fall_back_to_the_loop(kind: str) -> None:
    torch.manual_seed(0)
    model = Coupled(kind).eval()
    traced = trace(model, torch.randn(3, 4))
    context = {"x": torch.randn(3, 4, generator=_gen(11))}
    sets = [{"a": sn.scale(2.0)}, {sn.Site("a", index=(1, 0)): sn.shift(1.0)}, {"a": 0.5}]
    many = assert_batched_equals_looped(traced, context, sets, path="looped")
    assert "mixes the rows of a batch" in traced.info.batching.reason
    patched = {"a": lambda v: 2.0 * v}
    with torch.no_grad():  # still exact: the eager model with the first set patched in
        handle = model.a.register_forward_hook(lambda m, args, out: patched["a"](out))
        try:
            expected = model(context["x"])
        finally:
            handle.remove()
    assert_close(many[0]["b"], expected)
    # downstream of the operation that mixes rows, each row is on its own again: batched
    assert_batched_equals_looped(traced, context, [{"mid": sn.scale(2.0)}, {"mid": 0.0}])


def test_graph_specialised_to_one_batch_size_falls_back_once(monkeypatch: Any) -> None:
    static = {"input_ids": torch.zeros(1, SEQ, dtype=torch.long)}
    traced = trace(tiny_model("llama"), static, dynamic_shapes={})  # every size fixed
    probes: list[int] = []
    probe = batched.probe

    def counted(*args: Any) -> Any:
        probes.append(1)
        return probe(*args)

    monkeypatch.setattr(batched, "probe", counted)
    context = {"input_ids": torch.randint(0, VOCAB, (1, SEQ), generator=_gen(12))}
    sets = _gpt_like_sets(traced, 32, seed=13)[1:5]
    assert_batched_equals_looped(traced, context, sets, outputs=["lm_head"], path="looped")
    reason = traced.info.batching.reason
    assert "does not run with a larger batch" in reason
    assert "Dim('batch')" in reason
    traced.evaluate_many(context, sets, outputs=["lm_head"])
    assert traced.info.batching.path == "looped"
    assert len(probes) == 1  # remembered for this input shape


def test_inputs_without_a_batch_axis_fall_back_to_the_loop() -> None:
    traced = trace(sn.toys.erasure_module(), torch.zeros(()))
    sets = [{"x": 0.5}, {"f": sn.scale(2.0)}]
    assert_batched_equals_looped(traced, {"u": torch.tensor(2.0)}, sets, path="looped")
    assert "no leading batch axis" in traced.info.batching.reason


def test_batched_false_is_the_loop(gpt: TracedModel) -> None:
    context = {"idx": torch.randint(0, 50, (1, SEQ), generator=_gen(14))}
    gpt.evaluate_many(context, [{"h.0.mlp": 0.0}, {"h.1.mlp": 0.0}], batched=False)
    assert gpt.info.batching.path == "looped"
    assert gpt.info.batching.reason == "batched=False"


# -- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [0, -1, 1.5, True])
def test_chunk_must_be_a_positive_int(mlp: TracedModel, chunk: Any) -> None:
    with pytest.raises(sn.InvalidArgument, match="chunk"):
        mlp.evaluate_many({"input": torch.zeros(1, 4)}, [{"0": 0.0}] * 2, chunk=chunk)


@pytest.mark.parametrize("use_batch", [True, False])
def test_bad_interventions_fail_as_in_evaluate(gpt: TracedModel, use_batch: bool) -> None:
    context = {"idx": torch.zeros(1, SEQ, dtype=torch.long)}
    good = normalize({"h.0.mlp": sn.scale(2.0)})
    with pytest.raises(sn.InvalidIntervention, match="does not fit"):
        gpt.evaluate_many(context, [good, {sn.Site("h.0.mlp", index=(0, 99)): 0.0}])
    with pytest.raises(sn.NodeNotFound):
        gpt.evaluate_many(context, [good, {"h.9.mlp": 0.0}], batched=use_batch)
    shrink = sn.apply(lambda v: v[..., :2], "shrink")
    with pytest.raises(sn.InvalidIntervention, match="keep the shape"):
        gpt.evaluate_many(context, [good, {"h.1.mlp": shrink}], batched=use_batch)
