"""User defaults: built-in < config file < the file's section for the model < LGEMMA_* environment
< command-line flags.

The file is TOML at `<config dir>/config.toml` (platformdirs; `LGEMMA_HOME` overrides the base).
A `[models."NAME"]` table holds defaults for one model, NAME being the `--model` reference as
typed (a catalogue or registered name, a hub id, or a directory):

    mode = "off"
    [models."my-latent-gemma"]
    mode = "coconut"
    thoughts = 6
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .catalogue import DEFAULT_MODEL
from .errors import UsageError
from .keepalive import format_duration, parse_duration
from .paths import config_dir
from .settings import AUTO, MODES, QUANTIZE

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return value

    return parse


def _int_at_least(low: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ValueError(f"must be an integer >= {low}") from None
        if number < low:
            raise ValueError(f"must be an integer >= {low}")
        return number

    return parse


def _float_range(low: float, high: float) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"must be a number in [{low}, {high}]") from None
        if not low <= number <= high:
            raise ValueError(f"must be a number in [{low}, {high}]")
        return number

    return parse


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _server_url(value: Any) -> str | None:
    text = str(value).strip()
    if text.lower() in ("", "none", "local"):
        return None
    if not text.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL (or none)")
    return text.rstrip("/")


@dataclass(frozen=True)
class Key:
    default: Any
    parse: Callable[[Any], Any]
    help: str
    text: Callable[[Any], Any] | None = None  # the parsed value as written to the file and shown

    def written(self, value: Any) -> Any:
        return value if self.text is None or value is None else self.text(value)


KEYS: dict[str, Key] = {
    "model": Key(DEFAULT_MODEL, str, "default model: catalogue name, hub id in the cache, or directory"),
    "device": Key("auto", _choice("auto", "cpu", "cuda", "mps"), "device to run on"),
    "dtype": Key("auto", _choice("auto", "float32", "bfloat16", "float16"), "compute dtype"),
    "quantize": Key("auto", _choice(*QUANTIZE), "CPU weight quantization (auto: by device and model size)"),
    "mode": Key(
        AUTO, _choice(AUTO, *MODES), "latent mode (auto: the mode the model was trained for, off for an untrained one)"
    ),
    "thoughts": Key(None, _int_at_least(0), "number of continuous thoughts (unset: the model's own)"),
    "paths": Key(1, _int_at_least(1), "reasoning paths decoded in one batch"),
    "max_new_tokens": Key(256, _int_at_least(1), "answer length limit in tokens"),
    "temperature": Key(0.0, _float_range(0.0, 100.0), "sampling temperature (0 = greedy)"),
    "top_p": Key(1.0, _float_range(0.0, 1.0), "nucleus sampling mass"),
    "show_thoughts": Key(False, _bool, "show each thought's top tokens under the LM head (ask)"),
    "server": Key(None, _server_url, "an `lgemma serve` URL that ask and translate use (unset: run locally)"),
    "keep_alive": Key(
        0.0,
        parse_duration,
        "ask and translate through a background server kept loaded this long after each request "
        "(e.g. 5m; 0: load in every run)",
        text=format_duration,
    ),
}


def config_file() -> Path:
    return config_dir() / "config.toml"


MODELS = "models"  # the table of per-model sections


def read_all() -> dict[str, Any]:
    """The whole file: top-level keys and the `models` table, validated."""
    path = config_file()
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid TOML ({exc})") from exc
    for key in data:
        if key != MODELS and key not in KEYS:
            raise UsageError(f"{path}: unknown key {key!r}", hint=f"known keys: {', '.join(KEYS)}")
    sections = data.get(MODELS, {})
    if not isinstance(sections, dict) or not all(isinstance(v, dict) for v in sections.values()):
        raise UsageError(f'{path}: `{MODELS}` must hold tables, as [{MODELS}."NAME"]')
    for name, section in sections.items():
        for key, value in section.items():
            if key == "model" or key not in KEYS:
                raise UsageError(
                    f"{path}: unknown key {key!r} for model {name!r}",
                    hint=f"known keys: {', '.join(k for k in KEYS if k != 'model')}",
                )
            parse_value(key, value, f"{path} [{MODELS}.{name!r}]")
    return data


def read_file_values(data: dict[str, Any] | None = None) -> dict[str, Any]:
    """The file's top-level keys (from `data`, the file as `read_all` returned it, if given)."""
    return {k: v for k, v in (read_all() if data is None else data).items() if k != MODELS}


def model_values(model: str | None, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """The file's section for `model` (empty when there is none)."""
    if not model:
        return {}
    return dict((read_all() if data is None else data).get(MODELS, {}).get(model, {}))


def parse_value(key: str, value: Any, where: str) -> Any:
    if key not in KEYS:
        raise UsageError(f"unknown config key {key!r}", hint=f"known keys: {', '.join(KEYS)}")
    try:
        return KEYS[key].parse(value)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{where}: bad value {value!r} for {key}: {exc}") from exc


def resolve(key: str, flag: Any = None, model: str | None = None) -> Any:
    """The effective value of `key`: the flag if given, else environment, the file's section for
    `model`, the file, built-in."""
    if flag is not None:
        return flag
    env_name = f"LGEMMA_{key.upper()}"
    if os.environ.get(env_name):
        return parse_value(key, os.environ[env_name], env_name)
    data = read_all()  # the file is read and checked once
    section = model_values(model, data)
    if key in section:
        return parse_value(key, section[key], f"{config_file()} [{MODELS}.{model!r}]")
    file_values = read_file_values(data)
    if key in file_values:
        return parse_value(key, file_values[key], str(config_file()))
    return KEYS[key].default


def effective(model: str | None = None) -> dict[str, tuple[Any, str]]:
    """Every key with its value and where it came from (for `model`, its section counted)."""
    data = read_all()
    file_values, section = read_file_values(data), model_values(model, data)
    out = {}
    for key in KEYS:
        env_name = f"LGEMMA_{key.upper()}"
        if os.environ.get(env_name):
            out[key] = (parse_value(key, os.environ[env_name], env_name), env_name)
        elif key in section:  # read_all refuses `model` inside a section
            out[key] = (parse_value(key, section[key], f"[{MODELS}.{model!r}]"), f"file, model {model}")
        elif key in file_values:
            out[key] = (parse_value(key, file_values[key], str(config_file())), "file")
        else:
            out[key] = (KEYS[key].default, "built-in")
    return out


def write_value(key: str, value: str | None, model: str | None = None) -> Path:
    """Set (or with None, unset) `key` in the config file, or in its section for `model`,
    validating the value first."""
    import tomli_w

    data = read_all()
    if model is not None and key == "model":
        raise UsageError("`model` cannot be set per model")
    if model is None:
        target = data
    else:
        target = data.setdefault(MODELS, {}).setdefault(model, {})
    if value is None:
        if key not in KEYS:
            raise UsageError(f"unknown config key {key!r}", hint=f"known keys: {', '.join(KEYS)}")
        target.pop(key, None)
        if model is not None and not target:
            data[MODELS].pop(model, None)
            if not data[MODELS]:
                data.pop(MODELS)
    else:
        parsed = parse_value(key, value, "config set")
        target[key] = KEYS[key].written(parsed)
    from .files import write_text_atomic

    path = config_file()
    write_text_atomic(path, tomli_w.dumps({k: v for k, v in data.items() if v is not None}))
    return path
