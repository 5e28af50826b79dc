"""Evaluation: run latent modes side by side on the same rows, or score a predictions file.

Nothing here prints; results are dataclasses and `build_report` turns them into the JSON report.
What is scored per task:

* qa: the answer after the last "### " separator (`answers.extract_answer`), so a model that
  writes its remaining steps before the answer is scored on the answer only.
* translate: the generated text trimmed by `translation.clean_translation`.
* choice: the prompt lists the options as "0. ...", "1. ..." and asks for the number; the option
  chosen is the one the answer's first line names (`metrics.choose_option`: the option's text,
  else a leading number, else the closest option by rapidfuzz ratio >= 60). Accuracy is chosen == label; the text
  metrics compare the chosen option's text (or the raw answer when none matched) with the
  right option's text.

Several paths (`paths` > 1): every path is scored; the report gives the accuracy of the most
confident path (the answer), of the first path (top-1 first token, i.e. greedy), of any path
(an oracle bound), and the AUROC of path confidence against correctness.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import metrics
from .answers import extract_answer
from .datasets import Dataset, Example, row_fingerprint, split_name, text_lines
from .errors import InputError, LgemmaError, NotLatentTrainedError, UsageError

FINGERPRINTS_FILE = "train_fingerprints.json"
REPORT_VERSION = 1

Progress = Callable[[str, int, int], None]  # (mode, rows done, rows in total)

CHOICE_PROMPT = {
    "ja": ("選択肢:", "正しい選択肢の番号だけを答えてください。"),
    "en": ("Options:", "Answer with the number of the correct option only."),
}


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


@dataclass
class Contamination:
    """Whether the evaluated rows are (some of) the model's training rows."""

    checked: bool
    source: str | None = None
    training_data_sha256: str | None = None
    training_data_path: str | None = None
    same_file: bool = False
    overlapping_rows: int = 0
    rows_checked: int = 0
    error: str | None = None

    @property
    def warning(self) -> str | None:
        parts = []
        if self.same_file:
            parts.append(f"the data file IS the model's training data (sha256 {self.training_data_sha256[:12]}...)")
        if self.overlapping_rows:
            parts.append(f"{self.overlapping_rows} of {self.rows_checked} evaluated rows are training rows")
        if not parts:
            return None
        return "EVALUATING ON TRAINING DATA: " + "; ".join(parts) + ". These figures do not measure generalisation."

    def to_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "source": self.source,
            "training_data_sha256": self.training_data_sha256,
            "training_data_path": self.training_data_path,
            "same_file": self.same_file,
            "overlapping_rows": self.overlapping_rows,
            "rows_checked": self.rows_checked,
            "error": self.error,
            "warning": self.warning,
        }


# --- tasks and prompts ------------------------------------------------------------------------


def resolve_task(examples: list[Example], task: str) -> str:
    """The task to evaluate: the data's own with "auto", else the one asked (checked against the data)."""
    if task not in ("auto", "qa", "choice", "translate"):
        raise UsageError(f"unknown task {task!r}", hint="use auto, qa, choice or translate")
    if task == "auto":
        kinds = {ex.task for ex in examples}
        if len(kinds) > 1:
            raise UsageError(f"the data mixes tasks ({', '.join(sorted(kinds))})", hint="pass --task")
        return kinds.pop() if kinds else "qa"
    if task == "choice" and any(not ex.choices for ex in examples):
        raise UsageError("--task choice needs data with options (JCommonsenseQA layout)")
    return task


def _language_of(text: str) -> str:
    return "ja" if metrics.looks_japanese(text) else "en"


def translation_languages(example: Example) -> tuple[str, str]:
    """Source and target of a translate row; rows from other formats get them from the script."""
    source = example.source_lang or _language_of(example.question)
    target = example.target_lang or ("en" if source == "ja" else "ja")
    return source, target


def target_language(example: Example, task: str) -> str:
    if task == "translate":
        return translation_languages(example)[1]
    if example.lang in ("ja", "en") and task == "choice":
        return example.lang
    return _language_of(example.answer)


