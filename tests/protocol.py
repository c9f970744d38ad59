"""The Hydra protocol's pieces shared by the tests of where its values live and when it waits:
a tiny model cut to fewer layers, and the ablation draws of each kind for one prompt."""

from __future__ import annotations

from typing import Any

import torch

import scmnet as sn
from scmnet.adapters.transformer.ablations import Ablation, AblationKind, noised_contributions
from scmnet.adapters.transformer.causal import final_readings, recorded_readings
from scmnet.adapters.transformer.lm import LanguageModel
from tests.tiny_models import CharTokenizer, tiny_model


def tiny_lm(family: str, layers: int = 3) -> LanguageModel:
    """The tiny model of ``family`` (``"llama"`` or ``"gpt2"`` when cut) cut to its first
    ``layers`` blocks (of 3), wrapped with a character tokenizer."""
    model = tiny_model(family)
    if layers < 3:
        blocks = model.model.layers if family == "llama" else model.transformer.h
        del blocks[layers:]
        model.config.num_hidden_layers = layers
    return LanguageModel.from_pretrained_model(model, CharTokenizer(), f"tiny-{family}")


def draws(lm: LanguageModel, ids: torch.Tensor, kind: AblationKind, k: int) -> tuple[Any, Any]:
    """``k`` draws of ``kind`` for the prompt ``ids`` and the recorded values they read (resample
    draws patch rolled copies of the prompt)."""
    if kind is AblationKind.ZERO:
        return [sn.zero()] * k, None
    if kind is AblationKind.NOISE:
        return noised_contributions(lm, ids, 0, Ablation(kind, patches=k)), None
    donors = [{"input_ids": ids.roll(s + 1, 1)} for s in range(k)]
    found = torch.cat([final_readings(lm, d["input_ids"])[0] for d in donors])
    return [sn.patch(d) for d in donors], recorded_readings(lm, donors, found)
