"""User defaults: built-in < config file < LGEMMA_* environment < command-line flags.

The file is TOML at `<config dir>/config.toml` (platformdirs; `LGEMMA_HOME` overrides the base).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .catalogue import DEFAULT_MODEL
from .errors import UsageError
from .paths import config_dir
from .settings import AUTO, MODES

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


@dataclass(frozen=True)
class Key:
    default: Any
    parse: Callable[[Any], Any]
    help: str


KEYS: dict[str, Key] = {
    "model": Key(DEFAULT_MODEL, str, "default model: catalogue name, hub id in the cache, or directory"),
    "device": Key("auto", _choice("auto", "cpu", "cuda", "mps"), "device to run on"),
    "dtype": Key("auto", _choice("auto", "float32", "bfloat16", "float16"), "compute dtype"),
    "quantize": Key(
        "auto", _choice("auto", "none", "int8", "int4"), "CPU weight quantization (auto: by device and model size)"
    ),
    "mode": Key(AUTO, _choice(AUTO, *MODES), "latent mode (auto: coconut for a latent-trained model, else off)"),
    "thoughts": Key(None, _int_at_least(0), "number of continuous thoughts (unset: the model's own)"),
    "paths": Key(1, _int_at_least(1), "reasoning paths decoded in one batch"),
    "max_new_tokens": Key(256, _int_at_least(1), "answer length limit in tokens"),
    "temperature": Key(0.0, _float_range(0.0, 100.0), "sampling temperature (0 = greedy)"),
    "top_p": Key(1.0, _float_range(0.0, 1.0), "nucleus sampling mass"),
    "show_thoughts": Key(False, _bool, "show each thought's top tokens under the LM head (ask)"),
}


def config_file() -> Path:
    return config_dir() / "config.toml"


def read_file_values() -> dict[str, Any]:
    path = config_file()
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid TOML ({exc})") from exc
    for key in data:
        if key not in KEYS:
            raise UsageError(f"{path}: unknown key {key!r}", hint=f"known keys: {', '.join(KEYS)}")
    return data


def parse_value(key: str, value: Any, where: str) -> Any:
    if key not in KEYS:
        raise UsageError(f"unknown config key {key!r}", hint=f"known keys: {', '.join(KEYS)}")
    try:
        return KEYS[key].parse(value)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{where}: bad value {value!r} for {key}: {exc}") from exc


def resolve(key: str, flag: Any = None) -> Any:
    """The effective value of `key`: the flag if given, else environment, file, built-in."""
    if flag is not None:
        return flag
    env_name = f"LGEMMA_{key.upper()}"
    if os.environ.get(env_name):
        return parse_value(key, os.environ[env_name], env_name)
    file_values = read_file_values()
    if key in file_values:
        return parse_value(key, file_values[key], str(config_file()))
    return KEYS[key].default


def effective() -> dict[str, tuple[Any, str]]:
    """Every key with its value and where it came from."""
    file_values = read_file_values()
    out = {}
    for key in KEYS:
        env_name = f"LGEMMA_{key.upper()}"
        if os.environ.get(env_name):
            out[key] = (parse_value(key, os.environ[env_name], env_name), env_name)
        elif key in file_values:
            out[key] = (parse_value(key, file_values[key], str(config_file())), "file")
        else:
            out[key] = (KEYS[key].default, "built-in")
    return out


def write_value(key: str, value: str | None) -> Path:
    """Set (or with None, unset) `key` in the config file, validating the value first."""
    import tomli_w

    data = read_file_values()
    if value is None:
        if key not in KEYS:
            raise UsageError(f"unknown config key {key!r}", hint=f"known keys: {', '.join(KEYS)}")
        data.pop(key, None)
    else:
        data[key] = parse_value(key, value, "config set")
    from .files import write_text_atomic

    path = config_file()
    write_text_atomic(path, tomli_w.dumps({k: v for k, v in data.items() if v is not None}))
    return path
