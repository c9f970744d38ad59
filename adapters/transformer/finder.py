"""Read the residual structure of a decoder-only language model from the model itself.

The Hydra analyses need, for every layer l, the modules whose outputs the residual stream
receives -- the attention contribution a^l and the MLP contribution m^l of eqs. 3-6 of the paper:

* sequential blocks: z' = z + a(z); z'' = z' + m(z');
* parallel blocks: z'' = z + a(z) + m(z);

then the final norm (eq. 8) and the unembedding W_U, through which every contribution is read
(eqs. 7-10). :data:`~.families.FAMILIES` declares these for the families scmnet knows;
:func:`find_spec` establishes them for any other decoder from forward passes on an 8-token
example, with hooks recording every module's input and output:

1. the embedding and unembedding are the model's ``get_input_embeddings()`` and
   ``get_output_embeddings()``; the layers are its longest :class:`~torch.nn.ModuleList` of
   modules of one class, and each layer must read the previous one's output;
2. a^l and m^l are the shallowest pair of submodules, present in every layer, whose outputs sum
   to the layer's change of the residual stream, ``z'' - z = a + m``, at every position of every
   layer (within the rounding of the model's dtype); the one called first is the attention;
3. the blocks are parallel when perturbing a^0 leaves m^0 unchanged (the MLP does not read a);
4. the final norm is the module whose input is the last layer's output and whose output is the
   unembedding's input; its kind (RMSNorm or LayerNorm) and gain (``weight`` or Gemma's
   ``1 + weight``) are the formula that reproduces its recorded output.

:func:`spec_of` is what :meth:`~.lm.LanguageModel.from_pretrained_model` uses: the declared spec
of a known family (checked against the model: :func:`check_declared`), otherwise the found one;
either way it then checks that the logits are the spec's readout of the final norm -- linear, or
softcapped as Gemma 2's (:func:`check_readout`). Whatever cannot be established is
refused with :class:`~scmnet.errors.UnsupportedModel`, naming the model type and the missing
piece -- never a silently wrong spec.

Examples
--------
>>> import transformers
>>> config = transformers.Qwen3Config(
...     vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
...     num_attention_heads=2, num_key_value_heads=1, head_dim=8)
>>> spec = find_spec(transformers.Qwen3ForCausalLM(config))
>>> spec.name, spec.layers, spec.attention_out, spec.mlp_out, spec.parallel
('qwen3', 'model.layers', 'self_attn', 'mlp', False)
>>> spec.final_norm.path, spec.final_norm.kind.name, spec.final_norm.weight_offset
('model.norm', 'RMS', 0.0)
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from scmnet.errors import UnsupportedModel, format_names
from scmnet.tracing.engine.devices import execution_device, stored_value

from .families import FamilySpec, NormKind, NormSpec, text_config
from .registry import known_model_types, missing_paths, spec_for

__all__ = [
    "EPS_ATTRS",
    "Call",
    "Recording",
    "check_declared",
    "check_readout",
    "example_ids",
    "find_block",
    "find_contributions",
    "find_final_norm",
    "find_layers",
    "find_parallel",
    "find_spec",
    "known_spec",
    "record",
    "refusal",
    "rounding",
    "same",
    "spec_of",
    "sums_to",
]

EXAMPLE_LENGTH = 8
"""The number of tokens of the example prompt the structure is read from."""

EPS_ATTRS: tuple[str, ...] = ("variance_epsilon", "eps", "epsilon")
"""Attribute names under which norms store their epsilon, tried in order."""

_ROUNDING = 8.0
"""Multiples of the dtype's machine epsilon allowed per rounded operation."""


# -- refusals -----------------------------------------------------------------------------------


def model_type(model: nn.Module) -> str | None:
    """The ``config.model_type`` of a Hugging Face model (``None`` without one)."""
    found = getattr(getattr(model, "config", None), "model_type", None)
    return None if found is None else str(found)


