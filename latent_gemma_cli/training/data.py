"""Training rows: read, check, render prompts, and lay out per stage.

Prompts and targets come from `tasks` (the owner of both for training, validation and eval):
a multiple-choice row shows its options and is trained to answer with the option's number. Bad records (the reader's
problems, and rows that cannot fit --max-length even at the final stage) are reported with file
and line and either skipped or fatal (`--on-bad-record skip|fail`); never dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..datasets import Problem
from ..errors import InputError
from ..tasks import target_answer
from .curriculum import Curriculum, TrainSequence, build_sequence


@dataclass
class TrainData:
    """Examples with their prompt ids, what was skipped, and the file's identity."""

    examples: list[Any]
    prompts: list[list[int]]
    problems: list[Problem]
    path: str
    sha256: str
    _targets: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.examples)

    def sequence(
        self,
        index: int,
        stage: int,
        curriculum: Curriculum,
        tokenizer: Any,
        marker_ids: tuple[int, int],
        max_length: int,
    ) -> TrainSequence:
        key = (index, stage)
        if key not in self._targets:
            ex = self.examples[index]
            self._targets[key] = build_sequence(
                self.prompts[index],
                list(ex.steps or []),
                target_answer(ex),
                stage,
                curriculum,
                tokenizer,
                marker_ids,
                max_length,
            )
        return self._targets[key]


def example_prompt(tokenizer: Any, example: Any, translation_prompt: str = "few_shot") -> list[int]:
    """The prompt ids inference and `lgemma eval` use for this example (`tasks.prompt_ids`)."""
    from ..tasks import prompt_ids

    return prompt_ids(tokenizer, example, translation_prompt=translation_prompt)


def read(
    path: str,
    fmt: str = "auto",
    direction: str | None = None,
    limit: int | None = None,
    options: Any = None,
    split: str | None = None,
):
    """The datasets module's reader (kept behind one function so tests can pass examples directly).

    `split`: the split a hub dataset named without one is read from ("train", "validation")."""
    from dataclasses import replace

    from ..datasets import DataOptions, read_dataset

    options = replace(options or DataOptions(), split=split)
    return read_dataset(path, fmt=fmt, direction=direction, strict=False, limit=limit, options=options)


def prepare(
    dataset: Any,
    tokenizer: Any,
    curriculum: Curriculum,
    max_length: int,
    on_bad_record: str = "fail",
    report: Callable[[Problem], None] | None = None,
    translation_prompt: str = "few_shot",
) -> TrainData:
    """Check every row, render prompts; raise on a bad record unless skipping."""
    problems = list(dataset.problems)
    examples, prompts = [], []
    # Room the longest layout needs besides the target: markers, N*c thoughts, and one target token.
    reserve = 2 + curriculum.max_stage * curriculum.thoughts_per_step + 1
    for i, ex in enumerate(dataset.examples):
        # file:line where the format has lines; otherwise the record's id (or its position).
        line = getattr(ex, "line", None)
        where = "" if line is not None else f"record {getattr(ex, 'id', None) or i + 1}: "
        if not str(ex.question or "").strip() or not str(ex.answer or "").strip():
            problems.append(Problem(dataset.path, line, f"{where}empty question or answer"))
            continue
        ids = example_prompt(tokenizer, ex, translation_prompt)
        if len(ids) + reserve > max_length:
            problems.append(
                Problem(
                    dataset.path,
                    line,
                    f"{where}prompt of {len(ids)} tokens does not fit --max-length {max_length} with {reserve - 3} thoughts",
                )
            )
            continue
        examples.append(ex)
        prompts.append(ids)
    for problem in problems:
        if report is not None:
            report(problem)
    if problems and on_bad_record == "fail":
        shown = "; ".join(str(p) for p in problems[:3])
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise InputError(
            f"{len(problems)} bad record(s): {shown}{more}",
            hint="fix them, or pass --on-bad-record skip to train without them",
        )
    if not examples:
        raise InputError(f"{dataset.path}: no usable training rows")
    return TrainData(examples, prompts, problems, dataset.path, dataset.sha256)
