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
        # Gemma 3 from 4B up: the multimodal wrapper, its language model under
        # model.language_model (a one-layer vision tower, never run on text).
        "gemma3_vlm": lambda: tf.Gemma3Config(
            text_config=tf.Gemma3TextConfig(**llama_like, head_dim=8).to_dict(),
            vision_config={
                "hidden_size": 16,
                "intermediate_size": 32,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "image_size": 28,
                "patch_size": 14,
            },
            mm_tokens_per_image=4,
        ),
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
        # GPT-NeoX's other residual kind: sequential blocks (use_parallel_residual=False).
        "gpt_neox_seq": lambda: tf.GPTNeoXConfig(
            **common,
            hidden_size=32,
            intermediate_size=64,
            max_position_embeddings=64,
            use_parallel_residual=False,
        ),
        "phi": lambda: tf.PhiConfig(
            **common, hidden_size=32, intermediate_size=64, max_position_embeddings=64
        ),
        # Families outside the table, whose structure the finder reads from the model.
        "qwen3": lambda: tf.Qwen3Config(**llama_like, head_dim=8),
        "phi3": lambda: tf.Phi3Config(**llama_like, pad_token_id=0, bos_token_id=0, eos_token_id=0),
        "olmo2": lambda: tf.Olmo2Config(**llama_like, pad_token_id=0, eos_token_id=0),
        "falcon": lambda: tf.FalconConfig(
            vocab_size=VOCAB, hidden_size=32, num_hidden_layers=3, num_attention_heads=4
        ),
        # Post-norms and softcapped logits (a small cap, so that tiny logits feel it).
        "gemma2": lambda: tf.Gemma2Config(**llama_like, head_dim=8, final_logit_softcapping=0.5),
        # Refused: a state-space model has one residual writer per layer, not two.
        "mamba": lambda: tf.MambaConfig(
            vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, state_size=4
        ),
    }
    return configs[family]()


FAMILIES = ("llama", "mistral", "qwen2", "gemma3", "gpt2", "gpt_neox", "phi")
# Declared families in their other layouts: the multimodal wrapper, the other residual kind.
VARIANTS = ("gemma3_vlm", "gpt_neox_seq")
# Decoders outside the table that the finder supports, and models it refuses.
FOUND_FAMILIES = ("qwen3", "phi3", "olmo2", "falcon", "gemma2")
REFUSED_FAMILIES = ("mamba",)


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


class CharTokenizer:
    """A character-level tokenizer for tiny models: one id per character, modulo the vocabulary.

    It answers the calls the adapter makes of a Hugging Face tokenizer.
    """

    def __init__(self, vocab: int = VOCAB) -> None:
        self.vocab = vocab

    def encode(self, text: str) -> list[int]:
        """The ids of ``text``."""
        return [ord(c) % self.vocab for c in text]

    def __call__(
        self, text: str, return_tensors: str | None = None, add_special_tokens: bool = True
    ) -> Any:
        from types import SimpleNamespace

        ids = self.encode(text)
        return SimpleNamespace(input_ids=torch.tensor([ids]) if return_tensors == "pt" else ids)

    def decode(self, ids: list[int]) -> str:
        """Characters back from ids (for ids below 128)."""
        return "".join(chr(i) for i in ids)
