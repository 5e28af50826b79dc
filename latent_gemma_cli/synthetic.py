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

A second layout, `style="prosqa"`, mimics the statistics of the paper's ProsQA graphs (measured
on its valid split: the gold chain is the *shortest* path from the person to the answer, both
candidates are leaves, the asked person has 1-7 "is a" facts, ~60% of the concepts are reachable,
~1.6 facts per concept, 2-3 people per question):

* concepts reachable from the person sit on BFS levels 1..hops; every node has an in-edge from
  level - 1 and every edge goes to the same level (forwards in a fixed order, so the graph stays
  acyclic) or the next one, so a node's level is its distance and no shortcut to the answer
  exists; the answer (level `hops`) has no out-edges;
* the unreachable side: one or two other people, the distractor candidate (a leaf) at the end of
  a 1-3 step chain, extra concepts, and random edges inside it and into the reachable side --
  never from the reachable side into it;
* `branches` / `distractors` are the mean numbers of extra reachable / unreachable concepts
  (drawn per problem, +-2).

A third layout, `style="taxonomy"`, takes the search out and leaves the hops: every concept
has exactly one "Every X is a Y." fact of its own (single parents, as in a taxonomy), so from the
asked person the facts describe a walk, one lookup per step, and any number of steps can be
learned by a small model one at a time:

* two chains of the same length, person -> c1 -> ... -> c_hops (the answer) and other person ->
  d1 -> ... -> d_hops (the distractor); both candidates are leaves at the same distance from a
  person, so nothing but the walk from the asked person tells them apart;
* `distractors` (+-2 per problem) extra concepts, each with its one parent drawn from the chain
  concepts and the extra concepts before it (side branches feeding into both chains, which
  makes a walk backwards from a candidate a search); sometimes a third person on an extra
  concept; `branches` is not used.

`vocab="words"` draws concept names from a list of everyday nouns that are one Gemma token each
(see WORDS), translated in the Japanese rendering.

Concept and people names can come from the caller (`names=`, `people=`), e.g. the vocabulary of
an existing data set, so that a word-level tokenizer covers both; the same name is used in the
Japanese rendering then.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from typing import Iterator

EN_ONSETS = ["b", "br", "d", "g", "gr", "j", "l", "r", "sc", "sh", "st", "t", "w", "y", "z", "zh", "k", "v", "f", "pl"]
EN_VOWELS = ["a", "e", "i", "o", "u", "oo", "er", "or", "im", "um"]
JA_ONSETS = [
    "バ",
    "ブ",
    "ダ",
    "ガ",
    "グ",
    "ジャ",
    "ラ",
    "ル",
    "ス",
    "シュ",
    "ト",
    "ワ",
    "ヤ",
    "ザ",
    "ゾ",
    "カ",
    "ヴァ",
    "フ",
    "プ",
    "ミ",
]
JA_VOWELS = ["ン", "ー", "ル", "ム", "ロ", "レ", "キ", "ノ", "リ", "ミ"]
STYLES = ("chain", "prosqa", "taxonomy")
STEP_FORMATS = ("facts", "concepts")
VOCABS = ("made-up", "words")
# Everyday nouns paired with their Japanese, each one token of Gemma 3's tokenizer in every place the
# problems put it (with and without a leading space, at the start of a line, between Japanese
# particles; checked with the tokenizer of Gemma 3 270M). With `vocab="words"` a step of
# `steps="concepts"` is one token plus its newline, so one continuous thought can stand for one
# concept: the made-up names are 2-3 tokens each ("zok" "pus"). Vowel-initial words are left out so
# that "is a X" stays grammatical.
WORDS = [
    tuple(pair.split("/"))
    for pair in (
        "cat/猫 dog/犬 bird/鳥 fish/魚 horse/馬 cow/牛 pig/豚 sheep/羊 bear/熊 wolf/狼 fox/狐 tiger/虎 "
        "snake/蛇 frog/蛙 tree/木 flower/花 stone/石 river/川 mountain/山 sea/海 sky/空 star/星 moon/月 "
        "rain/雨 snow/雪 wind/風 fire/火 water/水 gold/金 silver/銀 sand/砂 cloud/雲 book/本 door/扉 "
        "bell/鐘 rice/米 tea/茶 salt/塩 milk/乳 bread/パン cake/菓子 ship/船 car/車 bridge/橋 road/道 "
        "house/家 shop/店 city/町 village/村 king/王 queen/女王 teacher/先生 student/学生 child/子供 "
        "friend/友達 song/歌 picture/絵 paper/紙 bean/豆 leaf/葉 root/根 seed/種 bone/骨 blood/血 "
        "heart/心 hand/手 foot/足 mouth/口 nose/鼻 tooth/歯 hair/髪 skin/肌 shell/貝 wing/羽 tail/尾 "
        "horn/角 bee/蜂 spider/蜘蛛 duck/鴨 crow/烏 deer/鹿 rabbit/兎 monkey/猿 turtle/亀 whale/鯨 "
        "shark/鮫 crab/蟹 sword/剣 shield/盾 bow/弓 flag/旗 box/箱 bag/袋 cup/杯 bowl/椀 knife/刀 key/鍵 "
        "lamp/灯 mirror/鏡 clock/時計 chair/椅子 desk/机 wall/壁 window/窓 garden/庭 field/畑 forest/森 "
        "lake/湖 pond/池 valley/谷 cave/洞"
    ).split()
]
PEOPLE = [
    ("Tom", "トム"),
    ("Sally", "サリー"),
    ("Bob", "ボブ"),
    ("Jack", "ジャック"),
    ("Alex", "アレックス"),
    ("Max", "マックス"),
]


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