def refusal(model: nn.Module, reason: str) -> UnsupportedModel:
    """The error refusing ``model``: its type, what could not be established, the known types.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> str(refusal(SimpleNamespace(config=SimpleNamespace(model_type="x")), "no layers"))
    ...                                       # doctest: +ELLIPSIS +NORMALIZE_WHITESPACE
    "model type 'x' is not supported by the transformer adapter: no layers; known model types:
    'gemma3', ..., 'qwen2' (any other decoder-only causal LM is accepted when its residual
    structure can be read from the model)"
    """
    known = known_model_types()
    return UnsupportedModel(
        f"model type {model_type(model)!r} is not supported by the transformer adapter: "
        f"{reason}; known model types: {format_names(known)} (any other decoder-only causal LM "
        f"is accepted when its residual structure can be read from the model)"
    )


# -- recording one forward pass -----------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One call of a module in a recorded forward pass.

    Attributes
    ----------
    order : int
        When the call started (0 for the first module called).
    input : tensor or None
        Its first positional argument, or its ``hidden_states`` keyword (a copy).
    output : tensor or None
        Its output, or the first element of a tuple output (a copy).
    """

    order: int
    input: torch.Tensor | None
    output: torch.Tensor | None


@dataclass(frozen=True)
class Recording:
    """Every module call of one forward pass, and the logits.

    Attributes
    ----------
    calls : dict of str to list of Call
        The calls of each module, by path from the model root, in order.
    logits : tensor, shape (1, T, vocab)
        The model's output logits.
    """

    calls: dict[str, list[Call]]
    logits: torch.Tensor

    def once(self, path: str) -> Call | None:
        """The call of the module at ``path`` if it was called exactly once, else ``None``."""
        calls = self.calls.get(path, [])
        return calls[0] if len(calls) == 1 else None


def _first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, (tuple, list)) and value:
        value = value[0]
    return value.detach().clone() if isinstance(value, torch.Tensor) else None


def _logits(output: Any) -> torch.Tensor:
    logits = getattr(output, "logits", None)
    if logits is None and isinstance(output, (tuple, list)) and output:
        logits = output[0]
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"the forward returned {type(output).__name__} without logits")
    return logits.detach()


@contextmanager
def _evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode (no dropout) and no gradients for the duration; the mode is restored after."""
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(training)


def example_ids(model: nn.Module) -> torch.Tensor:
    """The example prompt: ``arange(min(8, vocab))[None]`` on the model's device (no padding)."""
    vocab = _vocab(model)
    getter = getattr(model, "get_input_embeddings", None)
    embed = getter() if callable(getter) else None
    device = execution_device(embed) if isinstance(embed, nn.Module) else None
    if device is None:  # the first parameter's, where that is not an offloaded placeholder
        device = next((p.device for p in model.parameters() if p.device.type != "meta"), None)
    return torch.arange(min(EXAMPLE_LENGTH, vocab), device=device)[None]


def _vocab(model: nn.Module) -> int:
    getter = getattr(model, "get_input_embeddings", None)
    embed = getter() if callable(getter) else None
    weight = getattr(embed, "weight", None)
    if isinstance(weight, torch.Tensor) and weight.dim() == 2:
        return int(weight.shape[0])
    return int(getattr(getattr(model, "config", None), "vocab_size", EXAMPLE_LENGTH))


def record(
    model: nn.Module, ids: torch.Tensor, *, perturb: tuple[str, torch.Tensor] | None = None
) -> Recording:
    """Run ``model`` on ``ids`` with hooks recording the input and output of every module call.

    Parameters
    ----------
    model : nn.Module
        A Hugging Face causal LM (run in eval mode, without gradients).
    ids : tensor, shape (1, T)
        Token ids.
    perturb : (str, tensor), optional
        A module path and a tensor added to that module's output (its first element if a tuple):
        an intervention on one contribution.

    Returns
    -------
    Recording
    """
    calls: dict[str, list[Call]] = {}
    counter = itertools.count()
    handles = []

    def before(path: str) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            given = args[0] if args else kwargs.get("hidden_states")
            calls.setdefault(path, []).append(Call(next(counter), _first_tensor(given), None))

        return hook

    def after(path: str) -> Any:
        def hook(module: nn.Module, args: Any, output: Any) -> Any:
            if perturb is not None and perturb[0] == path:
                if isinstance(output, tuple):
                    output = (output[0] + perturb[1], *output[1:])
                else:
                    output = output + perturb[1]
            last = calls[path][-1]
            calls[path][-1] = Call(last.order, last.input, _first_tensor(output))
            return output

        return hook

    for path, module in model.named_modules():
        if path:
            handles.append(module.register_forward_pre_hook(before(path), with_kwargs=True))
            handles.append(module.register_forward_hook(after(path)))
    try:
        with _evaluating(model):
            logits = _logits(model(input_ids=ids))
    finally:
        for handle in handles:
            handle.remove()
    return Recording(calls, logits)


