"""Question answering: prompt, latent engine, language checks; returns one dataclass."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from . import engine, language, prompting
from .language import Language, output_matches
from .loading import LoadedModel


@dataclass
class AskResult:
    """Everything `lgemma ask` shows, as data."""

    question: str
    generation: engine.Generation
    settings: engine.Settings
    thoughts: list[dict] | None
    input_language: Language
    output_language: Language
    answer_language: str | None
    model: str
    model_path: str
    architecture: str
    device: str
    dtype: str
    device_reason: str
    dtype_reason: str
    load_seconds: float
    quantize: str = "none"
    quantize_reason: str = ""

    @property
    def answer(self) -> str:
        return self.generation.answer

    @property
    def language_mismatch(self) -> bool:
        """The answer is in another language than the expected one (checked for ja and en only,
        the languages lgemma answers in, by script and `text_language`'s rules: langdetect
        guesses among 55 languages on short Latin text)."""
        expected = self.answer_language or self.input_language.code
        return expected in ("ja", "en") and not output_matches(self.answer, expected)

    def to_dict(self) -> dict[str, Any]:
        gen = self.generation
        return {
            "answer": self.answer,
            "question": self.question,
            "mode": gen.mode,
            "num_thoughts": gen.num_thoughts,
            "markers": list(gen.markers) if gen.markers else None,
            "chosen_path": gen.chosen,
            "paths": [
                {
                    "text": p.text,
                    "confidence": p.confidence,
                    "num_tokens": p.num_tokens,
                    "finished": p.finished,
                    "token_ids": p.token_ids,
                }
                for p in gen.paths
            ],
            "prompt_token_ids": gen.prompt_ids,
            **({"thoughts": self.thoughts} if self.thoughts is not None else {}),
            "seed": gen.seed,
            # Every setting that changes the output, so the JSON alone says how to repeat the run.
            "settings": {
                "mode": gen.mode,
                "num_thoughts": gen.num_thoughts,
                "paths": self.settings.paths,
                "max_new_tokens": self.settings.max_new_tokens,
                "temperature": self.settings.temperature,
                "top_p": self.settings.top_p,
                "soft_top_p": self.settings.soft_top_p,
                "seed": gen.seed,
                "answer_language": self.answer_language,
                "lens_top": self.settings.lens_top,
            },
            "languages": {
                "input": asdict(self.input_language),
                "output": asdict(self.output_language),
                "expected": self.answer_language or self.input_language.code,
                "mismatch": self.language_mismatch,
            },
            "model": {"reference": self.model, "path": self.model_path, "architecture": self.architecture},
            "device": {
                "device": self.device,
                "dtype": self.dtype,
                "device_reason": self.device_reason,
                "dtype_reason": self.dtype_reason,
                "quantize": self.quantize,
                "quantize_reason": self.quantize_reason,
            },
            "timings": {
                "load_s": self.load_seconds,
                "prefill_s": gen.timings.prefill_s,
                "thoughts_s": gen.timings.thoughts_s,
                "decode_s": gen.timings.decode_s,
                "total_s": gen.timings.total_s,
            },
        }


def lens_tokens(tokenizer: Any, lens: list[list[tuple[int, float]]] | None) -> list[dict] | None:
    """`[{index, top: [{id, token, p}]}]` for each thought of a logit lens (None without one)."""
    if lens is None:
        return None
    return [
        {"index": j, "top": [{"id": t, "token": tokenizer.decode([t]), "p": round(p, 4)} for t, p in top]}
        for j, top in enumerate(lens)
    ]


def ask(
    loaded: LoadedModel,
    question: str,
    settings: engine.Settings,
    answer_language: str | None = None,
    *,
    on_token: Any = None,
    system: str | None = None,
) -> AskResult:
    """Answer `question` with the loaded model; in the input language unless one is named.
    `on_token(path, token_id)` sees each answer token as it is decoded (for streaming); a
    `system` text (a server's system message) replaces the answer-language instruction."""
    input_language = language.detect(question)
    if system is None:
        system = prompting.answer_instruction(loaded.tokenizer, answer_language, input_language.code)
    ids = prompting.prompt_ids(loaded.tokenizer, question, system=system)
    return ask_ids(loaded, question, ids, settings, answer_language, on_token=on_token, input_language=input_language)


def ask_ids(
    loaded: LoadedModel,
    question: str,
    ids: list[int],
    settings: engine.Settings,
    answer_language: str | None = None,
    *,
    on_token: Any = None,
    input_language: Language | None = None,
) -> AskResult:
    """`ask` on a prompt already made into token ids (a conversation, a raw completion)."""
    input_language = input_language or language.detect(question)
    gen = loaded.engine.generate(ids, settings, on_token=on_token)
    return AskResult(
        question=question,
        generation=gen,
        settings=settings,
        thoughts=lens_tokens(loaded.tokenizer, gen.thought_lens),
        input_language=input_language,
        output_language=language.detect(gen.answer),
        answer_language=answer_language,
        model=loaded.reference,
        model_path=str(loaded.path),
        architecture=loaded.architecture,
        device=loaded.device,
        dtype=loaded.dtype,
        device_reason=loaded.placement.device_reason,
        dtype_reason=loaded.placement.dtype_reason,
        load_seconds=loaded.load_seconds,
        quantize=loaded.placement.quantize,
        quantize_reason=loaded.placement.quantize_reason,
    )


def model_identity(data: dict, loaded: LoadedModel) -> None:
    """What `ask --json` adds so the record alone says which weights and token ids the run used."""
    from .fingerprint import weights_fingerprint

    spec = loaded.spec
    data["model"].update(
        weights_sha256=weights_fingerprint(loaded.path),
        eos_token_ids=sorted(engine.eos_token_ids(loaded.model, loaded.tokenizer)),
        latent=None
        if spec is None
        else {
            "bot": spec.bot,
            "eot": spec.eot,
            "feedback": spec.feedback,
            "num_thoughts": spec.num_thoughts,
            **({"pause": spec.pause} if spec.pause is not None else {}),
        },
    )
