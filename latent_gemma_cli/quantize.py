"""Weight quantization for CPU inference: every linear layer, the LM head included, in int8 or int4.

Fewer bytes per token is the only way to decode faster on a CPU: fp32 Gemma 3 270M reads 1.07 GB
of weights per token. What measured fastest here (an AVX2 CPU without VNNI, 2 threads; see
benchmarks/cpu_speed.py), on the 262k x 640 LM head, per decoded token:

* fp32 matmul 55 ms;
* int8: fbgemm's dynamic-quantized linear (int8 weights per output channel, activations quantized
  to int8 on the fly, int32 accumulation) 15.6 ms. PyTorch's weight-only
  `aten._weight_int8pack_mm` took 189 ms here and `torch._int_mm` 114 ms: both slower than fp32;
* int4: `aten._weight_int4pack_mm_for_cpu` (groups of 32, asymmetric) 25.5 ms with bf16
  activations, but 380 ms with fp32 ones, so int4 layers compute in bf16.

fbgemm quantizes a whole activation matrix with one scale, which would make a row's result depend
on the other rows in the batch (and the cached engine differ from a full recompute). `Int8Linear`
scales each row to an absolute maximum of 1 and appends the columns +1 and -1 (with zero weights),
so every call quantizes over exactly [-1, 1]: each row is quantized on its own, the int32
accumulation is exact, and a row's output is bit-identical whatever it is batched with.

The input embedding is never touched: continuous thoughts and soft thoughts are built from the
embedding table, which stays exact; a tied LM head gets its own quantized copy.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from .errors import UsageError

INT4_GROUP = 32
# What `auto` picks on the CPU for a model big enough (benchmarks/RESULTS.md part 5 has the quality
# measurements this follows from).
AUTO_SCHEME = "int8"  # see `choose`
# `ask` (one answer) quantizes in `auto` only when it may generate at least this many tokens: int8
# costs 2-3 s more at load on Gemma 3 270M and saves 0.06-0.07 s per token, even at 32-50 tokens
# (benchmarks/RESULTS.md part 16), so from 64 on it is faster on both machines measured.
AUTO_MIN_ANSWER_TOKENS = 64
# `auto` quantizes only models whose linear layers hold at least this many parameters: below it a
# forward pass is bound by per-layer overhead, not by reading weights, and int8 does not pay.
AUTO_MIN_PARAMETERS = 50_000_000
# Output rows per fbgemm pack: a 262k-row LM head is packed as 4 blocks in parallel threads.
BLOCK_ROWS = 65536


class Int8Linear(torch.nn.Module):
    """`nn.Linear` with int8 weights (one scale per output channel) on fbgemm's dynamic int8 kernel,
    each input row quantized on its own (see the module docstring)."""

    def __init__(self, linear: Any, smooth: Any = None, pool: Any = None):
        super().__init__()
        weight = linear.weight.detach().float()
        out_features, in_features = weight.shape
        if smooth is not None:  # SmoothQuant: x @ W.T == (x / s) @ (W * s).T, with the outliers moved to W
            weight = weight * smooth
        # The +1/-1 columns, then zeros to a multiple of 8: fbgemm packs and multiplies such widths
        # faster (the 262k-row LM head packed in 3.5 s at width 648, 6.0 s at 642; 12 vs 15 ms).
        self._width = -(-(in_features + 2) // 8) * 8
        padded = torch.cat([weight, weight.new_zeros(out_features, self._width - in_features)], dim=1)
        scale = (weight.abs().amax(dim=1).clamp(min=1e-12) / 127.0).double()
        # Row blocks pack in parallel threads (the ops release the GIL) and keep each pack small.
        blocks = [(start, min(start + BLOCK_ROWS, out_features)) for start in range(0, out_features, BLOCK_ROWS)]

        def pack(block):
            lo, hi = block
            with warnings.catch_warnings():  # the quantized-tensor constructors warn of their future removal
                warnings.simplefilter("ignore")
                q = torch.quantize_per_channel(
                    padded[lo:hi], scale[lo:hi], torch.zeros(hi - lo, dtype=torch.long), 0, torch.qint8
                )
                return torch.ops.quantized.linear_prepack(q, None)

        self._packed = (
            list(pool.map(pack, blocks)) if pool is not None and len(blocks) > 1 else [pack(b) for b in blocks]
        )
        self.in_features, self.out_features = in_features, out_features
        self.bias = None if linear.bias is None else torch.nn.Parameter(linear.bias.detach().float(), False)
        # What forward appends to each scaled row: +1, -1, then zeros up to the packed width.
        tail = torch.zeros(1, self._width - in_features)
        tail[0, 0], tail[0, 1] = 1.0, -1.0
        self.register_buffer("_tail", tail, persistent=False)
        self.register_buffer("_inverse_smooth", None if smooth is None else 1.0 / smooth, persistent=False)

    def forward(self, x: Any) -> Any:
        # As few tensor ops as possible: at decode time each costs about as much as the matmul of a
        # small layer.
        rows = x.reshape(-1, self.in_features).float()
        if self._inverse_smooth is not None:
            rows = rows * self._inverse_smooth
        peak = rows.abs().amax(dim=1, keepdim=True).clamp_(min=1e-30)
        scaled = torch.cat([rows / peak, self._tail.expand(rows.shape[0], -1)], dim=1)
        # reduce_range: 7-bit activations, as fbgemm needs on CPUs without VNNI to avoid saturation
        parts = [torch.ops.quantized.linear_dynamic(scaled, packed, True) for packed in self._packed]
        y = (parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)).mul_(peak)
        if self.bias is not None:
            y = y.add_(self.bias)
        return y.reshape(*x.shape[:-1], self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 (fbgemm, per-row)"


class Int4Linear(torch.nn.Module):
    """`nn.Linear` with int4 weights in groups of 32 (asymmetric, one scale and zero per group) on
    PyTorch's CPU int4 kernel, computing in bf16."""

    def __init__(self, linear: Any, group: int = INT4_GROUP):
        super().__init__()
        weight = linear.weight.detach().float()
        out_features, in_features = weight.shape
        groups = weight.reshape(out_features, in_features // group, group)
        low = groups.amin(dim=-1, keepdim=True)
        high = groups.amax(dim=-1, keepdim=True)
        scale = ((high - low) / 15.0).clamp(min=1e-8)
        q = torch.round((groups - low) / scale).clamp(0, 15).to(torch.int32).reshape(out_features, in_features)
        zero = low + 8.0 * scale  # the kernel computes (q - 8) * scale + zero
        scales_zeros = torch.cat([scale, zero], dim=-1).transpose(0, 1).contiguous()  # [groups, out, 2]
        self.register_buffer("packed", torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 2), persistent=False)
        self.register_buffer("scales_zeros", scales_zeros.to(torch.bfloat16), persistent=False)
        self.in_features, self.out_features, self.group = in_features, out_features, group
        self.bias = None if linear.bias is None else torch.nn.Parameter(linear.bias.detach().float(), False)

    @staticmethod
    def fits(linear: Any, group: int = INT4_GROUP) -> bool:
        return linear.in_features % group == 0 and linear.out_features % 8 == 0

    def forward(self, x: Any) -> Any:
        rows = x.reshape(-1, self.in_features).to(torch.bfloat16)
        y = torch.ops.aten._weight_int4pack_mm_for_cpu(rows, self.packed, self.group, self.scales_zeros).float()
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int4 (groups of {self.group})"


