"""Helpers shared by the Hydra benchmarks: the protocol's FLOP count, a matmul rate, models.

Nothing here times the engine; each benchmark script does, interleaving the variants it
compares in one process.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Shape:
    """The sizes of a Llama-style decoder that its matmul FLOPs depend on.

    ``d_q`` is heads x head_dim (the query/output width), ``d_kv`` key-value heads x head_dim,
    ``gated`` whether the MLP has a gate (Llama: three d x d_ff matrices; GPT-2: two).
    """

    layers: int
    d_model: int
    d_ff: int
    d_q: int
    d_kv: int
    vocab: int
    gated: bool = True

    @classmethod
    def of(cls, config: Any) -> Shape:
        """The shape of a Hugging Face Llama-style config."""
        heads = int(config.num_attention_heads)
        head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
        kv = int(getattr(config, "num_key_value_heads", None) or heads)
        return cls(
            layers=int(config.num_hidden_layers),
            d_model=int(config.hidden_size),
            d_ff=int(config.intermediate_size),
            d_q=heads * head_dim,
            d_kv=kv * head_dim,
            vocab=int(config.vocab_size),
            gated=True,
        )

    def projections(self) -> int:
        """FLOPs of one position's attention projections: q, k, v in and o out."""
        return 2 * self.d_model * (self.d_q + 2 * self.d_kv) + 2 * self.d_q * self.d_model

    def mlp(self) -> int:
        """FLOPs of one position's MLP (3 matrices if gated, else 2)."""
        return (3 if self.gated else 2) * 2 * self.d_model * self.d_ff

    def mixing(self, keys: int) -> int:
        """FLOPs of one query position attending to ``keys`` cached keys: QK^T and AV."""
        return 4 * self.d_q * keys

    def layer(self, keys: int) -> int:
        """FLOPs of one whole layer at one position that reads ``keys`` keys."""
        return self.projections() + self.mixing(keys) + self.mlp()


def protocol_flops(shape: Shape, tokens: int, draws: int) -> dict[str, int]:
    """The matmul FLOPs of one prompt's Hydra protocol as the engine runs it.

    Counted as 2 FLOPs per multiply-add, matrix products only (norms, rotary embeddings,
    softmax and activations are a few per cent of a layer and are not counted):

    * **clean** -- the clean run of the prompt's T tokens through every layer: T x (projections
      + MLP) per layer, plus attention of position p over p keys, 4 d_q T(T+1)/2 per layer (the
      query never projects onto the vocabulary: its readouts are dot products);
    * **ablated** -- each of the 2 L K rows (every attention and MLP output of every layer, K
      values each) recomputes the final position only, from its ablated site on, attending to
      the T cached keys: ablating m^k recomputes layers k+1..L-1; ablating a^k also the MLP of
      layer k. Summed over k: K (L MLP + L(L-1) layer(T)) -- the L^2 term is why paper-scale
      cost grows with the square of the depth;
    * **readouts** -- every run's (1 + 2 L K) centred logit and 2 L direct effects: (2L + 1)
      dot products of d_model each.

    The ablated site's own mechanism is not counted (its value is set, not computed).

    Examples
    --------
    >>> s = Shape(layers=2, d_model=4, d_ff=8, d_q=4, d_kv=4, vocab=10)
    >>> f = protocol_flops(s, tokens=3, draws=1)
    >>> f["ablated"] == 1 * (2 * s.mlp() + 2 * 1 * s.layer(3))
    True
    >>> f["total"] == f["clean"] + f["ablated"] + f["readouts"]
    True
    """
    n, t = shape.layers, tokens
    attention_all = shape.mixing(1) * t * (t + 1) // 2
    clean = n * (t * (shape.projections() + shape.mlp()) + attention_all)
    ablated = draws * (n * shape.mlp() + n * (n - 1) * shape.layer(t))
    readouts = (1 + 2 * n * draws) * (2 * n + 1) * 2 * shape.d_model
    return {
        "clean": clean,
        "ablated": ablated,
        "readouts": readouts,
        "total": clean + ablated + readouts,
    }


