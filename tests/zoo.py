"""A zoo of models a user might bring, written in plain PyTorch: small, seeded, no downloads.

Each :class:`Animal` builds a random-weight model in eval mode, its example inputs (a tensor,
a tuple, or keyword arguments) and a second context to query in. Together they cover what
"any model" means for ``sn.trace`` with the default variables: an MLP, a CNN with batch norm,
torchvision-style residual blocks, LSTM and GRU classifiers (modules that return tuples), a
nanoGPT-style decoder that returns ``(logits, loss)`` with ``loss=None``, a ViT-style encoder
(``nn.MultiheadAttention`` returns a tuple too), in-place operations, data-dependent control
flow made traceable by the two documented workarounds (``leaves=`` and ``torch.cond``), and
keyword inputs with a dataclass output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as nnf

from tests.plain_models import Block

__all__ = ["GPT", "ZOO", "Animal", "BasicBlock", "GatedNet", "ResNet", "Scores"]


def _randomise_norms(model: nn.Module) -> nn.Module:
    """Running statistics that are not the identity, so that eval-mode BatchNorm matters."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


# -- convolutional ----------------------------------------------------------------------------


def cnn() -> nn.Module:
    return _randomise_norms(
        nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.Conv2d(4, 6, 3, stride=2, padding=1),
            nn.BatchNorm2d(6),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(6, 5),
        )
    )


class BasicBlock(nn.Module):
    """torchvision's ResNet block: one ReLU called twice, an in-place add, an optional shortcut."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)  # type: ignore[no-any-return]


class ResNet(nn.Module):
    """torchvision's ResNet layout in miniature: a stem, two stages of two blocks, a head."""

    def __init__(self, width: int = 4, classes: int = 5) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(BasicBlock(width, width), BasicBlock(width, width))
        wide = 2 * width
        self.layer2 = nn.Sequential(BasicBlock(width, wide, 2), BasicBlock(wide, wide))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))  # type: ignore[no-any-return]


# -- recurrent --------------------------------------------------------------------------------


