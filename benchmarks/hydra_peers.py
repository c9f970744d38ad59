"""Benchmark: the Hydra zero-ablation protocol in scmnet, TransformerLens and nnsight, on SmolLM2.

The protocol, on the embedded SmolLM2-135M for each prompt: zero the output of every attention
and MLP layer at the final position (60 ablations), and read the centred logit of the clean
top-1 token i (eq. 9) of every run, so the ablation impacts Delta_ablate (eq. 12). scmnet's
query (:func:`~scmnet.adapters.transformer.measures.measure_prompt`, what ``scmnet hydra
--ablation zero`` runs) also reads the 60 direct effects of every run; the peers below read only
the ablation impacts, so they compute less.

Where installed (``pip install 'scmnet[bench]'``; this script skips, saying why, a library that
is missing or cannot run offline), each peer runs it two ways, on its own copy of the model:

* **loop** -- one forward per ablation with one hook (the way the libraries' tutorials patch);
* **batched** -- one forward of a batch of 61 copies of the prompt, each row's hook zeroing its
  own site (the fastest way each library can express it);

* TransformerLens 4 (``TransformerBridge.boot_transformers(name, hf_model=..., tokenizer=...)``,
  offline from the loaded model): hooks ``blocks.{l}.attn.hook_out`` and
  ``blocks.{l}.mlp.hook_out`` through ``run_with_hooks``;
* nnsight (``nnsight.LanguageModel(hf_model, tokenizer=...)``): the final position of
  ``model.layers[l].self_attn.output[0]`` and ``model.layers[l].mlp.output`` set to zero inside
  a ``trace``, the logits saved.

All variants run interleaved per prompt in one process (scmnet, then each peer's loop and
batched run, then scmnet again), with the thread count pinned. The script prints each time per
prompt, the largest difference of each peer's Delta_ablate from scmnet's, and the median ratio
of the faster peer variant's time to scmnet's. Usage::

    python benchmarks/hydra_peers.py --prompts 3 --threads 2
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

import scmnet as sn
from scmnet.adapters.transformer.causal import hydra_model
from scmnet.adapters.transformer.lm import LanguageModel, load_model
from scmnet.adapters.transformer.measures import measure_prompt

PROMPTS = (
    "The capital of France is",
    "The Eiffel Tower is located in the city of",
    "Water is made of hydrogen and",
    "The largest planet in the solar system is",
)
NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the bridge's label; nothing is downloaded

Impacts = Callable[[torch.Tensor, int], np.ndarray]


def _centred(logits: torch.Tensor, token: int) -> torch.Tensor:
    """The centred logit of ``token`` at the final position of every row: shape (rows,)."""
    last = logits[:, -1].double()
    return last[:, token] - last.mean(-1)


def _impacts(logits: torch.Tensor, token: int, n: int) -> np.ndarray:
    """Delta_ablate (2, L) from the logits of the clean row 0 and the 2L ablated rows."""
    found = _centred(logits, token)
    return (found[1:] - found[0]).reshape(2, n).numpy()


def transformer_lens(lm: LanguageModel) -> tuple[str, dict[str, Impacts]]:
    """TransformerLens's loop and batched runs; raises if it is missing or cannot boot."""
    from importlib.metadata import version

    from transformer_lens.model_bridge import TransformerBridge

    model = copy.deepcopy(lm.model)  # the bridge switches the model to eager attention
    bridge = TransformerBridge.boot_transformers(
        NAME, hf_model=model, tokenizer=lm.tokenizer, device="cpu"
    )
    n = lm.n_layers
    names = [f"blocks.{layer}.{b}.hook_out" for b in ("attn", "mlp") for layer in range(n)]

    def zero_row(row: int | None) -> Callable[..., torch.Tensor]:
        def hook(value: torch.Tensor, hook: Any) -> torch.Tensor:
            value = value.clone()
            value[slice(None) if row is None else row, -1] = 0
            return value

        return hook

    def loop(ids: torch.Tensor, token: int) -> np.ndarray:
        with torch.no_grad():
            rows = [bridge(ids)]
            rows += [bridge.run_with_hooks(ids, fwd_hooks=[(h, zero_row(None))]) for h in names]
        return _impacts(torch.cat(rows), token, n)

    def batched(ids: torch.Tensor, token: int) -> np.ndarray:
        hooks = [(h, zero_row(1 + j)) for j, h in enumerate(names)]
        with torch.no_grad():
            logits = bridge.run_with_hooks(ids.repeat(1 + 2 * n, 1), fwd_hooks=hooks)
        return _impacts(logits, token, n)

    return f"TransformerLens {version('transformer-lens')}", {"loop": loop, "batched": batched}


