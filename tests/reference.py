"""A plain hooks-based implementation of the paper's measures, the reference for the adapter.

It runs the full Hugging Face forward once per intervention, patching the final position of the
ablated contribution with a forward hook, and unembeds every contribution by applying the final
norm with its scale frozen and the whole unembedding matrix, then centring over the vocabulary
(eqs. 7-10, 12, 13). Where the model maps the unembedding's output further (Gemma 2's
final-logit softcapping, a logit scale), the unembedding impact is minus the direct effect of
zeroing the contribution through that map, computed over the whole vocabulary from the
unembedding's recorded output (the definition of ``scmnet.adapters.transformer.readout``); the
map is read from the config here, independently of the adapter, and checked against the eager
model's logits.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from scmnet.adapters.transformer.families import Block, NormKind
from scmnet.adapters.transformer.lm import LanguageModel
from scmnet.testing import assert_close


def _first(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def eager_readout(model: Any) -> Any:
    """The model's map after the unembedding, from its config: ``x -> cap(scale * x)``."""
    config = model.config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    cap = getattr(text, "final_logit_softcapping", None)
    scale = getattr(text, "logit_scale", None) or 1.0

    def apply(x: torch.Tensor) -> torch.Tensor:
        y = x * scale
        return torch.tanh(y / cap) * cap if cap else y

    return apply


class Reference:
    """A naive hooks-based implementation of the paper's measures."""

    def __init__(self, lm: LanguageModel, ids: torch.Tensor) -> None:
        self.lm, self.ids = lm, ids

    def run(
        self,
        patch: tuple[Block, int, torch.Tensor] | None,
        token: int | None = None,
        *,
        noise: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        """One hooked forward; ``noise`` (T, d_model) is added to the input embeddings."""
        lm, n = self.lm, self.lm.n_layers
        seen: dict[tuple[int, int], torch.Tensor] = {}
        z: list[torch.Tensor] = []
        handles = []

        def hook(b: Block, layer: int) -> Any:
            def f(module: Any, args: Any, output: Any) -> Any:
                x = _first(output)
                if patch is not None and (patch[0], patch[1]) == (b, layer):
                    x = x.clone()
                    x[:, -1] = patch[2]
                    output = (x, *output[1:]) if isinstance(output, tuple) else x
                seen[(b, layer)] = x[0, -1].detach().clone()
                return output

            return f

        for layer in range(n):
            handles.append(lm.attention_out(layer).register_forward_hook(hook(Block.ATTN, layer)))
            handles.append(lm.mlp_out(layer).register_forward_hook(hook(Block.MLP, layer)))
        handles.append(
            lm.final_norm.register_forward_pre_hook(lambda m, a: z.append(a[0][0, -1].clone()))
        )
        head: list[torch.Tensor] = []
        handles.append(
            lm.model.get_submodule(lm.spec.unembed).register_forward_hook(
                lambda m, a, out: head.append(out[0, -1].detach().clone())
            )
        )
        try:
            with torch.no_grad():
                if noise is None:
                    out = lm.model(input_ids=self.ids, use_cache=False)
                else:
                    embeds = lm.model.get_submodule(lm.spec.embed)(self.ids)
                    out = lm.model(inputs_embeds=embeds + noise.to(embeds.dtype), use_cache=False)
                logits = out.logits[0, -1]
        finally:
            for h in handles:
                h.remove()
        zz = z[-1].double()
        if lm.norm_kind is NormKind.LAYER:
            sigma = torch.sqrt(zz.var(unbiased=False) + lm.norm_eps)
        else:
            sigma = torch.sqrt(zz.pow(2).mean() + lm.norm_eps)
        gain = lm.norm_gain.double()
        w_u = lm.unembedding.double()
        readout = eager_readout(lm.model)
        x = head[-1].double()  # the unembedding's output: every token's logit before any map
        assert_close(readout(x), logits.double(), reordered=True)  # the map is the model's

        def centred_at(pre: torch.Tensor, i: int) -> float:
            out = readout(pre)
            return float(out[i] - out.mean())

        def unembed(v: torch.Tensor, i: int) -> float:
            v = v.double()
            if lm.norm_kind is NormKind.LAYER:
                v = v - v.mean()
            delta = (v / sigma * gain) @ w_u.T  # every token's share of the logits
            return centred_at(x, i) - centred_at(x - delta, i)

        direct = np.zeros((2, n))
        centred = (logits - logits.mean()).double()
        token = int(logits.argmax()) if token is None else token
        for (b, layer), v in seen.items():
            direct[b, layer] = unembed(v, token)
        contributions = torch.stack([torch.stack([seen[(b, k)] for k in range(n)]) for b in Block])
        return {
            "logit": centred,
            "direct": direct,
            "token": token,
            "sigma": float(sigma),
            "contributions": contributions,  # (2, L, d_model) at the final position
        }


def check_measures(lm: LanguageModel, seed: int = 1) -> float:
    """:func:`measure_prompt` on a random 6-token prompt equals one hooked forward per run.

    Two draws per site: zero ablation (eq. 35) and resample ablation (eq. 38) with the clean
    final-position contributions of a donor prompt, the same donor values given to both sides;
    chunked into several staircases, cut by a memory budget, and whole. Every clean and ablated
    readout (eqs. 9, 10, 12, 13) and sigma is compared with :class:`Reference`. Returns the
    largest difference seen.
    """
    from scmnet.adapters.transformer.measures import measure_prompt

    g = torch.Generator().manual_seed(seed)
    vocab = int(lm.unembedding.shape[0])
    ids = torch.randint(0, vocab, (1, 6), generator=g)
    donor = Reference(lm, torch.randint(0, vocab, (1, 5), generator=g)).run(None)
    ref = Reference(lm, ids)
    clean = ref.run(None)
    token = clean["token"]
    zero = torch.zeros(2, lm.n_layers, lm.d_model)
    values = torch.stack([zero, donor["contributions"].float().cpu()])  # (K=2, 2, L, d)
    m = measure_prompt(lm, ids, token, values, chunk=5)  # several staircases
    whole = measure_prompt(lm, ids, token, values)
    budget = measure_prompt(lm, ids, token, values, memory=1)  # a row a run after the first
    diffs = [0.0]

    def close(actual: Any, expected: Any) -> None:
        assert_close(actual, expected, reordered=True)
        diffs.append(float(np.max(np.abs(np.asarray(actual) - np.asarray(expected)))))

    for found in (whole, budget):
        close(found.ablated_unembed, m.ablated_unembed)
        close(found.ablated_logit, m.ablated_logit)
    close(m.clean_logit, float(clean["logit"][token]))
    close(m.unembed, clean["direct"])
    close(m.clean_sigma, clean["sigma"])
    for b in Block:
        for k in range(lm.n_layers):
            for j in range(2):
                run = ref.run((b, k, values[j, b, k]), token)
                close(m.ablated_logit[b, k, j], float(run["logit"][token]))
                close(m.ablated_unembed[b, k, j], run["direct"])
                close(m.ablated_sigma[b, k, j], run["sigma"])
    return max(diffs)
