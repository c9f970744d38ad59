"""A CUDA device simulated on the host, to check device discipline on a machine without a GPU.

Inside :func:`simulated_cuda`, a tensor "on ``cuda:0``" is a :class:`OnDevice`: a wrapper whose
``device`` says ``cuda:0`` and whose data lives on the host. There are as many devices as a
test names (``cuda:1``, ...: a machine of several GPUs, for device maps). Every operation is
checked as CUDA would check it, and every wait for the device is counted:

* an operation that mixes a device tensor with a host tensor of one element or more, or with a
  tensor on another device, raises CUDA's error (a host scalar, a 0-d tensor, may join a device
  operation, as on CUDA); a copy (``copy_``, ``.to``) moves data between any two devices;
* factories given ``device="cuda"`` and ``.to("cuda")``/``.cuda()`` make device tensors
  (``"cuda"`` alone is ``cuda:0``); a copy from the host counts as a sync (a copy from pageable
  host memory waits for the device), a copy between two devices does not;
* a fused attention (``scaled_dot_product_attention``) raises :class:`DeviceFault` where cuDNN's
  kernel faulted on an H200: given a key and a value of different lengths (no kernel checks the
  shapes; the host's composite raises) or a mask that broadcasts over the keys, of shape
  ``(..., L, 1)`` with more than one key. On a GPU the fault is not even raised where it
  happens: it kills the process or poisons the CUDA context, and a later operation reports it.
  So the fault is a ``BaseException`` here, which no ``except Exception`` of the library can
  absorb (the engine's recipe search would otherwise take it for a recipe that does not apply);
* a read back (``.cpu()``, ``.to("cpu")``, ``.item()``, ``bool(t)``, ``.tolist()``) and an
  operation whose output's size depends on device data (``nonzero``, ``masked_select``,
  ``unique``, ...) count as syncs.

The counts are kept by the file and line of the library code that made them (the innermost frame
outside torch and this module), as ``torch.cuda.set_sync_debug_mode("warn")`` reports them on a
real GPU. A tensor's numbers are the host's: what this checks is where values live and when the
host waits, not the device's arithmetic.
"""

from __future__ import annotations

import collections
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

CUDA = torch.device("cuda", 0)
HOST = torch.device("cpu")
_SIZE_FROM_DATA = {
    "nonzero",
    "masked_select",
    "unique",
    "_unique",
    "_unique2",
    "unique_consecutive",
    "unique_dim",
    "repeat_interleave",
    "equal",
    "is_nonzero",
    "_local_scalar_dense",
}


_FUSED_ATTENTION = (
    torch.nn.functional.scaled_dot_product_attention,
    torch.ops.aten.scaled_dot_product_attention.default,
)
_ATTENTION_PARAMETERS = ("query", "key", "value", "attn_mask")

_READS = (
    torch.Tensor.item,
    torch.Tensor.__bool__,
    torch.Tensor.__float__,
    torch.Tensor.__int__,
    torch.Tensor.__index__,
)


class DeviceFault(BaseException):
    """A fault that poisons the simulated device, as a fused kernel's bad read poisons CUDA."""


class OnDevice(torch.Tensor):
    """A tensor that says it is on a CUDA device (``cuda:0`` unless given); its data,
    :attr:`host`, is on the host."""

    host: torch.Tensor

    @staticmethod
    def __new__(cls, host: torch.Tensor, device: torch.device = CUDA) -> OnDevice:
        made = torch.Tensor._make_wrapper_subclass(
            cls,
            host.shape,
            strides=host.stride(),
            storage_offset=host.storage_offset(),
            dtype=host.dtype,
            layout=host.layout,
            device=device,
            requires_grad=host.requires_grad,
        )
        made.host = host
        return made

    def __repr__(self) -> str:  # type: ignore[override]
        return f"OnDevice({self.host!r})"

    @classmethod
    def __torch_dispatch__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        raise RuntimeError(f"{func} ran on a simulated device tensor outside simulated_cuda()")


def _device_of(value: Any) -> torch.device | None:
    """The device ``value`` names, ``"cuda"`` alone being ``cuda:0`` (the current device)."""
    if value is None:
        return None
    device = torch.device(value)
    return CUDA if device.type == "cuda" and device.index is None else device


def _is_cuda(value: Any) -> bool:
    device = _device_of(value)
    return device is not None and device.type == "cuda"


