"""An ablation sweep over a small GPT with one effect query: ``sn.effect_table``.

The GPT is written here in plain PyTorch (token and position embeddings, two pre-norm blocks of
causal self-attention and MLP, a final LayerNorm and an unembedding) with random weights. Its
variables, chosen with typed selectors, are the attention and MLP outputs. For the final position of
a prompt, the script asks three questions in three calls, each a table with one row per block:

* the **total effect** of zero-ablating the block's output at the final position (eq. 14 of the
  Hydra-effect paper; zero ablation is eq. 35) on the centred logit of the clean top token;
* the same with **resample ablation** (eq. 38), averaged over 8 draws from other prompts
  (eq. 39), with a standard error;
* the **direct effect** of the zero ablation with every other block held at its clean value
  (eqs. 19-20): the change that reaches the logit along the residual stream alone. The
  difference TE - DE is what the downstream blocks do about it (compensation, Section 4).

Each table runs as one batched pass in which only the final position is recomputed
(``traced.info.batching`` says so). The script checks one row against the eager model with a
forward hook, and writes the tables to ``sweep.csv`` in ``--out``.

Usage::

    python examples/ablation_sweep.py [--out DIR]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as nnf

import scmnet as sn

VOCAB, WIDTH, HEADS, LENGTH = 64, 32, 4, 10


class Block(nn.Module):
    """x + attn(ln_1(x)), then + mlp(ln_2(x)): a pre-norm transformer block."""

    def __init__(self) -> None:
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(WIDTH), nn.LayerNorm(WIDTH)
        self.qkv, self.out = nn.Linear(WIDTH, 3 * WIDTH), nn.Linear(WIDTH, WIDTH)
        self.mlp = nn.Sequential(
            nn.Linear(WIDTH, 4 * WIDTH), nn.GELU(), nn.Linear(4 * WIDTH, WIDTH)
        )

    def attn(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.size()
        q, k, v = self.qkv(x).split(c, dim=2)
        q, k, v = (z.view(b, t, HEADS, c // HEADS).transpose(1, 2) for z in (q, k, v))
        y = nnf.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
        return self.out(y.transpose(1, 2).reshape(b, t, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.tokens, self.positions = nn.Embedding(VOCAB, WIDTH), nn.Embedding(LENGTH, WIDTH)
        self.blocks = nn.ModuleList([Block(), Block()])
        self.ln_f, self.head = nn.LayerNorm(WIDTH), nn.Linear(WIDTH, VOCAB, bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tokens(idx) + self.positions(torch.arange(idx.shape[1]))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))  # (B, T, vocab)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "scmnet-sweep")
    args = parser.parse_args()
    torch.manual_seed(0)
    gpt = GPT().eval()
    prompt = {"idx": torch.randint(0, VOCAB, (1, LENGTH))}
    others = [{"idx": torch.randint(0, VOCAB, (1, LENGTH))} for _ in range(16)]
    # the variables: each block's attention output and MLP output (typed selectors)
    residual = sn.ByPath("blocks.*.out") | sn.ByPath("blocks.*.mlp")
    traced = sn.trace(gpt, torch.randint(0, VOCAB, (2, LENGTH)), variables=residual)
    sites = [v for v in traced.endogenous if v.endswith((".mlp", ".out"))]
    with torch.no_grad():
        token = int(gpt(prompt["idx"])[0, -1].argmax())

    def centred(last: torch.Tensor) -> torch.Tensor:  # the final position's logits, (vocab,)
        return last[token] - last.mean()  # eq. 9

    # The outcome reads the final position only (a Site), so no row rebuilds the others.
    logit = sn.Outcome((sn.Site("head", index=(0, -1)),), centred, "centred logit")
    last = (slice(None), -1)
    zero = [{sn.Site(s, index=last): sn.zero()} for s in sites]
    resample = [{sn.Site(s, index=last): sn.resample(others)} for s in sites]
    te = sn.effect_table(traced, zero, logit, context=prompt)
    print(f"ran as: {traced.info.batching.path}, {traced.info.batching.positions}")
    te_resample = sn.effect_table(traced, resample, logit, context=prompt, draws=8, seed=0)
    de = sn.effect_table(traced, zero, logit, kind="direct", hold=sites, context=prompt)
    print(f"{'site':16s} {'TE zero':>9s} {'TE resample':>20s} {'DE zero':>9s} {'TE - DE':>9s}")
    rows = []
    for s, a, b, err, d in zip(
        sites, te.values, te_resample.values, te_resample.stderr, de.values, strict=True
    ):
        print(f"{s:16s} {a:9.4f} {b:9.4f} ± {err:8.4f} {d:9.4f} {a - d:9.4f}")
        rows.append({"site": s, "te_zero": float(a), "te_resample": float(b),
                     "te_resample_stderr": float(err), "de_zero": float(d)})  # fmt: skip

    # The first row, checked against the eager model with a forward hook.
    def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        patched = output.clone()
        patched[:, -1] = 0.0
        return patched

    handle = gpt.get_submodule(sites[0]).register_forward_hook(hook)
    try:
        with torch.no_grad():
            hooked = gpt(prompt["idx"])[0, -1]
    finally:
        handle.remove()
    with torch.no_grad():
        clean = gpt(prompt["idx"])[0, -1]
    expected = float(centred(hooked) - centred(clean))
    print(f"max difference to hooked forwards: {abs(expected - float(te.values[0])):.2e}")
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "sweep.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {args.out / 'sweep.csv'}")


if __name__ == "__main__":
    main()
