"""`python -m latent_gemma_cli` runs the lgemma command line."""

from .cli import entry

entry()
