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

__all__ = ["RowIndex", "put_rows", "row_index"]


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
    >>> row_index([], torch.device("cpu"))
    slice(0, 0, 1)
    """
    if len(rows) <= 1:
        return slice(rows[0], rows[0] + 1, 1) if rows else slice(0, 0, 1)
    step = rows[1] - rows[0]
    if step > 0 and all(b - a == step for a, b in pairwise(rows)):
        return slice(rows[0], rows[-1] + 1, step)
    return torch.tensor(list(rows), dtype=torch.long, device=device)


def put_rows(out: torch.Tensor, index: slice | torch.Tensor, values: torch.Tensor) -> None:
    """``out[index] = values`` along the leading axis, in place (``values`` broadcast).

    A slice assigns in place; a tensor index copies whole rows (``index_copy_``) rather than
    going through the element-wise indexed assignment of ``out[index] = values``.

    Examples
    --------
    >>> out = torch.zeros(4, 2)
    >>> put_rows(out, torch.tensor([3, 0]), torch.ones(2))
    >>> out.sum(1).tolist()
    [2.0, 0.0, 0.0, 2.0]
    """
    if isinstance(index, slice):
        out[index] = values
        return
    rows = (len(index), *out.shape[1:])
    out.index_copy_(0, index, values.to(out.dtype).expand(rows))


class RowIndex:
    """Where the rows of one batch of runs go in a larger result, for the batch's outputs.

    A staircase computes each output for a leading block of its rows (those that joined before
    the output's variable; the others kept its clean value). The places of all the batch's rows
    are copied to the device once, if they are not evenly spaced, and each block is a view.

    Parameters
    ----------
    places : sequence of int
        ``places[j]``: the result row of the batch's row ``j``.
    device : torch.device
        Where the result is.

    Examples
    --------
    >>> index = RowIndex([1, 4, 2, 5, 7], torch.device("cpu"))
    >>> index.first(2), index.after(2)  # views of one index copied to the device
    (tensor([1, 4]), tensor([2, 5, 7]))
    >>> RowIndex([0, 2, 4, 6], torch.device("cpu")).after(1)
    slice(2, 7, 2)
    """

    def __init__(self, places: Sequence[int], device: torch.device) -> None:
        self._whole = row_index(places, device)
        self.size = len(places)

    def first(self, n: int) -> slice | torch.Tensor:
        """The result rows of the batch's first ``n`` rows."""
        return self._part(0, n)

    def after(self, n: int) -> slice | torch.Tensor:
        """The result rows of the batch's rows from ``n`` on."""
        return self._part(n, self.size)

    def _part(self, begin: int, end: int) -> slice | torch.Tensor:
        whole = self._whole
        if isinstance(whole, slice):
            step = whole.step  # row_index always gives one
            start = whole.start + begin * step
            return slice(start, start + (end - begin - 1) * step + 1, step)
        return whole[begin:end]
