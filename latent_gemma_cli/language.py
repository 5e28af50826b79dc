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
        load_profiles()
    if not text or not text.strip():
        return Language("unknown", 0.0)
    try:
        best = detect_langs(text)[0]
    except LangDetectException:
        return Language("unknown", 0.0)
    return Language(best.lang, round(float(best.prob), 4))


class _ProfileTable:
    """langdetect's n-gram -> per-language probabilities, as one flat array of doubles: the
    mapping its Detector reads (`word in table`, `table[word][i]`), loaded in one read."""

    def __init__(self, words: list[str], table, width: int):
        self._index = {w: i * width for i, w in enumerate(words)}
        self._table, self._width = table, width

    def __contains__(self, word) -> bool:
        return word in self._index

    def __getitem__(self, word):
        start = self._index[word]
        return self._table[start : start + self._width]

    def __len__(self) -> int:
        return len(self._index)

    def __iter__(self):
        return iter(self._index)


def load_profiles() -> None:
    """langdetect's language profiles, read from a cache after the first run: building them from
    its 55 JSON files took 0.5 s of a cold `ask`. The cache holds data only (a JSON header, the
    n-grams, the probabilities as raw doubles; zlib-compressed), keyed by langdetect's version, its profile files
    and the byte order; anything unreadable is rebuilt from the JSON files as langdetect does."""
    import hashlib
    import json
    import os
    import sys
    import zlib
    from array import array
    from importlib.metadata import PackageNotFoundError, version

    from langdetect import detector_factory as factory_mod

    if factory_mod._factory is not None:
        return
    directory = factory_mod.PROFILES_DIRECTORY
    try:
        names = sorted(os.listdir(directory))
        stamp = [
            version("langdetect"),
            sys.byteorder,
            [(n, os.stat(os.path.join(directory, n)).st_mtime_ns) for n in names],
        ]
    except (OSError, PackageNotFoundError):
        factory_mod.init_factory()
        return
    from .paths import cache_dir

    key = hashlib.sha256(repr(stamp).encode("utf-8")).hexdigest()[:16]
    cache = cache_dir() / f"langdetect-profiles-{key}.bin"
    try:
        data = zlib.decompress(cache.read_bytes())
        newline = data.index(b"\n")
        header = json.loads(data[:newline].decode("utf-8"))
        words_end = newline + 1 + header["words_bytes"]
        words = data[newline + 1 : words_end].decode("utf-8").split("\x00")
        table = array("d")
        table.frombytes(data[words_end:])
        width, langs = header["width"], header["langs"]
        valid = width >= 2 and len(langs) == width and all(isinstance(c, str) and c for c in langs)
        if valid and len(table) == width * len(words):
            factory = factory_mod.DetectorFactory()
            factory.word_lang_prob_map, factory.langlist = _ProfileTable(words, table, width), langs
            factory_mod._factory = factory
            return
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError, zlib.error):
        pass
    factory_mod.init_factory()
    built = factory_mod._factory
    words = list(built.word_lang_prob_map)
    width = len(built.langlist)
    if any("\x00" in w for w in words) or any(len(built.word_lang_prob_map[w]) != width for w in words):
        return  # not the layout this cache stores: build every time, as langdetect does
    blob = "\x00".join(words).encode("utf-8")
    table = array("d", (p for w in words for p in built.word_lang_prob_map[w]))
    header = {"langs": built.langlist, "width": width, "words_bytes": len(blob)}
    from .errors import DiskFullError
    from .files import atomic_write

    try:
        with atomic_write(cache, binary=True) as fh:
            # Most n-grams occur in few of the 55 languages: the zeros compress 39 MB to 2.2 MB, and
            # decompressing costs 0.06 s.
            fh.write(zlib.compress(json.dumps(header).encode("utf-8") + b"\n" + blob + table.tobytes(), 1))
    except (OSError, DiskFullError):  # a read-only or full cache only costs the next run the build
        pass


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


def output_matches(text: str, expected: str) -> bool:
    """Whether an answer or translation is in `expected` (ja or en) as far as can be told: by
    `text_language`'s rules, so a short English line that langdetect takes for Catalan or Norwegian
    ("I like cats." -> ca) is not reported as the wrong language."""
    return text_language(text) in (expected, "unknown")
