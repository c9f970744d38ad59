"""Device maps: a model larger than one device, split across devices by Hugging Face accelerate.

``scmnet hydra --device-map auto`` (``load_model(..., device_map="auto")``) loads the model with
``from_pretrained(device_map=..., max_memory=..., offload_folder=...)``: accelerate gives each
module a device (a GPU, ``"cpu"``, or ``"disk"``) and the traced graph runs each operation on
its module's device (:mod:`scmnet.tracing.engine.devices`). This module checks the three
settings before anything loads:

* :func:`check_device_map` -- a strategy (``"auto"``, ``"balanced"``, ``"balanced_low_0"``,
  ``"sequential"``), a mapping of module paths to devices, or (from the command line) a JSON
  file holding one; every device must be one this machine has (:func:`available_devices`);
* :func:`parse_max_memory` -- ``--max-memory cpu=2GiB,cuda:0=20GiB``: the most memory each
  device may hold;
* ``"disk"`` offload needs an ``offload_folder``.

Examples
--------
>>> check_device_map("auto")
'auto'
>>> check_device_map({"model.layers.0": "cpu", "lm_head": "disk"}, offload_folder="/tmp/off")
{'model.layers.0': 'cpu', 'lm_head': 'disk'}
>>> parse_max_memory("cpu=2GiB,disk=10GB")
{'cpu': '2GiB', 'disk': '10GB'}
>>> check_device_map("cpu")
{'': 'cpu'}
>>> try:
...     check_device_map("fastest")
... except InvalidArgument as e:
...     print(str(e)[:60])
--device-map 'fastest' is neither a strategy (auto, balanced
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeAlias

import torch

from scmnet.errors import InvalidArgument, require

__all__ = [
    "STRATEGIES",
    "DeviceMap",
    "available_devices",
    "check_device_map",
    "load_arguments",
    "parse_max_memory",
]

DeviceMap: TypeAlias = "str | Mapping[str, str | int | torch.device]"
"""A strategy name, or module paths (``""`` for the whole model) to devices."""

STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")
"""The strategies accelerate computes a device map with (from the devices' free memory)."""

_DEVICE = re.compile(r"(cuda|mps|cpu|disk)(:\d+)?")
_SIZE = re.compile(r"\d+(\.\d+)?\s*([KMGT]i?B|B)?", re.IGNORECASE)


def available_devices() -> list[str]:
    """The devices a device map may name on this machine: each CUDA device, ``"mps"`` where
    available, ``"cpu"`` and ``"disk"`` (offload to ``offload_folder``).

    >>> available_devices()[-2:]
    ['cpu', 'disk']
    """
    found = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        found.append("mps")
    return [*found, "cpu", "disk"]


def _device(value: Any, where: str) -> str | int:
    """A device of a device map, checked against this machine; CUDA devices as accelerate's
    integer indices."""
    if isinstance(value, bool):
        raise InvalidArgument(f"{where}: {value!r} is not a device")
    if isinstance(value, int):
        name = f"cuda:{value}"
    elif isinstance(value, torch.device | str):
        name = str(value).strip()
    else:
        raise InvalidArgument(f"{where}: {value!r} is not a device; use e.g. cuda:0, cpu or disk")
    if name in ("cpu", "disk"):
        return name
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    available = available_devices()
    known = device is not None and (
        (device.type == "cuda" and (device.index or 0) < torch.cuda.device_count())
        or (device.type == "mps" and "mps" in available)
    )
    if not known or device is None:
        raise InvalidArgument(
            f"{where} names the device {name!r}, which this machine does not have; its devices "
            f"are {', '.join(available)}"
        )
    return (device.index or 0) if device.type == "cuda" else device.type


def check_device_map(
    device_map: DeviceMap | Path, *, offload_folder: str | Path | None = None
) -> str | dict[str, str | int]:
    """The device map as ``from_pretrained`` takes it, checked before anything loads.

    Parameters
    ----------
    device_map : str, mapping or Path
        A strategy of :data:`STRATEGIES`; a mapping of module paths to devices (``"cuda:0"``
        or ``0``, ``"mps"``, ``"cpu"``, ``"disk"``); the path of a JSON file holding one; or
        one device (``"cuda:1"``), the whole model's.
    offload_folder : path, optional
        Where ``"disk"`` modules are offloaded; required when the map names ``"disk"``.

    Returns
    -------
    str or dict
        The strategy, or the mapping with CUDA devices as integer indices.

    Raises
    ------
    InvalidArgument
        If the string is neither a strategy nor a JSON file, the map is empty or names a device
        this machine does not have (the message lists those it has), or ``"disk"`` comes without
        ``offload_folder``.
    """
    if isinstance(device_map, str) and device_map in STRATEGIES:
        return device_map
    where = f"--device-map {str(device_map)!r}"
    if isinstance(device_map, str) and _DEVICE.fullmatch(device_map.strip()):
        return {"": _device(device_map, where)}  # the whole model on one device
    if isinstance(device_map, str | Path):
        path = Path(device_map)
        if not path.is_file():
            raise InvalidArgument(
                f"{where} is neither a strategy ({', '.join(STRATEGIES)}) nor a JSON file "
                f'mapping module paths to devices, e.g. {{"model.layers.0": "cuda:0", '
                f'"lm_head": "cuda:1"}}'
            )
        try:
            loaded = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise InvalidArgument(f"{where}: cannot read it as JSON ({e})") from e
        if not isinstance(loaded, dict):
            raise InvalidArgument(
                f"{where} holds a {type(loaded).__name__}; it must hold one JSON object mapping "
                f"module paths to devices"
            )
        device_map = loaded
    if not isinstance(device_map, Mapping) or not device_map:
        raise InvalidArgument(
            f"the device map {device_map!r} is empty or not a mapping; give a strategy "
            f"({', '.join(STRATEGIES)}) or module paths mapped to devices"
        )
    checked = {
        str(path): _device(value, f"the device map's entry {str(path)!r}")
        for path, value in device_map.items()
    }
    if "disk" in checked.values() and offload_folder is None:
        disk = [p for p, d in checked.items() if d == "disk"]
        raise InvalidArgument(
            f"the device map offloads {', '.join(map(repr, disk))} to disk; give a folder for "
            f"them with --offload-folder DIR (offload_folder=)"
        )
    return checked


def parse_max_memory(text: str | Mapping[str, Any]) -> dict[str | int, str | int]:
    """``--max-memory``: the most memory each device may hold when a strategy places the model.

    Parameters
    ----------
    text : str or mapping
        ``"cpu=2GiB,cuda:0=20GiB"`` (sizes as accelerate reads them: bytes, or a number with
        KB, MB, GB, KiB, MiB, GiB...), or such a mapping.

    Returns
    -------
    dict
        Devices (CUDA devices as integer indices) to sizes.

    Raises
    ------
    InvalidArgument
        If an entry is not ``device=size``, names a device this machine does not have, or the
        size is not a size.

    Examples
    --------
    >>> parse_max_memory({"cpu": 10_000})
    {'cpu': 10000}
    >>> try:
    ...     parse_max_memory("cpu:2GiB")
    ... except InvalidArgument as e:
    ...     print(str(e)[:48])
    --max-memory entry 'cpu:2GiB' is not DEVICE=SIZE
    """
    if isinstance(text, Mapping):
        pairs = [(str(k), v) for k, v in text.items()]
    else:
        pairs = []
        for entry in (e.strip() for e in text.split(",") if e.strip()):
            device, sep, size = entry.partition("=")
            if not sep:
                raise InvalidArgument(
                    f"--max-memory entry {entry!r} is not DEVICE=SIZE (e.g. cpu=2GiB,cuda:0=20GiB)"
                )
            pairs.append((device.strip(), size.strip()))
    if not pairs:
        raise InvalidArgument("--max-memory is empty; give e.g. cpu=2GiB,cuda:0=20GiB")
    found: dict[str | int, str | int] = {}
    for device, size in pairs:
        where = f"--max-memory entry {device}={size}"
        if isinstance(size, bool) or not (
            (isinstance(size, int) and size > 0)
            or (isinstance(size, str) and _SIZE.fullmatch(size))
        ):
            raise InvalidArgument(f"{where}: {size!r} is not a size (e.g. 2GiB, 500MB, 1000000)")
        found[_device(device, where)] = (
            int(size) if isinstance(size, str) and size.isdigit() else size
        )
    return found


def load_arguments(
    device_map: DeviceMap | Path | None,
    max_memory: str | Mapping[str, Any] | None,
    offload_folder: str | Path | None,
) -> dict[str, Any]:
    """The keyword arguments of ``from_pretrained`` for these settings (none without a device
    map), checked; accelerate must be installed.

    Raises
    ------
    InvalidArgument
        As :func:`check_device_map` and :func:`parse_max_memory`; and for ``max_memory`` or
        ``offload_folder`` without a device map.
    MissingDependency
        If accelerate (extra ``hf``) is missing.

    Examples
    --------
    >>> load_arguments(None, None, None)
    {}
    >>> load_arguments("auto", "cpu=1GiB", None)
    {'device_map': 'auto', 'max_memory': {'cpu': '1GiB'}}
    """
    if device_map is None:
        unused = [
            n
            for n, v in (("--max-memory", max_memory), ("--offload-folder", offload_folder))
            if v is not None
        ]
        if unused:
            raise InvalidArgument(
                f"{' and '.join(unused)} only apply with a device map; add --device-map auto"
            )
        return {}
    require("accelerate", "hf")
    found: dict[str, Any] = {
        "device_map": check_device_map(device_map, offload_folder=offload_folder)
    }
    if max_memory is not None:
        found["max_memory"] = parse_max_memory(max_memory)
    if offload_folder is not None:
        folder = Path(offload_folder)
        if folder.exists() and not folder.is_dir():
            raise InvalidArgument(f"--offload-folder {str(folder)!r} is a file, not a folder")
        found["offload_folder"] = str(folder)
    return found
