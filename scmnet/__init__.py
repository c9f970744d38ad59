"""scmnet: structural causal models for neural networks.

Define a structural causal model with Python callables (:class:`SCM`), or trace a PyTorch
model into one; intervene with :func:`do`; measure :func:`total_effect`, :func:`direct_effect`
and :func:`indirect_effect` in one context or averaged over P(u). The notation and equation
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

from scmnet import distributions, draw, interventions, toys
from scmnet.distributions import (
    Bernoulli,
    Choice,
    Constant,
    Distribution,
    Empirical,
    Normal,
    Uniform,
)
from scmnet.effects import Estimate, Outcome, direct_effect, indirect_effect, total_effect
from scmnet.errors import (
    InvalidArgument,
    InvalidContext,
    InvalidDataset,
    InvalidIntervention,
    InvalidMechanism,
    InvalidOutcome,
    MechanismError,
    MissingDependency,
    NodeNotFound,
    NotADag,
    ScmnetError,
    UnsupportedModel,
)
from scmnet.interventions import Interventions, Rule, Set, Site, Transform, apply, scale, shift
from scmnet.model import CausalModel, Context, do
from scmnet.scm import SCM

#: The version of the installed scmnet package.
__version__ = "0.1.0"

__all__ = [
    "SCM",
    "Bernoulli",
    "CausalModel",
    "Choice",
    "Constant",
    "Context",
    "Distribution",
    "Empirical",
    "Estimate",
    "Interventions",
    "InvalidArgument",
    "InvalidContext",
    "InvalidDataset",
    "InvalidIntervention",
    "InvalidMechanism",
    "InvalidOutcome",
    "MechanismError",
    "MissingDependency",
    "NodeNotFound",
    "Normal",
    "NotADag",
    "Outcome",
    "Rule",
    "ScmnetError",
    "Set",
    "Site",
    "Transform",
    "Uniform",
    "UnsupportedModel",
    "__version__",
    "apply",
    "direct_effect",
    "distributions",
    "do",
    "draw",
    "indirect_effect",
    "interventions",
    "scale",
    "shift",
    "total_effect",
    "toys",
]
