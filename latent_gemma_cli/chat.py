"""A multi-turn conversation on one loaded model: the history and the prompt of the next turn.

With a chat template (instruction-tuned models) the whole history goes through the template;
a base model gets a plain transcript ("User: ... / Assistant: ...") and its answer ends at the
newline that would start the next turn. Nothing here prints or reads input: `lgemma chat`
(commands/chat.py) does that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .prompting import answer_instruction, has_chat_template

USER, ASSISTANT = "user", "assistant"


@dataclass
class Conversation:
    """The turns so far, and what the next prompt is made of."""

    tokenizer: Any
    messages: list[dict[str, str]] = field(default_factory=list)
    answer_language: str | None = None

    @property
    def templated(self) -> bool:
        return has_chat_template(self.tokenizer)

    def reset(self) -> None:
        self.messages.clear()

    def prompt_ids(self, message: str, system: str | None = None) -> list[int]:
        """Token ids of the prompt that asks for the answer to `message` after the history; a
        `system` text (the server's system message) replaces the answer-language instruction."""
        from .language import detect

        turns = [*self.messages, {"role": USER, "content": message}]
        # As in `ask`: `/lang` if set, else the first message's language decides the instruction.
        first = turns[0]["content"]
        if system is None:
            system = answer_instruction(
                self.tokenizer, self.answer_language, "" if self.answer_language else detect(first).code
            )
        if system:  # Gemma's template has no system role: the instruction joins the first user turn
            turns[0] = {"role": USER, "content": f"{system}\n\n{turns[0]['content']}"}
        if self.templated:
            text = self.tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
            return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        lines = [f"{'User' if t['role'] == USER else 'Assistant'}: {t['content']}" for t in turns]
        return list(self.tokenizer("\n".join(lines) + "\nAssistant:", add_special_tokens=True)["input_ids"])

    def stop_ids(self) -> tuple[int, ...]:
        """A base model's answer ends at the newline that would begin the next turn."""
        from .translation import stop_ids

        return stop_ids(self.tokenizer)

    def add_turn(self, message: str, answer: str) -> None:
        self.messages += [{"role": USER, "content": message}, {"role": ASSISTANT, "content": answer}]
