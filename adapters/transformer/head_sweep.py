"""The Hydra sweep with attention heads as units (``scmnet hydra --units heads``).

After the layer sweep (:func:`~.sweep.run_sweep`), :func:`run_head_sweep` measures every kept
prompt again with every attention head ablated alone (:func:`~.head_measures.measure_heads`),
with the same ablation: the same kind, draws, seed and donors, so that a head's numbers and
its layer's are comparable. Each prompt's measures are written to ``heads/NNNNN.npz`` as they
are done, atomically; an interrupted sweep resumes with the prompts whose file is missing. The
folder's ``settings.json`` is the layer sweep's: the same settings hold for both.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> from tests.protocol import tiny_lm
>>> from scmnet.adapters.transformer.prompts import Prompt, PromptSet
>>> from scmnet.adapters.transformer.ablations import Ablation
>>> from scmnet.adapters.transformer.sweep import run_sweep
>>> from scmnet.adapters.transformer import head_sweep
>>> lm, out = tiny_lm("llama"), Path(tempfile.mkdtemp())
>>> prompts = PromptSet((Prompt("abcd", None), Prompt("bcde", None)), name="two")
>>> clean, _ = run_sweep(lm, prompts, Ablation(patches=1), out)
>>> heads = head_sweep.run_head_sweep(lm, clean, Ablation(patches=1), out)
>>> len(heads), heads[0].unembed.shape, sorted(p.name for p in (out / "heads").iterdir())
(2, (3, 4), ['00000.npz', '00001.npz'])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

import scmnet as sn

from .ablations import Ablation, AblationKind, donors, noised_contributions
from .causal import hydra_model
from .head_measures import HeadMeasures, measure_heads
from .heads import head_layout, head_site, heads_path
from .lm import LanguageModel
from .measures import Draw, _damaged
from .sweep import CleanRun, Progress, _no_progress, each_prompt, measures_path, saved

__all__ = ["heads_folder", "recorded_head_readings", "run_head_sweep"]


def heads_folder(out: str | Path) -> Path:
    """Where a sweep's per-prompt head measures are: ``out/heads``."""
    return Path(out) / "heads"


def run_head_sweep(
    lm: LanguageModel,
    clean: CleanRun,
    ablation: Ablation,
    out: str | Path,
    *,
    chunk: int | None = None,
    memory: int | None = None,
    progress: Progress[Any] = _no_progress,
) -> list[HeadMeasures]:
    """Run (or resume) the head sweep of ``clean``'s kept prompts; return their measures.

    Parameters
    ----------
    lm : LanguageModel
        The model; its family's attention must add to the residual
        (:func:`~.heads.head_layout`).
    clean : CleanRun
        The layer sweep's clean pass: the kept prompts, their tokens and the donor pool.
    ablation : Ablation
        The layer sweep's ablation.
    out : path
        The sweep's output directory; ``heads/`` inside it holds one file per prompt.
    chunk, memory : int, optional
        As for :func:`~.sweep.run_sweep`.
    progress : callable
        Wraps iterables for a progress bar.

    Raises
    ------
    UnsupportedModel
        If the family has no additive heads, or softcaps its logits.
    DamagedFile
        If a saved ``heads/NNNNN.npz`` cannot be read back, or holds another number of layers,
        heads or draws; the message names the file to delete.
    """
    head_layout(lm, 0)  # refuse an unsupported family before any work
    folder = heads_folder(out)
    folder.mkdir(parents=True, exist_ok=True)
    pool = [{"input_ids": ids.to(lm.device)} for ids in clean.donors]
    readings = None
    missing = any(not measures_path(folder, j).exists() for j in range(len(clean)))
    if missing and ablation.kind in (AblationKind.MEAN, AblationKind.RESAMPLE):
        readings = recorded_head_readings(lm, pool, progress=progress)  # once, if needed
    everywhere: dict[AblationKind, list[Draw]] = {
        AblationKind.ZERO: [sn.zero()],
        AblationKind.MEAN: [sn.mean(pool)],  # one rule for every prompt: its means once
    }

    def load(j: int, path: Path) -> HeadMeasures:
        found = HeadMeasures.load(path, prompt=j)
        _check_size(found, lm, ablation, path)
        return found

    def compute(j: int) -> HeadMeasures:
        ids, token = clean.ids[j], clean.tokens[j]
        draws: list[Draw] | Any
        if ablation.kind is AblationKind.NOISE:
            draws = noised_contributions(lm, ids, j, ablation, heads=True)
        elif ablation.kind is AblationKind.RESAMPLE:
            draws = [sn.patch(pool[d]) for d in donors(j, len(pool), ablation)]
        else:
            draws = everywhere[ablation.kind]
        measures = measure_heads(
            lm, ids, token, draws, prompt=j, chunk=chunk, memory=memory, values=readings
        )
        hydra_model(lm, heads=True).clear_cache()  # the prompt's clean run is not read again
        return saved(measures, folder, j)

    return each_prompt(
        len(clean), folder, load, compute, progress=progress, description="head ablations"
    )


def recorded_head_readings(
    lm: LanguageModel,
    contexts: Sequence[Mapping[str, torch.Tensor]],
    *,
    batch: int = 16,
    progress: Progress[Any] = _no_progress,
) -> sn.SiteValues:
    """A memo of every head's final-position value in each of ``contexts`` (one clean run each),
    from which mean and patch rules read: the sites of :func:`~.heads.head_site`.

    Contexts of one prompt length run together, ``batch`` at a time (no padding: each row
    computes what it would alone), and only the final position of each head is kept (the
    prompt's other positions are never read).
    """
    model = hydra_model(lm, heads=True)
    memo = sn.SiteValues(model)
    n = lm.n_layers
    last = [sn.Site(heads_path(lm, layer), (slice(None), -1)) for layer in range(n)]
    n_heads = head_layout(lm, 0).n_heads
    sites = [[head_site(lm, layer, h) for h in range(n_heads)] for layer in range(n)]
    by_length: dict[int, list[int]] = {}
    for i, context in enumerate(contexts):
        by_length.setdefault(int(context["input_ids"].shape[1]), []).append(i)
    groups = [m[j : j + batch] for m in by_length.values() for j in range(0, len(m), batch)]
    with torch.no_grad():
        for group in progress(groups, "head readings", len(groups)):
            ids = torch.cat([contexts[i]["input_ids"] for i in group])
            found = model.evaluate({"input_ids": ids}, outputs=last)  # each (rows, H, d)
            for layer in range(n):
                value = found[last[layer]]
                for row, i in enumerate(group):
                    for h in range(n_heads):
                        memo.record(contexts[i], sites[layer][h], value[row : row + 1, h].clone())
            model.clear_cache()
    return memo


def _check_size(found: HeadMeasures, lm: LanguageModel, ablation: Ablation, path: Path) -> None:
    shape = (lm.n_layers, head_layout(lm, 0).n_heads, ablation.draws)
    if found.ablated_logit.shape != shape:
        raise _damaged(
            path,
            f"holds {found.ablated_logit.shape} (layers, heads, draws), not {shape}",
        )
