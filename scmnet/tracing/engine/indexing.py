"""Selecting rows of a tensor on an accelerator without waiting for it.

The engine computes many runs as the rows of one batch and copies values into some of those
rows. Its bookkeeping is host-side: the rows are Python integers. Indexing a GPU tensor with a
list or a host tensor copies the index to the device, and a copy from ordinary host memory waits
for the device to finish its queue: once per variable, that is a wait per layer. Evenly spaced
rows (the usual case: a block of consecutive rows, or one row per draw every n rows) need no
index tensor at all, since a slice with a step selects them.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch

__all__ = ["RowIndex", "row_index"]


def row_index(rows: Sequence[int], device: torch.device) -> slice | torch.Tensor:
    """An index selecting ``rows`` along a leading axis, with no copy from the host if it can.

    Parameters
    ----------
    rows : sequence of int
        Row numbers, non-negative and distinct.
    device : torch.device
        Where the indexed tensor is.

    Returns
    -------
    slice or tensor
        A slice when the rows are evenly spaced and increasing (one row, consecutive rows, or
        every n-th row); otherwise an int64 tensor of the rows on ``device`` (one copy).

    Examples
    --------
    >>> row_index([3, 4, 5], torch.device("cpu"))
    slice(3, 6, 1)
    >>> row_index([1, 5, 9], torch.device("cpu"))
    slice(1, 10, 4)
    >>> row_index([2, 0], torch.device("cpu"))
    tensor([2, 0])
    """
    if len(rows) == 1:
        return slice(rows[0], rows[0] + 1, 1)
    step = rows[1] - rows[0] if len(rows) > 1 else 1
    if step > 0 and all(b - a == step for a, b in pairwise(rows)):
        return slice(rows[0], rows[-1] + 1, step)
    return torch.tensor(list(rows), dtype=torch.long, device=device)


class RowIndex:
    """Rows of one batch of runs in a larger result: ``group[r]`` is where batch row ``r`` goes.

    Each output of a query takes some rows of the batch, usually a block of consecutive ones
    (the rows that joined the batch before the output's variable). The group's index tensor is
    copied to the device once, on first use, and each block is a view of it.

    Parameters
    ----------
    group : sequence of int
        Where each row of the batch goes in the result.
    device : torch.device
        Where the result is.

    Examples
    --------
    >>> index = RowIndex([1, 4, 2, 5, 7], torch.device("cpu"))
    >>> index.of([1, 2])  # batch rows 1 and 2 go to rows 4 and 2: a view of one copied index
    tensor([4, 2])
    >>> index.of([0, 2, 4])  # not a block: an index of its own
    tensor([1, 2, 7])
    >>> RowIndex([0, 1, 2, 3], torch.device("cpu")).of([1, 2, 3])
    slice(1, 4, 1)
    """

    def __init__(self, group: Sequence[int], device: torch.device) -> None:
        self.group, self.device = list(group), device
        self._whole = row_index(self.group, device)

    def of(self, rows: Sequence[int]) -> slice | torch.Tensor:
        """The index of the result rows that batch ``rows`` go to."""
        whole = self._whole
        first, last = rows[0], rows[-1]
        if any(b != a + 1 for a, b in pairwise(rows)):  # not one block
            return row_index([self.group[r] for r in rows], self.device)
        if isinstance(whole, slice):
            step = whole.step or 1
            start = whole.start + first * step
            return slice(start, start + (len(rows) - 1) * step + 1, step)
        return whole[first : last + 1]
