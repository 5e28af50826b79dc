"""Readers for every data format lgemma trains or evaluates on, into one `Example` shape.

Formats (`FORMATS`; `fmt="auto"` detects them from the content, not the file name):

* `jsonl`: JSON Lines `{"question", "steps"?, "answer", "lang"?, "id"?}`, the training format
  (method.md section 5).
* `coconut`: a JSON list of `{"question", "steps", "answer", ...}` (ProsQA, GSM8k as shipped
  by COCONUT). Extra keys are ignored; empty strings inside `steps` are dropped (the record is
  kept), because GSM8k's iCoT files write `[""]` for solutions without a calculator step.
* `instruction`: JSON Lines `{"instruction", "input", "output"}` (llm-japanese-dataset);
  question = instruction, plus "\\n\\n" + input when input is not empty.
* `pairs`: JSON Lines `{"id", "ja", "en"}` (small_parallel_enja) into translate examples,
  `direction` "ja-en" (the default), "en-ja" or "both" (two examples per pair, for training).
  That corpus is pre-tokenized (spaces between Japanese tokens; lower-case English with split
  punctuation and contractions), so the reader applies `detokenize` to both sides: prompts and
  references are natural text. Detokenized English also gets its first letter and the pronoun
  "I" capitalised; other case (names) cannot be recovered and stays lower-case.
* `jcommonsenseqa`: JSON Lines `{"q_id", "question", "choice0".., "label"}`: task "choice",
  answer = the text of the right choice, label = its index.
* `jsquad`: one SQuAD v1.1 object `{"data": [{"title", "paragraphs": [{"context", "qas"}]}]}`;
  question = the context paragraph (its " [SEP] " turned into a line break) + "\\n\\n" +
  question; answer = the first reference; `references` keeps them all.
* `squad`: the same content one question per row, `{"context", "question", "answers": {"text": [...]}}`,
  as SQuAD-style sets are laid out on the Hugging Face hub.

`--data hf:OWNER/NAME[/CONFIG][@REVISION][:SPLIT]` reads a hub dataset instead (hub_data.py), row
by row through the same readers. `columns` renames a data set's columns to the keys above
(`{"prompt": "question"}`); `filter_lang` drops translation rows whose texts are not in the
languages they claim (`translation_claim`), counting them in `Dataset.filtered`.

Bad records (invalid JSON, missing keys, wrong types, empty strings) become `Problem`s with
file and line and are skipped, never dropped silently; `strict=True` raises `InputError` at the
first one. A missing file, a directory or bytes that are not UTF-8 raise `InputError`.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .errors import InputError, UsageError
from .language import JAPANESE_WIDE

FORMATS = ("jsonl", "coconut", "instruction", "pairs", "jcommonsenseqa", "jsquad", "squad")
DIRECTIONS = ("ja-en", "en-ja", "both")
TASKS = ("qa", "choice", "translate")


@dataclass
class Example:
    """One row, whatever file it came from."""

    question: str
    answer: str
    steps: list[str] = field(default_factory=list)
    choices: list[str] | None = None  # multiple choice options
    label: int | None = None  # index of the right choice
    task: str = "qa"  # "qa" | "choice" | "translate"
    source_lang: str | None = None  # translate: "ja" / "en"
    target_lang: str | None = None
    id: str | None = None
    lang: str | None = None
    # Every acceptable answer when the data has several (JSQuAD); `answer` is the first.
    references: list[str] | None = None
    # The line of the file the row starts on (None where the format has no line per row), so
    # problems found later (training's length check) are reported as file:line too.
    line: int | None = field(default=None, compare=False)


@dataclass
class Problem:
    """A record that was skipped, and why."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {self.message}"


@dataclass
class Dataset:
    examples: list[Example]
    problems: list[Problem]
    path: str
    format: str
    sha256: str  # of the file bytes (of the rows read, for a hub dataset)
    filtered: int = 0  # rows dropped by filter_lang
    source: dict | None = None  # a hub dataset: repository, config, revision, commit, split

    def __len__(self) -> int:
        return len(self.examples)


# --- text helpers -------------------------------------------------------------------------

_JA_SPACE = re.compile(rf"(?<=[{JAPANESE_WIDE}])\s+|\s+(?=[{JAPANESE_WIDE}])")
_EN_ATTACH = {"n't", "'s", "'m", "'re", "'ve", "'ll", "'d", "'t", "'clock"}
_EN_PUNCT = set(".,!?;:%)]}")
_EN_QUOTES = {"''", "``", '"'}