# -- numerical comparisons ----------------------------------------------------------------------


def rounding(*values: torch.Tensor | torch.dtype) -> float:
    """The relative rounding allowed for values computed in the given dtypes (or tensors'),
    the coarsest of them.

    Examples
    --------
    >>> rounding(torch.zeros(1)) == 8 * torch.finfo(torch.float32).eps
    True
    >>> rounding(torch.zeros(1, dtype=torch.float64), torch.float32) == rounding(torch.float32)
    True
    """
    dtypes = [v.dtype if isinstance(v, torch.Tensor) else v for v in values]
    return _ROUNDING * max(torch.finfo(d).eps if d.is_floating_point else 0.0 for d in dtypes)


def sums_to(
    parts: Sequence[torch.Tensor], total: torch.Tensor, *, scale: Sequence[torch.Tensor] = ()
) -> bool:
    """Whether ``sum(parts) == total`` elementwise, up to the rounding of the additions.

    Each element may differ by :func:`rounding` times the sum of the magnitudes involved (the
    parts, the total, and any ``scale`` tensors, e.g. the residual the parts were added to).

    Examples
    --------
    >>> sums_to([torch.ones(3), torch.ones(3)], torch.full((3,), 2.0))
    True
    >>> sums_to([torch.ones(3)], torch.full((3,), 1.001))
    False
    """
    tensors = [*parts, total, *scale]
    if any(t.shape != total.shape for t in tensors):
        return False
    exact = [t.double() for t in tensors]
    error = (sum(exact[: len(parts)], torch.zeros_like(exact[-1])) - exact[len(parts)]).abs()
    bound = rounding(*tensors) * sum((t.abs() for t in exact), torch.zeros_like(error))
    return bool((error <= bound + torch.finfo(torch.float64).tiny).all())


def same(x: torch.Tensor | None, y: torch.Tensor | None) -> bool:
    """Whether two recorded tensors are the same values (up to rounding); ``None`` never is."""
    if x is None or y is None or not x.is_floating_point() or not y.is_floating_point():
        return False
    return sums_to([x], y)


# -- the residual structure ---------------------------------------------------------------------


def _path_of(model: nn.Module, target: Any) -> str | None:
    for path, module in model.named_modules():
        if module is target:
            return str(path)
    return None


def _embeddings(model: nn.Module) -> tuple[str, str, int]:
    """Paths of the input and output embeddings, and the width of the residual stream."""
    names = ("get_input_embeddings", "get_output_embeddings")
    getters: list[Any] = [getattr(model, g, None) for g in names]
    if not all(callable(g) for g in getters):
        raise refusal(
            model,
            "it is not a Hugging Face language model "
            "(no get_input_embeddings/get_output_embeddings)",
        )
    embed = _path_of(model, getters[0]())
    head = getters[1]()
    unembed = _path_of(model, head)
    weight = getattr(head, "weight", None)
    if embed is None:
        raise refusal(model, "found no input embedding (get_input_embeddings())")
    if unembed is None or not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        raise refusal(
            model, "found no unembedding (get_output_embeddings() with a (vocab, d) weight)"
        )
    return embed, unembed, int(weight.shape[1])


def find_layers(model: nn.Module) -> str:
    """The path of the decoder layers: the longest ModuleList whose entries share one class.

    Raises
    ------
    UnsupportedModel
        If the model has no such list.

    Examples
    --------
    >>> net = nn.Sequential(nn.ModuleList([nn.ReLU(), nn.Tanh()]), nn.ModuleList([nn.ReLU()] * 2))
    >>> find_layers(net)
    '1'
    """
    best: tuple[int, str] | None = None
    for path, module in model.named_modules():
        one_class = isinstance(module, nn.ModuleList) and len({type(m) for m in module}) == 1
        if one_class and (best is None or len(module) > best[0]):
            best = (len(module), path)
    if best is None:
        raise refusal(model, "found no list of layers (a ModuleList of modules of one class)")
    return best[1]


