"""`lgemma translate`: Japanese <-> English for text, files and pipes. Typer surface only."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
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
    TempOpt,
    ThoughtsOpt,
    TopPOpt,
    TraceOpt,
)


def output_targets(names: list[str], output: Path) -> list[Path]:
    """Where each input's translation goes with `-o OUTPUT`; refuses any plan that loses data.

    With several inputs (or an existing directory) each input goes to OUTPUT/<its file name>.
    An output that is one of the inputs, or that two inputs would both write, is a usage error
    naming the files, raised before anything is written.
    """
    from ..errors import UsageError

    to_dir = len(names) > 1 or output.is_dir()
    if len(names) > 1 and output.exists() and not output.is_dir():
        raise UsageError(f"{output}: with several input files, -o must be a directory")
    targets = [output / (Path(n).name if n != "-" else "stdin.txt") if to_dir else output for n in names]
    inputs = {os.path.realpath(n): n for n in names if n != "-"}
    clobbered = [f"{inputs[os.path.realpath(t)]}" for t in targets if os.path.realpath(t) in inputs]
    if clobbered:
        raise UsageError(
            f"-o {output} would overwrite the input file(s) {', '.join(clobbered)}",
            hint="write the translations to another file or directory",
        )
    seen: dict[str, str] = {}
    for name, target in zip(names, targets):
        key = os.path.realpath(target)
        if key in seen:
            raise UsageError(
                f"-o {output}: {seen[key]} and {name} would both be written to {target}",
                hint="translate them into different directories (one run per directory)",
            )
        seen[key] = name
    return targets


def _read_inputs(files: list[str]) -> list[tuple[str, str | None, Exception | None]]:
    """(name, text, error) per input; a bad input does not stop the others."""
    from ..errors import InputError
    from ..inputs import read_file, read_stream, stdin_is_piped

    if not files:
        if not stdin_is_piped():
            from ..errors import UsageError

            raise UsageError(
                "no input given",
                hint="pass files, `-` for stdin, or pipe text in: cat notes.txt | lgemma translate --to en",
            )
        files = ["-"]
    results = []
    for name in files:
        try:
            text = read_stream(sys.stdin.buffer) if name == "-" else read_file(name)
            if not text.strip():
                raise InputError(f"{'<stdin>' if name == '-' else name}: empty input")
            results.append((name, text, None))
        except InputError as exc:
            results.append((name, None, exc))
    return results


def translate(
    files: Annotated[
        Optional[list[str]], typer.Argument(help="Text files to translate; `-` or a pipe for stdin.")
    ] = None,
    to: Annotated[
        Optional[str],
        typer.Option(
            "--to",
            autocompletion=complete_language,
            help="Target language: ja | en. [default: the other of the source]",
        ),
    ] = None,
    source: Annotated[
        str,
        typer.Option(
            "--from",
            autocompletion=lambda incomplete: [c for c in ("auto", "ja", "en") if c.startswith(incomplete)],
            help="Source language: auto | ja | en.",
        ),
    ] = "auto",
    output: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", help="Output file (written atomically), or a directory for several files."),
    ] = None,
    headers: Annotated[
        bool, typer.Option("--headers", help="With several files on stdout, print a `==> FILE <==` header before each.")
    ] = False,
    max_chunk_tokens: Annotated[
        Optional[int],
        typer.Option(
            "--max-chunk-tokens",
            min=1,
            help="Largest chunk sent to the model, in tokens. [default: min(200, context/4)]",
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Chunks translated together in one batch.")
    ] = 8,
    model: ModelOpt = None,
    mode: ModeOpt = None,
    thoughts: ThoughtsOpt = None,
    paths: PathsOpt = None,
    max_new_tokens: MaxNewOpt = None,
    temperature: TempOpt = None,
    top_p: TopPOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    quantize: QuantizeOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    trace: TraceOpt = True,
    no_log: NoLogOpt = False,
    server: ServerOpt = None,
    keep_alive: KeepAliveOpt = None,
) -> None:
    """Translate Japanese <-> English, keeping paragraphs, blank lines, code blocks and URLs.

    Output streams line by line to stdout (or -o). Files that cannot be read are reported and
    skipped; the others are still translated, and the exit code is that of the first failure.
    """
    from .. import config
    from ..errors import InputError
    from ..files import atomic_write
    from ..render import Output
    from ..settings import build_settings, for_model
    from ._shared import keep_alive_server, load, refuse_local_flags

    out = Output(quiet=quiet, show_trace=trace and not json_out)
    inputs = _read_inputs(list(files or []))
    several = len(inputs) > 1
    targets = output_targets([n for n, _, _ in inputs], output) if output is not None else None
    for name, _, error in inputs:
        if error is not None:
            out.error(getattr(error, "message", str(error)))
    good = [(n, t) for n, t, e in inputs if e is None]
    failures = [(n, e) for n, _, e in inputs if e is not None]
    if good:
        settings = build_settings(
            model=config.resolve("model", model),
            mode=mode,
            thoughts=thoughts,
            paths=paths,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
        )
        # The translation length rule applies unless a length was asked for (flag, env or config).
        max_new_tokens_set = (
            max_new_tokens is not None
            or bool(os.environ.get("LGEMMA_MAX_NEW_TOKENS"))
            or "max_new_tokens" in config.read_file_values()
        )
        server = config.resolve("server", server)
        if server:
            refuse_local_flags({"--device": device, "--dtype": dtype, "--quantize": quantize}, keep_alive)
            loaded = None
            reference = config.resolve("model", model)
        elif kept := keep_alive_server(keep_alive, config.resolve("model", model), device, dtype, quantize, out):
            server, loaded, reference = kept[0].url, None, kept[2]
        else:
            from ..translation import plan, resolve_languages, with_length_rule

            loaded = load(model, device, dtype, quantize=quantize)
            settings = for_model(settings, loaded.spec)  # `auto` resolved, a seed drawn when sampling
            reference = loaded.reference
        good_targets = [t for t, (_, _, e) in zip(targets or [None] * len(inputs), inputs) if e is None]
        for number, ((name, text), target_path) in enumerate(zip(good, good_targets)):
            label = "<stdin>" if name == "-" else name
            if server:
                lines, src, tgt, detected, chunks, used = _remote(
                    server, reference, text, source, to, settings, max_new_tokens_set, max_chunk_tokens, batch_size
                )
            else:
                src, tgt, detected = resolve_languages(text, source, to)
                segments = plan(loaded, text, tgt, max_chunk_tokens)
                used = with_length_rule(settings, loaded.tokenizer, segments, max_new_tokens_set=max_new_tokens_set)
                chunks = sum(len(s.chunks) for s in segments)
                lines = _local_lines(loaded, segments, src, tgt, used, batch_size, label)
            if out.show_trace:
                where = f" on {server}" if server else ""
                out.info(
                    f"{label}: {src} -> {tgt} (detected {detected.code}, p={detected.probability:.2f}), {chunks} chunks{where}"
                )
            if output is None:
                if headers and several:
                    out.result(f"{'' if number == 0 else chr(10)}==> {label} <==")
                began = time.perf_counter()
                translated = _write_lines(
                    lines, chunks, out=out, label=label, sink=sys.stdout, json_out=json_out, to_stdout=True
                )
            else:
                began = time.perf_counter()
                with atomic_write(target_path) as handle:
                    translated = _write_lines(
                        lines, chunks, out=out, label=label, sink=handle, json_out=json_out, to_stdout=False
                    )
            if not no_log:
                from ..runlog import record

                warning = record(
                    "translate",
                    model=reference,
                    mode=used.mode,
                    input_text=text,
                    output=translated,
                    seed=used.seed,
                    seconds=time.perf_counter() - began,
                    settings={
                        "from": src,
                        "to": tgt,
                        "file": label,
                        "output": str(target_path) if target_path else None,
                    },
                )
                if warning:
                    out.warn(warning)
    if failures:
        names = ", ".join("<stdin>" if n == "-" else n for n, _ in failures)
        out.error(f"translated {len(good)} of {len(inputs)} inputs; failed: {names}")
        raise typer.Exit(failures[0][1].exit_code if isinstance(failures[0][1], InputError) else 1)


def _local_lines(loaded, segments, src, tgt, settings, batch_size: int, label: str):
    """(line text, chunk dicts) of each translated line, as the engine finishes them."""
    from ..translation import translate_segments

    for line in translate_segments(loaded, segments, src, tgt, settings, batch_size=batch_size):
        yield line.text, [c.to_dict(label) for c in line.chunks]


def _remote(server, model, text, source, to, settings, length_set: bool, max_chunk_tokens, batch_size: int):
    """The same translation on `lgemma serve` (its /v1/lgemma/translate runs translate's rules)."""
    from types import SimpleNamespace

    from .. import client

    body = {
        "model": model,
        "text": text,
        "from": source,
        "to": to,
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "seed": settings.seed,
        "n": settings.paths,
        "batch_size": batch_size,
        "lgemma": {"mode": settings.mode, "thoughts": settings.num_thoughts},
    }
    if length_set:
        body["max_tokens"] = settings.max_new_tokens
    if max_chunk_tokens:
        body["max_chunk_tokens"] = max_chunk_tokens
    data = client.translate(server, body)
    by_line: dict[int, list[dict]] = {}
    for chunk in data["chunks"]:
        by_line.setdefault(chunk["line"], []).append(chunk)
    lines = [(t, by_line.get(i, [])) for i, t in enumerate(data["lines"])]
    detected = SimpleNamespace(**data["detected"])
    used = SimpleNamespace(mode=data["mode"], seed=data["seed"])
    return lines, data["from"], data["to"], detected, len(data["chunks"]), used


def _write_lines(lines, total: int, *, out, label, sink, json_out: bool, to_stdout: bool) -> str:
    written: list[str] = []
    with out.progress() as progress:
        task = progress.add_task(f"translating {label}", total=total) if total > 3 else None
        for text, chunks in lines:
            written.append(text)
            if not (json_out and to_stdout):
                sink.write(text + "\n")
                sink.flush()
            for chunk in chunks:
                if json_out:
                    out.json({**chunk, "file": label})
                if out.show_trace:
                    got = chunk["output_language"]["code"]
                    ok = "ok" if chunk["language_ok"] else f"MISMATCH (got {got})"
                    out.info(
                        f"  line {chunk['line'] + 1}.{chunk['chunk']}: source {chunk['source_language']['code']} "
                        f"p={chunk['source_language']['probability']:.2f}, output {ok}, confidence {chunk['confidence']:.3f}, {chunk['seconds']:.2f}s"
                    )
                if task is not None:
                    progress.advance(task)
    return "\n".join(written)