class RecurrentClassifier(nn.Module):
    """``Embedding -> LSTM or GRU -> Linear``; the recurrent module returns a tuple."""

    def __init__(self, kind: str, vocab: int = 20, d: int = 8, classes: int = 3) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.rnn: nn.Module = (nn.LSTM if kind == "lstm" else nn.GRU)(d, d, batch_first=True)
        self.fc = nn.Linear(d, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        y, _ = self.rnn(self.embed(tokens))  # (B, T, d), and the final state
        return self.fc(y[:, -1])  # type: ignore[no-any-return]


# -- attention --------------------------------------------------------------------------------


class GPT(nn.Module):
    """nanoGPT's interface: ``forward(idx, targets=None)`` returns ``(logits, loss)``.

    The ``assert`` on the sequence length stops ``torch.fx``, so it is traced by
    ``torch.export``; the token embedding and the unembedding share their weights. The blocks
    (causal self-attention and an MLP, pre-norm) are those of :mod:`tests.plain_models`.
    """

    def __init__(
        self, vocab: int = 40, d: int = 16, heads: int = 2, layers: int = 2, block_size: int = 16
    ) -> None:
        super().__init__()
        self.block_size = block_size
        self.transformer = nn.ModuleDict(
            {
                "wte": nn.Embedding(vocab, d),
                "wpe": nn.Embedding(block_size, d),
                "h": nn.ModuleList([Block(d, heads) for _ in range(layers)]),
                "ln_f": nn.LayerNorm(d),
            }
        )
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.transformer["wte"].weight = self.lm_head.weight  # weight tying

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        _, t = idx.size()
        assert t <= self.block_size, f"sequence of {t} > block size {self.block_size}"
        pos = torch.arange(0, t, dtype=torch.long, device=idx.device)
        x = self.transformer["wte"](idx) + self.transformer["wpe"](pos)
        for block in self.transformer["h"]:
            x = block(x)
        logits = self.lm_head(self.transformer["ln_f"](x))  # (B, T, vocab)
        loss = None
        if targets is not None:
            loss = nnf.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss


class EncoderBlock(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]  # returns (output, None)
        return x + self.mlp(self.norm2(x))  # type: ignore[no-any-return]


class ViT(nn.Module):
    """A ViT-style encoder: patch embedding, a class token, position embeddings, two blocks."""

    def __init__(self, d: int = 16, heads: int = 2, patch: int = 4, classes: int = 5) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, d, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + (8 // patch) ** 2, d) * 0.02)
        self.blocks = nn.Sequential(EncoderBlock(d, heads), EncoderBlock(d, heads))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, classes)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(pixels).flatten(2).transpose(1, 2)  # (B, patches, d)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        return self.head(self.norm(self.blocks(x))[:, 0])  # type: ignore[no-any-return]


# -- in-place operations and control flow -----------------------------------------------------


class InPlace(nn.Module):
    """``x += f(x)`` and ``relu_``: what a naive hook that keeps references gets wrong."""

    def __init__(self, d: int = 6) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d, d)
        self.fc2 = nn.Linear(d, d)
        self.fc3 = nn.Linear(d, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        h += self.fc2(h)
        torch.relu_(h)
        return self.fc3(h)  # type: ignore[no-any-return]


class Gate(nn.Module):
    """Python control flow on a tensor value: neither torch.fx nor torch.export can trace it."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.up = nn.Linear(d, d)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if h.sum() > 0:
            return torch.tanh(self.up(h))  # type: ignore[no-any-return]
        return -h


class CondGate(Gate):
    """The same gate with ``torch.cond``, which ``torch.export`` traces with both branches."""

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.cond(  # type: ignore[no-any-return]
            h.sum() > 0, lambda h: torch.tanh(self.up(h)), lambda h: -h, (h,)
        )


class GatedNet(nn.Module):
    def __init__(self, gate: type[Gate] = Gate, d: int = 6) -> None:
        super().__init__()
        self.inp = nn.Linear(4, d)
        self.gate = gate(d)
        self.out = nn.Linear(d, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.gate(self.inp(x)))  # type: ignore[no-any-return]


# -- keyword inputs and a dataclass output ----------------------------------------------------


@dataclass
class Scores:
    """A ``ModelOutput``-like result: named fields, one of them ``None`` at inference."""

    logits: torch.Tensor
    hidden: torch.Tensor
    loss: torch.Tensor | None = None


torch.export.register_dataclass(Scores)  # what the UnsupportedModel message asks of a user


class KeywordModel(nn.Module):
    def __init__(self, vocab: int = 30, d: int = 8) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.proj = nn.Linear(d, d)
        self.act = nn.Tanh()
        self.score = nn.Linear(d, 2)
        self.temperature = 2.0

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Scores:
        h = self.act(self.proj(self.embed(input_ids)))  # (B, T, d)
        mask = attention_mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * mask).sum(1) / mask.sum(1)
        return Scores(logits=self.score(pooled) / self.temperature, hidden=h)


# -- the zoo ----------------------------------------------------------------------------------


def _ids(vocab: int, shape: tuple[int, ...]) -> Callable[[torch.Generator], torch.Tensor]:
    return lambda g: torch.randint(0, vocab, shape, generator=g)


def _normal(*shape: int) -> Callable[[torch.Generator], torch.Tensor]:
    return lambda g: torch.randn(*shape, generator=g)


def _keywords(g: torch.Generator) -> dict[str, torch.Tensor]:
    mask = torch.ones(2, 5, dtype=torch.long)
    mask[1, 3:] = 0
    return {"input_ids": torch.randint(0, 30, (2, 5), generator=g), "attention_mask": mask}


@dataclass(frozen=True)
class Animal:
    """A model of the zoo: how to build it, draw its inputs, and trace it.

    Attributes
    ----------
    name : str
    build : callable
        Returns the model in eval mode (seeded).
    draw : callable
        A ``torch.Generator`` to example inputs: a tensor or keyword arguments.
    trace_kwargs : dict
        Extra arguments of ``sn.trace`` (a workaround such as ``leaves=``).
    frontend : str
        The front end the trace is expected to use.
    """

    name: str
    build: Callable[[], nn.Module]
    draw: Callable[[torch.Generator], Any]
    frontend: str
    trace_kwargs: dict[str, Any] = field(default_factory=dict)

    def model(self) -> nn.Module:
        torch.manual_seed(0)
        return self.build().eval()

    def inputs(self, seed: int) -> Any:
        return self.draw(torch.Generator().manual_seed(seed))

    def context(self, model: nn.Module, seed: int) -> dict[str, torch.Tensor]:
        """Inputs as a context of the traced model (named after ``forward``'s parameters)."""
        from scmnet.tracing.capture.frontends import bind_example

        return bind_example(model, self.inputs(seed)).tensors


def _mlp() -> nn.Module:
    layers = [nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 3)]
    return nn.Sequential(*layers)


ZOO: tuple[Animal, ...] = (
    Animal("mlp", _mlp, _normal(2, 4), "fx"),
    Animal("cnn_batchnorm", cnn, _normal(2, 3, 8, 8), "fx"),
    Animal("resnet", lambda: _randomise_norms(ResNet()), _normal(2, 3, 8, 8), "export"),
    Animal("lstm", lambda: RecurrentClassifier("lstm"), _ids(20, (2, 5)), "fx"),
    Animal("gru", lambda: RecurrentClassifier("gru"), _ids(20, (2, 5)), "fx"),
    Animal("gpt_logits_loss", GPT, _ids(40, (2, 6)), "export"),
    Animal("vit", ViT, _normal(2, 3, 8, 8), "fx"),
    Animal("in_place", InPlace, _normal(2, 6), "export"),
    Animal("control_flow_leaves", GatedNet, _normal(2, 4), "fx", {"leaves": ["gate"]}),
    Animal("control_flow_cond", lambda: GatedNet(CondGate), _normal(2, 4), "export"),
    Animal("keywords_dataclass", KeywordModel, _keywords, "export"),
)
"""Every model of the zoo, in the order the acceptance test runs them."""