def nnsight_runs(lm: LanguageModel) -> tuple[str, dict[str, Impacts]]:
    """nnsight's loop and batched runs; raises if it is missing or cannot run."""
    import warnings
    from importlib.metadata import version

    import nnsight

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LanguageModel is deprecated in favour of a hub name
        model = nnsight.LanguageModel(copy.deepcopy(lm.model), tokenizer=lm.tokenizer)
    n = lm.n_layers

    def ablate(layer: int, block: int, row: Any) -> None:
        module = model.model.layers[layer]
        if block == 0:
            module.self_attn.output[0][row, -1] = 0
        else:
            module.mlp.output[row, -1] = 0

    def loop(ids: torch.Tensor, token: int) -> np.ndarray:
        rows = []
        with torch.no_grad():
            with model.trace(ids):
                rows.append(model.lm_head.output.save())
            for block in range(2):
                for layer in range(n):
                    with model.trace(ids):
                        ablate(layer, block, slice(None))
                        rows.append(model.lm_head.output.save())
        return _impacts(torch.cat([torch.as_tensor(r) for r in rows]), token, n)

    def batched(ids: torch.Tensor, token: int) -> np.ndarray:
        with torch.no_grad(), model.trace(ids.repeat(1 + 2 * n, 1)):
            for layer in range(n):  # in the order the model runs (nnsight requires it)
                for block in range(2):
                    ablate(layer, block, 1 + block * n + layer)
            logits = model.lm_head.output.save()
        return _impacts(torch.as_tensor(logits), token, n)

    return f"nnsight {version('nnsight')}", {"loop": loop, "batched": batched}


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lm = load_model()
    hydra_model(lm)
    peers: dict[str, dict[str, Impacts]] = {}
    for boot in (transformer_lens, nnsight_runs):
        try:
            label, runs = boot(lm)
        except ImportError as e:
            print(f"skipped: {boot.__name__}: not installed ({e}); pip install 'scmnet[bench]'")
            continue
        except Exception as e:  # a library that cannot run offline, or on this model
            print(f"skipped: {boot.__name__}: cannot run here ({type(e).__name__}: {e})")
            continue
        peers[label] = runs
    print(
        f"SmolLM2-135M, zero ablation of 60 sites at the final position (61 runs per prompt); "
        f"torch {torch.__version__}, {args.threads} thread(s); peers: "
        f"{', '.join(peers) or 'none installed'}"
    )
    variants = [(p, v) for p, runs in peers.items() for v in runs]
    print(
        f"{'prompt':45s} {'T':>3s} {'scmnet s':>9s} "
        + " ".join(f"{p.split()[0]} {v} s" for p, v in variants)
    )
    ratios: list[float] = []
    diffs = dict.fromkeys(peers, 0.0)
    for text in PROMPTS[: args.prompts]:
        ids = lm.tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids
        with torch.no_grad():
            token = int(lm.model(input_ids=ids).logits[0, -1].argmax())

        def engine(ids: torch.Tensor = ids, token: int = token) -> Any:
            hydra_model(lm).clear_cache()  # as in a sweep: the prompt's clean run is new
            return measure_prompt(lm, ids, token, [sn.zero()])

        engine()  # the probes of this prompt length
        for p, v in variants:  # each peer's first call (tracing, hook set-up) is untimed too
            peers[p][v](ids, token)
        ours, first = _timed(engine)
        reference = first.ablate_per_draw[..., 0]
        times = []
        for p, v in variants:
            seconds, found = _timed(lambda p=p, v=v: peers[p][v](ids, token))  # noqa: B023
            times.append(seconds)
            diffs[p] = max(diffs[p], float(np.abs(found - reference).max()))
        ours = statistics.median([ours, _timed(engine)[0]])
        if times:
            ratios.append(min(times) / ours)
        shown = " ".join(
            f"{t:{len(p.split()[0]) + len(v) + 4}.3f}"
            for (p, v), t in zip(variants, times, strict=True)
        )
        print(f"{text[:45]:45s} {ids.shape[1]:3d} {ours:9.3f} {shown}", flush=True)
    for p in peers:
        print(f"{p}: max |difference| of Delta_ablate from scmnet's {diffs[p]:.1e}")
    if ratios:
        print(
            f"scmnet {statistics.median(ratios):.1f}x the speed of the faster peer variant "
            f"(median over {len(ratios)} prompts; per prompt: "
            f"{', '.join(f'{r:.1f}x' for r in ratios)})"
        )


if __name__ == "__main__":
    main()
