"""Shared test settings: offline Hugging Face, hypothesis profiles, explicit seeds."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from tests.tiny_models import FAMILIES, VARIANTS

# Nothing is downloaded: Hugging Face libraries imported by the tests stay offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

settings.register_profile(
    "default", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("ci" if os.environ.get("CI") else "default")


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> Iterator[None]:
    """Tiny models run fastest, and least disturbed by other processes, on one thread."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def hf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama saved as a Hugging Face model directory, without a tokenizer."""
    from tests.tiny_models import tiny_model

    folder = tmp_path_factory.mktemp("tiny-llama")
    tiny_model("llama").save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def hf_dir_with_tokenizer(hf_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same model with a small word-level tokenizer, built offline."""
    import shutil

    import transformers as tf
    from tokenizers import Tokenizer, models, pre_tokenizers

    folder = tmp_path_factory.mktemp("tiny-llama-tok")
    shutil.copytree(hf_dir, folder, dirs_exist_ok=True)
    words = ["[UNK]", "the", "eiffel", "tower", "is", "located", "in", "city", "of"]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tf.PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]").save_pretrained(
        folder
    )
    return folder


@pytest.fixture(scope="module", params=[*FAMILIES, *VARIANTS])
def tiny(request: pytest.FixtureRequest) -> Any:
    """A tiny random language model of each declared family (and its other layouts: Gemma 3's
    multimodal wrapper, GPT-NeoX's sequential blocks), wrapped by the adapter."""
    from scmnet.adapters.transformer.lm import LanguageModel
    from tests.tiny_models import tiny_model

    return LanguageModel.from_pretrained_model(tiny_model(request.param), None, request.param)