@dataclass(frozen=True)
class _Layers:
    """The recorded calls of the layers: inputs z^l, outputs z^{l+1}, submodule calls."""

    path: str
    inputs: list[torch.Tensor]
    outputs: list[torch.Tensor]


def _layer_stream(model: nn.Module, rec: Recording, path: str, width: int) -> _Layers:
    """Each layer's recorded input and output, checked to form one residual stream."""
    n = len(model.get_submodule(path))  # type: ignore[arg-type]  # a ModuleList
    inputs: list[torch.Tensor] = []
    outputs: list[torch.Tensor] = []
    for layer in range(n):
        call = rec.once(f"{path}.{layer}")
        if call is None or call.input is None or call.output is None:
            raise refusal(
                model, f"layer {path}.{layer} was not called once with a tensor in and out"
            )
        if call.input.shape[-1] != width or call.output.shape != call.input.shape:
            raise refusal(
                model,
                f"layer {path}.{layer} does not map the residual stream (width {width}) to "
                f"itself: input {tuple(call.input.shape)}, output {tuple(call.output.shape)}",
            )
        if layer and not same(outputs[-1], call.input):
            raise refusal(
                model,
                f"the layers {path}.* do not form one residual stream: the input of layer "
                f"{layer} is not the output of layer {layer - 1}",
            )
        inputs.append(call.input)
        outputs.append(call.output)
    return _Layers(path, inputs, outputs)


def _candidates(rec: Recording, layers: _Layers) -> list[str]:
    """Relative paths of the submodules called once in every layer with a residual-shaped
    output, in the order layer 0 calls them."""
    prefix = f"{layers.path}.0."
    found: list[tuple[int, str]] = []
    for path in rec.calls:
        if not path.startswith(prefix):
            continue
        rel = path[len(prefix) :]
        calls = [rec.once(f"{layers.path}.{layer}.{rel}") for layer in range(len(layers.inputs))]
        shapes = {None if c is None or c.output is None else c.output.shape for c in calls}
        if shapes == {layers.inputs[0].shape}:
            first = calls[0]
            assert first is not None
            found.append((first.order, rel))
    return [rel for _, rel in sorted(found)]


def _preference(layer: nn.Module, rel: str) -> tuple[int, int]:
    """Sort key of a candidate contribution: shallow paths first, then modules with parameters
    (a dropout returns its input unchanged in eval mode: the block before it is the one)."""
    has_params = any(True for _ in layer.get_submodule(rel).parameters())
    return rel.count("."), 0 if has_params else 1


def _pair_preference(layer: nn.Module, a: str, m: str) -> tuple[int, int]:
    (depth_a, bare_a), (depth_m, bare_m) = _preference(layer, a), _preference(layer, m)
    return depth_a + depth_m, bare_a + bare_m


def _nested(a: str, b: str) -> bool:
    return a == b or a.startswith(f"{b}.") or b.startswith(f"{a}.")


def find_contributions(model: nn.Module, rec: Recording, layers: _Layers) -> tuple[str, str]:
    """attention_out and mlp_out: the pair whose outputs sum to every layer's change (eqs. 3-6).

    Among the submodules called once in every layer with outputs of the residual's shape, the
    pair (A, M), A called before M, with ``out(A) + out(M) == z^{l+1} - z^l`` at every position
    of every layer; the shallowest such pair, preferring modules with parameters.

    Raises
    ------
    UnsupportedModel
        If no pair sums to the layers' changes (e.g. a state-space model: one contribution).
    """
    candidates = _candidates(rec, layers)
    first = model.get_submodule(f"{layers.path}.0")
    n = len(layers.inputs)
    pairs = [(a, m) for a, m in itertools.combinations(candidates, 2) if not _nested(a, m)]
    pairs.sort(key=lambda pair: _pair_preference(first, *pair))  # stable: call order breaks ties
    summing = {pair: [_sums_in_layer(rec, layers, k, *pair) for k in range(n)] for pair in pairs}
    for pair, ok in summing.items():
        if all(ok):
            return pair
    raise refusal(model, _no_pair_reason(rec, layers, candidates, summing))