class _Simulation(TorchDispatchMode):
    """Runs every operation on the host data, checking devices and counting syncs."""

    def __init__(self, syncs: collections.Counter[str]) -> None:
        super().__init__()
        self.syncs = syncs
        self.passthrough = False

    def count(self, what: str) -> None:
        frame = sys._getframe(1)
        while frame is not None and (
            "/torch/" in frame.f_code.co_filename or frame.f_code.co_filename == __file__
        ):
            frame = frame.f_back  # type: ignore[assignment]
        where = "?" if frame is None else f"{frame.f_code.co_filename}:{frame.f_lineno}"
        self.syncs[f"{what} at {where.rsplit('/', 1)[-1]}"] += 1

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = dict(kwargs or {})
        if self.passthrough:
            return func(*args, **kwargs)
        name = func._schema.name.split("::")[-1]
        flat, _ = tree_flatten((args, kwargs))
        tensors = [t for t in flat if isinstance(t, torch.Tensor)]
        on_device = any(isinstance(t, OnDevice) for t in tensors)
        target = _device_of(kwargs.get("device"))
        if name == "_to_copy" and target is not None:
            (source,) = args
            if isinstance(source, OnDevice) and target.type == "cpu":
                self.count("copy to the host")
                kwargs["device"] = HOST
                return func(source.host, **kwargs)
            if not isinstance(source, OnDevice) and target.type == "cuda":
                if source.numel() > 0 and not kwargs.get("non_blocking", False):
                    self.count("copy from the host")
                kwargs["device"] = HOST
                return OnDevice(func(source, **kwargs), target)
            if isinstance(source, OnDevice) and target.type == "cuda":  # device to device
                kwargs["device"] = HOST
                return OnDevice(func(source.host, **kwargs), target)
        devices = {t.device for t in tensors if isinstance(t, OnDevice)}
        if on_device:
            mixed = [
                t for t in tensors if not isinstance(t, OnDevice) and t.dim() > 0 and t.numel()
            ]
            if (mixed or len(devices) > 1) and name not in ("copy_", "_to_copy"):
                first, *others = sorted(map(str, devices))
                second = others[0] if others else "cpu"
                shape = f", a host tensor of shape {tuple(mixed[0].shape)}" if mixed else ""
                raise RuntimeError(
                    f"Expected all tensors to be on the same device, but found at least two "
                    f"devices, {first} and {second}! ({func}{shape})"
                )
            if name in _SIZE_FROM_DATA:
                self.count(name)
            if name == "copy_" and not isinstance(args[0], OnDevice):
                self.count("copy to the host")
        made = target is not None and target.type == "cuda"
        if made:
            kwargs["device"] = HOST
        out = func(*tree_map(_unwrap, args), **tree_map(_unwrap, kwargs))
        if name == "copy_" and isinstance(args[0], OnDevice):
            return args[0]
        if on_device or made:
            where = target if made else next(iter(devices))
            return tree_map(lambda v: _wrap(v, where), out)
        return out


def _check_attention(func: Any, args: Any, kwargs: Any) -> None:
    """Raise :class:`DeviceFault` for the device attentions cuDNN's kernel faulted on: a key and a
    value of different lengths, or a mask that broadcasts over more than one key."""
    bound = dict(zip(_ATTENTION_PARAMETERS, args, strict=False)) | kwargs
    key, value, mask = bound["key"], bound["value"], bound.get("attn_mask")
    if not any(isinstance(t, OnDevice) for t in (key, value, mask)):
        return
    if key.shape[-2] != value.shape[-2]:
        raise DeviceFault(
            f"Segmentation fault ({func}: a key of {key.shape[-2]} positions and a value of "
            f"{value.shape[-2]})"
        )
    if isinstance(mask, torch.Tensor) and mask.dim() and mask.shape[-1] == 1 < key.shape[-2]:
        raise DeviceFault(
            f"CUDA error: misaligned address ({func}: a mask of shape {tuple(mask.shape)} for "
            f"{key.shape[-2]} keys)"
        )


def _unwrap(value: Any) -> Any:
    return value.host if isinstance(value, OnDevice) else value


def _wrap(value: Any, device: torch.device = CUDA) -> Any:
    return OnDevice(value, device) if isinstance(value, torch.Tensor) else value


