"""What a row asks and how its answer is graded: the one owner of both, for every caller.

Training (`training/data.py`), training's per-stage validation (`training/validate.py`),
`lgemma eval` (`evaluation.py`) and the benchmarks build a row's prompt with `prompt_ids` and
grade a model's output with `clean_output` + `score`, so a model is evaluated on exactly the
prompt it was trained on, and the "valid accuracy" in `metrics.jsonl` is the accuracy
`lgemma eval` reports.

Tasks:

* qa: the question as the prompt; the answer is what follows the last "### " separator
  (`answers.extract_answer`), compared after `metrics.normalize_answer`.
* translate: the translation prompt for the row's languages; the output is cut at the end of
  the translation (`translation.clean_translation`).
* choice: the question, then the options as "0. ...", "1. ..." and a request for the number; the
  training target is that number, and an output is right when the option it names
  (`metrics.choose_option`: the option's text, else a leading number, else the closest option)
  is the label.

A base model continues its few-shot pattern, so translate and choice answers also stop at a
newline once begun (`stop_ids`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import metrics
from .answers import extract_answer
from .errors import UsageError
from .language import script_language

TASKS = ("qa", "choice", "translate")
CHOICE_PROMPT = {
    "ja": ("選択肢:", "正しい選択肢の番号だけを答えてください。"),
    "en": ("Options:", "Answer with the number of the correct option only."),
}


@dataclass(frozen=True)
class Score:
    """One output graded: what was compared, whether it is right, its fuzzy score, the option."""

    prediction: str
    correct: bool
    fuzzy: float
    option: int | None = None


def task_of(example: Any, task: str | None = None) -> str:
    return task or getattr(example, "task", None) or "qa"


def resolve_task(examples: list[Any], task: str) -> str:
    """The task to evaluate: the data's own with "auto", else the one asked (checked against the data)."""
    if task != "auto" and task not in TASKS:
        raise UsageError(f"unknown task {task!r}", hint=f"use auto or one of: {', '.join(TASKS)}")
    if task == "auto":
        kinds = {task_of(ex) for ex in examples}
        if len(kinds) > 1:
            raise UsageError(f"the data mixes tasks ({', '.join(sorted(kinds))})", hint="pass --task")
        return kinds.pop() if kinds else "qa"
    if task == "choice" and any(not ex.choices for ex in examples):
        raise UsageError("--task choice needs data with options (JCommonsenseQA layout)")
    return task


def translation_languages(example: Any) -> tuple[str, str]:
    """Source and target of a translate row; rows from other formats get them from the script."""
    source = example.source_lang or script_language(example.question)
    target = example.target_lang or ("en" if source == "ja" else "ja")
    return source, target


def target_language(example: Any, task: str | None = None) -> str:
    """The language an answer to this row is written in (for BLEU's tokenizer and reports)."""
    task = task_of(example, task)
    if task == "translate":
        return translation_languages(example)[1]
    if task == "choice" and example.lang in ("ja", "en"):
        return example.lang
    return script_language(example.answer)


def choice_prompt(example: Any) -> str:
    lang = example.lang if example.lang in CHOICE_PROMPT else script_language(example.question)
    head, ask = CHOICE_PROMPT[lang]
    options = "\n".join(f"{i}. {c}" for i, c in enumerate(example.choices or []))
    return f"{example.question}\n\n{head}\n{options}\n\n{ask}"


def prompt_ids(
    tokenizer: Any, example: Any, task: str | None = None, translation_prompt: str = "few_shot"
) -> list[int]:
    """The prompt token ids of a row, the same for training, validation and evaluation
    (`translation_prompt`: the model's `LatentSpec.translation_prompt`)."""
    from . import prompting, translation

    task = task_of(example, task)
    if task == "translate":
        source, target = translation_languages(example)
        return translation.translation_prompt_ids(tokenizer, example.question, source, target, translation_prompt)
    if task == "choice":
        return prompting.prompt_ids(tokenizer, choice_prompt(example))
    return prompting.prompt_ids(tokenizer, example.question)


def target_answer(example: Any, task: str | None = None) -> str:
    """The answer text a model is trained to produce after its steps: the option's number for a
    multiple-choice row (what its prompt asks for), else the row's answer."""
    if task_of(example, task) == "choice" and example.label is not None:
        return str(example.label)
    return example.answer


def stop_ids(tokenizer: Any, task: str) -> tuple[int, ...]:
    """Tokens that end an answer once it has begun: a base model continues its few-shot pattern
    past a translation or an option, so those end at the newline (chat models end their turn)."""
    if task in ("translate", "choice"):
        from .translation import stop_ids as newline_ids

        return tuple(newline_ids(tokenizer))
    return ()


def references(example: Any) -> list[str]:
    return list(example.references) if example.references else [example.answer]


def clean_output(example: Any, raw: str, tokenizer: Any, task: str | None = None) -> str:
    """The part of a model's output that answers the row (a translation cut at its end)."""
    if task_of(example, task) == "translate":
        from .translation import clean_translation

        return clean_translation(raw, tokenizer, example.question.count("\n") + 1)
    return raw


def score(example: Any, text: str, task: str | None = None) -> Score:
    """Grade one (cleaned) output of a row."""
    task = task_of(example, task)
    refs = references(example)
    if task == "choice":
        option = metrics.choose_option(text, example.choices or [])
        prediction = example.choices[option] if option is not None else text.strip()
        return Score(
            prediction, option is not None and option == example.label, metrics.fuzzy(prediction, refs), option
        )
    prediction = extract_answer(text) if task == "qa" else text.strip()
    return Score(prediction, metrics.exact_match(prediction, refs), metrics.fuzzy(prediction, refs))
