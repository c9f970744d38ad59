"""The conformance check and the tolerance helper must be able to fail."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import scmnet as sn
from scmnet.testing import assert_close, check_scm, tolerance


class LeakySCM(sn.SCM):
    """A broken model: intervening on any node also changes the first variable."""

    def evaluate(self, context: Any, interventions: Any = None, *, outputs: Any = None) -> Any:
        values = super().evaluate(context, interventions, outputs=None)
        if interventions:
            values["x"] = values["x"] + 1.0
        return values if outputs is None else {k: values[k] for k in outputs}


def test_check_scm_catches_a_leak() -> None:
    base = sn.toys.erasure()
    leaky = LeakySCM.__new__(LeakySCM)
    leaky.__dict__.update(base.__dict__)
    with pytest.raises(AssertionError, match="changed"):
        check_scm(leaky)


def test_check_scm_catches_nondeterminism() -> None:
    rng = np.random.default_rng(0)
    m = sn.SCM({"x": lambda u: u + rng.normal()}, exogenous={"u": sn.Normal()})
    with pytest.raises(AssertionError, match="not deterministic"):
        check_scm(m)


def test_check_scm_subset_of_treatments() -> None:
    m = sn.toys.linear_gaussian({(f"v{i}", f"v{i + 1}"): 1.0 for i in range(8)})
    check_scm(m, max_treatments=3, n_contexts=1)


def test_tolerance_policy() -> None:
    assert tolerance(torch.float32) == tolerance("float32") == (1e-5, 1e-6)
    assert tolerance(np.float64) == (1e-9, 1e-12)
    assert tolerance(torch.bfloat16)[0] > tolerance(torch.float16)[0]
    assert tolerance(np.int32) == (0.0, 0.0)


def test_assert_close_uses_the_looser_dtype() -> None:
    assert_close(torch.tensor([1.0]), np.array([1.0 + 5e-7]))
    with pytest.raises(AssertionError, match="values differ"):
        assert_close(np.array([1.0]), np.array([1.0 + 5e-7]))
    with pytest.raises(AssertionError, match="shapes differ"):
        assert_close(np.zeros(2), np.zeros(3))
    with pytest.raises(AssertionError, match="values differ"):
        assert_close(np.array(["a"]), np.array(["b"]))
    assert_close(float("nan"), float("nan"))
