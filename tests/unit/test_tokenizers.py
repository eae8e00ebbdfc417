"""Tokenizers: round trips, GPT-2 ids against the published encoder, vectorised chars."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from attnlab.data.tokenizers import CharTokenizer, _chunks, gpt2_tokenizer, train_bpe
from tests.helpers import GPT2_DIR, WIKI_RAW, needs_gpt2


@given(st.text(min_size=1, max_size=200))
@settings(max_examples=60, deadline=None)
def test_char_round_trip(text):
    tok = CharTokenizer.fit(text)
    ids = tok.encode(text)
    assert len(ids) == len(text)
    assert tok.decode(ids) == text


def test_char_unknown_maps_to_unk():
    tok = CharTokenizer.fit("abc")
    assert tok.encode("abz").tolist() == [1, 2, 0]
    assert tok.vocab_size == 4


def test_trained_bpe_round_trip_and_size():
    text = "the quick brown fox jumps over the lazy dog. " * 200 + "Ünïcödé ✓ 日本語\n"
    tok = train_bpe(text, 300)
    assert tok.vocab_size == 300
    ids = tok.encode(text)
    assert len(ids) < len(text) / 2  # merges were learned
    assert tok.decode(ids) == text


def test_chunks_split_only_between_words():
    text = "alpha beta gamma delta " * 50000
    pieces = _chunks(text, 1000)
    assert "".join(pieces) == text and len(pieces) > 10
    assert all(p[0] == " " for p in pieces[1:])


@needs_gpt2
def test_gpt2_ids_match_openai():
    tok = gpt2_tokenizer(str(GPT2_DIR))
    assert tok.vocab_size == 50257
    assert tok.encode("hello world").tolist() == [31373, 995]
    assert tok.encode(" Hello, world!").tolist() == [18435, 11, 995, 0]


@needs_gpt2
def test_gpt2_wikitext_valid_count_and_round_trip():
    path = WIKI_RAW / "wiki.valid.raw"
    if not path.is_file():
        return
    text = path.read_text(encoding="utf-8")
    tok = gpt2_tokenizer(str(GPT2_DIR))
    ids = tok.encode(text)  # chunked, in parallel
    assert len(ids) == 249_887  # whole-file count published in shared/data/README.md
    assert tok.decode(ids) == text