class _Transfers(TorchFunctionMode):
    """Routes ``Tensor.to``/``.cuda``/``.cpu`` through ``_to_copy`` (CUDA-less torch refuses a
    CUDA target before dispatch) and counts ``.tolist()``, which reads without dispatching."""

    def __init__(self, simulation: _Simulation) -> None:
        super().__init__()
        self.simulation = simulation

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func in (torch.Tensor.to, torch.Tensor.cuda, torch.Tensor.cpu):
            self_, *rest = args
            if func is torch.Tensor.cuda:
                index = kwargs.get("device", rest[0] if rest else None)
                device = CUDA if index is None else torch.device("cuda", torch.device(index).index)
                dtype, non_blocking = None, bool(kwargs.get("non_blocking"))
            elif func is torch.Tensor.cpu:
                device, dtype, non_blocking = HOST, None, False
            else:
                device, dtype, non_blocking, _ = torch._C._nn._parse_to(*rest, **kwargs)
            here = self_.device if isinstance(self_, OnDevice) else HOST
            there = here if device is None else _device_of(device)
            if there == here and (dtype is None or dtype == self_.dtype):
                return self_
            return torch.ops.aten._to_copy.default(
                self_, dtype=dtype or self_.dtype, device=there, non_blocking=non_blocking
            )
        if func in (torch.Tensor.__getitem__, torch.Tensor.__setitem__) and isinstance(
            args[0], OnDevice
        ):
            return self.indexing(func, *args)
        if func in (torch.Tensor.untyped_storage, torch.Tensor.data_ptr) and isinstance(
            args[0], OnDevice
        ):
            return func(args[0].host)  # the host data's: aliasing is the same
        if func in _FUSED_ATTENTION:
            _check_attention(func, args, kwargs)
        if func is torch.Tensor.tolist and isinstance(args[0], OnDevice):
            self.simulation.count("tolist")
            with torch._C.DisableTorchFunction():
                return args[0].host.tolist()
        if func is torch.Tensor.numpy and isinstance(args[0], OnDevice):
            raise TypeError(
                f"can't convert {args[0].device} device type tensor to numpy. Use Tensor.cpu() "
                f"to copy the tensor to host memory first."
            )
        if func in (torch.tensor, torch.as_tensor, torch.asarray) and _is_cuda(
            kwargs.get("device")
        ):
            self.simulation.count("copy from the host")  # data from the host, to the device
            made = self.on_host(func, args, {**kwargs, "device": HOST})
            return OnDevice(made, _device_of(kwargs["device"]))
        if func in _READS and isinstance(args[0], OnDevice):
            self.simulation.count(func.__name__)
            return self.on_host(func, args, kwargs)
        try:
            return func(*args, **kwargs)
        except RuntimeError as e:  # a method whose binding refuses the device before dispatch
            if "not linked with support for cuda" not in str(e):
                raise
            flat, _ = tree_flatten((args, kwargs))
            where = next((t.device for t in flat if isinstance(t, OnDevice)), CUDA)
            return tree_map(lambda v: _wrap(v, where), self.on_host(func, args, kwargs))

    def on_host(self, func: Any, args: Any, kwargs: Any) -> Any:
        """``func`` on the host data, unchecked and uncounted."""
        self.simulation.passthrough = True
        try:
            with torch._C.DisableTorchFunction():
                return func(*tree_map(_unwrap, args), **tree_map(_unwrap, kwargs))
        finally:
            self.simulation.passthrough = False

    def indexing(self, func: Any, tensor: OnDevice, index: Any, *value: Any) -> Any:
        """``tensor[index]`` or ``tensor[index] = value`` on the host data. CUDA takes index
        tensors and values from the host (copies that wait for the device: counted); torch's
        indexing code would refuse the simulated device before dispatch."""
        flat, _ = tree_flatten((index, value))
        if any(
            isinstance(t, torch.Tensor) and not isinstance(t, OnDevice) and t.dim() for t in flat
        ):
            self.simulation.count("copy from the host")
        out = self.on_host(func, (tensor, index, *value), {})
        return None if value else OnDevice(out, tensor.device)


@contextmanager
def simulated_cuda() -> Iterator[collections.Counter[str]]:
    """Simulate ``cuda:0`` inside the block; yields the syncs counted, by where they were made.

    Examples
    --------
    >>> import torch
    >>> with simulated_cuda() as syncs:
    ...     x = torch.ones(3).cuda()
    ...     y = (x * 2).sum()
    ...     print(x.device, y.device, float(y.cpu()))
    ...     try:
    ...         x + torch.ones(3)
    ...     except RuntimeError as error:
    ...         print(str(error).split(",")[0])
    cuda:0 cuda:0 6.0
    Expected all tensors to be on the same device
    >>> sorted(where.split(" at ")[0] for where in syncs)
    ['copy from the host', 'copy to the host']
    """
    syncs: collections.Counter[str] = collections.Counter()
    simulation = _Simulation(syncs)
    real_init = torch.cuda._lazy_init
    torch.cuda._lazy_init = lambda: None  # type: ignore[assignment]
    try:
        with _Transfers(simulation), simulation:
            yield syncs
    finally:
        torch.cuda._lazy_init = real_init  # type: ignore[assignment]


def to_simulated_device(module: torch.nn.Module, device: torch.device = CUDA) -> torch.nn.Module:
    """Move ``module``'s parameters and buffers to the simulated ``device``, in place."""
    for sub in module.modules():
        for store in (sub._parameters, sub._buffers):
            for name, value in store.items():
                if value is not None and not isinstance(value, OnDevice):
                    moved = OnDevice(value.detach(), device)
                    if store is sub._parameters:
                        moved._is_param = True  # an nn.Parameter, as Parameter(subclass) makes
                    store[name] = moved  # type: ignore[assignment]
    return module


def as_traced_on_the_device(graph_module: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Rewrite a graph traced on the host as if traced with its inputs on ``cuda:0``, in place.

    A trace records the devices it saw: the example's (``arange(..., device=cpu)``, the
    metadata asserts, ``to(cpu)``); traced with the inputs on the GPU, it records ``cuda:0``
    instead. Every ``torch.device("cpu")`` argument of the graph and its subgraphs becomes
    ``cuda:0``.
    """

    def moved(value: Any) -> Any:
        if isinstance(value, torch.device) and value.type == "cpu":
            return CUDA
        return value

    for module in graph_module.modules():
        if isinstance(module, torch.fx.GraphModule):
            for node in module.graph.nodes:
                node.args = tree_map(moved, node.args)
                node.kwargs = tree_map(moved, node.kwargs)
            module.recompile()
    return graph_module