def _no_pair_reason(
    rec: Recording,
    layers: _Layers,
    candidates: list[str],
    summing: dict[tuple[str, str], list[bool]],
) -> str:
    """Why no pair of contributions fits, in the terms of the residual stream: one writer per
    layer (a state-space model), a layer whose writers differ from the others', or none."""
    n = len(layers.inputs)
    single = [
        rel for rel in candidates if all(_sums_in_layer(rec, layers, k, rel) for k in range(n))
    ]
    if single:
        return (
            f"each layer of {layers.path} has one residual writer ({single[0]}) and no "
            f"attention/MLP split, as a state-space model (Mamba) has; the analyses compare an "
            f"attention and an MLP contribution per layer (eqs. 3-6, 33-34), so such a model is "
            f"not analysed with the layer as its unit (trace it with scmnet.trace and ask the "
            f"effect operators about its blocks instead)"
        )
    best = max(summing.items(), key=lambda item: sum(item[1]), default=None)
    if best is not None and any(best[1]):
        (a, m), ok = best
        bad = ok.index(False)
        good = ", ".join(str(k) for k in range(n) if ok[k])
        return (
            f"layer {bad} ({layers.path}.{bad}) has residual writers other than {a} and {m}: "
            f"their outputs sum to the change of the residual stream in layer(s) {good} but "
            f"not in layer {bad} (eqs. 3-6)"
        )
    tried = format_names(candidates) if candidates else "none"
    return (
        f"found no pair of modules per layer whose outputs sum to the layer's change of the "
        f"residual stream (an attention and an MLP contribution, eqs. 3-6); tried the "
        f"submodules of {layers.path}.* with outputs of the residual's shape: {tried}"
    )


def _sums_in_layer(rec: Recording, layers: _Layers, layer: int, *rels: str) -> bool:
    outs = [rec.calls[f"{layers.path}.{layer}.{rel}"][0].output for rel in rels]
    z, z_next = layers.inputs[layer], layers.outputs[layer]
    parts = [o for o in outs if o is not None]
    return len(parts) == len(outs) and sums_to([z, *parts], z_next)


def find_parallel(
    model: nn.Module,
    ids: torch.Tensor,
    rec: Recording,
    layers: str,
    attention_out: str,
    mlp_out: str,
) -> bool:
    """Whether the MLP reads the attention's output: sequential (eqs. 3-4) or parallel (eq. 6).

    The attention contribution of layer 0 is perturbed in a second forward pass; the blocks are
    parallel when the MLP contribution of layer 0 is unchanged.
    """
    a_path, m_path = f"{layers}.0.{attention_out}", f"{layers}.0.{mlp_out}"
    a, m = rec.calls[a_path][0].output, rec.calls[m_path][0].output
    assert a is not None
    assert m is not None
    noise = torch.randn(a.shape, generator=torch.Generator().manual_seed(0))
    scale = float(a.float().abs().max()) + 1.0
    perturbed = record(model, ids, perturb=(a_path, (scale * noise).to(a.device, a.dtype)))
    return same(perturbed.calls[m_path][0].output, m)


def find_block(rec: Recording, layers: str, out: str, width: int, layer: nn.Module) -> str:
    """The block whose contribution ``out`` carries: ``out`` itself, or the block it post-norms.

    When ``out`` is a post-block norm (Gemma 3, OLMo2: no submodules, only ``(d,)``
    parameters), the block is the shallowest submodule whose output is the norm's input.
    """
    module = layer.get_submodule(out)
    params = list(module.parameters())
    norm_like = (
        not list(module.children()) and bool(params) and all(p.shape == (width,) for p in params)
    )
    if not norm_like:
        return out
    given = rec.calls[f"{layers}.0.{out}"][0]
    prefix = f"{layers}.0."
    blocks = [
        path[len(prefix) :]
        for path, calls in rec.calls.items()
        if path.startswith(prefix)
        and len(calls) == 1
        and calls[0].order < given.order
        and same(calls[0].output, given.input)
        and not _nested(path[len(prefix) :], out)
    ]
    return min(blocks, key=lambda rel: rel.count("."), default=out)


