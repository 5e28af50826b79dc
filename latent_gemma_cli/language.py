"""Language detection of inputs and outputs with langdetect, seeded so short texts are stable."""

from __future__ import annotations

import re
from dataclasses import dataclass

NAMES = {"ja": "Japanese", "en": "English"}

# The one script test ("is this Japanese?"), reliable on short text where langdetect is not:
# hiragana, katakana (and its phonetic extensions and half-width forms), CJK ideographs
# (extension A, the unified block, compatibility ideographs).
JAPANESE_LETTERS = r"\u3040-\u309f\u30a0-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
# Characters that Japanese text sets without spaces around them: the letters above plus CJK
# punctuation and full-width forms (used when detokenising).
JAPANESE_WIDE = JAPANESE_LETTERS + r"\u3000-\u303f\uff00-\uffef"
_JAPANESE = re.compile(f"[{JAPANESE_LETTERS}]")


def has_japanese(text: str) -> bool:
    """At least one kana or kanji."""
    return bool(_JAPANESE.search(text))


def script_language(text: str) -> str:
    """ "ja" for text with kana or kanji, else "en": the language lgemma's two scripts allow."""
    return "ja" if has_japanese(text) else "en"


@dataclass(frozen=True)
class Language:
    """A detected language code ("ja", "en", ... or "unknown") with its probability."""

    code: str
    probability: float

    @property
    def name(self) -> str:
        return NAMES.get(self.code, self.code)


_seeded = False


def detect(text: str) -> Language:
    """Most probable language of `text`; `unknown` with probability 0 when undecidable."""
    global _seeded
    from langdetect import DetectorFactory, detect_langs
    from langdetect.lang_detect_exception import LangDetectException

    if not _seeded:
        # langdetect samples n-grams at random; without a fixed seed short texts flip.
        DetectorFactory.seed = 0
        _seeded = True
    if not text or not text.strip():
        return Language("unknown", 0.0)
    try:
        best = detect_langs(text)[0]
    except LangDetectException:
        return Language("unknown", 0.0)
    return Language(best.lang, round(float(best.prob), 4))


_KANA = re.compile(r"[\u3040-\u309f\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9f]")
_LATIN = re.compile(r"[A-Za-z]")


def text_language(text: str) -> str:
    """ "ja", "en" or another langdetect code, for checking which language a text is in.

    Kana decide "ja" at once (no other language writes them); kanji without kana are "ja" unless
    langdetect is sure of Chinese on 6+ characters; longer Latin-script text goes to langdetect; short Latin text, where langdetect
    guesses, counts as "en"; text with no letters at all is "unknown"."""
    if _KANA.search(text):
        return "ja"
    if has_japanese(text):  # kanji without kana: Japanese unless clearly Chinese
        found = detect(text)
        chinese = found.code.startswith("zh") and found.probability >= 0.9 and len(text.strip()) >= 6
        return found.code if chinese else "ja"
    if not _LATIN.search(text):
        return "unknown"
    if len(text.strip()) < 40:
        return "en"
    found = detect(text)
    return "en" if found.code == "en" or found.probability < 0.9 else found.code
