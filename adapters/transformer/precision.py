"""The dtypes a model can be swept in (``scmnet hydra --dtype``), by name.

The parameters and activations are kept in the chosen dtype, as the model would run in it;
the readouts (the centred logit, the unembedding impacts, sigma) and the means of mean
ablation are accumulated in float32 and returned in float64, whatever the dtype. The dtype is
recorded in ``settings.json`` (:class:`~.sweep.SweepSettings`), so that a resume or a
``--from-record`` re-run computes in the same one.

Examples
--------
>>> parse_dtype("bfloat16")
torch.bfloat16
>>> dtype_name(torch.float16)
'float16'
>>> try:
...     parse_dtype("fp8")
... except InvalidArgument as e:
...     print(e)
--dtype 'fp8' is not one scmnet hydra computes in; use float32, bfloat16 or float16
"""

from __future__ import annotations

import torch

from scmnet.errors import InvalidArgument

__all__ = ["DTYPES", "dtype_name", "parse_dtype"]

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
"""The dtypes a sweep computes in, by the name ``--dtype`` and ``settings.json`` use."""


def parse_dtype(name: str | torch.dtype) -> torch.dtype:
    """The torch dtype ``name`` names (a torch dtype is returned as it is, if supported).

    Raises
    ------
    InvalidArgument
        If ``name`` is not one of :data:`DTYPES`, naming it and the choices.
    """
    if isinstance(name, torch.dtype) and name in DTYPES.values():
        return name
    found = DTYPES.get(name) if isinstance(name, str) else None
    if found is None:
        *first, last = DTYPES
        raise InvalidArgument(
            f"--dtype {str(name)!r} is not one scmnet hydra computes in; use "
            f"{', '.join(first)} or {last}"
        )
    return found


def dtype_name(dtype: torch.dtype) -> str:
    """The name of ``dtype`` in :data:`DTYPES` (``str(dtype)`` without ``torch.`` otherwise)."""
    for name, found in DTYPES.items():
        if found == dtype:
            return name
    return str(dtype).removeprefix("torch.")
