"""Prompt rendering: the tokenizer's chat template when it has one, raw text otherwise."""

from __future__ import annotations

from typing import Any

ANSWER_LANGUAGE_INSTRUCTIONS = {
    "ja": "日本語で答えてください。",
    "en": "Answer in English.",
}


def answer_instruction(tokenizer: Any, requested: str | None, question_language: str) -> str | None:
    """The instruction that asks for the answer's language, or None.

    `--lang` (requested) always gets its instruction. Without it, a Japanese question gets the
    Japanese one (a system text merged into the user turn for a chat-template model, a line before
    the question for a base model): on Gemma 3 270M (base) it raised the answers detected as
    Japanese from 88 to 93 of 100 Japanese questions (benchmarks/answer_language.py). An English
    question's prompt stays as typed."""
    if requested:
        return ANSWER_LANGUAGE_INSTRUCTIONS.get(requested)
    if question_language == "ja":
        return ANSWER_LANGUAGE_INSTRUCTIONS["ja"]
    return None


def compose_question(instruction: str | None, context: str | None = None) -> str:
    """Piped context plus an instruction, as `cat doc | llm "summarize"` does."""
    parts = [p.strip() for p in (context, instruction) if p and p.strip()]
    return "\n\n".join(parts)


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def prompt_ids(
    tokenizer: Any, user_text: str, system: str | None = None, use_chat_template: bool | None = None
) -> list[int]:
    """Token ids of the prompt for one user turn.

    Gemma's chat template has no system role, so a system text is merged into the first user
    turn. Without a chat template the text is encoded raw, with the tokenizer's BOS.
    """
    if use_chat_template is None:
        use_chat_template = has_chat_template(tokenizer)
    content = f"{system}\n\n{user_text}" if system else user_text
    if use_chat_template:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
        )
        # The template already writes <bos>; adding special tokens again would double it.
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return list(tokenizer(content, add_special_tokens=True)["input_ids"])
