"""Latency ratios of the latent engine, measured in one run.

For a tiny Gemma 2 and a full-size Gemma 2 2B configuration (random weights: speed does not
depend on their values; built on the meta device, then materialised) it prints:

* one thought (coconut: backbone only; soft: LM head + embedding mix) relative to one decode step;
* k=5 paths decoded in one batch relative to k=1, for the same number of new tokens;
* a whole engine call (prefill + thoughts + decoding, soft mode) relative to `transformers`
  `generate` greedy for the same number of new tokens.

    python benchmarks/latency.py [--sizes tiny,2b] [--new-tokens 16] [--thoughts 4] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import AutoModelForCausalLM, Gemma2Config

from latent_gemma_cli import engine

GEMMA2_2B = dict(
    vocab_size=256000,
    hidden_size=2304,
    intermediate_size=9216,
    num_hidden_layers=26,
    num_attention_heads=8,
    num_key_value_heads=4,
    head_dim=256,
    max_position_embeddings=8192,
    sliding_window=4096,
    query_pre_attn_scalar=256,
)
TINY = dict(
    vocab_size=400,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    max_position_embeddings=512,
    sliding_window=256,
)


def build(size: str):
    config = Gemma2Config(**(GEMMA2_2B if size == "2b" else TINY), pad_token_id=0, eos_token_id=1, bos_token_id=2)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model = model.to_empty(device="cpu")
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.02)
        # Buffers (rotary frequencies, embedding scale) must be real, not uninitialised memory.
        model.model.rotary_emb = type(model.model.rotary_emb)(config=config)
        model.model.embed_tokens.embed_scale.fill_(config.hidden_size**0.5)
    return model.eval()


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


@torch.inference_mode()
def measure(size: str, new_tokens: int, thoughts: int, repeats: int) -> dict[str, float]:
    model = build(size)
    runner = engine.LatentRunner(model)
    prompt = list(range(3, 3 + 24))
    prefix = engine.run_prefix(runner, prompt, "off", 0, None)
    token = torch.tensor([[5]])

    def decode_step():
        runner.logits(runner.embed(token), prefix.cache)
        prefix.cache.crop(-1)

    vec = runner.hidden(runner.embed(torch.tensor([prompt])), runner.new_cache())[:, None, :]

    def coconut_thought():
        runner.hidden(vec, prefix.cache)
        prefix.cache.crop(-1)

    def soft_thought():
        mix = runner.soft_embedding(prefix.logits, 0.95)
        runner.logits(mix[:, None, :], prefix.cache)
        prefix.cache.crop(-1)

    def paths(k):
        def run():
            p = engine.run_prefix(runner, prompt, "off", 0, None)
            engine.decode_paths(runner, p, k, new_tokens, eos_ids=set())

        return run

    def engine_call():
        p = engine.run_prefix(runner, prompt, "soft", thoughts, None)
        engine.decode_paths(runner, p, 1, new_tokens, eos_ids=set())

    def hf_generate():
        model.generate(
            torch.tensor([prompt]),
            do_sample=False,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            pad_token_id=0,
        )

    step = timed(decode_step, repeats * 2)
    out = {
        "decode_step_s": step,
        "coconut_thought_vs_step": timed(coconut_thought, repeats * 2) / step,
        "soft_thought_vs_step": timed(soft_thought, repeats * 2) / step,
    }
    one = timed(paths(1), repeats)
    out["k5_vs_k1"] = timed(paths(5), repeats) / one
    out["engine_vs_generate"] = timed(engine_call, repeats) / timed(hf_generate, repeats)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="tiny,2b")
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--thoughts", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32 CPU; "
        f"{args.new_tokens} new tokens, {args.thoughts} soft thoughts in the engine call"
    )
    print(
        f"{'model':<8} {'decode step':>12} {'coconut thought':>16} {'soft thought':>13} {'k=5 / k=1':>10} {'engine / generate':>18}"
    )
    for size in args.sizes.split(","):
        r = measure(size, args.new_tokens, args.thoughts, args.repeats)
        print(
            f"{size:<8} {r['decode_step_s'] * 1000:>10.1f}ms {r['coconut_thought_vs_step']:>15.2f}x "
            f"{r['soft_thought_vs_step']:>12.2f}x {r['k5_vs_k1']:>9.2f}x {r['engine_vs_generate']:>17.2f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
