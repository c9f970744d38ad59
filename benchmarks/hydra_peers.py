"""Benchmark: the Hydra protocol, zero and resample, in scmnet, TransformerLens and nnsight.

The protocol, on the embedded SmolLM2-135M for each prompt: set the output of every attention
and MLP layer at the final position (60 sites) to zero, or to K = 15 other prompts' recorded
outputs there (resample; eq. 39: the sweep's own donors from a clean pass of the built-in
prompts), and read the centred logit of the clean top-1 token i (eq. 9) of every run, so the
ablation impacts Delta_ablate (eq. 12) of every site and draw. scmnet's query
(:func:`~scmnet.adapters.transformer.measures.measure_prompt`, what ``scmnet hydra`` runs) also
reads the 60 direct effects of every run; the peers below read only the ablation impacts, so
they compute less.

Where installed (``pip install 'scmnet[bench]'``; this script skips, saying why, a library that
is missing or cannot run offline), each peer runs it two ways, on its own copy of the model:

* **loop** -- one forward per run with one hook (the way the libraries' tutorials patch); for
  resample (901 forwards a prompt, about a minute and a half each) only with ``--loops``;
* **batched** -- one forward per draw of a batch of 61 copies of the prompt (the clean row and
  the 60 sites), each row's hook writing its own site (the fastest way each library can
  express it);

* TransformerLens 4 (``TransformerBridge.boot_transformers(name, hf_model=..., tokenizer=...)``,
  offline from the loaded model): hooks ``blocks.{l}.attn.hook_out`` and
  ``blocks.{l}.mlp.hook_out`` through ``run_with_hooks``;
* nnsight (``nnsight.LanguageModel(hf_model, tokenizer=...)``): the final position of
  ``model.layers[l].self_attn.output[0]`` and ``model.layers[l].mlp.output`` set inside a
  ``trace``, the logits saved.

All variants run interleaved per prompt in one process (scmnet, then each peer's variants, then
scmnet again), with the thread count pinned, inside ``scmnet.heap.frozen_heap`` as a sweep's
loop runs. The script prints each time per prompt, the
largest difference of each peer's Delta_ablate from scmnet's, the median ratio of the faster
peer variant's time to scmnet's, and the ratio of the matmul FLOPs of the batched peer's
forwards (every position of every row, through the unembedding) to scmnet's (the clean run, and
each row's final position from its site on; ``_common.protocol_flops``): how much faster scmnet
would be at equal arithmetic rates. With ``--phases`` it also times, in one more query a
prompt, the parts of scmnet's: the clean run, the staircase of ablated rows
(``scmnet.tracing.engine.staircase.run_rows``, timed by wrapping it where the batch runner
calls it), and the rest (fitting
and resolving the rows, stacking the outputs, the readouts), and the ratio of the staircase
alone to the faster peer: what scmnet's speed would be if the rest took no time. Usage::

    python benchmarks/hydra_peers.py --prompts 3 --threads 2 [--phases]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scmnet.adapters.transformer.ablations import AblationKind
from scmnet.adapters.transformer.causal import hydra_model
from scmnet.adapters.transformer.lm import LanguageModel, load_model
from scmnet.adapters.transformer.prompts import builtin_prompts
from scmnet.adapters.transformer.sweep import clean_pass
from scmnet.heap import frozen_heap
from scmnet.tracing import TracedModel
from scmnet.tracing.engine import batched as batch_runs

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Shape, forward_flops, protocol_flops
from hydra_engine import Protocol

NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the bridge's label; nothing is downloaded

Impacts = Callable[[torch.Tensor, int, torch.Tensor], np.ndarray]
"""A peer's run: ``(ids, token, values)`` to Delta_ablate, shape (2, L, K); ``values[j, b, l]``
is written at the final position of output (b, l) in draw j."""


def _centred(logits: torch.Tensor, token: int) -> torch.Tensor:
    """The centred logit of ``token`` at the final position of every row: shape (rows,)."""
    last = logits[:, -1].double()
    return last[:, token] - last.mean(-1)


def _impacts(rows: list[torch.Tensor], token: int, n: int, draws: int) -> np.ndarray:
    """Delta_ablate (2, L, K) from the logits of a clean row and the 2 L K ablated rows.

    ``rows`` holds, per draw, the logits of the clean row then the 2 L sites (attention
    first); a loop gives the clean row once, then each draw's 2 L rows.
    """
    logits = torch.cat(rows)
    found = _centred(logits, token)
    if logits.shape[0] == draws * (1 + 2 * n):  # batched: a clean row leads every draw
        per_draw = found.reshape(draws, 1 + 2 * n)
        impacts = per_draw[:, 1:] - per_draw[:, :1]
    else:
        impacts = (found[1:] - found[0]).reshape(draws, 2 * n)
    return impacts.reshape(draws, 2, n).permute(1, 2, 0).numpy()


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

    def write(row: int | None, value: torch.Tensor) -> Callable[..., torch.Tensor]:
        def hook(found: torch.Tensor, hook: Any) -> torch.Tensor:
            found = found.clone()
            found[slice(None) if row is None else row, -1] = value
            return found

        return hook

    def loop(ids: torch.Tensor, token: int, values: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            rows = [bridge(ids)]
            for j in range(values.shape[0]):
                for i, h in enumerate(names):
                    hooks = [(h, write(None, values[j, i // n, i % n]))]
                    rows.append(bridge.run_with_hooks(ids, fwd_hooks=hooks))
        return _impacts(rows, token, n, values.shape[0])

    def batched(ids: torch.Tensor, token: int, values: torch.Tensor) -> np.ndarray:
        rows = []
        for j in range(values.shape[0]):
            hooks = [(h, write(1 + i, values[j, i // n, i % n])) for i, h in enumerate(names)]
            with torch.no_grad():
                rows.append(bridge.run_with_hooks(ids.repeat(1 + 2 * n, 1), fwd_hooks=hooks))
        return _impacts(rows, token, n, values.shape[0])

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

    def write(layer: int, block: int, row: Any, value: torch.Tensor) -> None:
        module = model.model.layers[layer]
        if block == 0:
            module.self_attn.output[0][row, -1] = value
        else:
            module.mlp.output[row, -1] = value

    def loop(ids: torch.Tensor, token: int, values: torch.Tensor) -> np.ndarray:
        rows = []
        with torch.no_grad():
            with model.trace(ids):
                rows.append(model.lm_head.output.save())
            for j in range(values.shape[0]):
                for block in range(2):
                    for layer in range(n):
                        with model.trace(ids):
                            write(layer, block, slice(None), values[j, block, layer])
                            rows.append(model.lm_head.output.save())
        return _impacts([torch.as_tensor(r) for r in rows], token, n, values.shape[0])

    def batched(ids: torch.Tensor, token: int, values: torch.Tensor) -> np.ndarray:
        rows = []
        for j in range(values.shape[0]):
            with torch.no_grad(), model.trace(ids.repeat(1 + 2 * n, 1)):
                for layer in range(n):  # in the order the model runs (nnsight requires it)
                    for block in range(2):
                        write(layer, block, 1 + block * n + layer, values[j, block, layer])
                logits = model.lm_head.output.save()
            rows.append(torch.as_tensor(logits))
        return _impacts(rows, token, n, values.shape[0])

    return f"nnsight {version('nnsight')}", {"loop": loop, "batched": batched}


@contextmanager
def phase_timer() -> Iterator[dict[str, float]]:
    """Seconds spent in scmnet's clean runs and staircases while the block runs (wrapping the
    two entry points; restored after)."""
    spent = {"clean": 0.0, "rows": 0.0}
    run_rows, clean = batch_runs.run_rows, TracedModel._clean

    def timed(fn: Callable[..., Any], key: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - start

        return call

    setattr(batch_runs, "run_rows", timed(run_rows, "rows"))  # noqa: B010
    setattr(TracedModel, "_clean", timed(clean, "clean"))  # noqa: B010
    try:
        yield spent
    finally:
        setattr(batch_runs, "run_rows", run_rows)  # noqa: B010
        setattr(TracedModel, "_clean", clean)  # noqa: B010


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=3, help="prompts timed (>= 1)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--patches", type=int, default=15, help="K of the resample ablation")
    parser.add_argument(
        "--ablation", nargs="+", default=["zero", "resample"], choices=["zero", "resample"]
    )
    parser.add_argument("--pool", type=int, default=60, help="built-in prompts of the clean pass")
    parser.add_argument(
        "--loops", action="store_true", help="time the peers' loops for resample too (slow)"
    )
    parser.add_argument(
        "--phases", action="store_true", help="time the parts of scmnet's query (one more query)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lm = load_model()
    hydra_model(lm)
    clean = clean_pass(lm, builtin_prompts().limit(args.pool))
    protocol = Protocol(lm, clean, args.patches)
    shape, n = Shape.of(lm.config), lm.n_layers
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
        f"SmolLM2-135M, 60 sites at the final position; torch {torch.__version__}, "
        f"{args.threads} thread(s); peers: {', '.join(peers) or 'none installed'}"
    )
    with frozen_heap():  # as in a sweep: the model and its graph out of full collections
        for name in args.ablation:
            kind = AblationKind(name)
            variants = [
                (p, v)
                for p, runs in peers.items()
                for v in runs
                if v == "batched" or kind is AblationKind.ZERO or args.loops
            ]
            draws = 1 if kind is AblationKind.ZERO else args.patches
            print(
                f"\n{name} ablation: {1 + 2 * n * draws} runs per prompt\n"
                f"{'prompt':45s} {'T':>3s} {'scmnet s':>9s} "
                + " ".join(f"{p.split()[0]} {v} s" for p, v in variants)
                + "  FLOP ratio"
            )
            ratios: list[float] = []
            ceilings: list[float] = []
            alone: list[float] = []  # the faster peer's time over the staircase's alone
            diffs = dict.fromkeys(peers, 0.0)
            for j in range(min(args.prompts, len(clean))):
                ids, token = clean.ids[j], clean.tokens[j]
                text = builtin_prompts()[clean.kept[j]].text
                rules, values = protocol.draws(kind, j)

                engine = protocol.query(j, rules)
                engine()  # the probes of this prompt length
                for (
                    p,
                    v,
                ) in variants:  # each peer's first call (tracing, hook set-up) is untimed too
                    peers[p][v](ids, token, values[:1])
                ours, first = _timed(engine)
                times = []
                for p, v in variants:
                    seconds, found = _timed(lambda p=p, v=v: peers[p][v](ids, token, values))  # noqa: B023
                    times.append(seconds)
                    diffs[p] = max(diffs[p], float(np.abs(found - first.ablate_per_draw).max()))
                ours = statistics.median([ours, _timed(engine)[0]])
                if times:
                    ratios.append(min(times) / ours)
                t = int(ids.shape[1])
                ceiling = (
                    forward_flops(shape, draws * (1 + 2 * n), t)
                    / (protocol_flops(shape, t, draws)["total"])
                )
                ceilings.append(ceiling)
                shown = " ".join(
                    f"{s:{len(p.split()[0]) + len(v) + 4}.3f}"
                    for (p, v), s in zip(variants, times, strict=True)
                )
                print(f"{text[:45]:45s} {t:3d} {ours:9.3f} {shown} {ceiling:11.1f}", flush=True)
                if args.phases:
                    with phase_timer() as spent:
                        query = _timed(engine)[0]
                    rest = query - spent["clean"] - spent["rows"]
                    said = ""
                    if times:
                        alone.append(min(times) / spent["rows"])
                        said = f"; the staircase alone {alone[-1]:.1f}x the faster peer"
                    print(
                        f"  parts of one more query ({query:.3f} s): clean run "
                        f"{spent['clean']:.3f} s, staircase {spent['rows']:.3f} s, the rest "
                        f"{rest:.3f} s{said}",
                        flush=True,
                    )
            for p in peers:
                print(f"{p}: max |difference| of Delta_ablate from scmnet's {diffs[p]:.1e}")
            if ratios:
                print(
                    f"{name}: scmnet {statistics.median(ratios):.1f}x the speed of the faster peer "
                    f"variant (median over {len(ratios)} prompts; per prompt: "
                    f"{', '.join(f'{r:.1f}x' for r in ratios)}); the batched peers compute "
                    f"{statistics.median(ceilings):.1f}x scmnet's matmul FLOPs (median)"
                )
            if alone:
                print(
                    f"{name}: the staircase alone (no clean run, no readouts or bookkeeping) "
                    f"{statistics.median(alone):.1f}x the faster peer (median)"
                )


if __name__ == "__main__":
    main()
