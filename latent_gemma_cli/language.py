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
