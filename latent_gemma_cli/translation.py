"""Translation: prompts (an instruction for chat models, few-shot for base models), language
resolution, and document translation chunk by chunk in batches, streamed line by line."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Any, Iterator

from .chunking import Segment, join_chunks, segment_document
from .errors import UsageError
from .language import Language, detect, has_japanese, output_matches, script_language
from .latent_spec import TRANSLATION_PROMPTS
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


def bare_prompt(text: str, source: str, target: str) -> str:
    """The turn that asks for the translation: "Japanese: {text}\nEnglish:"."""
    return f"{LANG_NAMES[source]}: {text}\n{LANG_NAMES[target]}:"


def few_shot_prompt(text: str, source: str, target: str) -> str:
    lines = []
    for ja, en in FEW_SHOT:
        pair = {"ja": ja, "en": en}
        lines.append(f"{bare_prompt(pair[source], source, target)} {pair[target]}\n")
    lines.append(bare_prompt(text, source, target))
    return "\n".join(lines)


def translation_prompt_ids(tokenizer: Any, text: str, source: str, target: str, style: str = "few_shot") -> list[int]:
    """Prompt token ids asking to translate `text` from `source` to `target` ("ja"/"en").

    A chat model gets the instruction as its system turn. Otherwise `style` (the model's
    `LatentSpec.translation_prompt`): `few_shot` for a base model, `bare` (the asking turn alone)
    for one fine-tuned on it."""
    if has_chat_template(tokenizer):
        return prompt_ids(tokenizer, text, system=instruction(source, target))
    if style not in TRANSLATION_PROMPTS:
        raise ValueError(f"unknown translation prompt {style!r} (known: {', '.join(TRANSLATION_PROMPTS)})")
    text = bare_prompt(text, source, target) if style == "bare" else few_shot_prompt(text, source, target)
    return prompt_ids(tokenizer, text, use_chat_template=False)


def prompt_style(loaded: Any) -> str:
    """The translation prompt a loaded model was trained with (`few_shot` for an untrained one)."""
    spec = getattr(loaded, "spec", None)
    return spec.translation_prompt if spec is not None else "few_shot"


def stop_ids(tokenizer: Any) -> tuple[int, ...]:
    """Tokens that end a base model's few-shot answer (a newline starts the next turn); none for
    chat models, which end their turn themselves."""
    if has_chat_template(tokenizer):
        return ()
    ids = []
    for text in ("\n", "\n\n"):
        encoded = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(encoded) == 1:
            ids.append(int(encoded[0]))
    return tuple(dict.fromkeys(ids))


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


# --- documents ---------------------------------------------------------------------------------


def in_target_script(line: str, target: str) -> bool:
    """A line that needs no translation into `target`, judged by script, which is reliable on
    short lines where statistical detection is not: Japanese text already has kana or kanji;
    a line with none of them cannot be Japanese source text."""
    japanese = has_japanese(line)
    return japanese if target == "ja" else not japanese


@dataclass
class ChunkResult:
    """One translated chunk with its trace."""

    line: int
    chunk: int
    source: str
    translation: str
    source_language: Language
    output_language: Language
    target: str
    confidence: float
    paths: list[dict]
    prompt_token_ids: list[int]
    seconds: float

    @property
    def language_ok(self) -> bool:
        return output_matches(self.translation, self.target)

    def to_dict(self, file: str | None = None) -> dict:
        return {
            "file": file,
            "line": self.line,
            "chunk": self.chunk,
            "source": self.source,
            "translation": self.translation,
            "source_language": asdict(self.source_language),
            "output_language": asdict(self.output_language),
            "target": self.target,
            "language_ok": self.language_ok,
            "confidence": self.confidence,
            "paths": self.paths,
            "prompt_token_ids": self.prompt_token_ids,
            "seconds": self.seconds,
        }


@dataclass
class LineResult:
    """One output line: passed through unchanged, or joined from its translated chunks."""

    index: int
    text: str
    passthrough: str | None
    chunks: list[ChunkResult]


def resolve_languages(text: str, source: str, target: str | None) -> tuple[str, str, Language]:
    """(source, target, detected): `auto` source is detected; the target defaults to the other one."""
    detected = detect(text)
    if source == "auto":
        # Outside ja/en (kanji-only text read as Chinese, short Latin text as another language)
        # the script decides.
        source = detected.code if detected.code in LANG_NAMES else script_language(text)
    if source not in LANG_NAMES:
        raise UsageError(f"unsupported source language {source!r}", hint="use --from ja or --from en")
    if target is None:
        target = "en" if source == "ja" else "ja"
    if target not in LANG_NAMES:
        raise UsageError(f"unsupported target language {target!r}", hint="use --to ja or --to en")
    return source, target, detected


def default_chunk_tokens(model: Any) -> int:
    """Chunks stay far inside the context: room for the prompt, the chunk and its translation."""
    context = getattr(model.config, "max_position_embeddings", 2048) or 2048
    return max(16, min(200, context // 4))


def plan(loaded: Any, text: str, target: str, max_chunk_tokens: int | None = None) -> list[Segment]:
    tokenizer = loaded.tokenizer
    limit = max_chunk_tokens or default_chunk_tokens(loaded.model)

    def count(s: str) -> int:
        return len(tokenizer(s, add_special_tokens=False)["input_ids"])

    return segment_document(text, count, limit, lambda line: in_target_script(line, target))


def with_length_rule(settings: Any, tokenizer: Any, segments: list[Segment], *, max_new_tokens_set: bool) -> Any:
    """Settings whose answer limit fits the longest chunk: twice its tokens plus 16, so a
    translation is never cut (the generic default of 256 would cut long chunks and waste time on
    short ones). A limit the user set (flag, environment or config) is kept as it is."""
    if max_new_tokens_set:
        return settings
    longest = max(
        (len(tokenizer(c, add_special_tokens=False)["input_ids"]) for s in segments for c in s.chunks), default=0
    )
    return replace(settings, max_new_tokens=2 * longest + 16)


def translate_segments(
    loaded: Any,
    segments: list[Segment],
    source: str,
    target: str,
    settings: Any,
    *,
    batch_size: int = 8,
) -> Iterator[LineResult]:
    """Translate the chunks in order, `batch_size` prompts per engine call (left-padded), and
    yield each line, in order, as soon as all of its chunks are done."""
    settings = replace(settings, stop_ids=tuple(settings.stop_ids) + stop_ids(loaded.tokenizer))
    style = prompt_style(loaded)
    work = [(index, c, chunk) for index, seg in enumerate(segments) for c, chunk in enumerate(seg.chunks)]
    done: dict[int, list[ChunkResult]] = {}
    emitted = 0

    def ready() -> Iterator[LineResult]:
        nonlocal emitted
        while emitted < len(segments):
            seg = segments[emitted]
            if seg.passthrough is not None:
                yield LineResult(emitted, seg.text, seg.passthrough, [])
            elif len(done.get(emitted, [])) == len(seg.chunks):
                results = done.pop(emitted)
                indent = seg.text[: len(seg.text) - len(seg.text.lstrip())]
                yield LineResult(emitted, indent + join_chunks([r.translation for r in results], target), None, results)
            else:
                return
            emitted += 1

    yield from ready()
    for start in range(0, len(work), max(1, batch_size)):
        batch = work[start : start + batch_size]
        prompts = [translation_prompt_ids(loaded.tokenizer, chunk, source, target, style) for _, _, chunk in batch]
        began = time.perf_counter()
        gens = loaded.engine.generate_batch(prompts, settings)
        seconds = (time.perf_counter() - began) / len(batch)
        for (index, c, chunk), ids, gen in zip(batch, prompts, gens):
            text = clean_translation(gen.answer, loaded.tokenizer)
            done.setdefault(index, []).append(
                ChunkResult(
                    line=index,
                    chunk=c,
                    source=chunk,
                    translation=text,
                    source_language=detect(chunk),
                    output_language=detect(text),
                    target=target,
                    confidence=gen.paths[gen.chosen].confidence,
                    paths=[
                        {
                            "text": p.text,
                            "confidence": p.confidence,
                            "num_tokens": p.num_tokens,
                            "token_ids": p.token_ids,
                        }
                        for p in gen.paths
                    ],
                    prompt_token_ids=ids,
                    seconds=seconds,
                )
            )
        yield from ready()
