"""Evaluation: run latent modes side by side on the same rows, or score a predictions file.

Nothing here prints; results are dataclasses and `build_report` turns them into the JSON report.
The prompt of each row and how its answer is graded belong to `tasks` (shared with training
and its validation): qa scores the answer after the last "### ", translate the cleaned
translation, choice the option the answer names (accuracy = chosen == label; the text metrics
compare the chosen option's text, or the raw answer when none matched, with the right one).
Whether the rows are training rows is `contamination`'s job.

Several paths (`paths` > 1): every path is scored; the report gives the accuracy of the most
confident path (the answer), of the first path (top-1 first token, i.e. greedy), of any path
(an oracle bound), and the AUROC of path confidence against correctness.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import metrics, tasks

# The contamination contract and the predictions reader have their own owners; re-exported.
from .contamination import FINGERPRINTS_FILE, Contamination, check_contamination  # noqa: F401
from .datasets import Dataset, Example, read_predictions, split_name  # noqa: F401
from .errors import InputError, LgemmaError, NotLatentTrainedError, UsageError

REPORT_VERSION = 1

Progress = Callable[[str, int, int], None]  # (mode, rows done, rows in total)


@dataclass
class PathRecord:
    text: str
    prediction: str
    confidence: float
    num_tokens: int
    correct: bool


@dataclass
class Record:
    """One example scored in one mode."""

    index: int
    id: str | None
    reference: str
    prediction: str  # what was scored (extracted answer, cleaned translation, chosen option text)
    raw: str  # what the model (or the predictions file) said
    correct: bool
    fuzzy: float
    option: int | None = None
    num_tokens: int | None = None
    seconds: float | None = None
    confidence: float | None = None
    paths: list[PathRecord] = field(default_factory=list)
    error: str | None = None


@dataclass
class ModeResult:
    mode: str
    status: str  # "ok" | "skipped"
    reason: str | None = None
    records: list[Record] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    num_thoughts: int | None = None


# --- scoring ---------------------------------------------------------------------------------


def compute_metrics(
    examples: list[Example], records: list[Record], task: str, bertscore_model: str | None = None
) -> dict[str, Any]:
    """Corpus metrics of one mode over its records (which follow `examples`)."""
    n = len(records)
    preds = [r.prediction for r in records]
    refs = [tasks.references(ex)[0] for ex in examples]
    groups: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        groups.setdefault(tasks.target_language(ex, task), []).append(i)
    by_lang = {
        lang: {
            "rows": len(idx),
            "bleu": metrics.bleu([preds[i] for i in idx], [refs[i] for i in idx], lang),
            "bleu_tokenize": metrics.bleu_tokenizer(lang),
            "chrf": metrics.chrf([preds[i] for i in idx], [refs[i] for i in idx]),
        }
        for lang, idx in sorted(groups.items())
    }
    single = next(iter(by_lang.values())) if len(by_lang) == 1 else None
    target = next(iter(by_lang)) if len(by_lang) == 1 else None
    timed = [r for r in records if r.seconds is not None]
    out: dict[str, Any] = {
        "rows": n,
        "accuracy": 100.0 * sum(r.correct for r in records) / n if n else None,
        "correct": sum(r.correct for r in records),
        "fuzzy": sum(r.fuzzy for r in records) / n if n else None,
        "bleu": single["bleu"] if single else None,
        "bleu_tokenize": single["bleu_tokenize"] if single else "per target language",
        "chrf": single["chrf"] if single else metrics.chrf(preds, refs) if n else None,
        "target_lang": target,
        "by_target_lang": by_lang if len(by_lang) > 1 else None,
        "semantic": metrics.semantic_similarity(preds, refs, bertscore_model, target).to_dict() if n else None,
        # The substitute reported before the semantic metric, kept for comparison across reports.
        "char_ngram_cosine": metrics.char_ngram_mean(preds, refs),
        "tokens_per_example": sum(r.num_tokens or 0 for r in timed) / len(timed) if timed else None,
        "seconds_per_example": sum(r.seconds for r in timed) / len(timed) if timed else None,
        "errors": sum(1 for r in records if r.error),
        "confidence_auroc": None,
        "paths": None,
    }
    if task == "choice":
        out["unmatched_choices"] = sum(1 for r in records if r.option is None)
    confident = [r for r in records if r.confidence is not None]
    if confident:
        out["confidence_auroc"] = metrics.auroc([r.confidence for r in confident], [r.correct for r in confident])
    multi = [r for r in records if len(r.paths) > 1]
    if multi:
        all_paths = [p for r in multi for p in r.paths]
        out["paths"] = {
            "k": max(len(r.paths) for r in multi),
            "accuracy_most_confident": 100.0 * sum(r.correct for r in multi) / len(multi),
            "accuracy_first_path": 100.0 * sum(r.paths[0].correct for r in multi) / len(multi),
            "accuracy_any_path": 100.0 * sum(any(p.correct for p in r.paths) for r in multi) / len(multi),
            "confidence_auroc_all_paths": metrics.auroc(
                [p.confidence for p in all_paths], [p.correct for p in all_paths]
            ),
            "tokens_all_paths_per_example": sum(p.num_tokens for p in all_paths) / len(multi),
        }
    return out


def score_predictions(
    examples: list[Example],
    predictions: list[str],
    task: str,
    bertscore_model: str | None = None,
    mode: str = "predictions",
) -> ModeResult:
    """Score given predictions (one per example, same order) without a model."""
    if len(predictions) != len(examples):
        raise InputError(f"{len(predictions)} predictions for {len(examples)} examples")
    records = []
    for i, (ex, raw) in enumerate(zip(examples, predictions)):
        graded = tasks.score(ex, raw, task)
        records.append(
            Record(
                index=i,
                id=ex.id,
                reference=ex.answer,
                prediction=graded.prediction,
                raw=raw,
                correct=graded.correct,
                fuzzy=graded.fuzzy,
                option=graded.option,
            )
        )
    return ModeResult(
        mode=mode, status="ok", records=records, metrics=compute_metrics(examples, records, task, bertscore_model)
    )


# --- running a model ---------------------------------------------------------------------------


def mode_unavailable(mode: str, loaded: Any) -> str | None:
    """Why `mode` cannot run on this model, or None."""
    if mode == "coconut" and loaded.spec is None:
        return "the model has no latent description (lgemma_latent.json): not trained for coconut mode"
    return None


def run_mode(
    loaded: Any,
    examples: list[Example],
    mode: str,
    task: str,
    *,
    num_thoughts: int | None = None,
    paths: int = 1,
    max_new_tokens: int = 256,
    seed: int | None = 0,
    bertscore_model: str | None = None,
    progress: Progress | None = None,
    batch_size: int = 1,
) -> ModeResult:
    """Generate and score every example in one mode, `batch_size` examples per engine call.

    Batches are left-padded and greedy, so a batched run gives the same answers as one example
    at a time (a test checks it); a row's seconds are its batch's time divided by the batch size.
    A batch that fails (e.g. one prompt too long for the context) is rerun one row at a time, so
    one bad row is recorded as an error without losing the others.
    """
    from . import engine

    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    settings = engine.Settings(
        mode=mode,
        num_thoughts=num_thoughts,
        paths=paths,
        max_new_tokens=max_new_tokens,
        seed=seed,
        stop_ids=tasks.stop_ids(loaded.tokenizer, task),
    )
    settings.validate()
    tok = loaded.tokenizer
    from .translation import prompt_style

    style = prompt_style(loaded)  # a fine-tuned translator's own prompt
    records: list[Record] = []
    thoughts = None

    def record(i: int, ex: Example, gen: Any, seconds: float) -> Record:
        scored = []
        for path in gen.paths:
            text = tasks.clean_output(ex, path.text, tok, task)
            scored.append((text, tasks.score(ex, text, task), path))
        text, graded, chosen = scored[gen.chosen]
        return Record(
            index=i,
            id=ex.id,
            reference=ex.answer,
            prediction=graded.prediction,
            raw=text,
            correct=graded.correct,
            fuzzy=graded.fuzzy,
            option=graded.option,
            num_tokens=chosen.num_tokens,
            seconds=seconds,
            confidence=chosen.confidence,
            paths=[
                PathRecord(
                    text=t, prediction=g.prediction, confidence=p.confidence, num_tokens=p.num_tokens, correct=g.correct
                )
                for t, g, p in scored
            ],
        )

    def failed(i: int, ex: Example, exc: LgemmaError, seconds: float) -> Record:
        return Record(
            index=i,
            id=ex.id,
            reference=ex.answer,
            prediction="",
            raw="",
            correct=False,
            fuzzy=metrics.fuzzy("", tasks.references(ex)),
            seconds=seconds,
            num_tokens=0,
            error=exc.message,
        )

    for start_row in range(0, len(examples), batch_size):
        rows = list(enumerate(examples))[start_row : start_row + batch_size]
        prompts = [tasks.prompt_ids(tok, ex, task, style) for _, ex in rows]
        began = time.perf_counter()
        try:
            gens = loaded.engine.generate_batch(prompts, settings)
        except NotLatentTrainedError:
            raise
        except LgemmaError as exc:
            if len(rows) == 1:
                records.append(failed(*rows[0], exc, time.perf_counter() - began))
            else:  # find the row that fails; keep the others
                for (i, ex), ids in zip(rows, prompts):
                    t0 = time.perf_counter()
                    try:
                        gen = loaded.engine.generate(ids, settings)
                    except NotLatentTrainedError:
                        raise
                    except LgemmaError as one:
                        records.append(failed(i, ex, one, time.perf_counter() - t0))
                    else:
                        thoughts = gen.num_thoughts
                        records.append(record(i, ex, gen, time.perf_counter() - t0))
        else:
            seconds = (time.perf_counter() - began) / len(rows)
            for (i, ex), gen in zip(rows, gens):
                thoughts = gen.num_thoughts
                records.append(record(i, ex, gen, seconds))
        if progress:
            progress(mode, len(records), len(examples))
    return ModeResult(
        mode=mode,
        status="ok",
        records=records,
        metrics=compute_metrics(examples, records, task, bertscore_model),
        num_thoughts=thoughts,
    )


def evaluate_model(
    loaded: Any,
    examples: list[Example],
    modes: list[str],
    task: str,
    *,
    num_thoughts: int | None = None,
    paths: int = 1,
    max_new_tokens: int = 256,
    seed: int | None = 0,
    bertscore_model: str | None = None,
    progress: Progress | None = None,
    batch_size: int = 1,
) -> list[ModeResult]:
    """Every mode on the same rows; a mode the model cannot run is skipped with the reason,
    unless it is the only one asked (then its error is raised)."""
    from .settings import MODES

    for mode in modes:
        if mode not in MODES:
            raise UsageError(f"unknown mode {mode!r}", hint=f"use one or more of: {', '.join(MODES)}")
    reasons = {m: mode_unavailable(m, loaded) for m in modes}
    if all(reasons.values()):
        raise NotLatentTrainedError(
            reasons[modes[0]],
            hint="train one with `lgemma train`, or evaluate --modes off,soft",
        )
    results = []
    for mode in modes:
        if reasons[mode]:
            results.append(ModeResult(mode=mode, status="skipped", reason=reasons[mode]))
            continue
        results.append(
            run_mode(
                loaded,
                examples,
                mode,
                task,
                num_thoughts=num_thoughts,
                paths=paths,
                max_new_tokens=max_new_tokens,
                seed=seed,
                bertscore_model=bertscore_model,
                progress=progress,
                batch_size=batch_size,
            )
        )
    return results


# --- report --------------------------------------------------------------------------------------


def library_versions() -> dict[str, str | None]:
    import platform
    from importlib import metadata

    from . import __version__

    out: dict[str, str | None] = {"lgemma": __version__, "python": platform.python_version()}
    for name in ("torch", "transformers", "sacrebleu", "rapidfuzz", "bert_score"):
        try:
            out[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def model_info(
    loaded: Any = None, model_dir: str | Path | None = None, reference: str | None = None
) -> dict[str, Any] | None:
    """What the report says about the model: reference, path, revision (hub snapshot), latent setup."""
    path = Path(loaded.path) if loaded is not None else Path(model_dir) if model_dir else None
    if path is None:
        return None
    from .latent_spec import LatentSpec

    try:
        spec = loaded.spec if loaded is not None else LatentSpec.load(path)
    except (ValueError, TypeError, OSError):
        spec = None
    info: dict[str, Any] = {
        "reference": loaded.reference if loaded is not None else reference,
        "path": str(path),
        # A hub cache snapshot directory is named by its commit.
        "revision": path.name if path.parent.name == "snapshots" else None,
        "latent_trained": spec is not None and spec.trained_mode() != "off",  # as `lgemma models` says
        "base_model": spec.base_model if spec is not None else None,
    }
    if loaded is not None:
        info.update(
            architecture=loaded.architecture,
            device=loaded.device,
            dtype=loaded.dtype,
            quantize=loaded.placement.quantize,
            quantize_reason=loaded.placement.quantize_reason,
            load_seconds=loaded.load_seconds,
        )
    return info


def record_dict(record: Record) -> dict[str, Any]:
    d = {
        "index": record.index,
        "id": record.id,
        "reference": record.reference,
        "prediction": record.prediction,
        "raw": record.raw,
        "correct": record.correct,
        "fuzzy": record.fuzzy,
        "option": record.option,
        "num_tokens": record.num_tokens,
        "seconds": record.seconds,
        "confidence": record.confidence,
        "error": record.error,
    }
    if len(record.paths) > 1:
        d["paths"] = [
            {
                "text": p.text,
                "prediction": p.prediction,
                "confidence": p.confidence,
                "num_tokens": p.num_tokens,
                "correct": p.correct,
            }
            for p in record.paths
        ]
    return d


def build_report(
    dataset: Dataset,
    examples: list[Example],
    task: str,
    results: list[ModeResult],
    contamination: Contamination,
    settings: dict[str, Any],
    model: dict[str, Any] | None = None,
    predictions_path: str | None = None,
    per_example: bool = False,
) -> dict[str, Any]:
    """The JSON report: what was evaluated, on what, with what, and the metrics per mode."""
    warnings = [contamination.warning] if contamination.warning else []
    if dataset.problems:
        warnings.append(f"{len(dataset.problems)} bad records skipped in {dataset.path}")
    for r in results:
        if r.status == "skipped":
            warnings.append(f"mode {r.mode} skipped: {r.reason}")
    report: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "model": model,
        "predictions": predictions_path,
        "data": {
            "path": dataset.path,
            "sha256": dataset.sha256,
            "format": dataset.format,
            "split": dataset.source["split"] if dataset.source else split_name(dataset.path),
            "hub": dataset.source,
            "rows": len(examples),
            "rows_in_file": len(dataset.examples),
            "bad_records": len(dataset.problems),
            "filtered_by_language": dataset.filtered,
            "problems": [{"line": p.line, "message": p.message} for p in dataset.problems[:20]],
            "task": task,
        },
        "settings": settings,
        "versions": library_versions(),
        "contamination": contamination.to_dict(),
        "modes": [r.mode for r in results],
        "results": {
            r.mode: {
                "status": r.status,
                "reason": r.reason,
                "num_thoughts": r.num_thoughts,
                "metrics": r.metrics if r.status == "ok" else None,
            }
            for r in results
        },
        "warnings": warnings,
    }
    if per_example:
        report["examples"] = {r.mode: [record_dict(rec) for rec in r.records] for r in results if r.status == "ok"}
    return report
