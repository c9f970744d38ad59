"""The one exception hierarchy of scmnet.

Every error scmnet raises on purpose derives from :class:`ScmnetError`, so a caller can
catch them all at once, and each also derives from the built-in exception a Python user
would expect (``ValueError``, ``LookupError``, ``ImportError``) so that generic handlers
keep working. Messages name the bad value and say what would be valid.

Examples
--------
>>> import scmnet as sn
>>> m = sn.toys.erasure()
>>> try:
...     sn.do(m, {"z": 0.0})
... except sn.NodeNotFound as e:
...     print(e)
unknown node 'z'; the endogenous nodes are 'f', 'x', 'y'
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "InvalidArgument",
    "InvalidContext",
    "InvalidDataset",
    "InvalidIntervention",
    "InvalidMechanism",
    "InvalidOutcome",
    "InvalidSelection",
    "MechanismError",
    "MissingDependency",
    "NoCausalPath",
    "NodeNotFound",
    "NonFiniteValue",
    "NotADag",
    "ScmnetError",
    "UnitShapeError",
    "UnsupportedModel",
    "UntraceableModel",
]


class ScmnetError(Exception):
    """Base class of every error raised by scmnet."""


class NodeNotFound(ScmnetError, LookupError):
    """A node name that the causal graph does not have."""

    def __init__(self, message: str) -> None:
        super().__init__(message)

    def __str__(self) -> str:  # LookupError would quote the message like a key
        return str(self.args[0])


class NotADag(ScmnetError, ValueError):
    """The variables and their parents form a cycle."""


class InvalidMechanism(ScmnetError, ValueError):
    """A mechanism whose signature or parents do not fit the model."""


class InvalidIntervention(ScmnetError, ValueError):
    """An intervention on a node that cannot be intervened on, or with an unusable value."""


class NoCausalPath(InvalidIntervention):
    """An intervention on a site that no directed path of the causal graph links to the outcome.

    Its effect on that outcome is zero by construction, which almost always means the wrong
    site (or outcome) was named; the effect operators refuse it unless asked for the zero
    effect (``unreached="zero"``).
    """


class InvalidContext(ScmnetError, ValueError):
    """A context (a value of the exogenous variables) that is incomplete or malformed."""


class InvalidOutcome(ScmnetError, ValueError):
    """An outcome that names no variable, or a readout that cannot be applied."""


class MissingDependency(ScmnetError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


def format_names(names: Iterable[str], *, limit: int = 12) -> str:
    """Quote and join names for an error message, eliding a long tail.

    >>> format_names(["b", "a"])
    "'a', 'b'"
    """
    ordered = sorted(names)
    shown = ", ".join(repr(n) for n in ordered[:limit])
    if len(ordered) > limit:
        shown += f", ... ({len(ordered) - limit} more)"
    return shown


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """A ``" (did you mean ...?)"`` hint listing close matches of ``name``, or ``""``.

    >>> did_you_mean("mpl", ["mlp", "attn"])
    " (did you mean 'mlp'?)"
    """
    close = difflib.get_close_matches(name, list(valid), n=3, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def unknown_node(name: str, valid: Iterable[str], *, what: str = "nodes") -> NodeNotFound:
    """Build a :class:`NodeNotFound` naming ``name``, the close matches and the valid names.

    >>> print(unknown_node("mpl", ["mlp", "attn"]))
    unknown node 'mpl' (did you mean 'mlp'?); the nodes are 'attn', 'mlp'
    """
    valid = list(valid)
    return NodeNotFound(
        f"unknown node {name!r}{did_you_mean(name, valid)}; the {what} are {format_names(valid)}"
    )


def require(module: str, extra: str) -> None:
    """Raise :class:`MissingDependency` unless ``module`` can be imported.

    >>> require("math", "core")
    """
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingDependency(
            f"this feature needs the package {module!r}, which is not installed; "
            f"install it with: pip install 'scmnet[{extra}]'"
        )


class InvalidArgument(ScmnetError, ValueError):
    """An argument outside what a function accepts (a bad layout, a wrong count of axes...)."""


class MechanismError(ScmnetError, RuntimeError):
    """A mechanism raised while computing a variable; the message names the variable."""


class NonFiniteValue(MechanismError):
    """A variable whose value is NaN or infinite (or ``None``); the message names the first one.

    An effect computed through a non-finite value is meaningless (NaN, or an exact zero behind
    a normalisation of an infinite value), so the run stops where it first appears.
    """


class UnitShapeError(InvalidMechanism):
    """A mechanism whose value for a batch of units is not the units' values stacked.

    Raised where averaging over P(u) evaluates many units at once: a mechanism that returns a
    different shape for a batch than for one unit (``x.sum()`` sums over the units), or mixes
    the units (``x - x.mean()``). The message names the variable.
    """


class InvalidDataset(ScmnetError, ValueError):
    """A data file (prompts, contexts) with a malformed record; the message names it."""


class UnsupportedModel(ScmnetError, ValueError):
    """A model that scmnet (or an adapter) cannot handle; the message lists what is supported."""


class UntraceableModel(UnsupportedModel):
    """No front end could trace the model; the message names the construct and the fix.

    Attributes
    ----------
    details : tuple of str
        What torch warned and logged while it tried (kept off the terminal; ``scmnet graph
        --verbose`` prints it).
    """

    def __init__(self, message: str, details: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.details = tuple(details)


class InvalidSelection(ScmnetError, ValueError):
    """A variable selector that matches no variable, or not the expected number."""
