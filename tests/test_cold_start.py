"""The direct tokenizer load (tokenizer.json parsed once, for start-up time) gives what
transformers' `AutoTokenizer` gives, and steps aside for anything it does not understand."""

from __future__ import annotations

import json
import shutil

import pytest
from transformers import AutoTokenizer

from latent_gemma_cli.loading import _direct_tokenizer, load_tokenizer

TEXTS = [
    "東京は日本の首都ですか？ Is Tokyo the capital?",
    "  leading spaces\tand\ttabs  ",
    "<start_of_turn>user\nhello<end_of_turn>\n<start_of_turn>model\n",
    "<unused0><unused1> Every wumpus is a yumpus.",
    "猫",
    "",
    "émoji 🙂 and a line\u2028separator",
]


@pytest.fixture(params=["tiny_gemma2", "tiny_gemma3", "tiny_base"])
def model_dir(request):
    return request.getfixturevalue(request.param)


def test_direct_load_equals_autotokenizer(model_dir):
    direct = load_tokenizer(model_dir)
    assert _direct_tokenizer(model_dir) is not None  # the fixtures take the direct path
    ref = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    for text in TEXTS:
        ids = direct(text)["input_ids"]
        assert ids == ref(text)["input_ids"], text
        assert direct.decode(ids) == ref.decode(ids)
        assert direct.decode(ids, skip_special_tokens=True) == ref.decode(ids, skip_special_tokens=True)
    for name in ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id", "padding_side", "chat_template"):
        assert getattr(direct, name) == getattr(ref, name), name
    assert len(direct) == len(ref) and sorted(direct.all_special_ids) == sorted(ref.all_special_ids)
    if ref.chat_template:
        turns = [
            {"role": "user", "content": "猫?"},
            {"role": "assistant", "content": "はい"},
            {"role": "user", "content": "x"},
        ]
        assert direct.apply_chat_template(turns, tokenize=False, add_generation_prompt=True) == (
            ref.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
        )


def test_a_config_it_does_not_understand_goes_through_autotokenizer(tiny_gemma2, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(tiny_gemma2, copy)
    config = json.loads((copy / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert _direct_tokenizer(copy) is not None
    config["auto_map"] = {"AutoTokenizer": ["x.Tok", None]}
    (copy / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    assert _direct_tokenizer(copy) is None
    (copy / "tokenizer_config.json").write_text("{not json", encoding="utf-8")
    assert _direct_tokenizer(copy) is None


def test_the_engine_loads_with_the_direct_tokenizer(tiny_gemma3):
    from latent_gemma_cli.loading import load_model

    loaded = load_model(str(tiny_gemma3), device="cpu", dtype="float32")
    assert type(loaded.tokenizer).__name__ == "TokenizersBackend"
    assert loaded.tokenizer.name_or_path == str(tiny_gemma3)


# --- the exit without teardown (cli.entry) ------------------------------------------------------

_ENTRY = r"""
import atexit, sys, threading, time
from pathlib import Path
import torch  # loaded: the fast exit applies
out = Path(sys.argv[1])
atexit.register(lambda: (out / "atexit").write_text("ran"))
if sys.argv[2] == "profile":
    sys.setprofile(lambda *args: None)
if sys.argv[2] == "thread":
    def late():
        time.sleep(0.5)
        (out / "thread").write_text("done")
    threading.Thread(target=late).start()
sys.argv = ["lgemma", *sys.argv[3:]]
print("x" * 200000, end="")  # a buffered stdout must be flushed, not lost
from latent_gemma_cli.cli import entry
try:
    entry()
except SystemExit:  # what a profiler (cProfile's main) does after the program: write its output
    (out / "after").write_text("ran")
    raise
"""


@pytest.mark.parametrize("thread", ["none", "thread", "profile"])
def test_the_console_entry_runs_atexit_flushes_and_waits_for_threads(tmp_path, thread):
    import subprocess
    import sys

    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, "-c", _ENTRY, str(tmp_path), thread, *args], capture_output=True, text=True, timeout=120
    )
    done = run("config", "show", "--json")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("x" * 200000) and json.loads(done.stdout[200000:])  # all of it, in order
    assert (tmp_path / "atexit").read_text() == "ran"
    if thread == "thread":  # a live non-daemon thread: Python's own exit, which waits for it
        assert (tmp_path / "thread").read_text() == "done"
    # The fast exit ends the process inside entry(); with a live thread or under a profiler,
    # SystemExit reaches the caller as usual.
    assert (tmp_path / "after").exists() == (thread != "none")
    bad = run("ask", "--paths", "0", "q")
    assert bad.returncode == 2 and bad.stderr.count("error:") == 1


def test_langdetect_profiles_from_the_cache_detect_exactly_as_langdetect_does(monkeypatch):
    from langdetect import detect_langs
    from langdetect import detector_factory as df

    from latent_gemma_cli import language
    from latent_gemma_cli.paths import cache_dir

    texts = ["Is Tom a lempus?", "東京は日本の首都です。", "Der Hund schläft im Garten.", "ok", "le chat noir"]
    monkeypatch.setattr(df.DetectorFactory, "seed", 0)
    monkeypatch.setattr(df, "_factory", None)
    language.load_profiles()  # builds from langdetect's JSON files and writes the cache
    built = df._factory
    [cache] = list(cache_dir().glob("langdetect-profiles-*.bin"))
    expected = [[(p.lang, p.prob) for p in detect_langs(t)] for t in texts]

    def no_build():
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(df, "_factory", None)
    with monkeypatch.context() as m:
        m.setattr(df, "init_factory", no_build)
        language.load_profiles()
    assert df._factory is not built and df._factory.langlist == built.langlist
    assert [[(p.lang, p.prob) for p in detect_langs(t)] for t in texts] == expected

    import zlib

    for bad in (b"not zlib data", zlib.compress(b'{"langs": [], "width": 0, "words_bytes": 0}\n')):
        cache.write_bytes(bad)  # unreadable or empty: rebuilt as langdetect builds it
        monkeypatch.setattr(df, "_factory", None)
        language.load_profiles()
        assert [[(p.lang, p.prob) for p in detect_langs(t)] for t in texts] == expected