def choice_prompt(example: Example) -> str:
    lang = example.lang if example.lang in CHOICE_PROMPT else _language_of(example.question)
    head, ask = CHOICE_PROMPT[lang]
    options = "\n".join(f"{i}. {c}" for i, c in enumerate(example.choices or []))
    return f"{example.question}\n\n{head}\n{options}\n\n{ask}"


def prompt_for(tokenizer: Any, example: Example, task: str) -> list[int]:
    """Prompt token ids: the training prompt for qa, the translation prompt, or the options listed."""
    from . import prompting, translation

    if task == "translate":
        source, target = translation_languages(example)
        return translation.translation_prompt_ids(tokenizer, example.question, source, target)
    if task == "choice":
        return prompting.prompt_ids(tokenizer, choice_prompt(example))
    return prompting.prompt_ids(tokenizer, example.question)


# --- scoring ---------------------------------------------------------------------------------


def references(example: Example) -> list[str]:
    return list(example.references) if example.references else [example.answer]


def score_one(example: Example, raw: str, task: str) -> tuple[str, bool, float, int | None]:
    """(scored prediction, correct, fuzzy, chosen option) of one answer."""
    option = None
    if task == "choice":
        option = metrics.choose_option(raw, example.choices or [])
        prediction = example.choices[option] if option is not None else raw.strip()
        correct = option is not None and option == example.label
    else:
        prediction = extract_answer(raw) if task == "qa" else raw.strip()
        correct = metrics.exact_match(prediction, references(example))
    return prediction, correct, metrics.fuzzy(prediction, references(example)), option


def compute_metrics(examples: list[Example], records: list[Record], task: str, bertscore_model: str | None = None) -> dict[str, Any]:
    """Corpus metrics of one mode over its records (which follow `examples`)."""
    n = len(records)
    preds = [r.prediction for r in records]
    refs = [references(ex)[0] for ex in examples]
    groups: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        groups.setdefault(target_language(ex, task), []).append(i)
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
            "confidence_auroc_all_paths": metrics.auroc([p.confidence for p in all_paths], [p.correct for p in all_paths]),
            "tokens_all_paths_per_example": sum(p.num_tokens for p in all_paths) / len(multi),
        }
    return out


def score_predictions(examples: list[Example], predictions: list[str], task: str, bertscore_model: str | None = None, mode: str = "predictions") -> ModeResult:
    """Score given predictions (one per example, same order) without a model."""
    if len(predictions) != len(examples):
        raise InputError(f"{len(predictions)} predictions for {len(examples)} examples")
    records = []
    for i, (ex, raw) in enumerate(zip(examples, predictions)):
        pred, correct, fz, option = score_one(ex, raw, task)
        records.append(Record(index=i, id=ex.id, reference=ex.answer, prediction=pred, raw=raw, correct=correct, fuzzy=fz, option=option))
    return ModeResult(mode=mode, status="ok", records=records, metrics=compute_metrics(examples, records, task, bertscore_model))


