"""Which language a model answers Japanese questions in: the share of answers detected as Japanese
for 50 JCommonsenseQA questions and 50 JSQuAD questions (with their paragraph as context, as
`cat paragraph | lgemma ask "question"` builds it), with and without the answer-language
instruction, each as typed and in the README's `Q: ... A:` form.

    python benchmarks/answer_language.py [--model gemma-3-270m] [--rows 50] [--max-new-tokens 24]
        [--forms typed,qa]

"instruction" is what `lgemma ask` adds for a Japanese question by default
(`prompting.ANSWER_LANGUAGE_INSTRUCTIONS["ja"]`: a system text for a chat-template model, a line
before the question for a base model). Detection is lgemma's own (`language.detect`, seeded
langdetect); "has Japanese" counts answers with any kana or kanji at all.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def questions(data_dir: Path, rows: int) -> dict[str, list[str]]:
    from latent_gemma_cli.prompting import compose_question

    jcqa = [json.loads(line)["question"] for line in (data_dir / "jcommonsenseqa/valid.jsonl").open(encoding="utf-8")]
    squad = json.loads((data_dir / "jsquad/valid.json").read_text(encoding="utf-8"))
    jsquad = []
    for article in squad["data"]:
        for paragraph in article["paragraphs"]:
            qa = paragraph["qas"][0]
            jsquad.append(compose_question(qa["question"], paragraph["context"]))
    return {"JCommonsenseQA": jcqa[:rows], "JSQuAD": jsquad[:rows]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--rows", type=int, default=50)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--forms", default="typed,qa", help="typed (the question as typed) and/or qa (Q: ... A:)")
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    args = parser.parse_args()

    from latent_gemma_cli import language, prompting
    from latent_gemma_cli.loading import load_model
    from latent_gemma_cli.settings import Settings

    loaded = load_model(args.model, device="cpu", dtype="float32")
    instruction = prompting.ANSWER_LANGUAGE_INSTRUCTIONS["ja"]
    every = {"typed": ("as typed", lambda q: q), "qa": ("Q: ... A:", lambda q: f"Q: {q}\nA:")}
    forms = dict(every[f] for f in args.forms.split(","))
    settings = Settings(mode="off", max_new_tokens=args.max_new_tokens)
    rows = []
    for set_name, qs in questions(Path(args.data_dir), args.rows).items():
        for form_name, form in forms.items():
            for variant in ("no instruction", "instruction"):
                ja = script = 0
                for q in qs:
                    system = instruction if variant == "instruction" else None
                    ids = prompting.prompt_ids(loaded.tokenizer, form(q), system=system)
                    answer = loaded.engine.generate(ids, settings).answer
                    ja += language.detect(answer).code == "ja"
                    script += language.has_japanese(answer)
                rows.append((set_name, form_name, variant, ja, script, len(qs)))
                print(
                    f"{set_name} | {form_name} | {variant}: ja {ja}/{len(qs)}, has Japanese {script}/{len(qs)}",
                    flush=True,
                )
    print()
    print(
        f"model {args.model} ({'chat template' if prompting.has_chat_template(loaded.tokenizer) else 'base, no chat template'})"
    )
    print("| questions | form | prompt | detected ja | has Japanese |")
    print("|---|---|---|---|---|")
    for set_name, form_name, variant, ja, script, n in rows:
        print(f"| {set_name} | {form_name} | {variant} | {ja}/{n} | {script}/{n} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
