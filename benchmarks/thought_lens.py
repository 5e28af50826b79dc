"""What do a COCONUT model's continuous thoughts encode? A logit lens on each thought.

For every test problem, run the prompt, `<bot>` and the model's thoughts exactly as `lgemma ask
--mode coconut` does (the engine's `run_prefix_batch`, the model's own feedback transform), and
decode each thought's input vector -- the previous position's last hidden state -- with the
model's LM head (with `token_mix` feedback the thought is the expected embedding under that
position's next-token distribution, and the lens reads that distribution's top-1). With steps
written as concepts (`lgemma synth --steps concepts`), thought j's input should name the
(j // c)-th concept on the gold chain (c thoughts per step; with c > 1 the first thought of a step
is the one that can name it) if the model walks the chain in latent space, as the paper's
analysis of ProsQA thoughts found (continuous thoughts encode the frontier nodes).

With a subword vocabulary (Gemma's) a concept is several tokens; a thought "names" it when its
top-1 token is the concept's first token (with or without a leading space).

Prints, per thought, how often the top-1 token is the gold concept at that step or a gold concept
of another step (and how many steps ahead or behind), and how often every thought names the gold
chain in order (at the same step, or one step ahead: a model that already makes one hop while
reading `<bot>` runs one step ahead).

    python benchmarks/thought_lens.py --model DIR --data test.jsonl [--limit 200]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def people(question: str) -> tuple[str | None, set[str]]:
    """The person a synthetic walk asks about and the other people its facts name ("Jack is a
    gevpus." / "ジャックはガーフパスです。"; "Every ..." / "すべての..." facts are not people)."""
    asked = re.search(r"(?:^|[.?!。] ?)Is (\S+) an? ", question) or re.search(
        r"(?:^|。 ?)([^。 ]+?)は[^。]*ですか", question
    )
    named = set(re.findall(r"(?:^|\. )(?!Every )(\S+) is an? \S+\.", question))
    named |= set(re.findall(r"(?:^|。 ?)(?!すべての)([^。 ]+?)は[^。、]+です。", question))
    name = asked.group(1) if asked else None
    return name, named - {name}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a latent-trained model directory")
    ap.add_argument("--data", required=True, help="JSON Lines with question and steps (one concept per step)")
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument(
        "--report",
        help="an `lgemma eval --per-example --json` report of this model on --data: accuracy split by whether the chain decodes",
    )
    args = ap.parse_args(argv)

    import torch

    from latent_gemma_cli.engine import LatentRunner, run_prefix_batch
    from latent_gemma_cli.loading import load_model
    from latent_gemma_cli.prompting import prompt_ids

    loaded = load_model(args.model, device="cpu", dtype="float32")
    model, tok, spec = loaded.model, loaded.tokenizer, loaded.spec
    if spec is None:
        ap.error(f"{args.model} has no lgemma_latent.json: not latent-trained")
    runner = LatentRunner(model)
    markers = (runner.token_ids(tok, spec.bot), runner.token_ids(tok, spec.eot))
    rows = [json.loads(line) for line in open(args.data, encoding="utf-8") if line.strip()][: args.limit]
    n = spec.num_thoughts
    c = max(1, spec.thoughts_per_step)
    exact = [0] * n
    elsewhere = [0] * n
    offsets: list[dict[int, int]] = [{} for _ in range(n)]
    whole = {0: 0, 1: 0}  # every thought names the gold concept d steps ahead of it
    decoded: dict[str, bool] = {}  # id -> the chain decodes (at either offset)
    if spec.feedback == "pause":
        runner.pause_id = runner.token_ids(tok, spec.pause)

    def firsts(concept: str) -> set[int]:
        """The ids a concept's text can start with (with and without a leading space): with a
        subword vocabulary a thought "names" a concept when its top-1 token begins it."""
        out = set()
        for text in (concept, " " + concept):
            ids = tok(text, add_special_tokens=False)["input_ids"]
            if ids:
                out.add(ids[0])
        return out

    tops: list[dict[int, int]] = [{} for _ in range(n)]  # top-1 token counts per thought
    # thoughts whose top-1 token begins the asked person's name / another person's name
    asked_hits, other_hits = [0] * n, [0] * n
    first_other: dict[str, bool] = {}  # id -> thought 1 names another person
    ambiguous = 0  # problems whose gold concepts share a first token (a hit could be either)
    with torch.inference_mode():
        for row in rows:
            prefix = run_prefix_batch(runner, [prompt_ids(tok, row["question"])], "coconut", n, markers, spec.feedback)
            if spec.feedback == "token_mix" and n:
                # the thought is the expected embedding under this distribution: read it directly
                top = runner.next_token_logits(prefix.thought_states[0]).argmax(-1).tolist()
            else:
                top = model.get_output_embeddings()(prefix.thought_inputs[0]).argmax(-1).tolist()
            gold = row["steps"]
            starts = [firsts(c) for c in gold]
            ambiguous += any(starts[a] & starts[b] for a in range(len(gold)) for b in range(a + 1, len(gold)))
            named = [[k for k in range(len(gold)) if top[j] in starts[k]] for j in range(n)]
            for j in range(n):
                tops[j][top[j]] = tops[j].get(top[j], 0) + 1
            asked, others = people(row["question"])
            other_ids = set().union(*(firsts(o) for o in others)) if others else set()
            asked_ids = firsts(asked) if asked else set()
            other = [t in other_ids and t not in asked_ids for t in top]
            for j in range(n):
                asked_hits[j] += top[j] in asked_ids
                other_hits[j] += other[j]
            if n:
                first_other[str(row.get("id"))] = other[0]
            # thought j stands for step j // c; with c > 1 the first thought of each step names it
            hits = [j // c < len(gold) and j // c in named[j] for j in range(n)]
            for j in range(n):
                exact[j] += hits[j]
                elsewhere[j] += (not hits[j]) and bool(named[j])
                if named[j] and not hits[j]:
                    k = named[j][0] - j // c
                    offsets[j][k] = offsets[j].get(k, 0) + 1
            chain = False
            for d in whole:
                ok = all(j // c + d in named[j] for j in range(0, n, c) if j // c + d < len(gold))
                whole[d] += ok
                chain = chain or ok
            decoded[str(row.get("id"))] = chain
    total = len(rows)
    print(f"{args.model}: {total} problems, {n} thoughts ({c} per step), feedback {spec.feedback}")
    print(
        f"(a thought names a concept when its top-1 token is the concept's first token; {ambiguous} problems have gold concepts sharing one)"
    )
    print(
        "| thought | top-1 = gold concept of its step (j // c) | top-1 = a gold concept of another step | steps ahead (+) or behind (-): count |"
    )
    print("|---|---|---|---|")
    for j in range(n):
        shift = ", ".join(f"{k:+d}: {c}" for k, c in sorted(offsets[j].items()) if k)
        print(f"| {j + 1} | {100 * exact[j] / total:.1f}% | {100 * elsewhere[j] / total:.1f}% | {shift or '-'} |")
    for j in range(n):
        common = sorted(tops[j].items(), key=lambda kv: -kv[1])[:5]
        shown = ", ".join(f"{tok.decode([t])!r} {c}" for t, c in common)
        print(f"thought {j + 1}, most frequent top-1 tokens: {shown}")
    for j in range(n):
        print(
            f"thought {j + 1} begins the asked person's name: {100 * asked_hits[j] / total:.1f}%, "
            f"another person's: {100 * other_hits[j] / total:.1f}%"
        )
    for d, count in whole.items():
        print(
            f"the first thought of every step k names gold concept k{'+' + str(d) if d else ''}: {100 * count / total:.1f}% of problems"
        )
    if args.report:
        report = json.loads(Path(args.report).read_text(encoding="utf-8"))
        examples = [e for rows_ in report["examples"].values() for e in rows_ if e["id"] in decoded]
        splits = (
            (decoded, "chain decodes", "chain does not decode"),
            (first_other, "thought 1 names another person", "thought 1 does not"),
        )
        for flags, *labels in splits:
            for flag, label in zip((True, False), labels):
                part = [e for e in examples if flags.get(e["id"]) == flag]
                right = sum(bool(e["correct"]) for e in part)
                print(
                    f"{label}: {len(part)} problems, answer right in {right} ({100 * right / max(1, len(part)):.1f}%)"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
