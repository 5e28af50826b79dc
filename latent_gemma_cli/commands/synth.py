"""`lgemma synth`: write ProsQA-style multi-hop problems as JSON Lines (training format)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def synth(
    n: Annotated[int, typer.Option("--n", min=1, help="Number of problems (per language with --lang both).")] = 100,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives the same problems.")] = 0,
    lang: Annotated[str, typer.Option("--lang", help="en | ja | both (the same graphs in both languages).")] = "en",
    hops: Annotated[str, typer.Option("--hops", help="Reasoning steps per problem: N or MIN-MAX.")] = "3-5",
    distractors: Annotated[
        int, typer.Option("--distractors", min=0, help="Random distractor facts on the unreachable side.")
    ] = 8,
    branches: Annotated[
        int, typer.Option("--branches", min=0, help="Dead-end facts hanging off the gold chain (chain, prosqa).")
    ] = 3,
    style: Annotated[
        str,
        typer.Option(
            "--style",
            help="chain | prosqa (graphs shaped like ProsQA's: a search) | taxonomy (one parent per concept: a walk).",
        ),
    ] = "chain",
    steps: Annotated[
        str,
        typer.Option(
            "--steps",
            help="facts (each step states the fact it uses) | concepts (each step is the concept it reaches, one word).",
        ),
    ] = "facts",
    vocab: Annotated[
        str,
        typer.Option(
            "--vocab",
            help="made-up (concept names like 'zokpus', 2-3 Gemma tokens) | words (everyday nouns, one Gemma token each).",
        ),
    ] = "made-up",
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
) -> None:
    """Generate multi-hop "Is Tom a A or B?" problems with their reasoning steps and answers."""
    from ..errors import UsageError
    from ..synthetic import STEP_FORMATS, STYLES, VOCABS, generate

    if style not in STYLES:
        raise UsageError(f"unknown style {style!r}", hint=f"use --style {', '.join(STYLES)}")
    if steps not in STEP_FORMATS:
        raise UsageError(f"unknown step format {steps!r}", hint=f"use --steps {', '.join(STEP_FORMATS)}")
    if vocab not in VOCABS:
        raise UsageError(f"unknown vocabulary {vocab!r}", hint=f"use --vocab {', '.join(VOCABS)}")
    if lang not in ("en", "ja", "both"):
        raise UsageError(f"unknown language {lang!r}", hint="use --lang en, ja or both")
    try:
        low, _, high = hops.partition("-")
        span = (int(low), int(high or low))
    except ValueError:
        raise UsageError(f"bad --hops {hops!r}", hint="use N or MIN-MAX, e.g. 3-5") from None
    if not 1 <= span[0] <= span[1]:
        raise UsageError(f"bad --hops {hops!r}: need 1 <= MIN <= MAX")
    lines = (
        p.to_json() + "\n"
        for p in generate(n, seed, lang, span, distractors, branches, style=style, steps=steps, vocab=vocab)
    )
    if output is None:
        import sys

        for line in lines:
            sys.stdout.write(line)
        return
    from ..files import write_text_atomic

    write_text_atomic(output, "".join(lines))