def linear_parameters(model: Any) -> int:
    """Parameters held by the model's linear layers (the LM head counted even when tied)."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))


def available(scheme: str) -> str | None:
    """None when this PyTorch build can run `scheme` on the CPU, else why not."""
    if scheme == "int8":
        if "fbgemm" not in torch.backends.quantized.supported_engines and "x86" not in (
            torch.backends.quantized.supported_engines
        ):
            return "this PyTorch build has no fbgemm (x86) quantized engine"
        if not hasattr(torch.ops.quantized, "linear_dynamic"):
            return "this PyTorch build has no quantized::linear_dynamic"
    if scheme == "int4" and not hasattr(torch.ops.aten, "_weight_int4pack_mm_for_cpu"):
        return "this PyTorch build has no aten::_weight_int4pack_mm_for_cpu"
    return None


# Calibration text for int8's smoothing: the languages and prompt shapes lgemma runs.
CALIBRATION = (
    "日本の首都は東京です。The capital of Japan is Tokyo.",
    "Q: 猫は何を食べますか？\nA: 魚です。",
    "Translate to English: 彼は昨日学校へ行った。\nEnglish: He went to school yesterday.",
    "Question: Every wumpus is a yumpus. Is Tom a lempus or a gorpus? Answer step by step.",
)
SMOOTH_ALPHA = 0.5


def activation_peaks(model: Any, tokenizer: Any, texts=CALIBRATION) -> dict[str, Any]:
    """Per input channel, the largest |activation| each linear layer sees on `texts` (fp32).

    The LM head is not run: its input is the decoder's final hidden state, read off the backbone
    (a 262k-wide head over every calibration position would be most of the cost)."""
    peaks: dict[str, Any] = {}

    def record(name: str):
        def hook(module, inputs, output):
            peak = inputs[0].reshape(-1, inputs[0].shape[-1]).abs().amax(dim=0).float()
            peaks[name] = torch.maximum(peaks[name], peak) if name in peaks else peak

        return hook

    head = model.get_output_embeddings()
    head_name = next((n for n, m in model.named_modules() if m is head), None)
    backbone = getattr(model, "base_model", None)
    if backbone is None or backbone is model or head_name is None:
        backbone, head_name = model, None  # no separate decoder: run the whole model
    handles = [
        m.register_forward_hook(record(name))
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and name != head_name
    ]
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            for text in texts:
                ids = tokenizer(text, return_tensors="pt")["input_ids"].to(device)
                out = backbone(input_ids=ids, use_cache=False)
                if head_name is not None:
                    hidden = out.last_hidden_state.reshape(-1, out.last_hidden_state.shape[-1])
                    peak = hidden.abs().amax(dim=0).float()
                    peaks[head_name] = torch.maximum(peaks[head_name], peak) if head_name in peaks else peak
    finally:
        for handle in handles:
            handle.remove()
    return peaks


def smoothing(linear: Any, peak: Any, alpha: float = SMOOTH_ALPHA) -> Any:
    """SmoothQuant's per-input-channel factors s = peak^alpha / max|W|^(1 - alpha)."""
    weight_peak = linear.weight.detach().float().abs().amax(dim=0).clamp(min=1e-5)
    return (peak.clamp(min=1e-5) ** alpha / weight_peak ** (1 - alpha)).clamp(min=1e-5)


