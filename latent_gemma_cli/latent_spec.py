"""The latent description file (method.md section 6) that marks a model directory as trained.

A directory without it is an untrained model: `coconut` mode refuses it; `soft` and `off` work.
Markers are stored as token strings, never ids, because Gemma 2 and Gemma 3 vocabularies differ.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .settings import MODES

LATENT_FILE = "lgemma_latent.json"
FORMAT_VERSION = 1
FEEDBACKS = ("identity", "embed_norm", "token_mix", "pause")
# How a translation prompt is written for a model without a chat template (translation.py):
# `few_shot` shows a base model three example pairs; `bare` is the last turn alone
# ("Japanese: ...\nEnglish:"), for a model fine-tuned on it: a quarter of the tokens to train on
# and to prefill.
TRANSLATION_PROMPTS = ("few_shot", "bare")


@dataclass
class LatentSpec:
    """What a trained directory says about its latent setup."""

    bot: str = "<unused0>"
    eot: str = "<unused1>"
    thoughts_per_step: int = 1
    num_thoughts: int = 1
    mode: str = "coconut"
    # How a final hidden state becomes the next thought's input: `identity` is the paper's
    # (fed unscaled to the first decoder layer); `embed_norm` rescales it to the mean
    # token-embedding norm; `token_mix` feeds the expected token embedding under the model's own
    # next-token distribution there (a point among the embeddings the pretrained layers read,
    # differentiable, a mixture where the model is unsure). Recorded with the model, never
    # applied silently. `pause` is the
    # paper's "pause as thought" control: every thought position is fed the embedding of the
    # `pause` token (one fixed learned vector), never a hidden state.
    feedback: str = "identity"
    pause: str | None = None
    base_model: str | None = None
    curriculum: dict = field(default_factory=dict)
    training_data_sha256: str | None = None
    translation_prompt: str = "few_shot"
    format_version: int = FORMAT_VERSION

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / LATENT_FILE
        path.write_text(json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> "LatentSpec | None":
        """The spec of a model directory, or None when it has none (untrained)."""
        path = Path(directory) / LATENT_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise ValueError("not UTF-8 text") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON ({exc.msg}, line {exc.lineno})") from None
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        spec = cls(**known)
        spec.check()
        return spec

    def trained_mode(self) -> str:
        """The mode the model was trained for, which `--mode auto` uses: `off` for a model trained at
        stage 0 only without markers (older files say `coconut` for it too), else the recorded mode."""
        stages = self.curriculum.get("stages") if isinstance(self.curriculum, dict) else None
        if stages and max(stages) == 0 and not self.curriculum.get("stage0_bot"):
            return "off"
        return self.mode

    def check(self) -> None:
        """Raise ValueError naming the first field whose value cannot work."""
        for name in ("bot", "eot", "mode", "feedback"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string, got {value!r}")
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r} (known: {', '.join(MODES)})")
        for name, low in (("thoughts_per_step", 1), ("num_thoughts", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if self.feedback not in FEEDBACKS:
            raise ValueError(f"unknown feedback {self.feedback!r} (known: {', '.join(FEEDBACKS)})")
        if self.translation_prompt not in TRANSLATION_PROMPTS:
            raise ValueError(
                f"unknown translation prompt {self.translation_prompt!r} (known: {', '.join(TRANSLATION_PROMPTS)})"
            )
        if self.feedback == "pause" and (not isinstance(self.pause, str) or not self.pause):
            raise ValueError(f"feedback 'pause' needs the pause token's string, got {self.pause!r}")
        if self.pause is not None and self.pause in (self.bot, self.eot):
            raise ValueError(f"the pause token {self.pause!r} must differ from the bot and eot markers")
        if self.bot == self.eot:
            raise ValueError(f"bot and eot must be different tokens, both are {self.bot!r}")
        if not isinstance(self.curriculum, dict):
            raise ValueError(f"curriculum must be an object, got {type(self.curriculum).__name__}")
        stages = self.curriculum.get("stages")
        if stages is not None and not (
            isinstance(stages, list) and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in stages)
        ):
            raise ValueError(f"curriculum stages must be a list of stage numbers, got {stages!r}")
