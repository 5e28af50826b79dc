"""`lgemma ask`: answer a question with latent reasoning. Typer surface only."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..completion import complete_language
from ..options import (
    DeviceOpt,
    DtypeOpt,
    JsonOpt,
    MaxNewOpt,
    ModelOpt,
    ModeOpt,
    PathsOpt,
    QuietOpt,
    SeedOpt,
    SoftTopPOpt,
    StreamOpt,
    TempOpt,
    ThoughtsOpt,
    TopPOpt,
    TraceOpt,
)


def ask(
    question: Annotated[
        Optional[str],
        typer.Argument(
            help="The question; `-` reads it from stdin. Piped stdin plus a question: stdin is the context."
        ),
    ] = None,
    model: ModelOpt = None,
    mode: ModeOpt = None,
    thoughts: ThoughtsOpt = None,
    paths: PathsOpt = None,
    max_new_tokens: MaxNewOpt = None,
    temperature: TempOpt = None,
    top_p: TopPOpt = None,
    seed: SeedOpt = None,
    lang: Annotated[
        Optional[str],
        typer.Option(
            "--lang", autocompletion=complete_language, help="Answer language (ja | en). [default: the question's]"
        ),
    ] = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    allow_pickle: Annotated[
        bool, typer.Option("--allow-pickle", help="Allow pickle (.bin) weights from a source you trust.")
    ] = False,
    soft_top_p: SoftTopPOpt = None,
    stream: StreamOpt = True,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    trace: TraceOpt = True,
) -> None:
    """Answer a question with latent reasoning. The answer goes to stdout, the trace to stderr."""
    from ..ask import ask as run_ask
    from ..errors import UsageError
    from ..inputs import question_from
    from ..prompting import compose_question
    from ..render import Output, TokenStream, ask_trace_rows
    from ..settings import build_settings
    from ._shared import load

    out = Output(quiet=quiet, show_trace=trace and not json_out)
    if lang is not None and lang not in ("ja", "en"):
        raise UsageError(f"unknown answer language {lang!r}", hint="use --lang ja or --lang en")
    instruction, context = question_from(question)
    text = compose_question(instruction, context)
    settings = build_settings(
        mode=mode,
        thoughts=thoughts,
        paths=paths,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        **({"soft_top_p": soft_top_p} if soft_top_p is not None else {}),
    )
    loaded = load(model, device, dtype, allow_pickle=allow_pickle)

    # One path streams its tokens to stdout as they are decoded; several paths print the chosen
    # answer when it is decided; --json never streams.
    streaming = stream and not json_out and settings.paths == 1
    printer = TokenStream(loaded.tokenizer) if streaming else None
    result = run_ask(loaded, text, settings, answer_language=lang, on_token=printer)
    data = result.to_dict()
    if json_out:
        out.json(data)
        return
    if printer is not None:
        printer.finish(result.answer)
    out.trace_rows("lgemma ask", ask_trace_rows(data), data["paths"], data["chosen_path"])
    if printer is None:
        out.result(result.answer)
