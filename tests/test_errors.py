"""Every user error raises a specific scmnet error naming the bad value and the fix."""

from __future__ import annotations

import pytest

import scmnet as sn


def test_cycle() -> None:
    with pytest.raises(sn.NotADag, match=r"cycle, (a -> b -> a|b -> a -> b)"):
        sn.SCM({"a": lambda b: b, "b": lambda a: a}, exogenous=["u"])


def test_unknown_node_with_close_match() -> None:
    m = sn.toys.linear_mediation()
    with pytest.raises(sn.NodeNotFound, match=r"unknown node 'mm' \(did you mean 'm'\?\)"):
        sn.do(m, {"mm": 0.0})
    with pytest.raises(sn.NodeNotFound, match=r"'yy'.*the endogenous nodes are 'm', 'x', 'y'"):
        sn.total_effect(m, {"x": 0.0}, "yy", context={"u_x": 0, "u_m": 0, "u_y": 0})
    with pytest.raises(sn.NodeNotFound, match="'q'"):
        sn.direct_effect(m, {"x": 0.0}, "y", mediators=["q"], context={})


def test_mechanism_parameter_names_no_variable() -> None:
    with pytest.raises(sn.InvalidMechanism, match=r"parameter 'xx', which names no variable"):
        sn.SCM({"x": lambda u: u, "y": lambda xx: xx}, exogenous=["u"])
    with pytest.raises(sn.InvalidMechanism, match=r"\(did you mean 'x'\?\)"):
        sn.SCM({"x": lambda u: u, "y": lambda xx: xx}, exogenous=["u"])
    with pytest.raises(sn.InvalidMechanism, match=r"takes \*args"):
        sn.SCM({"y": lambda *args: 0}, exogenous=["u"])
    with pytest.raises(sn.InvalidMechanism, match=r"given a parent 'v'"):
        sn.SCM({"y": lambda a: a}, exogenous=["u"], parents={"y": ["v"]})
    with pytest.raises(sn.InvalidMechanism, match="must be callable"):
        sn.SCM({"y": 3.0}, exogenous=["u"])  # type: ignore[dict-item]
    with pytest.raises(sn.InvalidMechanism, match="both as exogenous and endogenous"):
        sn.SCM({"u": lambda: 0}, exogenous=["u"])


def test_intervention_on_exogenous() -> None:
    m = sn.toys.erasure()
    with pytest.raises(sn.InvalidIntervention, match=r"'u' is exogenous.*'f', 'x', 'y'"):
        sn.do(m, {"u": 0.0})
    with pytest.raises(sn.InvalidIntervention, match="'u' is exogenous"):
        sn.total_effect(m, {"u": 0.0}, "y", context={"u": 1.0})


def test_context_missing_or_unknown_exogenous() -> None:
    m = sn.toys.linear_mediation()
    with pytest.raises(sn.InvalidContext, match=r"misses exogenous 'u_m', 'u_y'"):
        m.evaluate({"u_x": 1.0})
    with pytest.raises(sn.InvalidContext, match=r"names 'u_z'.*did you mean"):
        m.evaluate({"u_x": 1.0, "u_m": 0.0, "u_y": 0.0, "u_z": 0.0})
    with pytest.raises(sn.InvalidContext, match="must be a mapping"):
        m.evaluate([1.0, 2.0])  # type: ignore[arg-type]
    with pytest.raises(sn.InvalidContext, match="has no distribution"):
        sn.total_effect(sn.SCM({"y": lambda u: u}, exogenous=["u"]), {"y": 0.0}, "y")


def test_bad_interventions_and_outcomes() -> None:
    m = sn.toys.erasure()
    u = {"u": 1.0}
    with pytest.raises(sn.InvalidIntervention, match="treatment is empty"):
        sn.total_effect(m, {}, "y", context=u)
    with pytest.raises(sn.InvalidIntervention, match="same sites as the treatment"):
        sn.total_effect(m, {"x": 0.0}, "y", reference={"f": 0.0}, context=u)
    with pytest.raises(sn.InvalidIntervention, match="cannot also be a mediator"):
        sn.direct_effect(m, {"x": 0.0}, "y", mediators=["x"], context=u)
    with pytest.raises(sn.InvalidIntervention, match="write \\['f'\\]"):
        sn.direct_effect(m, {"x": 0.0}, "y", mediators="f", context=u)
    with pytest.raises(sn.InvalidIntervention, match="needs an array or tensor"):
        m.evaluate(u, {sn.Site("x", index=0): 1.0})
    with pytest.raises(sn.InvalidIntervention, match="node name or a Site"):
        sn.do(m, {3: 0.0})
    with pytest.raises(sn.InvalidIntervention, match="tuple"):
        sn.Site("x", index=[0, 1])
    with pytest.raises(sn.InvalidOutcome, match=r"reads 'z'"):
        sn.total_effect(m, {"x": 0.0}, lambda z: z, context=u)
    with pytest.raises(sn.InvalidOutcome, match="variable name"):
        sn.total_effect(m, {"x": 0.0}, 3, context=u)  # type: ignore[arg-type]


def test_bad_index_names_shape() -> None:
    import numpy as np

    m = sn.SCM({"h": lambda u: u * 2}, exogenous=["u"])
    with pytest.raises(sn.InvalidIntervention, match=r"index 5 .* shape \(3,\)"):
        m.evaluate({"u": np.zeros(3)}, {sn.Site("h", index=5): 1.0})


def test_bad_distributions() -> None:
    with pytest.raises(sn.InvalidContext, match="scale must be >= 0"):
        sn.Normal(0.0, -1.0)
    with pytest.raises(sn.InvalidContext, match="low < high"):
        sn.Uniform(1.0, 0.0)
    with pytest.raises(sn.InvalidContext, match="sample"):
        sn.SCM({"y": lambda u: u}, exogenous={"u": 3.0})  # type: ignore[dict-item]
    with pytest.raises(sn.InvalidContext, match="positive int"):
        sn.toys.erasure().sample_contexts(0, seed=0)


def test_errors_share_one_hierarchy() -> None:
    for cls in (
        sn.NodeNotFound,
        sn.NotADag,
        sn.InvalidMechanism,
        sn.InvalidIntervention,
        sn.InvalidContext,
        sn.InvalidOutcome,
        sn.MechanismError,
        sn.MissingDependency,
    ):
        assert issubclass(cls, sn.ScmnetError)
    assert issubclass(sn.NodeNotFound, LookupError)
    assert issubclass(sn.MissingDependency, ImportError)
