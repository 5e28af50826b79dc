"""`lgemma eval`: latent modes side by side on the same held-out rows, or a predictions file scored.

Only typer, typing and the standard library at top level: the model stack, sacrebleu and
rapidfuzz are imported inside the command so `lgemma --help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..completion import complete_model
from ..options import (
    ColumnsOpt,
    DataOfflineOpt,
    DeviceOpt,
    DtypeOpt,
    FilterLangOpt,
    MaxNewOpt,
    PathsOpt,
    QuantizeOpt,
    QuietOpt,
    ThoughtsOpt,
)

DEFAULT_MODES = "off,soft,coconut"


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def summary_rows(report: dict) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """Column names (modes) and metric rows of the side-by-side table."""
    modes = report["modes"]
    res = report["results"]

    def metric(name: str, digits: int = 1, sub: str | None = None) -> list[str]:
        cells = []
        for m in modes:
            r = res[m]
            if r["status"] != "ok":
                cells.append("skipped")
                continue
            v = r["metrics"].get(name)
            if sub is not None:
                v = v.get(sub) if isinstance(v, dict) else None
            cells.append(_fmt(v, digits))
        return cells

    first = next((res[m]["metrics"] for m in modes if res[m]["status"] == "ok"), {}) or {}
    sem = (first.get("semantic") or {}).get("name", "semantic")
    rows = [
        ("accuracy (exact match, %)", metric("accuracy")),
        ("fuzzy (rapidfuzz ratio)", metric("fuzzy")),
        (f"BLEU ({first.get('bleu_tokenize', '')})", metric("bleu")),
        ("chrF", metric("chrf")),
        (f"{sem} (0-100)", metric("semantic", 1, "value")),
        ("tokens / example", metric("tokens_per_example")),
        ("seconds / example", metric("seconds_per_example", 3)),
        ("confidence AUROC", metric("confidence_auroc", 3)),
        ("errors", metric("errors")),
    ]
    if any(res[m]["status"] == "ok" and res[m]["metrics"].get("paths") for m in modes):
        rows += [
            ("most confident path (%)", metric("paths", 1, "accuracy_most_confident")),
            ("first path (%)", metric("paths", 1, "accuracy_first_path")),
            ("any path (%)", metric("paths", 1, "accuracy_any_path")),
            ("AUROC, all paths", metric("paths", 3, "confidence_auroc_all_paths")),
        ]
    return modes, rows


def show_summary(out: Any, report: dict) -> None:
    """The side-by-side table on stderr: Rich on a terminal, plain text otherwise."""
    if out.quiet:
        return
    modes, rows = summary_rows(report)
    data = report["data"]
    source = data["path"] if data["path"].startswith("hf:") else Path(data["path"]).name
    title = f"lgemma eval: {source} ({data['rows']} rows, split {data['split'] or 'unknown'}, task {data['task']})"
    out.table(title, ["metric", *modes], [[name, *cells] for name, cells in rows])
    for m in modes:
        r = report["results"][m]
        if r["status"] == "ok" and r["metrics"].get("semantic", {}).get("substitute_for"):
            sem = r["metrics"]["semantic"]
            out.info(
                f"note: semantic similarity is {sem['name']}, a substitute for {sem['substitute_for']} ({sem['reason']})"
            )
            break


def eval_command(
    data: Annotated[
        str,
        typer.Option(
            "--data",
            help="Evaluation file (jsonl, coconut, instruction, pairs, jcommonsenseqa, jsquad, squad; detected), or a hub dataset hf:OWNER/NAME[/CONFIG][@REVISION][:SPLIT].",
        ),
    ],
    model: Annotated[
        Optional[str],
        typer.Option(
            "--model",
            "-m",
            autocompletion=complete_model,
            help="Model to run (catalogue name, cached hub id or directory). With --predictions: only checked for training-data overlap.",
        ),
    ] = None,
    predictions: Annotated[
        Optional[Path],
        typer.Option(
            "--predictions",
            help='Score this file instead of running a model: JSON Lines {"id"?, "prediction"} or plain text, one per data row in order.',
        ),
    ] = None,
    task: Annotated[str, typer.Option("--task", help="auto (from the data) | qa | choice | translate.")] = "auto",
    modes: Annotated[
        str, typer.Option("--modes", help="Comma-separated latent modes to compare on the same rows.")
    ] = DEFAULT_MODES,
    fmt: Annotated[str, typer.Option("--format", help="Data format, or auto.")] = "auto",
    direction: Annotated[str, typer.Option("--direction", help="Pairs data: ja-en or en-ja.")] = "ja-en",
    paths: PathsOpt = None,
    thoughts: ThoughtsOpt = None,
    max_new_tokens: MaxNewOpt = None,
    limit: Annotated[Optional[int], typer.Option("--limit", help="Evaluate the first N rows only.")] = None,
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size",
            min=1,
            help="Rows generated together in one left-padded batch (greedy: the same answers as one at a time).",
        ),
    ] = 8,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (reported).")] = 0,
    bertscore_model: Annotated[
        Optional[Path],
        typer.Option(
            "--bertscore-model",
            help="Local model directory for BERTScore F1 (needs bert_score); otherwise semantic similarity is the rescaled multilingual-e5-small cosine.",
        ),
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Stop at the first bad data record instead of skipping it.")
    ] = False,
    columns: ColumnsOpt = None,
    filter_lang: FilterLangOpt = False,
    offline: DataOfflineOpt = False,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    quantize: QuantizeOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object on stdout.")] = False,
    out_file: Annotated[
        Optional[Path], typer.Option("--out", help="Also write the JSON report to this file (atomically).")
    ] = None,
    per_example: Annotated[
        bool, typer.Option("--per-example", help="Include every example's prediction and score in the report.")
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Measure modes side by side on held-out rows: exact match, fuzzy, BLEU, chrF, similarity, tokens, time.

    Predictions files (--predictions): JSON Lines with one {"id"?, "prediction"} object per data
    row, or plain text with one prediction per line, in the data's order. The report warns when
    the data are the model's training data (train_fingerprints.json in the model directory).
    """
    from .. import evaluation, tasks
    from ..contamination import check_contamination
    from ..datasets import DataOptions, parse_columns, read_dataset, read_predictions
    from ..errors import UsageError
    from ..hub_data import is_hub_ref
    from ..render import Output

    out = Output(quiet=quiet)
    if limit is not None and limit < 1:
        raise UsageError("--limit must be at least 1")
    if out_file is not None and out_file.is_dir():
        raise UsageError(
            f"--out {out_file} is a directory; it takes the report's file name",
            hint=f"for example --out {out_file / 'report.json'}",
        )
    if direction not in ("ja-en", "en-ja"):
        raise UsageError(f"unknown direction {direction!r}", hint="use --direction ja-en or en-ja")
    if predictions is None and model is None:
        from .. import config

        model = config.resolve("model", None)
    mode_list = [m.strip() for m in modes.split(",") if m.strip()]
    if predictions is None and not mode_list:
        raise UsageError("--modes is empty", hint="for example --modes off,soft")

    options = DataOptions(columns=parse_columns(columns), filter_lang=filter_lang, offline=offline, split="test")
    # Stream only what is scored from a hub dataset; a local file is read whole (its hash is the file's).
    dataset = read_dataset(
        data, fmt=fmt, direction=direction, strict=strict, limit=limit if is_hub_ref(data) else None, options=options
    )
    for problem in dataset.problems[:5]:
        out.warn(f"skipped bad record: {problem}")
    if len(dataset.problems) > 5:
        out.warn(f"... {len(dataset.problems) - 5} more bad records skipped (see the report)")
    if dataset.filtered:
        out.info(f"--filter-lang dropped {dataset.filtered} rows whose languages do not match their instruction")
    examples = dataset.examples[:limit] if limit else list(dataset.examples)
    if not examples:
        raise UsageError(f"{dataset.path}: no usable rows")
    task_name = tasks.resolve_task(examples, task)
    bert = str(bertscore_model) if bertscore_model else None

    loaded = None
    model_dir = None
    if predictions is not None:
        if model is not None:
            from ..loading import resolve_model_path

            model_dir = resolve_model_path(model)
        contamination = check_contamination(model_dir, dataset, examples)
        _warn_contamination(out, contamination)
        preds = read_predictions(predictions, examples, limit)
        results = [evaluation.score_predictions(examples, preds, task_name, bert)]
        settings: dict[str, Any] = {"modes": ["predictions"], "limit": limit, "seed": None, "direction": direction}
        info = evaluation.model_info(model_dir=model_dir, reference=model) if model_dir else None
    else:
        from .. import config
        from ._shared import load

        paths_n = config.resolve("paths", paths)
        max_new = config.resolve("max_new_tokens", max_new_tokens)
        thoughts_n = config.resolve("thoughts", thoughts)
        loaded = load(model, device, dtype, quantize=quantize)
        contamination = check_contamination(loaded.path, dataset, examples)
        _warn_contamination(out, contamination)
        with out.progress() as bar:
            tasks: dict[str, Any] = {}

            def progress(mode: str, done: int, total: int) -> None:
                if mode not in tasks:
                    tasks[mode] = bar.add_task(f"eval {mode}", total=total)
                bar.update(tasks[mode], completed=done)

            results = evaluation.evaluate_model(
                loaded,
                examples,
                mode_list,
                task_name,
                num_thoughts=thoughts_n,
                paths=paths_n,
                max_new_tokens=max_new,
                seed=seed,
                bertscore_model=bert,
                progress=progress,
                batch_size=batch_size,
            )
        for r in results:
            if r.status == "skipped":
                out.warn(f"mode {r.mode} skipped: {r.reason}")
        settings = {
            "modes": mode_list,
            "thoughts": thoughts_n,
            "paths": paths_n,
            "max_new_tokens": max_new,
            "seed": seed,
            "limit": limit,
            "direction": direction,
            "temperature": 0.0,
            "batch_size": batch_size,
        }
        info = evaluation.model_info(loaded=loaded)

    report = evaluation.build_report(
        dataset,
        examples,
        task_name,
        results,
        contamination,
        settings,
        model=info,
        predictions_path=str(predictions) if predictions else None,
        per_example=per_example,
    )
    show_summary(out, report)
    if out_file is not None:
        from ..files import write_text_atomic

        write_text_atomic(out_file, json.dumps(report, ensure_ascii=False, indent=2) + "\n")
        out.info(f"report written to {out_file}")
    if json_out:
        out.json(report)


def _warn_contamination(out: Any, contamination: Any) -> None:
    # Loud on purpose, and even with --quiet: a score on training rows is not a result.
    if contamination.warning:
        out.err.print("warning: " + contamination.warning, markup=False, style="bold red" if out.fancy else None)
    if contamination.error:
        out.warn(f"training-data check incomplete: {contamination.error}")
