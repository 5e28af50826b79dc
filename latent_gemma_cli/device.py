"""Device and dtype choice: made in one place, returned with the reason for the trace."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UsageError
from .settings import QUANTIZE

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class Placement:
    """Where the model runs and in which precision, with the reasons shown in the trace."""

    device: str
    dtype: str
    device_reason: str
    dtype_reason: str
    quantize: str = "none"  # the request until the model is loaded, then what was applied
    quantize_reason: str = ""

    @property
    def torch_dtype(self):
        import torch

        return getattr(torch, self.dtype)


def pick_device(requested: str = "auto") -> tuple[str, str]:
    """Return (device, reason). `auto` prefers CUDA, then MPS, then CPU."""
    import torch

    if requested not in DEVICES:
        raise UsageError(f"unknown device {requested!r}", hint=f"use one of: {', '.join(DEVICES)}")
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if requested == "auto":
        if cuda:
            return "cuda", f"auto: CUDA available ({torch.cuda.get_device_name(0)})"
        if mps:
            return "mps", "auto: Apple MPS available"
        return "cpu", "auto: no CUDA or MPS device found"
    if requested == "cuda" and not cuda:
        raise UsageError("--device cuda was asked for but torch sees no CUDA device", hint="use --device auto or cpu")
    if requested == "mps" and not mps:
        raise UsageError("--device mps was asked for but torch sees no MPS device", hint="use --device auto or cpu")
    return requested, "requested"


def pick_dtype(device: str, requested: str = "auto") -> tuple[str, str]:
    """Return (dtype name, reason).

    `auto` picks by device: CUDA bf16 where the GPU supports it (fp16 otherwise), MPS fp16,
    CPU fp32 -- bf16 decoding measured about 6x slower than fp32 on a server CPU, and fp16
    matmuls on CPU are slower still.
    """
    import torch

    if requested not in DTYPES:
        raise UsageError(f"unknown dtype {requested!r}", hint=f"use one of: {', '.join(DTYPES)}")
    if requested != "auto":
        return requested, "requested"
    if device == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bfloat16", "auto: CUDA with bf16 support"
        return "float16", "auto: CUDA without bf16 support"
    if device == "mps":
        return "float16", "auto: MPS runs fp16 fastest"
    return "float32", "auto: CPU decodes fp32 ~6x faster than bf16"


def check_quantize(device: str, dtype: str, requested: str) -> None:
    """Refuse, before any loading, a quantization that cannot run here."""
    if requested not in QUANTIZE:
        raise UsageError(f"unknown quantization {requested!r}", hint=f"use one of: {', '.join(QUANTIZE)}")
    if requested in ("int8", "int4") and device != "cpu":
        raise UsageError(f"--quantize {requested} runs on the CPU only", hint="use --device cpu or --quantize none")


def pick_placement(device: str = "auto", dtype: str = "auto", quantize: str = "none") -> Placement:
    """Choose device and dtype together; `quantize` is checked here and decided once the model's
    size is known (`quantize.choose`)."""
    dev, dev_reason = pick_device(device)
    dt, dt_reason = pick_dtype(dev, dtype)
    check_quantize(dev, dt, quantize)
    return Placement(dev, dt, dev_reason, dt_reason, quantize)
