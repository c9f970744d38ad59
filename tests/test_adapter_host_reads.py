"""A prompt's measures read values back to the host three times, however many layers and draws.

On a GPU every read of a value by the host (``.cpu()``, ``.item()``, ``bool(t)``, ``.tolist()``,
``torch.equal``, ...) waits for the device. The sweep must not read a reading back per layer or
per draw: a prompt's query reads its clean run's finiteness flags, its ablated rows' flags, and
at the end the readouts, once. This machine has no GPU, so the reads are counted where they are
made: every such method is wrapped while one prompt is measured (the trace already made and its
batching probes done, as for every prompt after the first of its length).
"""

from __future__ import annotations

import collections
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch

from scmnet.adapters.transformer.ablations import AblationKind
from scmnet.adapters.transformer.causal import hydra_model
from scmnet.adapters.transformer.measures import measure_prompt
from tests.protocol import draws, tiny_lm

METHODS = ("cpu", "item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__")
FUNCTIONS = ("equal", "allclose", "is_nonzero")
IDS = torch.tensor([[5, 6, 7, 8, 9, 10, 11]])


@contextmanager
def host_reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[collections.Counter[str]]:
    """Count the host reads made inside the block, by the file and line that made them."""
    found: collections.Counter[str] = collections.Counter()
    busy = [False]

    def counting(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not busy[0]:
                busy[0] = True
                try:
                    caller = traceback.extract_stack(limit=2)[0]
                    found[f"{name} at {caller.filename.rsplit('/', 1)[-1]}:{caller.lineno}"] += 1
                finally:
                    busy[0] = False
            return real(*args, **kwargs)

        return wrapper

    with monkeypatch.context() as m:
        for name in METHODS:
            m.setattr(torch.Tensor, name, counting(name, getattr(torch.Tensor, name)))
        for name in FUNCTIONS:
            m.setattr(torch, name, counting(name, getattr(torch, name)))
        yield found


@pytest.mark.parametrize("kind", [AblationKind.ZERO, AblationKind.RESAMPLE, AblationKind.NOISE])
@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_a_prompt_reads_back_three_times_whatever_its_layers_and_draws(
    family: str, kind: AblationKind, monkeypatch: pytest.MonkeyPatch
) -> None:
    counts = []
    for layers, k in ((3, 1), (3, 3), (2, 3)):
        lm = tiny_lm(family, layers)
        found_draws, values = draws(lm, IDS, kind, k)
        measure_prompt(lm, IDS, 3, found_draws, values=values)  # warm: the batching probes
        hydra_model(lm).clear_cache()
        with host_reads(monkeypatch) as found:
            measure_prompt(lm, IDS, 3, found_draws, values=values)
        hydra_model(lm).clear_cache()
        transfers = {where: n for where, n in found.items() if where.startswith("cpu ")}
        assert sum(transfers.values()) == 3, dict(found)  # two sets of flags, the readouts
        counts.append(dict(found))
    assert counts[0] == counts[1] == counts[2]  # the same reads at the same lines, whatever L, K
