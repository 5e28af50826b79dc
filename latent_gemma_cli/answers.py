"""The text layout after <eot>, shared by training and evaluation.

A target is the remaining reasoning steps, one per line, then the answer after a separator
(the COCONUT paper's "### "); with no steps left it is the answer alone.
"""

from __future__ import annotations

ANSWER_SEPARATOR = "### "


def format_target(steps: list[str], answer: str) -> str:
    """Text the model learns to produce after the thoughts."""
    if not steps:
        return answer
    return "\n".join(s.strip() for s in steps) + "\n" + ANSWER_SEPARATOR + answer


def extract_answer(text: str) -> str:
    """The final answer in generated text: what follows the last separator, else the whole text."""
    head, sep, tail = text.rpartition(ANSWER_SEPARATOR.strip())
    return (tail if sep else text).strip()
