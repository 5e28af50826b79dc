"""The Python surface of the earlier public `latent_gemma` library, as a thin layer over the engine.

Code written for that library keeps working::

    model = LatentReasoningGemmaForCausalLM.from_pretrained(path)
    ids = model.generate(tokenizer(text, return_tensors="pt").input_ids, max_length=256)
    text = model.generate_answer(model=model, tokenizer=tokenizer, question=text, k=5, max_length=256)

with the documented meaning rather than the old bugs: thoughts run on the KV cache with the
model's own architecture, no layers are created at inference, no noise is added, and the
confidence of a path is the CoT-decoding min-margin over its answer tokens only.

`DEFAULT_CONFIG` keys that matter here:

* `continuous_thoughts`: thoughts per reasoning step (c). A model with a latent description runs
  the thought count it was trained with; an untrained one runs `continuous_thoughts` soft thoughts.
* `cot_decoding_k`: reasoning paths decoded in one batch (`k` in `generate_answer`).
* `max_length`: total length, prompt plus answer, in tokens (Hugging Face's meaning).
* `latent_mode`: `auto` (coconut when the model is latent-trained, soft otherwise), or a mode.
"""

from __future__ import annotations

from typing import Any, ClassVar

from . import engine
from .loading import LoadedModel, load_model
from .prompting import prompt_ids


class LatentReasoningGemmaForCausalLM:
    """A loaded model plus tokenizer that generates through the latent engine."""

    DEFAULT_CONFIG: ClassVar[dict[str, Any]] = {
        "continuous_thoughts": 4,
        "stages": 4,
        "cot_decoding_k": 5,
        "max_length": 256,
        "latent_mode": "auto",
        "temperature": 0.0,
        "top_p": 1.0,
        "seed": None,
        "fuzzy_matcher_threshold": 80,
    }

    def __init__(self, loaded: LoadedModel):
        self.loaded = loaded
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.config = loaded.model.config
        self.spec = loaded.spec
        self.engine = loaded.engine

    @classmethod
    def from_pretrained(
        cls, path: str, device: str = "auto", dtype: str = "auto", **_: Any
    ) -> "LatentReasoningGemmaForCausalLM":
        """Load a model directory, registered name or cached hub id (safetensors, no remote code)."""
        return cls(load_model(str(path), device=device, dtype=dtype))

    @property
    def device(self):
        return self.model.device

    def _settings(self, k: int, max_new_tokens: int, temperature: float | None = None) -> engine.Settings:
        cfg = type(self).DEFAULT_CONFIG
        mode = cfg.get("latent_mode", "auto")
        if mode == "auto":
            # the mode the model was trained for (`off` for a stage-0-only fine-tune); the
            # compatibility API's training-free default for an untrained model stays `soft`
            mode = self.spec.trained_mode() if self.spec is not None else "soft"
        thoughts = None if self.spec is not None else cfg.get("continuous_thoughts", 4)
        return engine.Settings(
            mode=mode,
            num_thoughts=thoughts,
            paths=k,
            max_new_tokens=max(1, max_new_tokens),
            temperature=cfg.get("temperature", 0.0) if temperature is None else temperature,
            top_p=cfg.get("top_p", 1.0),
            seed=cfg.get("seed"),
        )

    def _run(
        self, ids: list[int], k: int, max_length: int | None, temperature: float | None = None
    ) -> engine.Generation:
        limit = max_length or type(self).DEFAULT_CONFIG.get("max_length", 256)
        settings = self._settings(k, limit - len(ids), temperature)
        return self.engine.generate(ids, settings)

    def generate(self, input_ids=None, max_length: int | None = None, attention_mask=None, k: int = 1, **_: Any):
        """Prompt plus answer token ids per row, like `transformers` `generate`; rows are right-padded."""
        import torch

        rows = []
        for i, row in enumerate(input_ids):
            ids = row.tolist()
            if attention_mask is not None:
                ids = [t for t, m in zip(ids, attention_mask[i].tolist()) if m]
            gen = self._run(ids, k, max_length)
            rows.append(ids + gen.paths[gen.chosen].token_ids)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        width = max(len(r) for r in rows)
        return torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=input_ids.device)

    def generate_answer(
        self,
        model: Any = None,
        tokenizer: Any = None,
        question: str = "",
        max_length: int | None = None,
        k: int | None = None,
        temperature: float | None = None,
        **_: Any,
    ) -> str:
        """The most confident of k reasoning paths for `question`, as text.

        `model` and `tokenizer` are accepted for compatibility; this instance's are used.
        """
        k = k or type(self).DEFAULT_CONFIG.get("cot_decoding_k", 5)
        gen = self._run(prompt_ids(self.tokenizer, question), k, max_length, temperature)
        return gen.answer
