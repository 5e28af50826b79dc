"""How to generate: the engine's settings, their checks, and the one builder from flags and config.

Standard library only (no torch), so the config module and the command layer can use it without
loading the model stack. The engine re-exports `Settings` and `MODES`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .errors import UsageError

MODES = ("coconut", "soft", "off")
# `auto`, the default: the mode a trained model was trained for (`coconut`, or `off` for one
# fine-tuned at stage 0 only: `LatentSpec.trained_mode`), `off` for an untrained model.
# Training-free `soft` measured worse than `off` on Gemma 3 270M (ja->en BLEU 10.2 -> 2.7,
# JCommonsenseQA 20% -> 0%), so it is there when asked for, not by default.
AUTO = "auto"
# --quantize values (applied by quantize.py; here so the light config module can check them).
QUANTIZE = ("auto", "none", "int8", "int4")
DEFAULT_SOFT_THOUGHTS = 4
# CoT-decoding needs a handful of branches (the paper uses 10); each one is a full copy of the
# KV cache, so a typo such as --paths 100000 would exhaust memory before failing.
MAX_PATHS = 64
MAX_SEED = 2**64 - 1  # torch.Generator.manual_seed takes an unsigned 64-bit seed


@dataclass
class Settings:
    """How to generate. `num_thoughts=None` takes the model's latent description (or 4 in soft mode)."""

    mode: str = AUTO
    num_thoughts: int | None = None
    paths: int = 1
    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    # Nucleus of the next-token distribution mixed into a soft thought.
    soft_top_p: float = 0.95
    # Extra tokens that end an answer once it has begun, e.g. the newline after a base model's
    # few-shot answer (a newline before any text does not end it).
    stop_ids: tuple[int, ...] = ()
    # Logit lens on the thoughts: the top-N tokens of the LM head applied to each thought's input
    # (0: not computed).
    lens_top: int = 0

    def validate(self) -> None:
        if self.mode not in (AUTO, *MODES):
            raise UsageError(f"unknown mode {self.mode!r}", hint=f"use one of: {', '.join((AUTO, *MODES))}")
        if not 1 <= self.paths <= MAX_PATHS:
            raise UsageError(f"--paths {self.paths} is out of range: use 1 to {MAX_PATHS}")
        if self.max_new_tokens < 1:
            raise UsageError("--max-new-tokens must be at least 1")
        if self.num_thoughts is not None and self.num_thoughts < 0:
            raise UsageError("--thoughts must be 0 or more")
        # `not x >= 0` is also true for NaN, which every ordered comparison lets through.
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise UsageError(
                f"--temperature {self.temperature} is not valid: use 0 (greedy) or a finite positive number"
            )
        if not (math.isfinite(self.top_p) and 0 < self.top_p <= 1):
            raise UsageError(f"--top-p {self.top_p} is not valid: use a number in (0, 1]")
        if not (math.isfinite(self.soft_top_p) and 0 < self.soft_top_p <= 1):
            raise UsageError(f"--soft-top-p {self.soft_top_p} is not valid: use a number in (0, 1]")
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:
            raise UsageError(f"--seed {self.seed} is out of range: use 0 to 2**64-1 ({MAX_SEED})")


def for_model(settings: Settings, spec: object | None) -> Settings:
    """`settings` with `auto` resolved for a model (`spec`: its LatentSpec or None), and, when
    sampling without a seed, a seed drawn now, so every run records the seed it used."""
    from dataclasses import replace

    changes: dict = {}
    if settings.mode == AUTO:
        changes["mode"] = spec.trained_mode() if spec is not None else "off"
    if settings.seed is None and settings.temperature > 0:
        import secrets

        changes["seed"] = secrets.randbits(63)
    return replace(settings, **changes) if changes else settings


def build_settings(
    *,
    mode: str | None = None,
    thoughts: int | None = None,
    paths: int | None = None,
    max_new_tokens: int | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    model: str | None = None,
    **fixed: Any,
) -> Settings:
    """Settings from command-line values, the config file and environment filling what is None
    (built-in < file < the file's section for `model` < LGEMMA_* < flags); `fixed` sets fields that
    have no config key. Validated."""
    from . import config

    settings = Settings(
        mode=config.resolve("mode", mode, model),
        num_thoughts=config.resolve("thoughts", thoughts, model),
        paths=config.resolve("paths", paths, model),
        max_new_tokens=config.resolve("max_new_tokens", max_new_tokens, model),
        temperature=config.resolve("temperature", temperature, model),
        top_p=config.resolve("top_p", top_p, model),
        seed=seed,
        **fixed,
    )
    settings.validate()
    return settings
