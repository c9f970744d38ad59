"""The transformer adapter: Hugging Face decoder-only language models and the Hydra-effect
analyses of McGrath et al. (2023) on them (Sections 2 and 4 of the paper).
"""