def quantize_model(model: Any, scheme: str, tokenizer: Any = None) -> int:
    """Replace the model's linear layers by `scheme` ("int8" or "int4") ones in place; return how
    many were replaced. Layers int4 cannot hold (an input size not a multiple of 32) stay float.

    With a tokenizer, int8 first measures each layer's activation peaks on a few calibration
    sentences and moves activation outliers into the weights (SmoothQuant, alpha 0.5): on Gemma 3
    270M that cut the mean per-layer output error from 2.4-10.8% to 1.6-5.1%."""
    if scheme not in ("int8", "int4"):
        raise ValueError(f"unknown quantization {scheme!r}")
    targets = [(name, m) for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    peaks = activation_peaks(model, tokenizer) if scheme == "int8" and tokenizer is not None else {}
    from concurrent.futures import ThreadPoolExecutor

    def convert(item):
        name, linear = item
        with torch.no_grad():
            if scheme == "int8":
                return name, Int8Linear(linear, smoothing(linear, peaks[name]) if name in peaks else None, pool=blocks)
            return name, Int4Linear(linear)

    wanted = [(n, m) for n, m in targets if scheme == "int8" or Int4Linear.fits(m)]
    # Layers convert in parallel threads (quantizing and packing release the GIL); a second pool
    # packs the row blocks of a large layer, so the two never wait on each other.
    threads = max(1, torch.get_num_threads())
    with ThreadPoolExecutor(threads) as layers, ThreadPoolExecutor(threads) as blocks:
        converted = list(layers.map(convert, wanted))
    for name, new in converted:
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
    return len(converted)


def choose(requested: str, device: str, dtype: str, model: Any, answer_tokens: int | None = None) -> tuple[str, str]:
    """(scheme, reason): what to apply to `model` for a `--quantize` request. `answer_tokens` is the
    most tokens the loaded model will generate, when it answers once (`ask`): below
    AUTO_MIN_ANSWER_TOKENS the seconds quantizing costs at load are not paid back. None: it answers
    many times (chat, translate, eval, serve), which pays them back."""
    if requested in ("int8", "int4"):
        missing = available(requested)
        if missing:
            raise UsageError(f"--quantize {requested}: {missing}", hint="use --quantize none")
        return requested, "requested"
    if requested == "none":
        return "none", "requested"
    if device != "cpu":
        return "none", "auto: quantized kernels run on the CPU only"
    if dtype != "float32":
        return "none", f"auto: {dtype} was asked for"
    params = linear_parameters(model)
    if params < AUTO_MIN_PARAMETERS:
        return "none", f"auto: {params / 1e6:.1f}M linear parameters, too few for quantizing to pay"
    if AUTO_SCHEME == "none" or available(AUTO_SCHEME):
        return "none", "auto: full precision"
    if answer_tokens is not None and answer_tokens < AUTO_MIN_ANSWER_TOKENS:
        return "none", (
            f"auto: one answer of at most {answer_tokens} tokens, too short to pay back quantizing at load "
            f"(from {AUTO_MIN_ANSWER_TOKENS}; --quantize int8)"
        )
    return AUTO_SCHEME, f"auto: CPU, {params / 1e6:.0f}M linear parameters" + (
        f", up to {answer_tokens} tokens" if answer_tokens is not None else ""
    )
