"""lgemma: Gemma with continuous latent reasoning (COCONUT) for Japanese-English QA and translation.

Importing the package is cheap; the model API below is loaded on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["LatentReasoningGemmaForCausalLM", "load_model", "Settings", "generate", "__version__"]


def __getattr__(name: str):
    if name == "LatentReasoningGemmaForCausalLM":
        from .compat import LatentReasoningGemmaForCausalLM

        return LatentReasoningGemmaForCausalLM
    if name == "load_model":
        from .loading import load_model

        return load_model
    if name in ("Settings", "generate"):
        from . import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'latent_gemma_cli' has no attribute {name!r}")
