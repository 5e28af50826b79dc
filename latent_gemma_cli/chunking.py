"""Split a document into translation units that keep its structure.

The document becomes a list of `Segment`s, one per output line: blank lines, code blocks
(``` fences), URL-only lines and lines already in the target language pass through unchanged;
every other line is split at sentence ends (Japanese `。！？` as well as `.!?`) into pieces,
grouped greedily into chunks of at most `max_tokens` tokens. A sentence longer than the limit is
cut at token boundaries, so no chunk is ever over the limit. Joining the translated chunks of each
line, line by line, gives the output with the input's paragraphs and blank lines in order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from .language import has_japanese

SENTENCE_END = re.compile(r"(?<=[。！？!?])\s*|(?<=[.．])\s+")
URL_LINE = re.compile(r"^\s*(<)?(https?|ftp)://\S+(>)?\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")


@dataclass
class Segment:
    """One line of the document: passed through as is, or translated as one or more chunks."""

    text: str
    passthrough: str | None = None  # why it passes through: blank, code, url, target-language
    chunks: list[str] = field(default_factory=list)


def split_sentences(line: str) -> list[str]:
    parts = [p for p in SENTENCE_END.split(line) if p and p.strip()]
    return parts or [line]


def _cut(sentence: str, count: Callable[[str], int], max_tokens: int) -> list[str]:
    """Cut an over-long sentence into pieces under the limit, at character boundaries."""
    pieces, current = [], ""
    for ch in sentence:
        if current and count(current + ch) > max_tokens:
            pieces.append(current)
            current = ""
        current += ch
    if current:
        pieces.append(current)
    return pieces


def chunk_line(line: str, count: Callable[[str], int], max_tokens: int) -> list[str]:
    """Greedy grouping of a line's sentences into chunks of at most `max_tokens` tokens."""
    joiner = "" if has_japanese(line) else " "
    chunks: list[str] = []
    current = ""
    for sentence in split_sentences(line.strip()):
        sentence = sentence.strip()
        if count(sentence) > max_tokens:
            if current:
                chunks.append(current)
                current = ""
            chunks.extend(_cut(sentence, count, max_tokens))
            continue
        candidate = f"{current}{joiner}{sentence}" if current else sentence
        if current and count(candidate) > max_tokens:
            chunks.append(current)
            current = sentence
        else:
            current = candidate
    if current:
        chunks.append(current)
    return chunks


def segment_document(
    text: str,
    count: Callable[[str], int],
    max_tokens: int,
    is_target_language: Callable[[str], bool] = lambda line: False,
) -> list[Segment]:
    """Segments of `text`, one per line, in order."""
    segments: list[Segment] = []
    in_code = False
    # "\n" only (and "\r\n"): U+2028 and friends are characters of a line, not line breaks,
    # so the output keeps exactly the input's line structure.
    lines = text.replace("\r\n", "\n").split("\n") if text else []
    for line in lines[:-1] if text.endswith("\n") else lines:
        if FENCE.match(line):
            segments.append(Segment(line, "code"))
            in_code = not in_code
        elif in_code:
            segments.append(Segment(line, "code"))
        elif not line.strip():
            segments.append(Segment(line, "blank"))
        elif URL_LINE.match(line):
            segments.append(Segment(line, "url"))
        elif is_target_language(line):
            segments.append(Segment(line, "target-language"))
        else:
            segments.append(Segment(line, None, chunk_line(line, count, max_tokens)))
    return segments


def join_chunks(chunks: list[str], target: str) -> str:
    """Translated chunks of one line, joined the way the target language writes sentences."""
    return ("" if target == "ja" else " ").join(c.strip() for c in chunks)