def find_final_norm(
    model: nn.Module, rec: Recording, layers: _Layers, unembed: str, width: int
) -> NormSpec:
    """The final norm: between the last layer and the unembedding, its kind and gain (eq. 8).

    The norm is the module outside the layers whose input is the last layer's output and whose
    output (at the final position) is the unembedding's input. Its kind and weight offset are
    those of the formula, RMSNorm ``z / sqrt(mean z^2 + eps) * (off + w)`` or LayerNorm
    ``(z - mean z) / sqrt(var z + eps) * (off + w) + b``, that reproduces its recorded output.

    Raises
    ------
    UnsupportedModel
        If no such module exists, it has no ``(d,)`` weight or no epsilon attribute, or neither
        formula reproduces its output.
    """
    head = rec.once(unembed)
    if head is None or head.input is None:
        raise refusal(model, f"the unembedding {unembed} was not called once on a tensor")
    last = layers.outputs[-1]
    found = [
        path
        for path, calls in rec.calls.items()
        if not _nested(path, layers.path)
        and len(calls) == 1
        and same(calls[0].input, last)
        and calls[0].output is not None
        and same(calls[0].output[..., -1, :], head.input[..., -1, :])
        and not same(calls[0].output, calls[0].input)  # an identity is no norm
    ]
    if not found:
        final = f"{layers.path}.{len(layers.outputs) - 1}"
        raise refusal(
            model,
            f"no final norm between the last layer ({final}) and the unembedding {unembed}: "
            f"no module outside {layers.path} takes the last layer's output and gives the "
            f"unembedding's input, other than an identity (every contribution is read through "
            f"the final norm, eqs. 7-8)",
        )
    path = max(found, key=lambda p: p.count("."))  # the innermost, e.g. not a wrapper
    norm = model.get_submodule(path)
    weight = getattr(norm, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.shape != (width,):
        raise refusal(model, f"the final norm {path} has no weight of shape ({width},)")
    attrs = [a for a in EPS_ATTRS if isinstance(getattr(norm, a, None), (int, float))]
    if not attrs:
        raise refusal(
            model, f"found no epsilon of the final norm {path} (tried {format_names(EPS_ATTRS)})"
        )
    eps = float(getattr(norm, attrs[0]))
    bias = getattr(norm, "bias", None)
    call = rec.calls[path][0]
    assert call.input is not None
    assert call.output is not None
    kind, offset, error = _norm_formula(call.input, call.output, weight, bias, eps)
    # Norms compute in at least float32 (Hugging Face's upcast), whatever the model's dtype.
    if error > _ROUNDING * rounding(call.output, torch.float32):
        raise refusal(
            model,
            f"the final norm {path} is neither an RMSNorm nor a LayerNorm with gain weight or "
            f"1 + weight (smallest relative difference {error:.2g})",
        )
    return NormSpec(path, kind, weight_offset=offset, eps_attr=(attrs[0],))


def _norm_formula(
    z: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, bias: Any, eps: float
) -> tuple[NormKind, float, float]:
    """The norm kind and weight offset that best reproduce ``y`` from ``z``, and the max
    difference relative to ``max |y|``."""
    x, w = z.double(), weight.detach().double()
    b = bias.detach().double() if isinstance(bias, torch.Tensor) else torch.zeros_like(w)
    scale = float(y.double().abs().max()) or 1.0
    results = []
    for kind in NormKind:
        centred = x - x.mean(-1, keepdim=True) if kind is NormKind.LAYER else x
        normed = centred / torch.sqrt(centred.pow(2).mean(-1, keepdim=True) + eps)
        for offset in (0.0, 1.0):
            error = float((normed * (offset + w) + b - y.double()).abs().max()) / scale
            results.append((error, kind, offset))
    error, kind, offset = min(results, key=lambda r: r[0])
    return kind, offset, error


def _common_ancestor(paths: Sequence[str]) -> str:
    """The deepest module path that contains every path (``""`` for the root).

    >>> _common_ancestor(["model.embed_tokens", "model.layers", "model.norm"])
    'model'
    """
    parts = [p.split(".") for p in paths]
    common: list[str] = []
    for names in zip(*parts, strict=False):
        if len(set(names)) != 1:
            break
        common.append(names[0])
    return ".".join(common)


def _check_causal(model: nn.Module, ids: torch.Tensor, logits: torch.Tensor) -> None:
    """Refuse a model whose earlier positions see a later token (not a causal decoder)."""
    if ids.shape[-1] < 2:
        return
    changed = ids.clone()
    changed[0, -1] = (changed[0, -1] + 1) % _vocab(model)
    with _evaluating(model):
        other = _logits(model(input_ids=changed))
    diff = float((other[:, :-1].double() - logits[:, :-1].double()).abs().max())
    if diff > rounding(logits) * float(logits.double().abs().max()):
        raise refusal(
            model,
            f"it is not a causal decoder-only language model: changing the last token changed "
            f"the logits of earlier positions (by up to {diff:.3g})",
        )


def find_spec(model: nn.Module) -> FamilySpec:
    """The residual structure of a decoder-only causal LM, read from the model's computation.

    Three forward passes on ``example_ids``: one recorded (``record``), one with the
    last token changed (the model must be causal), one with a^0 perturbed (parallel blocks?).

    Parameters
    ----------
    model : nn.Module
        A Hugging Face causal LM (``...ForCausalLM``) of any family.

    Returns
    -------
    FamilySpec
        Named after ``config.model_type``: the paths of the embedding, the layers, the
        contributions a^l and m^l and their blocks (eqs. 3-6), the final norm (eq. 8) and the
        unembedding, and whether the blocks are parallel.

    Raises
    ------
    UnsupportedModel
        Naming the model type and the part of the structure that could not be found.
    """
    embed, unembed, width = _embeddings(model)
    ids = example_ids(model)
    try:
        rec = record(model, ids)
    except Exception as e:
        raise refusal(model, f"its forward on input_ids failed ({type(e).__name__}: {e})") from e
    vocab = _vocab(model)
    if rec.logits.dim() != 3 or tuple(rec.logits.shape[:2]) != tuple(ids.shape):
        raise refusal(model, f"its logits have shape {tuple(rec.logits.shape)}, not (1, T, vocab)")
    if rec.logits.shape[-1] < vocab:
        raise refusal(model, f"its logits cover {rec.logits.shape[-1]} of {vocab} tokens")
    _check_causal(model, ids, rec.logits)
    layers = _layer_stream(model, rec, find_layers(model), width)
    attention_out, mlp_out = find_contributions(model, rec, layers)
    parallel = find_parallel(model, ids, rec, layers.path, attention_out, mlp_out)
    norm = find_final_norm(model, rec, layers, unembed, width)
    first = model.get_submodule(f"{layers.path}.0")
    name = model_type(model) or type(model).__name__
    return FamilySpec(
        name=name,
        model_types=(name,),
        base=_common_ancestor([embed, layers.path, norm.path]),
        embed=embed,
        layers=layers.path,
        attention=find_block(rec, layers.path, attention_out, width, first),
        mlp=find_block(rec, layers.path, mlp_out, width, first),
        attention_out=attention_out,
        mlp_out=mlp_out,
        final_norm=norm,
        unembed=unembed,
        parallel=parallel,
    )


def check_readout(model: nn.Module, spec: FamilySpec) -> None:
    """Check that the logits are the spec's readout of the final norm's output (eqs. 7, 9).

    The analyses read every logit through :class:`~.readout.Readout`: ``cap(s (W_U h + b))``
    with the softcap c and logit scale s that the spec reads from the config (none, for most
    families). The check compares, at the final position of the example prompt, the model's
    logits with that readout of the final norm's output, up to the rounding of the matrix
    product. A model that maps the logits in any other way -- a non-linearity after the
    unembedding, a scale or a scaled tied unembedding the spec does not name -- would get wrong
    numbers, so it is refused.

    Raises
    ------
    UnsupportedModel
        If the logits differ from the readout; the message names the readout expected.
    """
    norm = model.get_submodule(spec.final_norm.path)
    head = model.get_submodule(spec.unembed)
    readout = spec.readout(getattr(model, "config", None))
    seen: list[torch.Tensor] = []

    def hook(module: nn.Module, args: Any, output: Any) -> None:
        value = _first_tensor(output)
        if value is not None:
            seen.append(value)

    handle = norm.register_forward_hook(hook)
    try:
        with _evaluating(model):
            logits = _logits(model(input_ids=example_ids(model)))[0, -1].double()
    finally:
        handle.remove()
    if not seen:
        raise refusal(model, f"the final norm {spec.final_norm.path} was not called")
    h = seen[-1][0, -1].double()
    w = stored_value(model, f"{spec.unembed}.weight", "parameter").detach().double()
    w = w.to(h.device)
    bias = getattr(head, "bias", None)
    if isinstance(bias, torch.Tensor):
        bias = stored_value(model, f"{spec.unembed}.bias", "parameter")
    b = bias.detach().double() if isinstance(bias, torch.Tensor) else torch.zeros(w.shape[0])
    if w.shape[1] != h.shape[-1]:
        raise refusal(
            model,
            f"the unembedding {spec.unembed} reads {w.shape[1]} features, the final norm "
            f"{spec.final_norm.path} gives {h.shape[-1]}",
        )
    expected = readout.apply(h @ w.T + b.to(h.device))
    if expected.shape != logits.shape:
        raise refusal(
            model, f"its logits have {logits.shape[0]} entries, its unembedding {w.shape[0]} rows"
        )
    width = w.shape[1]
    linear = (h.abs() @ w.abs().T) + b.abs().to(h.device)
    bound = rounding(seen[-1], w) * (width**0.5) * (abs(readout.scale) * linear + logits.abs())
    excess = (logits - expected).abs() - bound
    if bool((excess > 0).any()):
        diff = float((logits - expected).abs().max())
        cap = getattr(text_config(getattr(model, "config", None)), "final_logit_softcapping", None)
        hint = (
            f"; the config's final_logit_softcapping is {cap}, but the spec reads "
            f"{spec.softcap_attr!r}"
            if cap and readout.softcap is None
            else ""
        )
        raise refusal(
            model,
            f"the logits are not {readout.describe()} of the final norm's output "
            f"{spec.final_norm.path} through the unembedding {spec.unembed} (max difference "
            f"{diff:.3g}{hint}): the model maps them in a way the adapter cannot express (a "
            f"non-linearity after the unembedding, or a logit scale or scaled unembedding its "
            f"family spec does not name), and the analyses would read wrong logits",
        )


def check_declared(model: nn.Module, spec: FamilySpec) -> None:
    """Check what a declared or registered spec names, before the model runs: its modules
    exist, the layers are a list, the final norm has a ``(d,)`` weight and an epsilon, the
    unembedding a ``(vocab, d)`` weight.

    Raises
    ------
    UnsupportedModel
        Naming the missing module or parameter.
    """
    missing = missing_paths(spec, model)
    if missing:
        raise refusal(
            model, f"the family spec {spec.name!r} names modules it lacks: {format_names(missing)}"
        )
    if not isinstance(model.get_submodule(spec.layers), nn.ModuleList):
        raise refusal(model, f"{spec.layers} of the family spec {spec.name!r} is not a ModuleList")
    head = getattr(model.get_submodule(spec.unembed), "weight", None)
    if not isinstance(head, torch.Tensor) or head.dim() != 2:
        raise refusal(model, f"the unembedding {spec.unembed} has no (vocab, d) weight")
    norm = model.get_submodule(spec.final_norm.path)
    weight = getattr(norm, "weight", None)
    width = int(head.shape[1])
    if not isinstance(weight, torch.Tensor) or tuple(weight.shape) != (width,):
        raise refusal(
            model,
            f"no final norm between the last layer and the unembedding {spec.unembed}: "
            f"{spec.final_norm.path} has no weight of shape ({width},)",
        )
    if not any(isinstance(getattr(norm, a, None), (int, float)) for a in spec.final_norm.eps_attr):
        raise refusal(
            model,
            f"found no epsilon of the final norm {spec.final_norm.path} (tried "
            f"{format_names(spec.final_norm.eps_attr)})",
        )


def known_spec(model: nn.Module) -> FamilySpec | None:
    """The spec of a known family (:func:`~.registry.spec_for`), or ``None`` when no known
    family covers the model type.

    Raises
    ------
    UnsupportedModel
        If known families cover the model type but name modules the model lacks.
    """
    if model_type(model) not in known_model_types():
        return None
    return spec_for(model)


def spec_of(model: nn.Module) -> FamilySpec:
    """The spec of a causal LM: of its known family, found (:func:`find_spec`) otherwise.

    A known family's spec is checked against the model (``check_declared``); either way the
    logits must be the spec's readout of the final norm (``check_readout``). Everything
    here happens before any analysis runs.

    Raises
    ------
    UnsupportedModel
        If the structure cannot be established or the readout cannot be expressed; the message
        names the model type and what is missing, and lists the known families.
    """
    spec = known_spec(model)
    if spec is None:
        spec = find_spec(model)
    else:
        check_declared(model, spec)
    check_readout(model, spec)
    return spec
