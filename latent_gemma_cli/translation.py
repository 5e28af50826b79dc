"""Translation prompts: an instruction for chat (instruction-tuned) models, few-shot for base models."""

from __future__ import annotations

from typing import Any

from .prompting import has_chat_template, prompt_ids

LANG_NAMES = {"ja": "Japanese", "en": "English"}

# Short, plain pairs: enough to show a base model the format without biasing the content.
FEW_SHOT = [
    ("猫は屋根の上で寝ています。", "The cat is sleeping on the roof."),
    ("駅までどうやって行けばいいですか。", "How do I get to the station?"),
    ("明日は雨が降るそうです。", "They say it will rain tomorrow."),
]


def instruction(source: str, target: str) -> str:
    return (
        f"Translate the following {LANG_NAMES[source]} text into {LANG_NAMES[target]}. "
        "Reply with the translation only, keeping line breaks."
    )


def few_shot_prompt(text: str, source: str, target: str) -> str:
    lines = []
    for ja, en in FEW_SHOT:
        pair = {"ja": ja, "en": en}
        lines.append(f"{LANG_NAMES[source]}: {pair[source]}\n{LANG_NAMES[target]}: {pair[target]}\n")
    lines.append(f"{LANG_NAMES[source]}: {text}\n{LANG_NAMES[target]}:")
    return "\n".join(lines)


def translation_prompt_ids(tokenizer: Any, text: str, source: str, target: str) -> list[int]:
    """Prompt token ids asking to translate `text` from `source` to `target` ("ja"/"en")."""
    if has_chat_template(tokenizer):
        return prompt_ids(tokenizer, text, system=instruction(source, target))
    return prompt_ids(tokenizer, few_shot_prompt(text, source, target), use_chat_template=False)


def clean_translation(text: str, tokenizer: Any, source_lines: int = 1) -> str:
    """Trim what a base model writes past the translation (the next few-shot turn)."""
    text = text.strip()
    if has_chat_template(tokenizer):
        return text
    kept = text.split("\n")[: max(source_lines, 1)]
    cut = []
    for line in kept:
        if any(line.startswith(f"{name}:") for name in LANG_NAMES.values()):
            break
        cut.append(line)
    return "\n".join(cut).strip()
