"""The readout identity: the units, the embedding's and the bias terms add up to the centred
logit in every run of every family, and a family mapped wrongly is refused by name."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import scmnet as sn
from scmnet.adapters.transformer.causal import hydra_model
from scmnet.adapters.transformer.lm import LanguageModel
from scmnet.adapters.transformer.measures import measure_prompt, query_runs, readouts
from scmnet.adapters.transformer.readout_identity import check_identity
from tests.protocol import tiny_lm
from tests.tiny_models import FAMILIES

IDS = torch.tensor([[5, 6, 7, 8, 9, 10, 11]])
TOKEN = 3


@pytest.mark.parametrize("family", FAMILIES)
def test_every_run_of_every_family_satisfies_the_identity(family: str) -> None:
    lm = tiny_lm(family)
    last = (slice(None), -1)
    treatments = [
        {sn.Site(lm.module_path(layer, "attn"), index=last): sn.zero()}
        for layer in range(lm.n_layers)
    ]
    runs = query_runs(
        hydra_model(lm),
        lm,
        IDS,
        treatments,
        readouts(lm, TOKEN),
        chunk=None,
        memory=None,
        values=None,
    )
    gap, bound = runs[:, -2], runs[:, -1]
    assert np.all(np.abs(gap) <= bound), (family, gap, bound)
    assert np.all(bound < 1e-3 * (1.0 + np.abs(runs[:, -3])))  # a bound that can fail


def test_a_unit_read_before_its_post_norm_is_refused_naming_the_run() -> None:
    """Gemma 3 adds each block's output after a post-norm: reading a^l before it breaks the
    identity, and the sweep refuses the prompt instead of writing wrong measures."""
    right = tiny_lm("gemma3")
    spec = dataclasses.replace(right.spec, attention_out="self_attn")
    wrong = LanguageModel(right.model, right.tokenizer, spec, "tiny-gemma3-misread")
    with pytest.raises(sn.MechanismError, match="prompt 4, the clean run: the direct effects"):
        measure_prompt(wrong, IDS, TOKEN, [sn.zero()], prompt=4)
    measure_prompt(right, IDS, TOKEN, [sn.zero()], prompt=4)  # the declared spec passes


def test_the_check_names_the_intervened_site_and_refuses_nan() -> None:
    with pytest.raises(sn.MechanismError, match=r"'a\.b'"):
        check_identity(np.array([0.0, 1.0]), np.array([1.0, 1e-6]), [{sn.Site("a.b"): 0}], prompt=0)
    with pytest.raises(sn.MechanismError, match="nan less"):
        check_identity(np.array([np.nan]), np.array([1.0]), [], prompt=0)
