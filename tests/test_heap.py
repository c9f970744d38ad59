"""``frozen_heap``: the objects made before a loop are out of the collector's full passes for
the block, and back after it; blocks nest; a program's own freeze is left as it was."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from scmnet.heap import frozen_heap


@pytest.fixture(autouse=True)
def _unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_the_block_freezes_what_exists_and_unfreezes_after() -> None:
    kept = [object() for _ in range(100)]
    with frozen_heap():
        frozen = gc.get_freeze_count()
        assert frozen >= len(kept)
        made = [[i] for i in range(100)]  # made inside: collected as usual
        assert gc.get_freeze_count() == frozen
        assert all(gc.is_tracked(m) for m in made)
    assert gc.get_freeze_count() == 0


def test_blocks_nest_and_the_outermost_unfreezes() -> None:
    with frozen_heap():
        with frozen_heap():
            pass
        assert gc.get_freeze_count() > 0  # the inner block left the outer one's freeze
    assert gc.get_freeze_count() == 0


def test_an_error_in_the_block_still_unfreezes() -> None:
    with pytest.raises(ValueError, match="inside"), frozen_heap():
        raise ValueError("inside")
    assert gc.get_freeze_count() == 0


def test_a_freeze_made_before_the_block_is_left_as_it_was() -> None:
    gc.freeze()
    before = gc.get_freeze_count()
    with frozen_heap():
        pass
    assert gc.get_freeze_count() >= before