def detokenize(text: str, lang: str) -> str:
    """Natural text from pre-tokenized text (small_parallel_enja's KyTea / Stanford tokens).

    Japanese: spaces next to a Japanese (or full-width) character are removed; spaces between
    two Latin words stay. English: punctuation and contractions are rejoined ("i 'm" -> "I'm",
    "don 't" and "do n't" -> "don't", " ." -> "."), the `''` quote pairs become `"`, and the
    first letter and the pronoun "i" are capitalised.
    """
    text = " ".join(text.split())
    if lang == "ja":
        return _JA_SPACE.sub("", text)
    if lang != "en":
        return text

    out: list[str] = []
    glue = True  # no space before the next token (start of text, after an opening quote or bracket)
    quote_open = False
    capital = True  # the next word starts a sentence
    for tok in text.split():
        if tok in _EN_QUOTES:
            if quote_open:
                out.append('"')
            else:
                out.append('"' if glue else ' "')
                glue = True
            quote_open = not quote_open
            continue
        attach = glue or tok in _EN_ATTACH or all(c in _EN_PUNCT for c in tok)
        if tok == "i":
            tok = "I"
        elif capital and tok[:1].isalpha():
            tok = tok[:1].upper() + tok[1:]
        if tok[:1].isalpha():
            capital = False
        if tok in (".", "!", "?"):
            capital = True
        out.append(tok if attach else " " + tok)
        glue = tok in ("(", "[", "{", "$")
    return "".join(out)


