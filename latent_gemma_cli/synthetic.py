"""Multi-hop reasoning problems in the style of ProsQA (Hao et al. 2024), in English and Japanese.

Each problem is a random graph of made-up concepts stated as "Every X is a Y." facts plus a few
"Tom is a X." facts, and a question "Is Tom a A or B?" where exactly one of A and B follows from
the facts. The gold chain of reasoning steps and the answer come with it, in the project's
training format `{"question", "steps", "answer", "lang", "id"}`.

Construction (so the answer is unique by design, not by luck):

* the positive side: a chain person -> c1 -> ... -> c_hops = the answer, plus `branches` dead-end
  edges out of the chain (what makes it a search rather than a walk);
* the negative side: the distractor target, reached by a chain of the same length from another
  person, plus `distractors` random edges among negative concepts and from negative concepts into
  positive ones -- never from the positive side into the negative one, so the distractor is
  unreachable from the asked person;
* facts are shuffled; A/B order is random.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from typing import Iterator

EN_ONSETS = ["b", "br", "d", "g", "gr", "j", "l", "r", "sc", "sh", "st", "t", "w", "y", "z", "zh", "k", "v", "f", "pl"]
EN_VOWELS = ["a", "e", "i", "o", "u", "oo", "er", "or", "im", "um"]
JA_ONSETS = ["バ", "ブ", "ダ", "ガ", "グ", "ジャ", "ラ", "ル", "ス", "シュ", "ト", "ワ", "ヤ", "ザ", "ゾ", "カ", "ヴァ", "フ", "プ", "ミ"]
JA_VOWELS = ["ン", "ー", "ル", "ム", "ロ", "レ", "キ", "ノ", "リ", "ミ"]
PEOPLE = [("Tom", "トム"), ("Sally", "サリー"), ("Bob", "ボブ"), ("Jack", "ジャック"), ("Alex", "アレックス"), ("Max", "マックス")]


@dataclass
class Problem:
    question: str
    steps: list[str]
    answer: str
    lang: str
    id: str
    hops: int = 0
    meta: dict = field(default_factory=dict)

    def to_json(self) -> str:
        data = asdict(self)
        return json.dumps(data, ensure_ascii=False)


def _words(rng: random.Random, n: int) -> list[tuple[str, str]]:
    """n distinct made-up concepts as (English, Japanese) pairs: 'shumpus' / 'シュムパス'."""
    seen_en, seen_ja, out = set(), set(), []
    while len(out) < n:
        i, j = rng.randrange(len(EN_ONSETS)), rng.randrange(len(EN_VOWELS))
        k = rng.randrange(len(EN_ONSETS))
        en = EN_ONSETS[i] + EN_VOWELS[j] + EN_ONSETS[k][:1] + "pus"
        ja = JA_ONSETS[i] + JA_VOWELS[j] + JA_ONSETS[k] + "パス"
        if en in seen_en or ja in seen_ja:  # names must be unique in both languages
            continue
        seen_en.add(en)
        seen_ja.add(ja)
        out.append((en, ja))
    return out


def _fact(lang: str, x: str, y: str, person: bool) -> str:
    if lang == "ja":
        return f"{x}は{y}です。" if person else f"すべての{x}は{y}です。"
    return f"{x} is a {y}." if person else f"Every {x} is a {y}."


def make_problem(rng: random.Random, hops: int, distractors: int, branches: int, lang: str, ident: str) -> Problem:
    """One problem with a `hops`-step gold chain."""
    n_pos = hops + branches
    n_neg = hops + max(2, distractors // 2)
    words = _words(rng, n_pos + n_neg)
    pos, neg = list(range(n_pos)), list(range(n_pos, n_pos + n_neg))
    people = rng.sample(range(len(PEOPLE)), 2)
    who, other = people
    edges: set[tuple[str, int, int]] = set()  # ("is", person, c) or ("every", c, d)
    chain = pos[:hops]
    edges.add(("is", who, chain[0]))
    for a, b in zip(chain, chain[1:]):
        edges.add(("every", a, b))
    for extra in pos[hops:]:  # dead ends hanging off the chain (never past the answer)
        edges.add(("every", rng.choice(chain[:-1] or chain), extra))
    neg_chain = neg[:hops]
    edges.add(("is", other, neg_chain[0]))
    for a, b in zip(neg_chain, neg_chain[1:]):
        edges.add(("every", a, b))
    for _ in range(distractors):
        a = rng.choice(neg)
        b = rng.choice(neg + pos)
        if a != b and not (b in neg and neg.index(b) <= neg.index(a)):  # keep the negative side acyclic
            edges.add(("every", a, b))
    target, distractor = chain[-1], neg_chain[-1]
    L = 1 if lang == "ja" else 0
    name = PEOPLE[who][L]

    def concept(i: int) -> str:
        return words[i][L]

    facts = [
        _fact(lang, PEOPLE[x][L], concept(y), True) if kind == "is" else _fact(lang, concept(x), concept(y), False)
        for kind, x, y in sorted(edges)
    ]
    rng.shuffle(facts)
    options = [concept(target), concept(distractor)]
    rng.shuffle(options)
    if lang == "ja":
        ask = f"{name}は{options[0]}ですか、それとも{options[1]}ですか？"
    else:
        ask = f"Is {name} a {options[0]} or {options[1]}?"
    steps = [_fact(lang, name, concept(chain[0]), True)] + [_fact(lang, concept(a), concept(b), False) for a, b in zip(chain, chain[1:])]
    answer = _fact(lang, name, concept(target), True)
    return Problem(" ".join(facts) + " " + ask, steps, answer, lang, ident, hops, {"target": concept(target), "distractor": concept(distractor)})


def generate(n: int, seed: int = 0, lang: str = "en", hops: tuple[int, int] = (3, 5), distractors: int = 8, branches: int = 3) -> Iterator[Problem]:
    """`n` problems (per language with `lang="both"`), reproducible from `seed`."""
    rng = random.Random(seed)
    langs = ["en", "ja"] if lang == "both" else [lang]
    for i in range(n):
        h = rng.randint(hops[0], hops[1])
        state = rng.getstate()
        for code in langs:
            rng.setstate(state)  # the same graph in both languages
            yield make_problem(rng, h, distractors, branches, code, f"synth-{seed}-{i:05d}-{code}")


def reachable(problem_facts: list[tuple[str, str]], start: str) -> set[str]:
    """Concepts reachable from `start` over (x, y) "x is a y" edges (used by the tests)."""
    graph: dict[str, set[str]] = {}
    for x, y in problem_facts:
        graph.setdefault(x, set()).add(y)
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        for nxt in graph.get(node, ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen
