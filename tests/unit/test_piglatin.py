"""Pig Latin rules: the write-up's examples and edge cases; equal-length batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnlab import data, models
from attnlab.config import validate
from attnlab.data.piglatin import CharVocab, to_pig_latin, words_of_text
from attnlab.errors import ConfigError, DataError
from attnlab.train.loop import LossStats
from attnlab.train.run import resolve
from tests.helpers import pig_raw


@pytest.mark.parametrize(
    ("word", "pig"),
    [
        ("brown", "ownbray"),
        ("conditioning", "onditioningcay"),
        ("is", "isway"),
        ("pleasure-grounds", "easureplay-oundsgray"),
        ("strengthening", "engtheningstray"),
        ("thoughtfulness", "oughtfulnessthay"),
        ("good-humoured", "oodgay-umouredhay"),
        ("across", "acrossway"),
        ("a", "away"),
        ("b", "bay"),
        ("rhythm", "rhythmay"),
        ("yellow", "ellowyay"),
        ("Brown", "ownbray"),
        ("don't", "on'tday"),
        ("well-", "ellway-"),
    ],
)
def test_rules(word, pig):
    assert to_pig_latin(word) == pig


# --- data -----------------------------------------------------------------------------


def test_words_of_text_keeps_hyphens_and_apostrophes():
    got = words_of_text("Don't stop—Pleasure-grounds’ end. 42 x-")
    assert got == {"don't", "stop", "pleasure-grounds", "end", "x"}


def test_splits_are_disjoint_and_seeded(tmp_path):
    cfg = validate(pig_raw(tmp_path))
    ds = data.build(cfg.data)
    parts = {s: set(sp.words) for s, sp in ds.splits.items()}
    assert not parts["train"] & parts["validation"]
    assert not parts["train"] & parts["test"]
    assert not parts["validation"] & parts["test"]
    assert len(parts["validation"]) == len(parts["test"]) == 6
    again = data.build(cfg.data)
    assert again.splits["test"].words == ds.splits["test"].words
    other = data.build(validate(pig_raw(tmp_path, seed=7)).data)
    assert other.splits["test"].words != ds.splits["test"].words


def test_pairs_batch_layout(tmp_path):
    ds = data.build(validate(pig_raw(tmp_path)).data)
    split, vocab = ds.splits["train"], ds.tokenizer
    b = split.get(np.arange(4))
    for i in range(4):
        word, target = split.words[i], split.targets[i]
        assert vocab.decode(b.src[i]) == word
        assert b.x[i, 0] == CharVocab.SOS
        assert vocab.decode(b.x[i, 1:]) == target  # [SOS] target, padded
        assert vocab.decode(b.y[i]) == target
        n = len(target) + 1  # the characters and [EOS]
        assert b.mask[i].sum() == n and b.mask[i, :n].all()
        assert b.y[i, n - 1] == CharVocab.EOS
    assert b.x.shape[1] == int(b.mask.sum(1).max())  # trimmed to the longest word


def test_prefix_lm_layout_scores_only_the_target(tmp_path):
    ds = data.build(validate(pig_raw(tmp_path, arch="decoder")).data)
    split, vocab = ds.splits["train"], ds.tokenizer
    b = split.get(np.arange(3))
    for i in range(3):
        word, target = split.words[i], split.targets[i]
        row = b.x[i].tolist()
        assert row[0] == CharVocab.SOS and row[len(word) + 1] == CharVocab.SEP
        assert vocab.decode(row[1 : len(word) + 1]) == word
        scored = b.y[i][b.mask[i]].tolist()
        assert vocab.decode(scored) == target and scored[-1] == CharVocab.EOS
    prompt, lengths, src = split.prompts(np.arange(3))
    assert src is None
    for i in range(3):
        assert prompt[i, lengths[i] - 1] == CharVocab.SEP


def test_format_must_fit_the_model(tmp_path):
    raw = pig_raw(tmp_path)
    raw["data"]["format"] = "prefix_lm"
    with pytest.raises(ConfigError, match="does not fit"):
        validate(raw)
    raw = pig_raw(tmp_path)
    raw["data"] = {"task": "repeat_tokens"}
    with pytest.raises(ConfigError, match="piglatin"):
        validate(raw)
    raw = pig_raw(tmp_path)
    raw["train"]["probe_every"] = 2
    with pytest.raises(ConfigError, match="attnlab probe"):
        validate(raw)


def test_too_few_words_and_missing_path(tmp_path):
    with pytest.raises(DataError, match="fewer than"):
        data.build(validate(pig_raw(tmp_path, num_val=500)).data)
    raw = pig_raw(tmp_path)
    raw["data"]["path"] = str(tmp_path / "nope.txt")
    with pytest.raises(DataError, match="not found"):
        data.build(validate(raw).data)


def test_package_word_list():
    pytest.importorskip("english_words")
    cfg = validate({"data": {"task": "piglatin"}, "model": {"arch": "seq2seq"}})
    ds = data.build(cfg.data)
    assert ds.describe()["usable_words"] > 50_000
    assert ds.splits["validation"].num_sequences == 2000
    assert all(1 <= len(w) <= 16 for w in ds.splits["test"].words)


from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz'", min_size=1, max_size=20))
def test_translation_is_a_rotation_plus_suffix(word):
    pig = to_pig_latin(word)
    n = len(word)
    if word[0] in "aeiou":
        assert pig == word + "way"
    else:
        assert pig.endswith("ay") and len(pig) == n + 2
        head = pig[:n]
        assert head in word + word  # a rotation of the word
        assert head[0] in "aeiou" or not set(word) & set("aeiou")  # starts at the first vowel


def test_word_scores_break_mistakes_down_by_first_letter_and_repeats():
    from attnlab.train.translate import repeats_last, word_scores

    words = ["is", "brown", "apple", "cat"]
    refs = ["isway", "ownbray", "appleway", "atcay"]
    hyps = ["isssway", "ownbray", "appleway", "actay"]
    sc = word_scores(words, refs, hyps)
    assert sc["errors_by_start"] == {
        "consonant": {"words": 2, "errors": 1},
        "vowel": {"words": 2, "errors": 1},
    }
    assert sc["mistakes_repeating_last"] == 1
    assert repeats_last("is", "isway", "isssway") and not repeats_last("cat", "atcay", "actay")


@pytest.mark.parametrize("arch", ["seq2seq", "decoder"])
def test_equal_length_batches_give_the_padded_batch_gradient(tmp_path, arch):
    """`data.equal_length`: micro-batches of one source and one target length, no padding
    computed, and their accumulated gradient is the padded batch's."""
    raw = pig_raw(tmp_path, arch=arch, equal_length=True)
    raw["data"]["batch_size"] = 16
    cfg = validate(raw, "pig")
    ds = data.build(cfg.data)
    cfg = resolve(cfg, ds)
    torch.manual_seed(0)
    model = models.build(cfg.model)
    split, stats = ds.splits["train"], LossStats(model, None)
    ids = np.arange(16)
    parts = split.micro_batches(ids, 1)
    assert len(parts) > 1 and sorted(np.concatenate(parts)) == list(ids)
    for part in parts:
        b = split.get(part)
        assert not (b.x == CharVocab.PAD).any()  # nothing padded is computed
        if b.src is not None:
            assert not (b.src == CharVocab.PAD).any()

    def grads(batches) -> list[torch.Tensor]:
        model.zero_grad()
        n = sum(int(b.mask.sum()) for b in batches)
        for b in batches:
            (stats(model, b)[0] / n).backward()
        return [p.grad.clone() for p in model.parameters() if p.grad is not None]

    padded = grads([split.get(ids)])
    equal = grads([split.get(p) for p in parts])
    pairs = zip(padded, equal, strict=True)
    assert all(torch.allclose(a, b, atol=1e-6, rtol=1e-4) for a, b in pairs)
