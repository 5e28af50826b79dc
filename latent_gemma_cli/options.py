"""Option declarations shared by every command, so they are spelled the same way everywhere."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .completion import complete_mode, complete_model

ModelOpt = Annotated[
    Optional[str],
    typer.Option(
        "--model",
        "-m",
        autocompletion=complete_model,
        help="Catalogue name, hub id in the cache, or model directory. [default: config `model`]",
    ),
]
ModeOpt = Annotated[
    Optional[str],
    typer.Option(
        "--mode",
        autocompletion=complete_mode,
        help="Latent mode: auto | coconut | soft | off. [default: config `mode`, auto: the mode the model was trained for, off if untrained]",
    ),
]
ThoughtsOpt = Annotated[
    Optional[int],
    typer.Option("--thoughts", help="Number of continuous thoughts. [default: the model's own, 4 in soft mode]"),
]
PathsOpt = Annotated[
    Optional[int],
    typer.Option("--paths", "-k", help="Reasoning paths decoded in one batch (CoT-decoding). [default: 1]"),
]
MaxNewOpt = Annotated[
    Optional[int], typer.Option("--max-new-tokens", help="Answer length limit in tokens. [default: 256]")
]
TempOpt = Annotated[
    Optional[float], typer.Option("--temperature", help="Sampling temperature; 0 is greedy. [default: 0]")
]
TopPOpt = Annotated[Optional[float], typer.Option("--top-p", help="Nucleus sampling mass. [default: 1.0]")]
SeedOpt = Annotated[
    Optional[int], typer.Option("--seed", help="Random seed for sampling (shown in the trace and --json).")
]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="auto | cpu | cuda | mps. [default: auto]")]
DtypeOpt = Annotated[
    Optional[str], typer.Option("--dtype", help="auto | float32 | bfloat16 | float16. [default: auto, by device]")
]
QuantizeOpt = Annotated[
    Optional[str],
    typer.Option(
        "--quantize",
        help="auto | none | int8 | int4: CPU weight quantization of every linear layer and the LM head. "
        "[default: auto: int8 on the CPU in chat, translate, eval and serve for fp32 models with 50M+ linear "
        "parameters, and in ask from --max-new-tokens 64 on (below it, quantizing at load costs more than the "
        "answer saves)]",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object with everything, token ids included.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Nothing on stderr except errors.")]
TraceOpt = Annotated[bool, typer.Option("--trace/--no-trace", help="Show the reasoning trace on stderr.")]
SoftTopPOpt = Annotated[
    Optional[float],
    typer.Option(
        "--soft-top-p", help="Nucleus of the next-token distribution mixed into a soft thought. [default: 0.95]"
    ),
]
StreamOpt = Annotated[
    bool,
    typer.Option("--stream/--no-stream", help="Print the answer as it is generated (one path; never with --json)."),
]
ShowThoughtsOpt = Annotated[
    Optional[bool],
    typer.Option(
        "--show-thoughts/--no-show-thoughts",
        help="Show each continuous thought's top tokens under the LM head (trace and --json). [default: config `show_thoughts`, off]",
    ),
]
NoLogOpt = Annotated[bool, typer.Option("--no-log", help="Do not record this run in the run log (`lgemma logs`).")]
ServerOpt = Annotated[
    Optional[str],
    typer.Option(
        "--server",
        help="Run on this `lgemma serve` (e.g. http://127.0.0.1:8642) instead of loading the model here; "
        "never falls back to a local run. [default: config `server` / LGEMMA_SERVER, unset: local]",
    ),
]
KeepAliveOpt = Annotated[
    Optional[str],
    typer.Option(
        "--keep-alive",
        help="Answer through a background `lgemma serve` of this model, started by the first such run and kept "
        "loaded this long after each request (30s, 5m, 1h; 0: off), so later runs skip the load. "
        "[default: config `keep_alive` / LGEMMA_KEEP_ALIVE, 0]",
    ),
]

ColumnsOpt = Annotated[
    Optional[str],
    typer.Option(
        "--columns",
        help="Map the data's columns to lgemma's fields: KEY=COLUMN,... (e.g. question=prompt,answer=response).",
    ),
]
FilterLangOpt = Annotated[
    bool,
    typer.Option(
        "--filter-lang",
        help="Drop translation rows whose source or target is not in the language the row claims (counted in the report).",
    ),
]
DataOfflineOpt = Annotated[
    bool,
    typer.Option(
        "--offline",
        help="hf: datasets only from the local cache (`lgemma download --dataset`); also HF_HUB_OFFLINE=1.",
    ),
]
