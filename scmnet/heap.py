"""Long loops of queries, with the objects made before them left out of full collections.

A loaded model and its traced graph are hundreds of thousands of Python objects (about 550,000
for SmolLM2-135M with transformers imported), and a loop of queries allocates enough to start a
full collection of the cyclic garbage collector every few queries; each walks every one of those
objects (about a quarter of a second on this project's machine, a third of a resample query of
the Hydra sweep). They live as long as the loop, so :func:`frozen_heap` moves them out of the
collector's reach for the block (``gc.freeze``) and back after it (``gc.unfreeze``): only what
the loop makes is collected; a cycle among the frozen objects that the loop drops waits for the
first full collection after the block.

Examples
--------
>>> import gc
>>> before = gc.get_freeze_count()
>>> with frozen_heap():
...     gc.get_freeze_count() > before
True
>>> gc.get_freeze_count() == before
True
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["frozen_heap"]

_depth = 0


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Freeze the objects made so far for the block, and unfreeze them after it.

    Blocks nest (the outermost one unfreezes). Where the program had frozen objects itself
    before the block, they are left frozen after it (``gc.unfreeze`` cannot tell them
    apart), and so are the block's.
    """
    global _depth
    outermost = _depth == 0 and gc.get_freeze_count() == 0
    _depth += 1
    gc.freeze()
    try:
        yield
    finally:
        _depth -= 1
        if outermost:
            gc.unfreeze()
