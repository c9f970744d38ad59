"""Glob patterns on dotted module paths (``"model.layers.*.mlp"``).

A pattern is matched segment by segment: ``*`` and the other :mod:`fnmatch` wildcards match
within one segment (so ``model.layers.*`` matches ``model.layers.3`` but not
``model.layers.3.mlp``), and a ``**`` segment matches any number of segments, none included.
The empty path (the root module) is matched by the empty pattern only.

Examples
--------
>>> path_matches("model.layers.*.mlp", "model.layers.3.mlp")
True
>>> path_matches("model.layers.*", "model.layers.3.mlp")
False
>>> path_matches("**.mlp", "model.layers.3.mlp")
True
"""

from __future__ import annotations

import fnmatch
import functools

__all__ = ["path_matches"]


def path_matches(pattern: str, path: str) -> bool:
    """Whether the dotted module ``path`` matches the glob ``pattern`` (see the module docs)."""
    return _match(
        tuple(pattern.split(".")) if pattern else (), tuple(path.split(".")) if path else ()
    )


@functools.lru_cache(maxsize=4096)
def _match(pattern: tuple[str, ...], path: tuple[str, ...]) -> bool:
    if not pattern:
        return not path
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_match(rest, path[i:]) for i in range(len(path) + 1))
    if not path:
        return False
    return fnmatch.fnmatchcase(path[0], head) and _match(rest, path[1:])
