"""The readout: how the logits follow from the final norm's output, and direct effects through it.

The paper's readout is linear (eq. 7): the logits are ``h W_U`` (plus a bias) where ``h`` is the
final norm's output. Some families map the result further before the model returns it:

* a **logit scale** s (Cohere's ``logit_scale``): ``s (W_U h + b)``, still linear;
* **final-logit softcapping** (Gemma 2; Gemma 3 when configured): ``c tanh(x / c)``, which makes
  the logits non-linear in the residual stream.

:class:`Readout` is that map, ``pi = cap_c(s (W_U h + b))``, read from the model's config by its
family spec (:meth:`~.families.FamilySpec.readout`) and checked against the model's own logits
before any work (:func:`~.finder.check_readout`): a readout the adapter cannot express is refused,
never approximated.

The direct effect through a non-linear readout
----------------------------------------------
With sigma held, eq. 24 makes the logits linear in every contribution, and eqs. 25-28 turn the
direct effect of zeroing a^l_t into the logit lens of eq. 10, ``u(a^l_t)_i``. With a softcap the
logits are linear in the contributions only *before* the cap, so the logit lens of a single
contribution is no longer an effect of anything. The adapter keeps Definition 3.3 (eqs. 19-20)
literally and defines the **unembedding impact** of a contribution v^l (a^l_t or m^l_t) as minus
its direct effect on the centred logit of i when it is zeroed, every other variable -- the other
contributions and the final norm's scale sigma -- held at its value in the run (eq. 25)::

    Delta_unembed,l = pi^_i(ell) - pi^_i(ell - delta_l),      delta_l = s (v^l' / sigma) G W_U

where ``ell = s (W_U h + b)`` are the run's logits before the cap, ``pi^(x) = cap(x) - mean_j
cap(x)_j`` centres the capped logits over the vocabulary (eq. 9) and ``v'`` is ``v`` centred for
a LayerNorm (the norm centres its input, a linear map). Holding sigma and every other variable,
zeroing v^l changes the final norm's output by exactly ``-(v^l' / sigma) G``, so this is the
effect of the intervention ``do(A^l_t = 0, M = m(u))`` on the traced graph, with the model's own
readout after it. For a linear readout (no cap) it is ``u(v^l)_i`` of eq. 10 exactly (eqs. 25-28
with a~ = 0); with a cap it needs the whole vocabulary (the centring is no longer a dot product),
the impacts no longer add up to the logit, and each is bounded by ``2c`` in size. After an
ablation (eq. 13) the same formula is read in the ablated run, with that run's ``ell`` and sigma.

Examples
--------
>>> import torch
>>> r = Readout(softcap=2.0)
>>> r.apply(torch.tensor([0.0, 100.0]))
tensor([0., 2.])
>>> Readout().linear, r.linear
(True, False)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from scmnet.errors import InvalidArgument

__all__ = ["Readout", "centred_logit", "direct_impacts"]

MAX_ELEMENTS = 1 << 24
"""At most this many logits are held at once when impacts need the whole vocabulary."""


@dataclass(frozen=True)
class Readout:
    """The map from the unembedding's output ``W_U h + b`` to the model's logits.

    ``pi = cap(scale * x)`` with ``cap(y) = softcap * tanh(y / softcap)``, or no cap.

    Attributes
    ----------
    scale : float
        A constant factor of the logits (1.0 for most families; Cohere's ``logit_scale``).
    softcap : float or None
        The final-logit softcap c (Gemma 2's ``final_logit_softcapping``), or ``None``.

    Raises
    ------
    InvalidArgument
        If ``scale`` is not a finite non-zero number or ``softcap`` is not positive.

    Examples
    --------
    >>> Readout(scale=0.5).apply(torch.tensor([2.0]))
    tensor([1.])
    >>> Readout(softcap=-1.0)
    Traceback (most recent call last):
    ...
    scmnet.errors.InvalidArgument: softcap must be a positive number or None, got -1.0
    """

    scale: float = 1.0
    softcap: float | None = None

    def __post_init__(self) -> None:
        if not math.isfinite(self.scale) or self.scale == 0.0:
            raise InvalidArgument(f"scale must be a finite non-zero number, got {self.scale!r}")
        if self.softcap is not None and not (math.isfinite(self.softcap) and self.softcap > 0):
            raise InvalidArgument(
                f"softcap must be a positive number or None, got {self.softcap!r}"
            )

    @property
    def linear(self) -> bool:
        """Whether the logits are linear in ``W_U h + b`` (no softcap)."""
        return self.softcap is None

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """The logits from the unembedding's output ``x`` (any shape, elementwise)."""
        y = x * self.scale if self.scale != 1.0 else x
        if self.softcap is None:
            return y
        return torch.tanh(y / self.softcap) * self.softcap

    def describe(self) -> str:
        """The map in words, for messages.

        >>> Readout(softcap=30.0).describe()
        'final-logit softcapping at 30.0'
        >>> Readout().describe()
        'the linear readout W_U h + b'
        """
        parts = []
        if self.scale != 1.0:
            parts.append(f"a logit scale of {self.scale}")
        if self.softcap is not None:
            parts.append(f"final-logit softcapping at {self.softcap}")
        return " and ".join(parts) if parts else "the linear readout W_U h + b"


def _centred_at(logits: torch.Tensor, token: int) -> torch.Tensor:
    """The centred logit of ``token`` (eq. 9) over the last axis: ``(..., V) -> (...)``."""
    return logits[..., token] - logits.mean(-1)


def centred_logit(readout: Readout, x: torch.Tensor, token: int) -> torch.Tensor:
    """The centred logit of ``token`` (eq. 9) of the model's logits ``readout.apply(x)``.

    Parameters
    ----------
    readout : Readout
        The model's readout.
    x : tensor, shape (..., vocab)
        The unembedding's output ``W_U h + b``.
    token : int
        i.

    Returns
    -------
    tensor, shape (...)

    Examples
    --------
    >>> float(centred_logit(Readout(softcap=1.0), torch.tensor([0.0, 50.0]), 1))
    0.5
    """
    return _centred_at(readout.apply(x), token)


def direct_impacts(
    readout: Readout,
    x: torch.Tensor,
    read: torch.Tensor,
    unembedding: torch.Tensor,
    token: int,
    *,
    max_elements: int = MAX_ELEMENTS,
) -> torch.Tensor:
    """Unembedding impacts through a readout: ``pi^_i(ell) - pi^_i(ell - delta)`` per component.

    The definition in the module docstring: ``ell = scale * x`` and ``delta = scale * v W_U^T``
    for each component ``v`` already normalised as the final norm would with its scale held
    (``v' / sigma * G``). Exact for any :class:`Readout`; computes the whole vocabulary, in
    chunks of at most ``max_elements`` logits.

    Parameters
    ----------
    readout : Readout
        The model's readout.
    x : tensor, shape (R, vocab)
        Each run's unembedding output ``W_U h + b`` at the final position.
    read : tensor, shape (R, C, d_model)
        Each run's components, normalised: ``v' / sigma * G``.
    unembedding : tensor, shape (vocab, d_model)
        W_U.
    token : int
        i.
    max_elements : int
        Memory bound: logits held at once.

    Returns
    -------
    tensor, shape (R, C)

    Examples
    --------
    Without a cap it is the logit lens, the centred dot product (eq. 10):

    >>> w = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> v = torch.tensor([[[1.0, 2.0]]])
    >>> direct_impacts(Readout(), torch.zeros(1, 3), v, w, 2)
    tensor([[1.]])
    """
    rows, components = int(read.shape[0]), int(read.shape[1])
    vocab = int(unembedding.shape[0])
    ell = readout.scale * x
    capped = Readout(softcap=readout.softcap)
    base = centred_logit(capped, ell, token)  # (R,)
    out = torch.empty(rows, components, dtype=ell.dtype, device=ell.device)
    step = max(1, max_elements // max(1, vocab))
    w_t = unembedding.to(read.dtype).T * readout.scale  # (d, V)
    for c in range(components):
        for r0 in range(0, rows, step):
            r1 = min(rows, r0 + step)
            delta = (read[r0:r1, c] @ w_t).to(ell.dtype)  # (r, V)
            out[r0:r1, c] = base[r0:r1] - centred_logit(capped, ell[r0:r1] - delta, token)
    return out
