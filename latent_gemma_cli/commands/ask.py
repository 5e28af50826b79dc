"""`lgemma ask`: answer a question with latent reasoning. Typer surface only."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..completion import complete_language
from ..options import (
    DeviceOpt,
    DtypeOpt,
    JsonOpt,
    KeepAliveOpt,
    MaxNewOpt,
    ModelOpt,
    ModeOpt,
    NoLogOpt,
    PathsOpt,
    QuantizeOpt,
    QuietOpt,
    SeedOpt,
    ServerOpt,
    ShowThoughtsOpt,
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
    quantize: QuantizeOpt = None,
    allow_pickle: Annotated[
        bool, typer.Option("--allow-pickle", help="Allow pickle (.bin) weights from a source you trust.")
    ] = False,
    soft_top_p: SoftTopPOpt = None,
    show_thoughts: ShowThoughtsOpt = None,
    replay: Annotated[
        Optional[str],
        typer.Option(
            "--replay", help="Run again what an `ask --json` output recorded (question, model, every setting, seed)."
        ),
    ] = None,
    stream: StreamOpt = True,
    server: ServerOpt = None,
    keep_alive: KeepAliveOpt = None,
    no_log: NoLogOpt = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    trace: TraceOpt = True,
) -> None:
    """Answer a question with latent reasoning. The answer goes to stdout, the trace to stderr."""
    from .. import config
    from ..errors import UsageError
    from ..inputs import question_from
    from ..prompting import compose_question
    from ..render import Output, TokenStream, ask_trace_rows
    from ..settings import build_settings
    from ._shared import keep_alive_server, load, refuse_local_flags

    out = Output(quiet=quiet, show_trace=trace and not json_out)
    if lang is not None and lang not in ("ja", "en"):
        raise UsageError(f"unknown answer language {lang!r}", hint="use --lang ja or --lang en")
    rec_weights = None
    if replay is not None:
        if question is not None:
            raise UsageError("--replay takes the question from the recorded run; give no question")
        text, settings, rec_model, rec_device, rec_dtype, rec_lang, rec_quantize, rec_weights = _recorded(replay)
        # The record fills what the command line leaves open; flags given now win.
        model, device, dtype, lang = model or rec_model, device or rec_device, dtype or rec_dtype, lang or rec_lang
        quantize = quantize or rec_quantize
    else:
        instruction, context = question_from(question)
        text = compose_question(instruction, context)
        model = config.resolve("model", model)  # once: its config section feeds the settings
        settings = build_settings(
            model=model,
            mode=mode,
            thoughts=thoughts,
            paths=paths,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
            lens_top=5 if config.resolve("show_thoughts", show_thoughts, model) else 0,
            **({"soft_top_p": soft_top_p} if soft_top_p is not None else {}),
        )
    server = config.resolve("server", server)
    if server:
        local_only = {
            "--device": device,
            "--dtype": dtype,
            "--quantize": quantize,
            "--allow-pickle": allow_pickle or None,
        }
        refuse_local_flags(local_only, keep_alive)
        return _ask_server(server, out, text, model, settings, lang, stream, json_out, no_log)
    kept = keep_alive_server(keep_alive, model, device, dtype, quantize, out, allow_pickle=allow_pickle)
    if kept is not None:
        endpoint, seconds, served = kept  # `served`: a directory made absolute, as the server was given it
        extra = {"keep_alive_s": seconds, "started": endpoint.started}
        return _ask_server(endpoint.url, out, text, served, settings, lang, stream, json_out, no_log, extra)
    from ..ask import ask as run_ask
    from ..ask import model_identity

    loaded = load(
        model, device, dtype, allow_pickle=allow_pickle, quantize=quantize, answer_tokens=settings.max_new_tokens
    )
    if replay is not None and rec_weights:
        from ..fingerprint import weights_fingerprint

        if weights_fingerprint(loaded.path) != rec_weights:
            out.warn("the model's weights differ from the recorded run's (weights_sha256): the answer may differ")

    # One path streams its tokens to stdout as they are decoded; several paths print the chosen
    # answer when it is decided; --json never streams.
    streaming = stream and not json_out and settings.paths == 1
    printer = TokenStream(loaded.tokenizer) if streaming else None
    result = run_ask(loaded, text, settings, answer_language=lang, on_token=printer)
    data = result.to_dict()
    data["server"] = None  # where it ran: here (an `ask --server` run names the server)
    if json_out:
        model_identity(data, loaded)
    if not no_log:
        _log(out, data)
    if json_out:
        out.json(data)
        return
    if printer is not None:
        printer.finish(result.answer)
    out.trace_rows("lgemma ask", ask_trace_rows(data), data["paths"], data["chosen_path"])
    if printer is None:
        out.result(result.answer)


def _ask_server(
    server: str, out, text: str, model: str, settings, lang, stream: bool, json_out: bool, no_log: bool, extra=None
):
    """`ask` through `lgemma serve`: the same request fields, the same output (stdout, --json,
    trace), with the server named in the trace and the JSON (`extra`: keep-alive facts)."""
    import sys

    from .. import client
    from ..render import ask_trace_rows

    body = {
        "model": model,
        "messages": [{"role": "user", "content": text}],
        "max_tokens": settings.max_new_tokens,
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "seed": settings.seed,
        "n": settings.paths,
        "lgemma": {
            "mode": settings.mode,
            "thoughts": settings.num_thoughts,
            "soft_top_p": settings.soft_top_p,
            "lens": settings.lens_top,
            "lang": lang,
        },
    }
    streaming = stream and not json_out and settings.paths == 1
    printed: list[str] = []

    def show(delta: str) -> None:
        sys.stdout.write(delta)
        sys.stdout.flush()
        printed.append(delta)

    data = client.chat(server, body, on_delta=show if streaming else None)
    data["server"] = {"url": server, **(data.get("server") or {}), **(extra or {})}
    if not no_log:
        _log(out, data)
    if json_out:
        out.json(data)
        return
    if streaming:  # the rest of the answer, as TokenStream.finish does locally
        done = "".join(printed)
        answer = data["answer"]
        sys.stdout.write((answer[len(done) :] if answer.startswith(done) else "\n" + answer) + "\n")
        sys.stdout.flush()
    out.trace_rows("lgemma ask", ask_trace_rows(data), data["paths"], data["chosen_path"])
    if not streaming:
        out.result(data["answer"])


def _recorded(path: str):
    """(question, settings, model, device, dtype, answer language, quantization) of an `ask --json`
    record (records made before quantization existed ran unquantized)."""
    import json
    from pathlib import Path

    from ..errors import InputError
    from ..inputs import read_file
    from ..settings import Settings

    try:
        data = json.loads(read_file(path))
        s = data["settings"]
        settings = Settings(
            mode=s["mode"],
            num_thoughts=s["num_thoughts"],
            paths=s["paths"],
            max_new_tokens=s["max_new_tokens"],
            temperature=s["temperature"],
            top_p=s["top_p"],
            soft_top_p=s["soft_top_p"],
            seed=s["seed"],
            lens_top=s.get("lens_top", 0),
        )
        settings.validate()
        model = data["model"]["path"]
        if not Path(model).is_dir():
            model = data["model"]["reference"]
        return (
            data["question"],
            settings,
            model,
            data["device"]["device"],
            data["device"]["dtype"],
            s.get("answer_language"),
            data["device"].get("quantize", "none"),
            data["model"].get("weights_sha256"),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not an `lgemma ask --json` record ({type(exc).__name__}: {exc})") from None


def _log(out, data: dict) -> None:
    from ..runlog import record

    warning = record(
        "ask",
        model=data["model"]["reference"],
        mode=data["mode"],
        input_text=data["question"],
        output=data["answer"],
        seed=data["seed"],
        seconds=data["timings"]["total_s"],
        settings=data["settings"],
        thoughts=data.get("thoughts"),
    )
    if warning:
        out.warn(warning)
