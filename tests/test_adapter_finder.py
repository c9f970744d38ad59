"""The finder: the residual structure read from the model itself, on known and new families.

On the seven declared families the finder must find exactly the declared spec; on decoders
outside the table (Qwen3, Phi-3, OLMo2, Falcon) the adapter's measures must equal the hooked
reference; models the analyses would get wrong are refused, naming what is missing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from scmnet.adapters.transformer.finder import find_spec
from scmnet.adapters.transformer.lm import LanguageModel
from scmnet.adapters.transformer.registry import spec_for
from scmnet.errors import UnsupportedModel
from tests.reference import check_measures
from tests.tiny_models import FAMILIES, FOUND_FAMILIES, VARIANTS, tiny_model

PATHS = ("base", "embed", "layers", "attention", "mlp", "attention_out", "mlp_out", "unembed")


@pytest.mark.parametrize("family", [*FAMILIES, *VARIANTS])
def test_finder_finds_the_declared_spec(family: str) -> None:
    model = tiny_model(family)
    declared, found = spec_for(model), find_spec(model)
    assert {p: getattr(found, p) for p in PATHS} == {p: getattr(declared, p) for p in PATHS}
    assert found.final_norm.path == declared.final_norm.path
    assert found.final_norm.kind is declared.final_norm.kind
    assert found.final_norm.weight_offset == declared.final_norm.weight_offset
    assert found.parallel is declared.is_parallel(model.config)
    norm = model.get_submodule(found.final_norm.path)
    declared_eps = next(getattr(norm, a) for a in declared.final_norm.eps_attr if hasattr(norm, a))
    assert getattr(norm, found.final_norm.eps_attr[0]) == declared_eps
    assert found.name == found.model_types[0] == model.config.model_type
    assert found.readout(model.config) == declared.readout(model.config)


@pytest.fixture(scope="module", params=FOUND_FAMILIES)
def found(request: pytest.FixtureRequest) -> LanguageModel:
    """A tiny model of a family outside the table, wrapped through the finder."""
    return LanguageModel.from_pretrained_model(tiny_model(request.param), None, request.param)


def test_found_structure(found: LanguageModel) -> None:
    post_norms = found.name in ("olmo2", "gemma2")
    assert found.spec.name == found.config.model_type
    assert found.parallel is (found.name == "falcon")
    assert (found.spec.attention_out != found.spec.attention) is post_norms
    assert (found.n_layers, found.d_model) == (3, 32)
    assert found.readout.softcap == (0.5 if found.name == "gemma2" else None)


def test_found_measures_equal_hooked_reference(found: LanguageModel) -> None:
    """As tests/test_adapter_engine.py::test_measures_equal_hooked_reference, on found specs."""
    check_measures(found)


def test_state_space_model_is_refused() -> None:
    # The choice documented in docs/hydra.rst: one residual writer per layer is refused (the
    # paper's measures compare attention and MLP), in those terms, before any analysis.
    with pytest.raises(
        UnsupportedModel,
        match=r"^model type 'mamba' is not supported by the transformer adapter: each layer of "
        r"backbone\.layers has one residual writer \(mixer\) and no attention/MLP split, as a "
        r"state-space model \(Mamba\) has; .* known model types: ",
    ):
        LanguageModel.from_pretrained_model(tiny_model("mamba"), None, "mamba")


def test_encoder_is_refused_as_not_causal() -> None:
    import transformers as tf

    torch.manual_seed(0)
    bert = tf.BertForMaskedLM(
        tf.BertConfig(
            vocab_size=50,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
        )
    )
    with pytest.raises(
        UnsupportedModel,
        match=r"'bert' is not supported by the transformer adapter: it is not a causal "
        r"decoder-only language model: changing the last token changed the logits of earlier "
        r"positions",
    ):
        find_spec(bert)
    assert bert.training  # the finder restores the mode it found


def test_hydra_command_on_a_found_family(tmp_path: Path) -> None:
    """``scmnet hydra --model DIR`` end to end on a saved tiny Qwen3 (a family outside the
    table) with a word-level tokenizer built offline."""
    import transformers as tf
    from tokenizers import Tokenizer, models, pre_tokenizers

    from scmnet.cli import main

    folder = tmp_path / "tiny-qwen3"
    tiny_model("qwen3").save_pretrained(folder)
    words = ["[UNK]", "the", "eiffel", "tower", "is", "located", "in", "city", "of"]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tf.PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]").save_pretrained(
        folder
    )
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("the eiffel tower is located in the city of\nthe tower is in\nthe city of\n")
    out = tmp_path / "report"
    args = ["hydra", "--model", str(folder), "--prompts", str(prompts), "--out", str(out)]
    assert main([*args, "--limit", "2", "--patches", "2", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["model"] == str(folder)
    assert summary["prompts_kept"] == 2
    assert len(list((out / "measures").iterdir())) == 2


def test_no_final_norm_is_refused_before_the_analysis() -> None:
    model = tiny_model("qwen3")  # found by the finder
    model.model.norm = torch.nn.Identity()
    with pytest.raises(
        UnsupportedModel,
        match=r"^model type 'qwen3' is not supported by the transformer adapter: no final norm "
        r"between the last layer \(model\.layers\.2\) and the unembedding lm_head: ",
    ):
        LanguageModel.from_pretrained_model(model, None, "qwen3")
    declared = tiny_model("llama")  # a declared family's spec is checked too
    declared.model.norm = torch.nn.Identity()
    with pytest.raises(
        UnsupportedModel,
        match=r"'llama' .*: no final norm between the last layer and the unembedding lm_head: "
        r"model\.norm has no weight of shape \(32,\)",
    ):
        LanguageModel.from_pretrained_model(declared, None, "llama")


def test_layer_with_another_residual_writer_is_refused() -> None:
    model = tiny_model("qwen3")
    model.model.layers[2].register_forward_hook(lambda m, a, out: out + 0.5)
    with pytest.raises(
        UnsupportedModel,
        match=r"^model type 'qwen3' is not supported by the transformer adapter: layer 2 "
        r"\(model\.layers\.2\) has residual writers other than self_attn and mlp: their outputs "
        r"sum to the change of the residual stream in layer\(s\) 0, 1 but not in layer 2",
    ):
        LanguageModel.from_pretrained_model(model, None, "qwen3")