def forward_flops(shape: Shape, rows: int, tokens: int) -> int:
    """The matmul FLOPs of one full forward of ``rows`` prompts of ``tokens`` tokens.

    Every position through every layer (attention of position p over p keys) and the
    unembedding onto the whole vocabulary: what a hooked forward computes, whatever it patches.

    Examples
    --------
    >>> s = Shape(layers=2, d_model=4, d_ff=8, d_q=4, d_kv=4, vocab=10)
    >>> forward_flops(s, rows=3, tokens=2) == 3 * (
    ...     protocol_flops(s, tokens=2, draws=0)["clean"] + 2 * 2 * 4 * 10
    ... )
    True
    """
    clean = protocol_flops(shape, tokens, draws=0)["clean"]
    return rows * (clean + tokens * 2 * shape.d_model * shape.vocab)


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    """The median wall time of ``repeats`` calls of ``fn`` (synchronising CUDA)."""
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_rate(
    rows: int, inner: int, outer: int, *, dtype: torch.dtype, device: str, repeats: int = 5
) -> float:
    """FLOP/s of ``(rows x inner) @ (inner x outer)`` measured now (the median of repeats)."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(rows, inner, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(inner, outer, generator=gen).to(device=device, dtype=dtype)
    calls = max(1, int(2e9 // (2 * rows * inner * outer)))  # about 2 GFLOP per timing
    calls = min(calls, 200)

    def run() -> None:
        for _ in range(calls):
            torch.matmul(a, b)

    run()  # warm up
    return 2 * rows * inner * outer * calls / median_time(run, repeats)


def random_llama(
    layers: int,
    d_model: int,
    *,
    d_ff: int | None = None,
    heads: int | None = None,
    kv_heads: int | None = None,
    vocab: int = 32000,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
) -> Any:
    """A Llama-architecture causal LM with random weights, wrapped for the Hydra protocol."""
    import transformers as tf

    from scmnet.adapters.transformer.lm import LanguageModel

    heads = heads or max(1, d_model // 64)
    config = tf.LlamaConfig(
        vocab_size=vocab,
        hidden_size=d_model,
        intermediate_size=d_ff or 4 * d_model,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads or heads,
        max_position_embeddings=4096,
    )
    torch.manual_seed(seed)
    with torch.device(device):
        model = tf.AutoModelForCausalLM.from_config(config, dtype=dtype)
    return LanguageModel.from_pretrained_model(model, None, f"random-llama-{layers}x{d_model}")


def hooks_loop(lm: Any, ids: torch.Tensor, token: int, values: torch.Tensor) -> Any:
    """Delta_ablate of every site and draw, one hooked full forward each: shape (2, L, K).

    ``values[j, b, layer]`` is written at the final position of output (b, layer) in draw j.
    """
    from scmnet.adapters.transformer.families import Block

    n, k = lm.n_layers, values.shape[0]
    out = torch.zeros(2, n, k, dtype=torch.float64)
    with torch.no_grad():
        clean = lm.model(input_ids=ids, use_cache=False).logits[0, -1].double()
    base = float(clean[token] - clean.mean())
    for b in Block:
        for layer in range(n):
            module = lm.attention_out(layer) if b is Block.ATTN else lm.mlp_out(layer)
            for j in range(k):

                def hook(m: Any, a: Any, o: Any, value: torch.Tensor = values[j, b, layer]) -> Any:
                    x = (o[0] if isinstance(o, tuple) else o).clone()
                    x[:, -1] = value
                    return (x, *o[1:]) if isinstance(o, tuple) else x

                handle = module.register_forward_hook(hook)
                try:
                    with torch.no_grad():
                        logits = lm.model(input_ids=ids, use_cache=False).logits[0, -1].double()
                finally:
                    handle.remove()
                out[b, layer, j] = float(logits[token] - logits.mean()) - base
    return out.numpy()
