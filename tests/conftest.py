"""Session fixtures: a tiny random Gemma 2 and Gemma 3 model with an in-process tokenizer.

Everything is built offline in seconds, saved with `save_pretrained`, and loaded back through
the same code path a user's model takes. Tests never touch a hub.
"""

from __future__ import annotations

import os
import string
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SENTENCES = [
    "The cat sleeps on the warm roof.",
    "Tokyo is the capital of Japan.",
    "Every wumpus is a yumpus, and every yumpus is a zumpus.",
    "Is Tom a lempus or a gorpus?",
    "Please translate this sentence into Japanese.",
    "I bought three apples and two oranges at the market.",
    "The train to Osaka leaves at nine in the morning.",
    "She reads a book every night before sleeping.",
    "What is the answer to the question?",
    "Mount Fuji is the highest mountain in Japan.",
    "We walked along the river and talked about the future.",
    "Latent reasoning lets a model think without words.",
    "猫は暖かい屋根の上で寝ています。",
    "東京は日本の首都です。",
    "富士山は日本で一番高い山です。",
    "市場でりんごを三つとみかんを二つ買いました。",
    "大阪行きの電車は朝九時に出発します。",
    "彼女は毎晩寝る前に本を読みます。",
    "この文を英語に翻訳してください。",
    "質問の答えは何ですか。",
    "私たちは川沿いを歩きながら将来について話しました。",
    "トムはレンパスですか、それともゴーパスですか。",
    "すべてのワンパスはヤンパスです。",
    "今日はとても良い天気ですね。",
    "駅までどうやって行けばいいですか。",
    "日本語と英語の両方を話せます。",
]

GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)
SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "<unused0>", "<unused1>"]


def build_tokenizer(chat_template: bool = True):
    """A small BPE tokenizer trained here on Japanese and English text, Gemma's special ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="never")
    tok.decoder = decoders.Metaspace(prepend_scheme="never")
    # Every printable ASCII character (newline included) is in the vocabulary, as in real tokenizers.
    alphabet = [c for c in string.printable if c not in " \t\r\x0b\x0c"]
    trainer = trainers.BpeTrainer(
        vocab_size=500, special_tokens=SPECIALS, max_token_length=3, initial_alphabet=alphabet, show_progress=False
    )
    tok.train_from_iterator(SENTENCES * 4, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        pad_token="<pad>",
        additional_special_tokens=["<start_of_turn>", "<end_of_turn>", "<unused0>", "<unused1>"],
    )
    if chat_template:
        fast.chat_template = GEMMA_CHAT_TEMPLATE
    return fast


def build_model(kind: str, vocab_size: int, seed: int = 0):
    """A tiny random Gemma 2 or Gemma 3 causal LM (2 layers, hidden 64)."""
    import torch
    from transformers import AutoModelForCausalLM, Gemma2Config, Gemma3TextConfig

    common = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=512,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
        sliding_window=8,
    )
    if kind == "gemma2":
        config = Gemma2Config(**common)
    else:
        config = Gemma3TextConfig(**common, layer_types=["sliding_attention", "full_attention"])
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    # Random init at std 0.02 makes every logit near-equal; widen it so greedy choices are stable.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.2)
    return model


def save_tiny(directory: Path, kind: str, chat_template: bool = True) -> Path:
    tok = build_tokenizer(chat_template)
    model = build_model(kind, len(tok))
    model.generation_config.eos_token_id = 1
    model.save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_gemma2(tmp_path_factory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("tiny-gemma2"), "gemma2")


@pytest.fixture(scope="session")
def tiny_gemma3(tmp_path_factory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("tiny-gemma3"), "gemma3")


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    """A Gemma 2 model whose tokenizer has no chat template (a base model)."""
    return save_tiny(tmp_path_factory.mktemp("tiny-base"), "gemma2", chat_template=False)


@pytest.fixture(scope="session", params=["gemma2", "gemma3"])
def tiny_model_dir(request, tiny_gemma2, tiny_gemma3) -> Path:
    return tiny_gemma2 if request.param == "gemma2" else tiny_gemma3


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Keep lgemma's and the hub's user state inside the test's temporary directory."""
    monkeypatch.setenv("LGEMMA_HOME", str(tmp_path / "lgemma-home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("LGEMMA_MODEL", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    return tmp_path
