"""Which family spec a model gets: the declared ones, and the families users register.

:func:`spec_for` looks up a model's ``config.model_type`` among, in this order:

1. the families registered in this process with :func:`register_family`;
2. the families that installed packages declare as entry points of the group
   ``scmnet.families`` (:data:`ENTRY_POINT_GROUP`), each naming a
   :class:`~.families.FamilySpec` (or a function of no arguments that returns one);
3. the families scmnet declares (:data:`~.families.FAMILIES`).

The first spec that covers the model type *and whose module paths all exist in the model* is
used, so one model type can have several layouts (Gemma 3's text-only model and its multimodal
wrapper). A spec whose paths do not resolve is refused naming the missing module, before the
model runs. A decoder of no registered family goes to the finder
(:func:`~.finder.find_spec`), which reads its structure from the model.

Examples
--------
Register a family of your own (here: a Llama layout under a new model type), and the adapter
uses it for every model of that type:

>>> import dataclasses
>>> llama = FAMILIES[0]
>>> spec = dataclasses.replace(llama, name="my_llama", model_types=("my_llama",))
>>> register_family(spec)
>>> from types import SimpleNamespace
>>> spec_for(SimpleNamespace(config=SimpleNamespace(model_type="my_llama"))) is spec
True
>>> register_family(spec)  # doctest: +NORMALIZE_WHITESPACE
Traceback (most recent call last):
...
scmnet.errors.InvalidArgument: model type 'my_llama' already has the family 'my_llama'
(registered); pass replace=True to replace it
>>> unregister_family("my_llama") is spec
True

A package makes the same registration permanent with an entry point in its
``pyproject.toml``::

    [project.entry-points."scmnet.families"]
    my_llama = "my_package.families:MY_LLAMA"
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from torch import nn

from scmnet.errors import InvalidArgument, UnsupportedModel, format_names

from .families import FAMILIES, FamilySpec

__all__ = [
    "ENTRY_POINT_GROUP",
    "families",
    "known_model_types",
    "missing_paths",
    "register_family",
    "spec_for",
    "unregister_family",
]

ENTRY_POINT_GROUP = "scmnet.families"
"""The entry-point group through which installed packages add family specs."""

_REGISTERED: dict[str, FamilySpec] = {}
"""The families registered with :func:`register_family`, by name, newest last."""


@dataclass(frozen=True)
class _Sourced:
    """A spec and where it comes from (for messages)."""

    spec: FamilySpec
    source: str


def _check_spec(spec: Any, where: str) -> FamilySpec:
    if not isinstance(spec, FamilySpec):
        raise InvalidArgument(
            f"{where} gives {type(spec).__name__} {spec!r}, not a FamilySpec; build one with "
            f"scmnet.adapters.transformer.FamilySpec(...)"
        )
    if not spec.model_types or not all(isinstance(t, str) and t for t in spec.model_types):
        raise InvalidArgument(
            f"the family {spec.name!r} of {where} covers no model type (model_types="
            f"{spec.model_types!r}); give the config.model_type values it is for"
        )
    return spec


def _entry_point_specs() -> tuple[list[_Sourced], list[str]]:
    """The specs of the ``scmnet.families`` entry points, and what failed to load."""
    found: list[_Sourced] = []
    problems: list[str] = []
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        where = f"the entry point {entry.name!r} ({entry.value}) of group {ENTRY_POINT_GROUP!r}"
        try:
            value = entry.load()
            if callable(value) and not isinstance(value, FamilySpec):
                value = value()
            found.append(_Sourced(_check_spec(value, where), f"entry point {entry.name!r}"))
        except Exception as e:  # a broken plug-in is reported, and leaves the others usable
            problems.append(f"{where} failed: {type(e).__name__}: {e}")
    return found, problems


def _all() -> tuple[list[_Sourced], list[str]]:
    registered = [_Sourced(s, "registered") for s in reversed(_REGISTERED.values())]
    plugged, problems = _entry_point_specs()
    declared = [_Sourced(s, "declared") for s in FAMILIES]
    return [*registered, *plugged, *declared], problems


def families() -> tuple[FamilySpec, ...]:
    """Every known family spec, in the order :func:`spec_for` tries them: registered (newest
    first), then entry points, then declared.

    Examples
    --------
    >>> [s.name for s in families()][:3]
    ['llama', 'mistral', 'qwen2']
    """
    return tuple(s.spec for s in _all()[0])


def known_model_types() -> list[str]:
    """Every model type some known family covers (sorted, without repeats)."""
    return sorted({t for spec in families() for t in spec.model_types})


def register_family(spec: FamilySpec, *, replace: bool = False) -> None:
    """Make the adapter use ``spec`` for models of its ``model_types``.

    A registered family takes precedence over the entry points and the declared families, so
    ``replace=True`` can also override a declared one. The registration lasts for the process;
    an entry point of group ``scmnet.families`` makes it permanent for a package.

    Parameters
    ----------
    spec : FamilySpec
        The family's structure; its paths are checked against each model it is used for.
    replace : bool
        Replace a family that already covers one of the model types (or has the same name).

    Raises
    ------
    InvalidArgument
        If ``spec`` is not a :class:`FamilySpec`, covers no model type, or a known family
        already covers one of its model types (and ``replace`` is false).

    See Also
    --------
    unregister_family, spec_for
    """
    spec = _check_spec(spec, "register_family(spec)")
    if not replace:
        for known in _all()[0]:
            shared = [t for t in spec.model_types if t in known.spec.model_types]
            if shared or known.spec.name == spec.name:
                what = f"model type {shared[0]!r}" if shared else f"the name {spec.name!r}"
                raise InvalidArgument(
                    f"{what} already has the family {known.spec.name!r} ({known.source}); "
                    f"pass replace=True to replace it"
                )
    else:
        for name, old in list(_REGISTERED.items()):
            if name == spec.name or set(old.model_types) & set(spec.model_types):
                del _REGISTERED[name]
    _REGISTERED[spec.name] = spec


def unregister_family(name: str) -> FamilySpec:
    """Remove a family registered with :func:`register_family`; returns its spec.

    Raises
    ------
    InvalidArgument
        If no family of that name was registered (declared families cannot be removed).
    """
    if name not in _REGISTERED:
        raise InvalidArgument(
            f"no family {name!r} was registered; registered: "
            f"{format_names(_REGISTERED) if _REGISTERED else 'none'}"
        )
    return _REGISTERED.pop(name)


def missing_paths(spec: FamilySpec, model: nn.Module) -> list[str]:
    """The module paths of ``spec`` that ``model`` lacks (``[]`` when it fits).

    Examples
    --------
    >>> from scmnet.adapters.transformer.families import FAMILIES
    >>> missing_paths(FAMILIES[0], nn.Module())[:2]
    ['model', 'model.embed_tokens']
    """
    missing = []
    for path in spec.paths().values():
        try:
            model.get_submodule(path)
        except AttributeError:
            missing.append(path)
    return missing


def _model_type(model: Any) -> Any:
    return getattr(getattr(model, "config", None), "model_type", None)


def spec_for(model: Any) -> FamilySpec:
    """The :class:`FamilySpec` of a Hugging Face causal LM, from its ``config.model_type``.

    The first known family (:func:`families`) that covers the model type and, for a module,
    whose paths all exist in it.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        A causal language model (``...ForCausalLM``, or a multimodal wrapper whose language
        model a spec names).

    Raises
    ------
    UnsupportedModel
        If no family covers the model type (the message lists the known ones), or the families
        that cover it name modules the model lacks (the message names them).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> spec_for(SimpleNamespace(config=SimpleNamespace(model_type="llama"))).layers
    'model.layers'
    >>> spec_for(SimpleNamespace(config=SimpleNamespace(model_type="bert")))
    ...                                       # doctest: +ELLIPSIS +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    scmnet.errors.UnsupportedModel: model type 'bert' is not supported by the transformer
    adapter; supported model types: 'gemma3', ..., 'qwen2'
    """
    model_type = _model_type(model)
    known, problems = _all()
    covering = [s for s in known if model_type in s.spec.model_types]
    if not covering:
        types = sorted({t for s in known for t in s.spec.model_types})
        broken = f"; {'; '.join(problems)}" if problems else ""
        raise UnsupportedModel(
            f"model type {model_type!r} is not supported by the transformer adapter; "
            f"supported model types: {format_names(types)}{broken}"
        )
    if not isinstance(model, nn.Module):
        return covering[0].spec
    lacking = []
    for candidate in covering:
        missing = missing_paths(candidate.spec, model)
        if not missing:
            return candidate.spec
        lacking.append(f"{candidate.spec.name!r} ({candidate.source}) names {missing[0]!r}")
    raise UnsupportedModel(
        f"model type {model_type!r} is not supported by the transformer adapter: its families "
        f"name modules that this {type(model).__name__} lacks: {'; '.join(lacking)}; register "
        f"a family with this model's paths (scmnet.adapters.transformer.register_family)"
    )
