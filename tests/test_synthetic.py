"""The ProsQA-style generator: unique answers by construction, valid chains, reproducible."""

from __future__ import annotations

import json
import re

from typer.testing import CliRunner

from latent_gemma_cli.cli import app
from latent_gemma_cli.synthetic import generate, reachable

EN_EVERY = re.compile(r"Every (\w+) is a (\w+)\.")
EN_IS = re.compile(r"(?<!Every )\b([A-Z]\w+) is a (\w+)\.")
JA_EVERY = re.compile(r"すべての(\S+?)は(\S+?)です。")


def _facts_en(question: str) -> list[tuple[str, str]]:
    body = question.rsplit(".", 1)[0] + "."
    facts = EN_EVERY.findall(body)
    facts += [(x, y) for x, y in EN_IS.findall(body) if x != "Every"]
    return facts


def test_answer_follows_and_distractor_does_not():
    for p in generate(60, seed=3, lang="en", hops=(2, 6), distractors=12, branches=4):
        who, a, b = re.search(r"Is (\w+) a (\w+) or (\w+)\?$", p.question).groups()
        reach = reachable(_facts_en(p.question), who)
        target, distractor = p.meta["target"], p.meta["distractor"]
        assert {a, b} == {target, distractor}
        assert target in reach and distractor not in reach
        assert p.answer == f"{who} is a {target}."


def test_steps_are_a_chain_of_stated_facts():
    for p in generate(30, seed=1, lang="en", hops=(3, 5)):
        assert 3 <= len(p.steps) <= 5 and p.hops == len(p.steps)
        for step in p.steps:
            assert step in p.question
        concepts = [re.search(r"is a (\w+)\.$", s).group(1) for s in p.steps]
        for prev, step in zip(concepts, p.steps[1:]):
            assert step.startswith(f"Every {prev} ")
        assert p.answer.endswith(f"a {concepts[-1]}.")


def test_japanese_is_the_same_graph():
    pairs = list(generate(10, seed=5, lang="both"))
    for en, ja in zip(pairs[::2], pairs[1::2]):
        assert en.lang == "en" and ja.lang == "ja"
        assert len(en.steps) == len(ja.steps)
        assert len(EN_EVERY.findall(en.question)) == len(JA_EVERY.findall(ja.question))
        assert ja.question.endswith("ですか？") and ja.answer.endswith("です。")
        for step in ja.steps:
            assert step in ja.question


def test_seed_reproduces_and_differs():
    one = [p.to_json() for p in generate(5, seed=9)]
    assert one == [p.to_json() for p in generate(5, seed=9)]
    assert one != [p.to_json() for p in generate(5, seed=10)]


