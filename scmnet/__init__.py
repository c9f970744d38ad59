"""scmnet: structural causal models for neural networks.

Define a structural causal model with Python callables (:class:`SCM`), or trace a PyTorch
model into one; intervene with :func:`do`; measure :func:`total_effect`, :func:`direct_effect`
and :func:`indirect_effect` in one context or averaged over P(u), or many treatments at once
with :func:`effect_table`. The notation and equation
numbers follow McGrath et al. (2023), "The Hydra Effect: Emergent Self-repair in Language Model
Computations".

Examples
--------
>>> import scmnet as sn
>>> m = sn.toys.erasure()
>>> sn.total_effect(m, {"x": 0.0}, "y", context={"u": 2.0})
0.0
>>> sn.direct_effect(m, {"x": 0.0}, "y", context={"u": 2.0})
-2.0
>>> sn.indirect_effect(m, {"x": 0.0}, "y", context={"u": 2.0})
2.0
"""

from typing import TYPE_CHECKING, Any

from scmnet import ablations, distributions, draw, export, interventions, toys
from scmnet.ablations import SiteValues, mean, noise, patch, resample, resolve, zero
from scmnet.counterfactuals import Weighted, abduct, counterfactual
from scmnet.distributions import (
    Bernoulli,
    Choice,
    Constant,
    Distribution,
    Empirical,
    Normal,
    Uniform,
)
from scmnet.effects import direct_effect, indirect_effect, total_effect
from scmnet.errors import (
    InvalidArgument,
    InvalidContext,
    InvalidDataset,
    InvalidIntervention,
    InvalidMechanism,
    InvalidOutcome,
    InvalidSelection,
    MechanismError,
    MissingDependency,
    NoCausalPath,
    NodeNotFound,
    NonFiniteValue,
    NotADag,
    ScmnetError,
    UnitShapeError,
    UnsupportedModel,
    UntraceableModel,
    require,
)
from scmnet.export import collapse, draw_collapsed, to_dot, to_graphml
from scmnet.fit import fit, refit_interval
from scmnet.interventions import Interventions, Rule, Set, Site, Transform, apply, scale, shift
from scmnet.mechanisms import Declared, additive, invertible
from scmnet.mediation import Mediation, controlled_direct_effect, mediation
from scmnet.model import CausalModel, Context, do
from scmnet.outcome import Outcome, linear_readout
from scmnet.path_patching import path_patching
from scmnet.paths import path_specific_effect
from scmnet.query import effect_table
from scmnet.results import EffectTable, Estimate
from scmnet.scm import SCM
from scmnet.units import UnitBatching, Units

if TYPE_CHECKING:
    from scmnet.tracing import ByPath, ByPredicate, ByType, Default, TracedModel, trace
    from scmnet.tracing.heads import split_heads

#: Names loaded on first use from :mod:`scmnet.tracing`, so that ``import scmnet`` does not
#: import torch.
_TRACING = frozenset(
    {"trace", "TracedModel", "ByPath", "ByType", "ByPredicate", "Default", "split_heads"}
)


def __getattr__(name: str) -> Any:
    if name in _TRACING:
        require("torch", "torch")
        from scmnet import tracing

        if name == "split_heads":
            from scmnet.tracing import heads

            return heads.split_heads
        return getattr(tracing, name)
    raise AttributeError(f"module 'scmnet' has no attribute {name!r}")


#: The version of the installed scmnet package.
__version__ = "0.1.0"

__all__ = [
    "SCM",
    "Bernoulli",
    "ByPath",
    "ByPredicate",
    "ByType",
    "CausalModel",
    "Choice",
    "Constant",
    "Context",
    "Declared",
    "Default",
    "Distribution",
    "EffectTable",
    "Empirical",
    "Estimate",
    "Interventions",
    "InvalidArgument",
    "InvalidContext",
    "InvalidDataset",
    "InvalidIntervention",
    "InvalidMechanism",
    "InvalidOutcome",
    "InvalidSelection",
    "MechanismError",
    "Mediation",
    "MissingDependency",
    "NoCausalPath",
    "NodeNotFound",
    "NonFiniteValue",
    "Normal",
    "NotADag",
    "Outcome",
    "Rule",
    "ScmnetError",
    "Set",
    "Site",
    "SiteValues",
    "TracedModel",
    "Transform",
    "Uniform",
    "UnitBatching",
    "UnitShapeError",
    "Units",
    "UnsupportedModel",
    "UntraceableModel",
    "Weighted",
    "__version__",
    "abduct",
    "ablations",
    "additive",
    "apply",
    "collapse",
    "controlled_direct_effect",
    "counterfactual",
    "direct_effect",
    "distributions",
    "do",
    "draw",
    "draw_collapsed",
    "effect_table",
    "export",
    "fit",
    "indirect_effect",
    "interventions",
    "invertible",
    "linear_readout",
    "mean",
    "mediation",
    "noise",
    "patch",
    "path_patching",
    "path_specific_effect",
    "refit_interval",
    "resample",
    "resolve",
    "scale",
    "shift",
    "split_heads",
    "to_dot",
    "to_graphml",
    "total_effect",
    "toys",
    "trace",
    "zero",
]
