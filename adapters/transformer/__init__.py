"""The transformer adapter: Hugging Face decoder-only language models and the Hydra-effect
analyses of McGrath et al. (2023) on them (Sections 2 and 4 of the paper).

Modules, bottom up:

* ``readout`` -- the map from the unembedding to the logits (a logit scale, Gemma 2's
  softcap) and the direct effect through it;
* ``families`` -- typed specs of each known family (where a^l, m^l, the final norm and
  the unembedding live; sequential or parallel blocks; post-block norms; the readout);
* ``registry`` -- which spec a model gets, and the families users register
  (:func:`register_family`, entry points of group ``scmnet.families``);
* ``finder`` -- the same spec read from the model itself, for decoders of other families,
  and the check that the logits are the spec's readout of the final norm;
* ``lm`` -- a model resolved against its spec, and the embedded SmolLM2-135M-Instruct;
* ``device_map`` -- the checked settings that split a model larger than one device across
  devices with accelerate (``--device-map``, ``--max-memory``, ``--offload-folder``);
* ``causal`` -- the model traced once with the paper's variables (a^l, m^l, sigma, the
  final norm), its clean and noised readings, and the measures as generic effects;
* ``ablations``, ``measures`` -- ablation values (eqs. 35-39) and per-prompt measures
  (eqs. 9-13, 33-34), every prompt one query of the core's engine;
* ``prompts`` -- the built-in factual-recall prompts and loaders for other formats;
* ``sweep``, ``analysis``, ``report``, ``hydra`` -- the resumable sweep, its
  statistics, the report, and the end-to-end run behind ``scmnet hydra``.
"""

from .ablations import Ablation, AblationKind
from .families import FAMILIES, FamilySpec, NormKind, NormSpec
from .finder import find_spec, spec_of
from .lm import LanguageModel, load_model
from .prompts import FORMATS, Prompt, PromptSet, builtin_prompts, load_prompts
from .readout import Readout
from .registry import (
    ENTRY_POINT_GROUP,
    families,
    register_family,
    spec_for,
    unregister_family,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "FAMILIES",
    "FORMATS",
    "Ablation",
    "AblationKind",
    "FamilySpec",
    "LanguageModel",
    "NormKind",
    "NormSpec",
    "Prompt",
    "PromptSet",
    "Readout",
    "builtin_prompts",
    "families",
    "find_spec",
    "load_model",
    "load_prompts",
    "register_family",
    "spec_for",
    "spec_of",
    "unregister_family",
]
