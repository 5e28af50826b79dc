"""`lgemma translate`: chunking, pass-through, inputs, atomic output and bad input."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from latent_gemma_cli.chunking import chunk_line, join_chunks, segment_document, split_sentences
from latent_gemma_cli.cli import app
from latent_gemma_cli.translation import in_target_script, resolve_languages

runner = CliRunner()
FAST = ["--max-new-tokens", "3", "--thoughts", "1"]


def count_chars(text: str) -> int:
    return len(text)


def test_japanese_and_english_sentence_split():
    assert split_sentences("東京は首都です。富士山は高い！本当？") == ["東京は首都です。", "富士山は高い！", "本当？"]
    assert split_sentences("It rains. Does it? Yes!") == ["It rains.", "Does it?", "Yes!"]
    assert split_sentences("version 3.11 is out") == ["version 3.11 is out"]


@pytest.mark.parametrize(
    "line",
    [
        "東京は日本の首都です。富士山は日本で一番高い山です。大阪行きの電車は朝九時に出発します。" * 3,
        "The cat sleeps on the roof. Tokyo is the capital of Japan. The train leaves at nine. " * 3,
        "区切りのない長い長い文" * 20,
    ],
)
def test_chunks_never_exceed_limit_and_keep_order(line):
    chunks = chunk_line(line, count_chars, 40)
    assert all(count_chars(c) <= 40 for c in chunks)
    assert len(chunks) > 1
    joiner = "" if "。" in line or "文" in line else " "
    assert joiner.join(chunks).replace(" ", "") == line.strip().replace(" ", "")


def test_segments_keep_structure_and_pass_through():
    text = "\n".join(
        [
            "東京は日本の首都です。",
            "",
            "https://example.com/page",
            "```",
            "print('こんにちは')",
            "```",
            "This line is already English.",
            "",
            "",
            "猫は寝ています。",
        ]
    )
    segs = segment_document(text, count_chars, 100, lambda line: in_target_script(line, "en"))
    assert [s.passthrough for s in segs] == [
        None,
        "blank",
        "url",
        "code",
        "code",
        "code",
        "target-language",
        "blank",
        "blank",
        None,
    ]
    assert [s.text for s in segs] == text.split("\n")
    assert segs[0].chunks == ["東京は日本の首都です。"]


def test_join_chunks_by_target_language():
    assert join_chunks(["A.", "B."], "en") == "A. B."
    assert join_chunks(["あ。", "い。"], "ja") == "あ。い。"


def test_default_target_is_the_other_language():
    assert resolve_languages("東京は日本の首都です。", "auto", None)[:2] == ("ja", "en")
    assert resolve_languages("Tokyo is the capital of Japan.", "auto", None)[:2] == ("en", "ja")
    assert resolve_languages("whatever", "en", "ja")[:2] == ("en", "ja")


def _translate(model_dir, *args, input=None):
    return runner.invoke(app, ["translate", "--model", str(model_dir), *FAST, *args], input=input)


DOC = "東京は日本の首都です。\n\nhttps://example.com\nAlready English.\n猫は寝ています。\n"


def test_file_output_keeps_lines_in_order(tiny_gemma2, tmp_path):
    src = tmp_path / "doc.txt"
    src.write_text(DOC, encoding="utf-8")
    result = _translate(tiny_gemma2, str(src), "--to", "en")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.split("\n")
    assert lines[1:4] == ["", "https://example.com", "Already English."]
    assert len(lines) == len(DOC.split("\n"))
    assert "2 chunks" in result.stderr


def test_stdin_and_json_lines(tiny_gemma2):
    result = _translate(tiny_gemma2, "--json", input=DOC)
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["line"] for r in records] == [0, 4]
    for r in records:
        assert r["target"] == "en" and r["source_language"]["code"] == "ja"
        assert {"translation", "confidence", "language_ok", "paths", "prompt_token_ids"} <= set(r)


def test_dash_reads_stdin(tiny_gemma2):
    result = _translate(tiny_gemma2, "-", "--to", "ja", input="Tokyo is the capital.\n")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("\n") == 1


def test_output_file_is_atomic(tiny_gemma2, tmp_path, monkeypatch):
    src = tmp_path / "doc.txt"
    src.write_text(DOC, encoding="utf-8")
    out = tmp_path / "out.txt"
    ok = _translate(tiny_gemma2, str(src), "-o", str(out))
    assert ok.exit_code == 0 and ok.stdout == ""
    assert out.read_text(encoding="utf-8").split("\n")[2] == "https://example.com"
    out.write_text("precious earlier translation\n", encoding="utf-8")

    from latent_gemma_cli import translation

    def boom(*a, **k):
        yield translation.LineResult(0, "partial", None, [])
        raise KeyboardInterrupt

    monkeypatch.setattr(translation, "translate_segments", boom)
    interrupted = _translate(tiny_gemma2, str(src), "-o", str(out))
    assert interrupted.exit_code == 130
    assert out.read_text(encoding="utf-8") == "precious earlier translation\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


def test_several_files_to_directory_and_headers(tiny_gemma2, tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("東京は日本の首都です。\n", encoding="utf-8")
    b.write_text("猫は寝ています。\n", encoding="utf-8")
    outdir = tmp_path / "out"
    outdir.mkdir()
    result = _translate(tiny_gemma2, str(a), str(b), "-o", str(outdir))
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in outdir.iterdir()) == ["a.txt", "b.txt"]
    stdout = _translate(tiny_gemma2, str(a), str(b), "--headers")
    assert f"==> {a} <==" in stdout.stdout and f"==> {b} <==" in stdout.stdout


@pytest.mark.parametrize(
    "make,needle",
    [
        (lambda p: p.write_bytes(b""), "empty input"),
        (lambda p: p.write_bytes(b"\x00\x01binary\x00"), "binary"),
        (lambda p: p.write_bytes("日本".encode("utf-8") + b"\xff\xfe"), "not valid UTF-8"),
        (lambda p: None, "no such file"),
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: p.write_bytes(b"a" * 2048), "limit"),
    ],
)
def test_bad_inputs_named_and_good_files_still_translated(tiny_gemma2, tmp_path, monkeypatch, make, needle):
    monkeypatch.setenv("LGEMMA_MAX_INPUT_BYTES", "1024")
    bad = tmp_path / "bad.txt"
    make(bad)
    good = tmp_path / "good.txt"
    good.write_text("猫は寝ています。\n", encoding="utf-8")
    result = _translate(tiny_gemma2, str(bad), str(good))
    assert result.exit_code == 2
    assert needle in result.stderr and str(bad) in result.stderr
    assert "translated 1 of 2 inputs; failed:" in result.stderr
    assert result.stdout.count("\n") == 1  # the good file's one line
    alone = _translate(tiny_gemma2, str(bad))
    assert alone.exit_code == 2 and "Traceback" not in alone.stderr


def test_batches_give_what_one_chunk_at_a_time_gives(tiny_gemma2):
    from latent_gemma_cli import engine
    from latent_gemma_cli.loading import load_model
    from latent_gemma_cli.translation import plan, translate_segments

    loaded = load_model(str(tiny_gemma2))
    text = "東京は日本の首都です。\n\n猫は寝ています。富士山は高い。\nhttps://example.com\n駅はどこですか。"
    segments = plan(loaded, text, "en", max_chunk_tokens=6)
    assert sum(len(s.chunks) for s in segments) >= 4
    settings = engine.Settings(mode="soft", num_thoughts=1, max_new_tokens=3)
    batched = list(translate_segments(loaded, segments, "ja", "en", settings, batch_size=8))
    single = list(translate_segments(loaded, segments, "ja", "en", settings, batch_size=1))
    assert [line.text for line in batched] == [line.text for line in single]
    assert [line.index for line in batched] == list(range(len(segments)))


def test_base_model_translation_stops_at_newline(tiny_base):
    from latent_gemma_cli import engine
    from latent_gemma_cli.loading import load_model
    from latent_gemma_cli.translation import stop_ids, translation_prompt_ids

    loaded = load_model(str(tiny_base))
    stops = stop_ids(loaded.tokenizer)
    newline = loaded.tokenizer("\n", add_special_tokens=False)["input_ids"]
    assert len(newline) == 1 and newline[0] in stops
    ids = translation_prompt_ids(loaded.tokenizer, "猫は寝ています。", "ja", "en")
    assert ids[0] == loaded.tokenizer.bos_token_id and "English:" in loaded.tokenizer.decode(ids)
    gen = engine.generate(
        loaded.model, loaded.tokenizer, ids, engine.Settings(mode="off", max_new_tokens=4, stop_ids=stops)
    )
    assert 1 <= gen.paths[0].num_tokens <= 4


def test_length_rule_fits_the_longest_chunk_unless_the_user_set_a_limit(tiny_gemma2, monkeypatch, tmp_path):
    from latent_gemma_cli.chunking import segment_document
    from latent_gemma_cli.loading import load_model
    from latent_gemma_cli.settings import Settings
    from latent_gemma_cli.translation import with_length_rule

    tok = load_model(str(tiny_gemma2), device="cpu").tokenizer
    segments = segment_document(
        "猫は寝ています。\n東京は日本の首都です。富士山は日本で一番高い山です。\n",
        lambda t: len(tok(t)["input_ids"]),
        100,
    )
    longest = max(len(tok(c, add_special_tokens=False)["input_ids"]) for s in segments for c in s.chunks)
    assert (
        with_length_rule(Settings(max_new_tokens=256), tok, segments, max_new_tokens_set=False).max_new_tokens
        == 2 * longest + 16
    )
    assert with_length_rule(Settings(max_new_tokens=7), tok, segments, max_new_tokens_set=True).max_new_tokens == 7
    # A limit from the environment (or the config file) is the user's: the rule keeps it.
    src = tmp_path / "in.txt"
    src.write_text("東京は日本の首都です。富士山は日本で一番高い山です。\n", encoding="utf-8")
    monkeypatch.setenv("LGEMMA_MAX_NEW_TOKENS", "2")
    result = runner.invoke(
        app, ["translate", "-m", str(tiny_gemma2), "--mode", "off", "--to", "en", "--json", str(src)]
    )
    assert result.exit_code == 0, result.stderr
    chunks = [json.loads(line) for line in result.stdout.strip().split("\n")]
    assert chunks and all(p["num_tokens"] <= 2 for c in chunks for p in c["paths"])


def test_short_english_output_is_not_reported_as_another_language():
    """langdetect takes "I like cats." for Catalan; the output check goes by script and
    text_language's rules, so it is no MISMATCH, while English for a Japanese target still is."""
    from latent_gemma_cli.language import detect
    from latent_gemma_cli.translation import ChunkResult

    assert detect("I like cats.").code != "en"  # what made the old check report a mismatch

    def chunk(translation: str, target: str) -> ChunkResult:
        source = "猫が好きです。" if target == "en" else "I like cats."
        return ChunkResult(0, 0, source, translation, detect(source), detect(translation), target, 0.9, [], [], 0.1)

    assert chunk("I like cats.", "en").language_ok
    assert chunk("猫が好きです。", "ja").language_ok and chunk("数学", "ja").language_ok
    assert not chunk("I like cats.", "ja").language_ok
    assert not chunk("猫が好きです。", "en").language_ok
    assert chunk("I like cats.", "en").to_dict()["output_language"]["code"] == detect("I like cats.").code
