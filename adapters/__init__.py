"""Model-family adapters for scmnet, installed as ``scmnet.adapters``.

The generic core (``scmnet``) knows nothing about any model family; adapters hold that
knowledge. :mod:`scmnet.adapters.transformer` knows Hugging Face decoder-only language models
and runs the Hydra-effect analyses on them.
"""