def test_cli_writes_training_format(tmp_path):
    out = tmp_path / "train.jsonl"
    result = CliRunner().invoke(app, ["synth", "--n", "4", "--lang", "both", "--hops", "2-3", "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 8
    for r in rows:
        assert {"question", "steps", "answer", "lang", "id"} <= set(r)
    bad = CliRunner().invoke(app, ["synth", "--hops", "5-2"])
    assert bad.exit_code == 2 and "hops" in bad.stderr
    bad = CliRunner().invoke(app, ["synth", "--style", "maze"])
    assert bad.exit_code == 2 and "style" in bad.stderr
    walk = tmp_path / "walk.jsonl"
    result = CliRunner().invoke(app, ["synth", "--n", "3", "--style", "taxonomy", "--hops", "4", "-o", str(walk)])
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in walk.read_text(encoding="utf-8").splitlines()]
    assert [len(r["steps"]) for r in rows] == [4, 4, 4]


# --- style="prosqa": graphs shaped like the paper's ProsQA -------------------------------------

NAMES = [
    "wumpus",
    "yumpus",
    "zumpus",
    "lempus",
    "gorpus",
    "rompus",
    "tumpus",
    "numpus",
    "jompus",
    "dumpus",
    "impus",
    "vumpus",
    "sterpus",
    "brimpus",
    "lorpus",
    "timpus",
    "shumpus",
    "grimpus",
    "scrompus",
    "boompus",
    "felpus",
    "fompus",
    "gerpus",
    "hilpus",
    "kerpus",
    "rempus",
    "terpus",
    "yerpus",
    "zhorpus",
    "storpus",
]
PEOPLE_NAMES = ["Tom", "Sally", "Rex", "Wren", "Polly"]


def _graph(question: str) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for x, y in _facts_en(question):
        graph.setdefault(x, set()).add(y)
    return graph


def _distances(graph: dict[str, set[str]], start: str) -> dict[str, int]:
    dist, frontier = {start: 0}, [start]
    while frontier:
        nxt = []
        for node in frontier:
            for y in sorted(graph.get(node, ())):
                if y not in dist:
                    dist[y] = dist[node] + 1
                    nxt.append(y)
        frontier = nxt
    return dist


def test_prosqa_style_answer_is_unique_and_chain_is_shortest():
    problems = list(generate(80, seed=7, style="prosqa", hops=(3, 6), branches=7, distractors=6))
    for p in problems:
        who, a, b = re.search(r"Is (\w+) a (\w+) or (\w+)\?$", p.question).groups()
        graph = _graph(p.question)
        dist = _distances(graph, who)
        target, distractor = p.meta["target"], p.meta["distractor"]
        assert {a, b} == {target, distractor}
        assert target in dist and distractor not in dist
        # the gold chain is a shortest path, both candidates are leaves
        assert dist[target] == len(p.steps) == p.hops
        assert not graph.get(target) and not graph.get(distractor)
        assert p.steps[0].startswith(f"{who} is a ") and p.answer == f"{who} is a {target}."
        for step in p.steps:
            assert step in p.question
        concepts = [re.search(r"is a (\w+)\.$", s).group(1) for s in p.steps]
        for prev, step in zip(concepts, p.steps[1:]):
            assert step.startswith(f"Every {prev} ")
        assert concepts[-1] == target
    # roughly ProsQA's size: ~36 facts over ~23 symbols
    mean_facts = sum(p.meta["facts"] for p in problems) / len(problems)
    assert 25 <= mean_facts <= 45
    assert len({len(p.steps) for p in problems}) == 4


def test_prosqa_style_names_from_a_list_and_reproducible():
    problems = list(generate(20, seed=2, style="prosqa", names=NAMES, people=PEOPLE_NAMES))
    allowed = set(NAMES) | set(PEOPLE_NAMES) | {"Every", "is", "a", "Is", "or"}
    for p in problems:
        assert set(re.findall(r"\w+", p.question)) <= allowed
        assert set(re.findall(r"\w+", " ".join(p.steps) + " " + p.answer)) <= allowed
    again = [p.to_json() for p in generate(20, seed=2, style="prosqa", names=NAMES, people=PEOPLE_NAMES)]
    assert again == [p.to_json() for p in problems]


def test_prosqa_style_japanese_is_the_same_graph():
    pairs = list(generate(6, seed=4, lang="both", style="prosqa"))
    for en, ja in zip(pairs[::2], pairs[1::2]):
        assert len(en.steps) == len(ja.steps)
        assert len(EN_EVERY.findall(en.question)) == len(JA_EVERY.findall(ja.question))
        assert ja.question.endswith("ですか？")
        for step in ja.steps:
            assert step in ja.question


# --- style="taxonomy": one parent per concept, a walk without search ----------------------------


def test_taxonomy_style_is_a_walk_to_one_of_two_symmetric_leaves():
    problems = list(
        generate(80, seed=11, style="taxonomy", hops=(2, 6), distractors=5, names=NAMES, people=PEOPLE_NAMES)
    )
    for p in problems:
        who, a, b = re.search(r"Is (\w+) a (\w+) or (\w+)\?$", p.question).groups()
        graph = _graph(p.question)
        target, distractor = p.meta["target"], p.meta["distractor"]
        assert {a, b} == {target, distractor}
        # one "is a" fact per concept and per person: following the facts from anyone is a walk
        assert all(len(parents) == 1 for parents in graph.values())
        walk, node = [], who
        while graph.get(node):
            node = next(iter(graph[node]))
            walk.append(node)
        assert walk[-1] == target and distractor not in walk and len(walk) == len(p.steps) == p.hops
        # the distractor is a leaf at the same distance from another person: no shortcut
        assert not graph.get(target) and not graph.get(distractor)
        others = [x for x in graph if x[:1].isupper() and x != who]
        assert any(_distances(graph, o).get(distractor) == p.hops for o in others)
        concepts = [re.search(r"is a (\w+)\.$", s).group(1) for s in p.steps]
        assert concepts == walk and p.answer == f"{who} is a {target}."
        for step in p.steps:
            assert step in p.question
    assert len({len(p.steps) for p in problems}) == 5
    again = [
        p.to_json()
        for p in generate(80, seed=11, style="taxonomy", hops=(2, 6), distractors=5, names=NAMES, people=PEOPLE_NAMES)
    ]
    assert again == [p.to_json() for p in problems]


def test_taxonomy_one_person_hangs_the_distractor_from_a_concept():
    for p in generate(
        40, seed=12, style="taxonomy", hops=(1, 5), distractors=2, names=NAMES, people=PEOPLE_NAMES, one_person=True
    ):
        who = re.search(r"Is (\w+) a", p.question).group(1)
        graph = _graph(p.question)
        assert [x for x in graph if x[:1].isupper()] == [who]
        assert all(len(parents) == 1 for parents in graph.values())
        assert _distances(graph, who)[p.meta["target"]] == p.hops
        # the distractor is as far from a concept that no fact reaches
        reached = {y for ys in graph.values() for y in ys}
        roots = [x for x in graph if x not in reached and x != who]
        assert any(_distances(graph, r).get(p.meta["distractor"]) == p.hops for r in roots)
        assert p.meta["distractor"] not in _distances(graph, who)


def test_taxonomy_style_japanese_is_the_same_graph():
    pairs = list(generate(6, seed=4, lang="both", style="taxonomy", hops=(3, 4)))
    for en, ja in zip(pairs[::2], pairs[1::2]):
        assert len(en.steps) == len(ja.steps)
        assert len(EN_EVERY.findall(en.question)) == len(JA_EVERY.findall(ja.question))
        assert ja.question.endswith("ですか？") and ja.answer.endswith("です。")
        for step in ja.steps:
            assert step in ja.question


def test_style_arguments_are_checked():
    import pytest

    with pytest.raises(ValueError):
        list(generate(1, style="nope"))
    with pytest.raises(ValueError):
        list(generate(1, names=NAMES))  # names need style="prosqa"
    with pytest.raises(ValueError):
        list(generate(1, style="prosqa", names=NAMES[:3]))  # too few distinct names


def test_concept_steps_are_the_chain_the_fact_steps_walk():
    for style in ("chain", "prosqa", "taxonomy"):
        facts = list(generate(12, seed=6, lang="both", style=style, hops=(3, 5)))
        concepts = list(generate(12, seed=6, lang="both", style=style, hops=(3, 5), steps="concepts"))
        for f, c in zip(facts, concepts):
            assert (c.question, c.answer) == (f.question, f.answer)
            assert len(c.steps) == len(f.steps) == c.hops
            assert c.steps[-1] == c.meta["target"]
            # each concept step is the object of the matching fact step ("... is a X." / "...はXです。")
            for word, sentence in zip(c.steps, f.steps):
                assert sentence.endswith((f" {word}.", f"は{word}です。")), (word, sentence)
    with __import__("pytest").raises(ValueError):
        list(generate(1, steps="sentences"))


def test_cli_concept_steps(tmp_path):
    out = tmp_path / "c.jsonl"
    result = CliRunner().invoke(
        app, ["synth", "--n", "2", "--style", "taxonomy", "--hops", "3", "--steps", "concepts", "-o", str(out)]
    )
    assert result.exit_code == 0, result.stderr
    for r in map(json.loads, out.read_text(encoding="utf-8").splitlines()):
        assert len(r["steps"]) == 3 and all(" " not in s for s in r["steps"])
        assert r["answer"].endswith(f" {r['steps'][-1]}.")
    bad = CliRunner().invoke(app, ["synth", "--steps", "words"])
    assert bad.exit_code == 2 and "step" in bad.stderr


def test_word_vocabulary_names_concepts_with_paired_everyday_nouns(tmp_path):
    from latent_gemma_cli.synthetic import WORDS

    en_of = dict((ja, en) for en, ja in WORDS)
    assert len(en_of) == len(WORDS) == len({en for en, _ in WORDS})  # unique in both languages
    assert not any(en[0] in "aeiou" for en, _ in WORDS)  # "is a X" stays grammatical
    for style in ("chain", "prosqa", "taxonomy"):
        rows = list(generate(8, seed=2, lang="both", style=style, hops=(3, 4), steps="concepts", vocab="words"))
        for en, ja in zip(rows[::2], rows[1::2]):
            assert all(step in dict(WORDS) for step in en.steps), en.steps
            # the Japanese problem is the same graph with every concept translated
            assert [en_of[s] for s in ja.steps] == en.steps
            assert en_of[ja.meta["distractor"]] == en.meta["distractor"]
            for word, sentence in zip(en.steps[1:], en.steps):
                assert f"Every {sentence} is a {word}." in en.question
            assert en.answer.endswith(f" {en.steps[-1]}.") and ja.answer.endswith(f"は{ja.steps[-1]}です。")
    made_up = [p.to_json() for p in generate(4, seed=2, style="taxonomy")]
    assert made_up == [p.to_json() for p in generate(4, seed=2, style="taxonomy", vocab="made-up")]
    assert made_up != [p.to_json() for p in generate(4, seed=2, style="taxonomy", vocab="words")]
    import pytest

    with pytest.raises(ValueError):
        list(generate(1, vocab="klingon"))
    out = tmp_path / "w.jsonl"
    ok = CliRunner().invoke(app, ["synth", "--n", "2", "--style", "taxonomy", "--vocab", "words", "-o", str(out)])
    assert ok.exit_code == 0, ok.stderr
    assert all(
        r["meta"]["target"] in dict(WORDS) for r in map(json.loads, out.read_text(encoding="utf-8").split("\n")[:-1])
    )
    bad = CliRunner().invoke(app, ["synth", "--vocab", "klingon"])
    assert bad.exit_code == 2 and "unknown vocabulary" in bad.stderr and "Traceback" not in bad.stderr