def read_predictions(path: str | Path, examples: list[Example], limit: int | None = None) -> list[str]:
    """Predictions in data order: JSON Lines `{"id"?, "prediction"}` or plain text, one per line.

    The file is JSON Lines when its first non-empty line is a JSON object with "prediction";
    then every non-empty line must be one, and an "id" given must equal the row's id. Otherwise
    each line is one prediction (an empty line is an empty prediction). With `limit`, extra
    predictions past the evaluated rows are ignored; without, the counts must match.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"{p}: no such file" if not p.exists() else f"{p} is not a file")
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{p}: not UTF-8 text (invalid byte at offset {exc.start})") from exc
    lines = text_lines(text)
    first = next((ln for ln in lines if ln.strip()), "")
    try:
        head = json.loads(first)
    except json.JSONDecodeError:
        head = None
    preds: list[str] = []
    if isinstance(head, dict) and "prediction" in head:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{p}, line {number}: invalid JSON: {exc.msg}") from None
            if not isinstance(row, dict) or not isinstance(row.get("prediction"), str):
                raise InputError(f"{p}, line {number}: expected an object with a string 'prediction'")
            k = len(preds)
            if "id" in row and row["id"] is not None and k < len(examples) and examples[k].id is not None and str(row["id"]) != examples[k].id:
                raise InputError(f"{p}, line {number}: id {row['id']!r} but data row {k + 1} has id {examples[k].id!r}", hint="predictions must follow the data order")
            preds.append(row["prediction"])
    else:
        preds = list(lines)
    if len(preds) < len(examples) or (len(preds) > len(examples) and limit is None):
        raise InputError(f"{p}: {len(preds)} predictions for {len(examples)} data rows", hint="one prediction per data row, in order (use --limit to score the first rows)")
    return preds[: len(examples)]


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
    num_thoughts: int | None = None,
    paths: int = 1,
    max_new_tokens: int = 256,
    seed: int | None = 0,
    bertscore_model: str | None = None,
    progress: Progress | None = None,
    runner: Any = None,
) -> ModeResult:
    """Generate and score every example in one mode."""
    from . import engine
    from .translation import clean_translation, stop_ids

    # A base model continues its few-shot pattern past the answer: a translation or an option
    # ends at the newline (chat models end their turn themselves).
    stops = stop_ids(loaded.tokenizer) if task in ("translate", "choice") else ()
    settings = engine.Settings(mode=mode, num_thoughts=num_thoughts, paths=paths, max_new_tokens=max_new_tokens, seed=seed, stop_ids=stops)
    settings.validate()
    runner = runner or engine.LatentRunner(loaded.model)
    tok = loaded.tokenizer
    records: list[Record] = []
    thoughts = None
    for i, ex in enumerate(examples):
        start = time.perf_counter()
        try:
            gen = engine.generate(loaded.model, tok, prompt_for(tok, ex, task), settings, spec=loaded.spec, runner=runner)
        except NotLatentTrainedError:
            raise
        except LgemmaError as exc:
            seconds = time.perf_counter() - start
            records.append(Record(index=i, id=ex.id, reference=ex.answer, prediction="", raw="", correct=False, fuzzy=metrics.fuzzy("", references(ex)), seconds=seconds, num_tokens=0, error=exc.message))
        else:
            seconds = time.perf_counter() - start
            thoughts = gen.num_thoughts
            scored = []
            for path in gen.paths:
                text = clean_translation(path.text, tok, ex.question.count("\n") + 1) if task == "translate" else path.text
                pred, correct, fz, option = score_one(ex, text, task)
                scored.append((text, pred, correct, fz, option, path))
            text, pred, correct, fz, option, chosen = scored[gen.chosen]
            records.append(
                Record(
                    index=i,
                    id=ex.id,
                    reference=ex.answer,
                    prediction=pred,
                    raw=text,
                    correct=correct,
                    fuzzy=fz,
                    option=option,
                    num_tokens=chosen.num_tokens,
                    seconds=seconds,
                    confidence=chosen.confidence,
                    paths=[PathRecord(text=t, prediction=p, confidence=pr.confidence, num_tokens=pr.num_tokens, correct=c) for t, p, c, _, _, pr in scored],
                )
            )
        if progress:
            progress(mode, i + 1, len(examples))
    return ModeResult(mode=mode, status="ok", records=records, metrics=compute_metrics(examples, records, task, bertscore_model), num_thoughts=thoughts)


def evaluate_model(
    loaded: Any,
    examples: list[Example],
    modes: list[str],
    task: str,
    num_thoughts: int | None = None,
    paths: int = 1,
    max_new_tokens: int = 256,
    seed: int | None = 0,
    bertscore_model: str | None = None,
    progress: Progress | None = None,
) -> list[ModeResult]:
    """Every mode on the same rows; a mode the model cannot run is skipped with the reason,
    unless it is the only one asked (then its error is raised)."""
    from .engine import MODES, LatentRunner

    for mode in modes:
        if mode not in MODES:
            raise UsageError(f"unknown mode {mode!r}", hint=f"use one or more of: {', '.join(MODES)}")
    reasons = {m: mode_unavailable(m, loaded) for m in modes}
    if all(reasons.values()):
        raise NotLatentTrainedError(
            reasons[modes[0]],
            hint="train one with `lgemma train`, or evaluate --modes off,soft",
        )
    runner = LatentRunner(loaded.model)
    results = []
    for mode in modes:
        if reasons[mode]:
            results.append(ModeResult(mode=mode, status="skipped", reason=reasons[mode]))
            continue
        results.append(run_mode(loaded, examples, mode, task, num_thoughts, paths, max_new_tokens, seed, bertscore_model, progress, runner))
    return results


# --- training-data check --------------------------------------------------------------------


def check_contamination(model_dir: str | Path | None, dataset: Dataset, examples: list[Example]) -> Contamination:
    """Compare the data with what the model directory says it was trained on.

    Reads `train_fingerprints.json` ({"data_sha256", "data_path", "rows": [row_fingerprint]})
    and the latent description's `training_data_sha256`. Translation rows also count when the
    training row is the same pair in the other direction.
    """
    if model_dir is None:
        return Contamination(checked=False)
    from .latent_spec import LatentSpec

    directory = Path(model_dir)
    result = Contamination(checked=False, rows_checked=len(examples))
    hashes: set[str] = set()
    try:
        spec = LatentSpec.load(directory)
    except (ValueError, TypeError, OSError) as exc:
        spec = None
        result.error = f"latent description unreadable: {exc}"
    if spec is not None and spec.training_data_sha256:
        hashes.add(spec.training_data_sha256)
        result.checked = True
        result.source = str(directory / "lgemma_latent.json")
        result.training_data_sha256 = spec.training_data_sha256
    rows: set[str] = set()
    fp_file = directory / FINGERPRINTS_FILE
    if fp_file.is_file():
        try:
            data = json.loads(fp_file.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            if isinstance(data.get("data_sha256"), str):
                hashes.add(data["data_sha256"])
                result.training_data_sha256 = data["data_sha256"]
            result.training_data_path = data.get("data_path")
            rows = {r for r in data.get("rows") or [] if isinstance(r, str)}
            result.checked = True
            result.source = str(fp_file)
        except (ValueError, OSError) as exc:
            result.error = f"{fp_file}: unreadable ({exc})"
    result.same_file = dataset.sha256 in hashes
    if rows:
        for ex in examples:
            keys = {row_fingerprint(ex)}
            if ex.task == "translate":
                keys.add(row_fingerprint(Example(question=ex.answer, answer=ex.question)))
            if keys & rows:
                result.overlapping_rows += 1
    return result


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


def model_info(loaded: Any = None, model_dir: str | Path | None = None, reference: str | None = None) -> dict[str, Any] | None:
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
        "latent_trained": spec is not None,
        "base_model": spec.base_model if spec is not None else None,
    }
    if loaded is not None:
        info.update(architecture=loaded.architecture, device=loaded.device, dtype=loaded.dtype, load_seconds=loaded.load_seconds)
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
        d["paths"] = [{"text": p.text, "prediction": p.prediction, "confidence": p.confidence, "num_tokens": p.num_tokens, "correct": p.correct} for p in record.paths]
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
            "split": split_name(dataset.path),
            "rows": len(examples),
            "rows_in_file": len(dataset.examples),
            "bad_records": len(dataset.problems),
            "problems": [{"line": p.line, "message": p.message} for p in dataset.problems[:20]],
            "task": task,
        },
        "settings": settings,
        "versions": library_versions(),
        "contamination": contamination.to_dict(),
        "modes": [r.mode for r in results],
        "results": {
            r.mode: {"status": r.status, "reason": r.reason, "num_thoughts": r.num_thoughts, "metrics": r.metrics if r.status == "ok" else None}
            for r in results
        },
        "warnings": warnings,
    }
    if per_example:
        report["examples"] = {r.mode: [record_dict(rec) for rec in r.records] for r in results if r.status == "ok"}
    return report