def normalize_text(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed: the form row fingerprints are taken of."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def row_fingerprint(example: Example) -> str:
    """Stable sha1 hex of the normalised question + "\\n" + answer (to find training rows in eval data)."""
    key = normalize_text(example.question) + "\n" + normalize_text(example.answer)
    return hashlib.sha1(key.encode("utf-8")).hexdigest()


def split_name(path: str | Path) -> str | None:
    """The split a file name suggests (train / dev / valid / test), or None."""
    stem = Path(path).name.lower()
    for name, words in (
        ("train", ("train",)),
        ("valid", ("valid", "validation", "val")),
        ("dev", ("dev",)),
        ("test", ("test",)),
    ):
        if any(re.search(rf"(^|[^a-z]){w}([^a-z]|$)", stem) for w in words):
            return name
    return None


# --- reading --------------------------------------------------------------------------------


class _BadRecord(Exception):
    pass


class _Collector:
    """Gathers examples and problems; raises at the first problem in strict mode."""

    def __init__(self, path: str, strict: bool, limit: int | None):
        self.path = path
        self.strict = strict
        self.limit = limit
        self.examples: list[Example] = []
        self.problems: list[Problem] = []
        self.filtered = 0

    @property
    def full(self) -> bool:
        return self.limit is not None and len(self.examples) >= self.limit

    def add(self, examples: list[Example], line: int | None = None) -> None:
        for ex in examples:
            if self.full:
                return
            if line is not None:
                ex.line = line
            self.examples.append(ex)

    def problem(self, line: int | None, message: str) -> None:
        if self.strict:
            where = f"{self.path}, line {line}" if line is not None else self.path
            raise InputError(f"{where}: {message}", hint="fix the record, or run without --strict to skip bad records")
        self.problems.append(Problem(self.path, line, message))


def _text(record: dict, key: str, required: bool = True, allow_empty: bool = False) -> str | None:
    if key not in record or record[key] is None:
        if required:
            raise _BadRecord(f"missing key {key!r}")
        return None
    value = record[key]
    if not isinstance(value, str):
        raise _BadRecord(f"{key!r} must be a string, not {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise _BadRecord(f"{key!r} is empty")
    return value


def _ident(record: dict, key: str) -> str | None:
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _BadRecord(f"{key!r} must be a string or an integer")
    return str(value)


def _steps(record: dict) -> list[str]:
    steps = record.get("steps")
    if steps is None:
        return []
    if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
        raise _BadRecord("'steps' must be a list of strings")
    # Empty steps are dropped, the record kept: GSM8k's iCoT test file has 18 rows with steps [""]
    # (problems whose solution has no calculator annotation); skipping them would break comparison.
    return [s.strip() for s in steps if s.strip()]


def _from_qa(record: dict) -> list[Example]:
    lang = _text(record, "lang", required=False)
    return [
        Example(
            question=_text(record, "question").strip(),
            answer=_text(record, "answer").strip(),
            steps=_steps(record),
            id=_ident(record, "id"),
            lang=lang.strip() if lang else None,
        )
    ]


def _from_instruction(record: dict) -> list[Example]:
    instruction = _text(record, "instruction").strip()
    extra = (_text(record, "input", required=False, allow_empty=True) or "").strip()
    return [
        Example(
            question=f"{instruction}\n\n{extra}" if extra else instruction,
            answer=_text(record, "output").strip(),
            id=_ident(record, "id"),
        )
    ]


def _pair_reader(direction: str):
    if direction not in DIRECTIONS:
        raise UsageError(f"unknown direction {direction!r}", hint=f"use one of: {', '.join(DIRECTIONS)}")
    wanted = [("ja", "en"), ("en", "ja")] if direction == "both" else [tuple(direction.split("-"))]

    def read(record: dict) -> list[Example]:
        text = {lang: detokenize(_text(record, lang), lang) for lang in ("ja", "en")}
        ident = _ident(record, "id")
        out = []
        for src, tgt in wanted:
            out.append(
                Example(
                    question=text[src],
                    answer=text[tgt],
                    task="translate",
                    source_lang=src,
                    target_lang=tgt,
                    id=ident if direction != "both" or ident is None else f"{ident}:{src}-{tgt}",
                    lang=src,
                )
            )
        return out

    return read


def _from_jcommonsenseqa(record: dict) -> list[Example]:
    choices = []
    while f"choice{len(choices)}" in record:
        choices.append(_text(record, f"choice{len(choices)}").strip())
    if len(choices) < 2:
        raise _BadRecord("needs at least choice0 and choice1")
    label = record.get("label")
    if isinstance(label, bool) or not isinstance(label, int):
        raise _BadRecord("'label' must be an integer" if "label" in record else "missing key 'label'")
    if not 0 <= label < len(choices):
        raise _BadRecord(f"'label' {label} is not the index of one of the {len(choices)} choices")
    return [
        Example(
            question=_text(record, "question").strip(),
            answer=choices[label],
            choices=choices,
            label=label,
            task="choice",
            id=_ident(record, "q_id"),
            lang="ja",
        )
    ]


def _from_squad(record: dict) -> list[Example]:
    answers = record.get("answers")
    texts = answers.get("text") if isinstance(answers, dict) else None
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t.strip() for t in texts):
        raise _BadRecord("'answers' must be an object whose 'text' is a non-empty list of strings")
    context = _text(record, "context").replace(" [SEP] ", "\n").strip()
    refs = [t.strip() for t in texts]
    return [
        Example(
            question=f"{context}\n\n{_text(record, 'question').strip()}",
            answer=refs[0],
            id=_ident(record, "id"),
            references=refs,
        )
    ]


_LINE_READERS = {
    "jsonl": _from_qa,
    "instruction": _from_instruction,
    "jcommonsenseqa": _from_jcommonsenseqa,
    "squad": _from_squad,
}


def record_reader(fmt: str, direction: str | None = None):
    """The function that turns one record (a dict) of a row format into examples."""
    if fmt == "pairs":
        return _pair_reader(direction or "ja-en")
    if fmt == "coconut":
        return _from_qa
    if fmt not in _LINE_READERS:
        raise UsageError(
            f"format {fmt!r} has no rows to read one by one", hint=f"use one of: {', '.join(_LINE_READERS)}"
        )
    return _LINE_READERS[fmt]


def rename_columns(record: dict, columns: dict[str, str] | None) -> dict:
    """`record` with its columns renamed by `columns` (data set column -> lgemma key)."""
    if not columns:
        return record
    out = {k: v for k, v in record.items() if k not in columns}
    for source, target in columns.items():
        if source in record:
            out[target] = record[source]
    return out


def parse_columns(spec: str | None) -> dict[str, str] | None:
    """`--columns question=prompt,answer=response` -> {"prompt": "question", "response": "answer"}."""
    if spec is None or not spec.strip():
        return None
    mapping: dict[str, str] = {}
    for part in spec.split(","):
        key, sep, column = (x.strip() for x in part.partition("="))
        if not sep or not key or not column:
            raise UsageError(
                f"--columns: {part.strip()!r} is not KEY=COLUMN",
                hint="for example --columns question=prompt,answer=response",
            )
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise UsageError(f"--columns: {key!r} is not a field name", hint="fields: question, answer, steps, id, ...")
        if column in mapping:
            raise UsageError(f"--columns: column {column!r} is mapped twice")
        mapping[column] = key
    return mapping


# --- --filter-lang: translation rows whose texts are not in the languages they claim -------------

_JA_NAMES = {"日本語": "ja", "英語": "en", "japanese": "ja", "english": "en"}
_CLAIMS = [
    # 次の日本語を英語に翻訳してください / 以下の英文を日本語に訳して
    re.compile(r"(?P<src>日本語|英語)(?:の文章|の文|文)?を(?:、)?(?P<tgt>日本語|英語)に(?:翻訳|訳)"),
    re.compile(r"(?P<src>日本|英)文を(?P<tgt>日本|英)語に(?:翻訳|訳)"),
    re.compile(
        r"translate (?:the following |this )?(?P<src>japanese|english)\b.*?\b(?:in)?to (?P<tgt>japanese|english)"
    ),
]
_SHORT_CLAIMS = {"英訳": ("ja", "en"), "和訳": ("en", "ja")}


def translation_claim(instruction: str) -> tuple[str, str] | None:
    """The (source, target) languages a translation instruction names, or None for other instructions."""
    text = unicodedata.normalize("NFKC", instruction).casefold()
    for pattern in _CLAIMS:
        m = pattern.search(text)
        if m:
            src, tgt = m.group("src"), m.group("tgt")
            src = _JA_NAMES.get(src, _JA_NAMES.get(src + "語", src))
            tgt = _JA_NAMES.get(tgt, _JA_NAMES.get(tgt + "語", tgt))
            return (src, tgt) if src != tgt else None
    for word, claim in _SHORT_CLAIMS.items():
        if word in text:
            return claim
    return None


def _in_language(text: Any, lang: str) -> bool:
    from .language import text_language

    return isinstance(text, str) and text_language(text) == lang


def language_ok(record: dict, fmt: str) -> bool:
    """False when a translation record's texts are not in the languages it claims (--filter-lang)."""
    if fmt == "pairs":
        return _in_language(record.get("ja"), "ja") and _in_language(record.get("en"), "en")
    if fmt == "instruction" and isinstance(record.get("instruction"), str):
        claim = translation_claim(record["instruction"])
        if claim is not None:
            return _in_language(record.get("input"), claim[0]) and _in_language(record.get("output"), claim[1])
    return True


def read_records(
    records: Iterable[tuple[int, Any]],
    reader,
    out: "_Collector",
    fmt: str,
    columns: dict[str, str] | None = None,
    filter_lang: bool = False,
    where: Callable[[int], tuple[int | None, str]] = lambda n: (n, ""),
) -> None:
    """Feed numbered records through `reader` into `out`: renamed, language-checked, problems kept.

    `where(n)` gives the line to report and a prefix for the message ("row 17: " for a hub row)."""
    for number, record in records:
        if out.full:
            return
        line, prefix = where(number)
        if not isinstance(record, dict):
            out.problem(line, f"{prefix}expected a JSON object, got {type(record).__name__}")
            continue
        record = rename_columns(record, columns)
        if filter_lang and not language_ok(record, fmt):
            out.filtered += 1
            continue
        try:
            out.add(reader(record), line)
        except _BadRecord as exc:
            out.problem(line, f"{prefix}{exc}")


def text_lines(text: str) -> list[str]:
    """The lines of a text file as editors and JSON Lines count them: split on "\\n" only (a
    trailing "\\r" dropped). `str.splitlines()` also splits on U+2028, U+2029, U+0085 and other
    separators that `json.dumps(ensure_ascii=False)` writes raw inside strings."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _json_lines(text: str) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(text_lines(text), start=1):
        if line.strip():
            yield number, line


def _parsed_lines(text: str, out: _Collector) -> Iterator[tuple[int, Any]]:
    for number, line in _json_lines(text):
        if out.full:
            return
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            out.problem(number, f"invalid JSON: {exc.msg} (column {exc.colno})")


def _read_lines(
    text: str, reader, out: _Collector, fmt: str = "jsonl", columns: dict | None = None, filter_lang: bool = False
) -> None:
    read_records(_parsed_lines(text, out), reader, out, fmt, columns, filter_lang)


def _line_of(newlines: list[int], offset: int) -> int:
    return bisect.bisect_left(newlines, offset) + 1


def _iter_json_list(text: str, path: str) -> Iterator[tuple[int, Any]]:
    """Elements of a top-level JSON list with the offset where each starts (for line numbers)."""
    decoder = json.JSONDecoder()
    ws = re.compile(r"\s*")
    pos = ws.match(text, 0).end()
    if text[pos : pos + 1] != "[":
        raise InputError(f"{path}: expected a JSON list")
    pos = ws.match(text, pos + 1).end()
    if text[pos : pos + 1] == "]":
        return
    while True:
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}, line {exc.lineno}: invalid JSON: {exc.msg}") from None
        yield pos, value
        pos = ws.match(text, end).end()
        sep = text[pos : pos + 1]
        if sep == "]":
            return
        if sep != ",":
            line = text.count("\n", 0, pos) + 1
            raise InputError(f"{path}, line {line}: invalid JSON: expected ',' or ']'")
        pos = ws.match(text, pos + 1).end()


def _read_coconut(text: str, out: _Collector, columns: dict | None = None) -> None:
    newlines = [m.start() for m in re.finditer("\n", text)]
    lines: dict[int, int] = {}

    def numbered() -> Iterator[tuple[int, Any]]:
        for index, (offset, record) in enumerate(_iter_json_list(text, out.path)):
            lines[index] = _line_of(newlines, offset)
            yield index, record

    read_records(numbered(), _from_qa, out, "coconut", columns, where=lambda i: (lines[i], f"record {i}: "))


def _read_jsquad(data: Any, out: _Collector) -> None:
    articles = data.get("data") if isinstance(data, dict) else None
    if not isinstance(articles, list):
        raise InputError(f"{out.path}: expected a SQuAD object with a 'data' list")
    for a, article in enumerate(articles):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            out.problem(None, f"data[{a}]: missing 'paragraphs' list")
            continue
        for p, para in enumerate(paragraphs):
            where = f"data[{a}].paragraphs[{p}]"
            context = para.get("context") if isinstance(para, dict) else None
            qas = para.get("qas") if isinstance(para, dict) else None
            if not isinstance(context, str) or not context.strip() or not isinstance(qas, list):
                out.problem(None, f"{where}: needs a non-empty 'context' string and a 'qas' list")
                continue
            context = context.replace(" [SEP] ", "\n").strip()
            for q, qa in enumerate(qas):
                if out.full:
                    return
                try:
                    if not isinstance(qa, dict):
                        raise _BadRecord("expected a JSON object")
                    question = _text(qa, "question").strip()
                    answers = qa.get("answers")
                    if not isinstance(answers, list) or not answers:
                        raise _BadRecord("'answers' must be a non-empty list")
                    refs = []
                    for ans in answers:
                        if not isinstance(ans, dict):
                            raise _BadRecord("each answer must be an object with 'text'")
                        refs.append(_text(ans, "text").strip())
                    out.add(
                        [
                            Example(
                                question=f"{context}\n\n{question}",
                                answer=refs[0],
                                id=_ident(qa, "id"),
                                lang="ja",
                                references=refs,
                            )
                        ]
                    )
                except _BadRecord as exc:
                    out.problem(None, f"{where}.qas[{q}]: {exc}")


def _load_text(path: Path) -> tuple[bytes, str]:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path} is a directory, not a data file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (invalid byte at offset {exc.start})") from exc
    if not text.strip():
        raise InputError(f"{path}: the file is empty")
    return raw, text


def detect_format(text: str, path: str = "<data>") -> str:
    """Which of FORMATS `text` holds: a JSON list, a SQuAD object, or JSON Lines by its first record's keys."""
    head = text.lstrip()
    if head.startswith("["):
        return "coconut"
    first = next(_json_lines(text), None)
    record: Any = None
    if first is not None:
        try:
            record = json.loads(first[1])
        except json.JSONDecodeError:
            record = None
    if record is None and head.startswith("{"):
        try:  # a pretty-printed single object, such as a SQuAD file
            record = json.loads(text)
        except json.JSONDecodeError:
            pass
    if not isinstance(record, dict):
        raise InputError(
            f"{path}: cannot tell the format: the first record is not a JSON object",
            hint=f"pass --format, one of: {', '.join(FORMATS)}",
        )
    if "data" in record and isinstance(record["data"], list):
        return "jsquad"
    return record_format(record, path)


def record_format(record: dict, path: str = "<data>") -> str:
    """The row format a record's keys say (after any --columns renaming)."""
    keys = set(record)
    if {"ja", "en"} <= keys:
        return "pairs"
    if {"instruction", "output"} <= keys:
        return "instruction"
    if "choice0" in keys and "label" in keys:
        return "jcommonsenseqa"
    if {"context", "question", "answers"} <= keys:
        return "squad"
    if {"question", "answer"} <= keys:
        return "jsonl"
    raise InputError(
        f"{path}: cannot tell the format from the keys of the first record ({', '.join(sorted(keys)) or 'none'})",
        hint=f"pass --format, one of: {', '.join(FORMATS)}; or map columns with --columns question=COL,answer=COL",
    )


@dataclass
class DataOptions:
    """How to read a data source beyond its format: column names, language filter, the hub."""

    columns: dict[str, str] | None = None  # data set column -> lgemma key
    filter_lang: bool = False
    offline: bool = False  # hub datasets: the local cache only
    token: str | None = None  # hub datasets: never printed
    split: str | None = None  # hub datasets without ":SPLIT": the split to prefer ("train" for training)


def read_dataset(
    path: str | Path,
    fmt: str = "auto",
    direction: str | None = None,
    strict: bool = False,
    limit: int | None = None,
    options: DataOptions | None = None,
) -> Dataset:
    """Read a data file, or a hub dataset (`hf:...`), into examples (at most `limit`), reporting
    the records it skipped."""
    options = options or DataOptions()
    if fmt != "auto" and fmt not in FORMATS:
        raise UsageError(f"unknown data format {fmt!r}", hint=f"use auto or one of: {', '.join(FORMATS)}")
    if limit is not None and limit < 1:
        raise UsageError("--limit must be at least 1")
    from .hub_data import is_hub_ref

    if is_hub_ref(path):
        from .hub_data import read_hub_dataset

        return read_hub_dataset(str(path), fmt, direction, strict, limit, options)
    p = Path(path).expanduser()
    raw, text = _load_text(p)
    sha = hashlib.sha256(raw).hexdigest()
    columns = options.columns
    if fmt == "auto":
        record = None
        if columns and not text.lstrip().startswith("["):  # JSON Lines: detect on the renamed first record
            first = next(_json_lines(text), None)
            try:
                record = json.loads(first[1]) if first else None
            except json.JSONDecodeError:
                record = None
        if isinstance(record, dict):
            fmt = record_format(rename_columns(record, columns), str(p))
        else:
            fmt = detect_format(text, str(p))
    out = _Collector(str(p), strict, limit)
    if fmt == "coconut":
        _read_coconut(text, out, columns)
    elif fmt == "jsquad":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{p}, line {exc.lineno}: invalid JSON: {exc.msg}") from None
        _read_jsquad(data, out)
    else:
        _read_lines(text, record_reader(fmt, direction), out, fmt, columns, options.filter_lang)
    return Dataset(
        examples=out.examples, problems=out.problems, path=str(p), format=fmt, sha256=sha, filtered=out.filtered
    )


# --- predictions of another system -----------------------------------------------------------


def read_predictions(path: str | Path, examples: list[Example], limit: int | None = None) -> list[str]:
    """Predictions in data order: JSON Lines `{"id"?, "prediction"}` or plain text, one per line.

    The file is JSON Lines when its first non-empty line is a JSON object with "prediction";
    then every non-empty line must be one, and an "id" given must equal the row's id. Otherwise
    each line is one prediction (an empty line is an empty prediction). With `limit`, extra
    predictions past the evaluated rows are ignored; without, the counts must match.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"{p}: no such file" if not p.exists() else f"{p} is not a file")
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{p}: not UTF-8 text (invalid byte at offset {exc.start})") from exc
    lines = text_lines(text)
    first = next((ln for ln in lines if ln.strip()), "")
    try:
        head = json.loads(first)
    except json.JSONDecodeError:
        head = None
    preds: list[str] = []
    if isinstance(head, dict) and "prediction" in head:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{p}, line {number}: invalid JSON: {exc.msg}") from None
            if not isinstance(row, dict) or not isinstance(row.get("prediction"), str):
                raise InputError(f"{p}, line {number}: expected an object with a string 'prediction'")
            k = len(preds)
            if (
                "id" in row
                and row["id"] is not None
                and k < len(examples)
                and examples[k].id is not None
                and str(row["id"]) != examples[k].id
            ):
                raise InputError(
                    f"{p}, line {number}: id {row['id']!r} but data row {k + 1} has id {examples[k].id!r}",
                    hint="predictions must follow the data order",
                )
            preds.append(row["prediction"])
    else:
        preds = list(lines)
    if len(preds) < len(examples) or (len(preds) > len(examples) and limit is None):
        raise InputError(
            f"{p}: {len(preds)} predictions for {len(examples)} data rows",
            hint="one prediction per data row, in order (use --limit to score the first rows)",
        )
    return preds[: len(examples)]
