"""Tiny random-weight Hugging Face causal LMs of every supported family, built from configs.

Nothing is downloaded: each model is made by ``AutoModelForCausalLM.from_config`` with a fixed
seed, small enough that a test over all families runs in seconds.
"""

from __future__ import annotations

from typing import Any

import torch

VOCAB = 101


def tiny_config(family: str) -> Any:
    """A tiny config of ``family`` (2-3 layers, width 32)."""
    import transformers as tf

    common = {"vocab_size": VOCAB, "num_hidden_layers": 3, "num_attention_heads": 4}
    llama_like = {
        **common,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_key_value_heads": 2,
        "max_position_embeddings": 64,
    }
    configs = {
        "llama": lambda: tf.LlamaConfig(**llama_like),
        "mistral": lambda: tf.MistralConfig(**llama_like),
        "qwen2": lambda: tf.Qwen2Config(**llama_like),
        "gemma3": lambda: tf.Gemma3TextConfig(**llama_like, head_dim=8),
        "gpt2": lambda: tf.GPT2Config(
            vocab_size=VOCAB,
            n_embd=32,
            n_layer=3,
            n_head=4,
            n_positions=64,
            bos_token_id=0,
            eos_token_id=0,
        ),
        "gpt_neox": lambda: tf.GPTNeoXConfig(
            **common, hidden_size=32, intermediate_size=64, max_position_embeddings=64
        ),
        "phi": lambda: tf.PhiConfig(
            **common, hidden_size=32, intermediate_size=64, max_position_embeddings=64
        ),
    }
    return configs[family]()


FAMILIES = ("llama", "mistral", "qwen2", "gemma3", "gpt2", "gpt_neox", "phi")


def tiny_model(family: str, seed: int = 0) -> Any:
    """A tiny random-weight ``...ForCausalLM`` of ``family`` in eval mode."""
    import transformers as tf

    torch.manual_seed(seed)
    model = tf.AutoModelForCausalLM.from_config(tiny_config(family))
    with torch.no_grad():  # untrained norms are all ones: give them some spread
        for name, p in model.named_parameters():
            if "norm" in name or "ln" in name:
                p.add_(0.2 * torch.randn_like(p))
    return model.eval()