def _render(
    rng: random.Random,
    lang: str,
    ident: str,
    hops: int,
    stated: list[tuple[str, str, bool]],
    person: str,
    chain: list[str],
    distractor: str,
    **meta: object,
) -> Problem:
    """A problem from its `stated` facts `(x, y, x is a person)`, shuffled here, and the gold
    chain of concepts from `person` to the answer `chain[-1]`; the two options in random order."""
    texts = [_fact(lang, x, y, is_person) for x, y, is_person in stated]
    rng.shuffle(texts)
    target = chain[-1]
    options = [target, distractor]
    rng.shuffle(options)
    if lang == "ja":
        ask = f"{person}は{options[0]}ですか、それとも{options[1]}ですか？"
    else:
        ask = f"Is {person} a {options[0]} or {options[1]}?"
    steps = [_fact(lang, person, chain[0], True)] + [_fact(lang, a, b, False) for a, b in zip(chain, chain[1:])]
    answer = _fact(lang, person, target, True)
    return Problem(
        " ".join(texts) + " " + ask,
        steps,
        answer,
        lang,
        ident,
        hops,
        {"target": target, "distractor": distractor, "chain": list(chain), **meta},
    )


def make_problem(
    rng: random.Random, hops: int, distractors: int, branches: int, lang: str, ident: str, vocab: str = "made-up"
) -> Problem:
    """One problem with a `hops`-step gold chain."""
    n_pos = hops + branches
    n_neg = hops + max(2, distractors // 2)
    words = _name_pairs(rng, n_pos + n_neg, None, vocab)
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
    distractor = neg_chain[-1]
    L = 1 if lang == "ja" else 0
    name = PEOPLE[who][L]

    def concept(i: int) -> str:
        return words[i][L]

    facts = [
        (PEOPLE[x][L], concept(y), True) if kind == "is" else (concept(x), concept(y), False)
        for kind, x, y in sorted(edges)
    ]
    return _render(rng, lang, ident, hops, facts, name, [concept(c) for c in chain], concept(distractor))


def _name_pairs(rng: random.Random, n: int, names: list[str] | None, vocab: str = "made-up") -> list[tuple[str, str]]:
    if names is None:
        if vocab == "words":
            if n > len(WORDS):
                raise ValueError(f"{n} distinct concept names needed, the word list has {len(WORDS)}")
            return rng.sample(WORDS, n)
        return _words(rng, n)
    if len(set(names)) < n:
        raise ValueError(f"{n} distinct concept names needed, {len(set(names))} given")
    return [(w, w) for w in rng.sample(sorted(set(names)), n)]


def make_prosqa_problem(
    rng: random.Random,
    hops: int,
    distractors: int,
    branches: int,
    lang: str,
    ident: str,
    names: list[str] | None = None,
    people: list[tuple[str, str]] | None = None,
    vocab: str = "made-up",
) -> Problem:
    """One problem shaped like the paper's ProsQA graphs (see the module docstring)."""
    people = people or PEOPLE
    n_pos = hops + max(0, branches + rng.randint(-2, 2))
    n_neg_extra = max(0, distractors + rng.randint(-2, 2))
    neg_len = rng.randint(1, min(3, hops))
    n_neg = neg_len + n_neg_extra
    words = _name_pairs(rng, n_pos + n_neg, names, vocab)
    n_people = 3 if rng.random() < 0.35 else 2
    persons = rng.sample(range(len(people)), n_people)
    who, others = persons[0], persons[1:]
    # node ids: ("p", person index) or ("c", concept index)
    level: dict[int, int] = {}
    chain = list(range(hops))  # concept i at level i + 1
    for i in chain:
        level[i] = i + 1
    extra_pos = list(range(hops, n_pos))
    for c in extra_pos:
        level[c] = rng.randint(1, hops)
    target = chain[-1]
    edges: set[tuple[tuple[str, int], tuple[str, int]]] = set()
    P = lambda i: ("p", i)  # noqa: E731
    C = lambda i: ("c", i)  # noqa: E731
    edges.add((P(who), C(chain[0])))
    for a, b in zip(chain, chain[1:]):
        edges.add((C(a), C(b)))
    pos_by_level: dict[int, list[int]] = {}
    for c in chain + extra_pos:
        pos_by_level.setdefault(level[c], []).append(c)

    def parents(lv: int) -> list[int]:
        return [c for c in pos_by_level.get(lv - 1, []) if c != target]

    for c in extra_pos:  # an in-edge from the level above makes the level the distance
        if level[c] == 1:
            edges.add((P(who), C(c)))
        else:
            edges.add((C(rng.choice(parents(level[c]))), C(c)))
    neg_chain = list(range(n_pos, n_pos + neg_len))
    neg_extra = list(range(n_pos + neg_len, n_pos + n_neg))
    neg_target = neg_chain[-1]
    order = {
        c: k for k, c in enumerate(neg_chain[:-1] + neg_extra + [neg_target])
    }  # topological order of the unreachable side
    edges.add((P(others[0]), C(neg_chain[0])))
    for a, b in zip(neg_chain, neg_chain[1:]):
        edges.add((C(a), C(b)))
    for c in neg_extra:  # reached from another person or an earlier unreachable concept
        earlier = [d for d in order if order[d] < order[c]]
        src = P(rng.choice(others)) if not earlier or rng.random() < 0.4 else C(rng.choice(earlier))
        edges.add((src, C(c)))
    for o in others[1:]:
        if not any(e[0] == P(o) for e in edges):
            edges.add((P(o), C(rng.choice(neg_chain + neg_extra))))
    n_symbols = n_people + n_pos + n_neg
    wanted = int(round(n_symbols * rng.uniform(1.4, 1.8)))
    non_leaf_pos = [c for c in chain + extra_pos if c != target]
    # a topological order of the reachable side: by level, the answer last on its level
    pos_rank = {c: k for k, c in enumerate(sorted(chain + extra_pos, key=lambda c: (level[c], c == target, c)))}
    for _ in range(8 * wanted):
        if len(edges) >= wanted:
            break
        kind = rng.random()
        if kind < 0.25:  # the person's extra "is a" facts (level-1 concepts only)
            if pos_by_level.get(1):
                edges.add((P(who), C(rng.choice(pos_by_level[1]))))
        elif kind < 0.6:  # inside the reachable side: to the same level (forwards) or the next, never out of the answer
            a = rng.choice(non_leaf_pos)
            below = [c for c in chain + extra_pos if pos_rank[c] > pos_rank[a] and level[c] <= level[a] + 1]
            if below:
                edges.add((C(a), C(rng.choice(below))))
        else:  # from the unreachable side: inside it (forwards) or into the reachable side
            a = rng.choice([c for c in order if c != neg_target])
            if rng.random() < 0.5:
                later = [d for d in order if order[d] > order[a] and d != neg_target]
                if later:
                    edges.add((C(a), C(rng.choice(later))))
            else:
                edges.add((C(a), C(rng.choice(chain + extra_pos))))
    L = 1 if lang == "ja" else 0

    def name(node: tuple[str, int]) -> str:
        return people[node[1]][L] if node[0] == "p" else words[node[1]][L]

    facts = [(name(a), name(b), a[0] == "p") for a, b in sorted(edges)]
    return _render(
        rng,
        lang,
        ident,
        hops,
        facts,
        people[who][L],
        [name(C(c)) for c in chain],
        name(C(neg_target)),
        style="prosqa",
        facts=len(edges),
        symbols=n_symbols,
    )


def make_taxonomy_problem(
    rng: random.Random,
    hops: int,
    distractors: int,
    lang: str,
    ident: str,
    names: list[str] | None = None,
    people: list[tuple[str, str]] | None = None,
    one_person: bool = False,
    vocab: str = "made-up",
) -> Problem:
    """One problem in which every concept has one parent (see the module docstring)."""
    people = people or PEOPLE
    n_extra = max(0, distractors + rng.randint(-2, 2))
    words = _name_pairs(rng, 2 * hops + n_extra + one_person, names, vocab)
    persons = rng.sample(range(len(people)), 3 if rng.random() < 0.35 else 2)
    who, other = persons[0], persons[1]
    if one_person:  # the distractor chain hangs from a concept no fact reaches, not from a person
        persons = [who]
    pos, neg = list(range(hops)), list(range(hops, 2 * hops))
    extra = list(range(2 * hops, 2 * hops + n_extra))
    P = lambda i: ("p", i)  # noqa: E731
    C = lambda i: ("c", i)  # noqa: E731
    top = C(2 * hops + n_extra) if one_person else P(other)
    edges = [(P(who), C(pos[0])), (top, C(neg[0]))]
    edges += [(C(a), C(b)) for chain in (pos, neg) for a, b in zip(chain, chain[1:])]
    for j, e in enumerate(extra):  # one parent each, so the walks from the people stay unique
        edges.append((C(e), C(rng.choice(pos + neg + extra[:j]))))
    for o in persons[2:]:
        edges.append((P(o), C(rng.choice(extra or neg))))

    L = 1 if lang == "ja" else 0

    def name(node: tuple[str, int]) -> str:
        return people[node[1]][L] if node[0] == "p" else words[node[1]][L]

    facts = [(name(a), name(b), a[0] == "p") for a, b in edges]
    return _render(
        rng,
        lang,
        ident,
        hops,
        facts,
        people[who][L],
        [name(C(c)) for c in pos],
        name(C(neg[-1])),
        style="taxonomy",
        facts=len(edges),
        symbols=len(persons) + len(words),
    )


def generate(
    n: int,
    seed: int = 0,
    lang: str = "en",
    hops: tuple[int, int] = (3, 5),
    distractors: int = 8,
    branches: int = 3,
    style: str = "chain",
    names: list[str] | None = None,
    people: list[str] | None = None,
    one_person: bool = False,
    steps: str = "facts",
    vocab: str = "made-up",
) -> Iterator[Problem]:
    """`n` problems (per language with `lang="both"`), reproducible from `seed`.

    `style`: "chain" (the original layout), "prosqa" (graphs shaped like the paper's ProsQA) or
    "taxonomy" (one parent per concept: a walk, no search).
    `names` / `people`: draw concept / person names from these lists instead of made-up ones
    (not with `style="chain"`; used as-is in both languages).
    `one_person` (taxonomy): the distractor's chain starts at a concept that no fact reaches
    instead of at another person, so the first step has only one person's fact to find.
    `steps`: "facts" (each step is the fact it uses: "Every felpus is a yumpus.") or "concepts"
    (each step is only the concept it reaches: "yumpus"; one word, so a small model's chain of
    thought is one lookup per token and a continuous thought can stand for exactly one step).
    `vocab`: "made-up" concept names ("zokpus" / "ゾムヴァパス", 2-3 Gemma tokens) or "words" (everyday
    nouns, "cat" / "猫", one Gemma token each: see WORDS).
    """
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}: {', '.join(STYLES)}")
    if steps not in STEP_FORMATS:
        raise ValueError(f"unknown step format {steps!r}: {', '.join(STEP_FORMATS)}")
    if vocab not in VOCABS:
        raise ValueError(f"unknown vocabulary {vocab!r}: {', '.join(VOCABS)}")
    if names is not None and vocab != "made-up":
        raise ValueError("names= replaces the vocabulary: leave vocab at 'made-up'")
    if style == "chain" and (names is not None or people is not None):
        raise ValueError("names= and people= need style='prosqa' or 'taxonomy'")
    pairs = [(p, p) for p in dict.fromkeys(people)] if people is not None else None
    if pairs is not None and len(pairs) < 3:
        raise ValueError("at least 3 distinct people names needed")
    rng = random.Random(seed)
    langs = ["en", "ja"] if lang == "both" else [lang]
    for i in range(n):
        h = rng.randint(hops[0], hops[1])
        state = rng.getstate()
        for code in langs:
            rng.setstate(state)  # the same graph in both languages
            ident = f"synth-{seed}-{i:05d}-{code}"
            if style == "prosqa":
                problem = make_prosqa_problem(rng, h, distractors, branches, code, ident, names, pairs, vocab)
            elif style == "taxonomy":
                problem = make_taxonomy_problem(rng, h, distractors, code, ident, names, pairs, one_person, vocab)
            else:
                problem = make_problem(rng, h, distractors, branches, code, ident, vocab)
            if steps == "concepts":
                problem.steps = list(problem.meta["chain"])
            yield problem


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
