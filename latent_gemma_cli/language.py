"""Language detection of inputs and outputs with langdetect, seeded so short texts are stable."""

from __future__ import annotations

from dataclasses import dataclass

NAMES = {"ja": "Japanese", "en": "English"}


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
