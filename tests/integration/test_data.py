"""Data: local corpora, errors that name the file, the token cache, batches, synthetic tasks."""

from __future__ import annotations

import numpy as np
import pytest

from attnlab import data
from attnlab.config import validate
from attnlab.config.schema import (
    CopyingData,
    InductionHeadsData,
    MQARData,
    SelectiveCopyingData,
)
from attnlab.data.splits import eval_ids, train_ids
from attnlab.data.synthetic import (
    IGNORE,
    copying,
    induction_heads,
    mqar,
    mqar_split,
    repeat_tokens,
    selective_copying,
)
from attnlab.errors import ConfigError, DataError
from attnlab.runs import train
from tests.helpers import tiny_raw


def lm_cfg(path, **over):
    d = {
        "task": "lm_text",
        "path": str(path),
        "tokenizer": "char",
        "seq_len": 16,
        "batch_size": 4,
        **over,
    }
    return validate({"data": d}).data


def test_local_wikitext_layout_and_contiguous_windows(text_dir):
    ds = data.build(lm_cfg(text_dir))
    train = ds.splits["train"]
    text = (text_dir / "wiki.train.raw").read_text()
    assert train.num_sequences == (len(text) - 1) // 16
    b = train.get(np.array([0, 3]))
    assert b.x.shape == (2, 16) and b.mask is None
    assert ds.tokenizer.decode(b.x[1]) == text[48:64]  # window 3 starts at 3 * T
    assert ds.tokenizer.decode(b.y[1]) == text[49:65]  # targets: shifted by one


def test_single_file_is_cut_into_three_splits(text_dir):
    ds = data.build(lm_cfg(text_dir / "wiki.train.raw", val_fraction=0.1, test_fraction=0.1))
    n = {s: len(sp.tokens) for s, sp in ds.splits.items()}
    assert n["train"] > 7 * n["validation"] > 0 and n["test"] > 0


def test_missing_path_names_it(tmp_path):
    with pytest.raises(DataError, match=r"not found: .*nowhere"):
        data.build(lm_cfg(tmp_path / "nowhere"))


def test_empty_corpus_names_the_file(tmp_path):
    (tmp_path / "corpus.txt").write_text("  \n\n")
    with pytest.raises(DataError, match=r"corpus\.txt is empty"):
        data.build(lm_cfg(tmp_path / "corpus.txt"))


def test_corpus_shorter_than_a_batch(tmp_path):
    (tmp_path / "small.txt").write_text("abcdefghij" * 20)
    with pytest.raises(DataError, match=r"small\.txt: the train split has .* fewer than one batch"):
        data.build(lm_cfg(tmp_path / "small.txt", batch_size=64))


def test_not_utf8_reports_byte_offset(tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"hello world " * 10 + b"\xff\xfe tail")
    with pytest.raises(DataError, match=r"bad\.txt is not UTF-8.*0xff at byte offset 120"):
        data.build(lm_cfg(tmp_path / "bad.txt"))


def test_missing_split_is_named(text_dir):
    (text_dir / "wiki.train.raw").unlink()
    with pytest.raises(DataError, match="no train split"):
        data.build(lm_cfg(text_dir))


def test_second_build_reads_the_cache(text_dir, monkeypatch):
    first = data.build(lm_cfg(text_dir, tokenizer="bpe", bpe_vocab_size=300))
    calls = []
    from attnlab.data import tokenizers

    def spy(self, text):
        calls.append(len(text))
        return orig(self, text)

    orig = tokenizers.HFTokenizer.encode
    monkeypatch.setattr(tokenizers.HFTokenizer, "encode", spy)
    second = data.build(lm_cfg(text_dir, tokenizer="bpe", bpe_vocab_size=300))
    assert calls == []  # neither trained nor tokenized again
    assert isinstance(second.splits["train"].tokens, np.memmap)
    np.testing.assert_array_equal(first.splits["train"].tokens, second.splits["train"].tokens)
    third = data.build(lm_cfg(text_dir, tokenizer="bpe", bpe_vocab_size=320))
    assert len(calls) == 3 and third.vocab_size <= 320  # another tokenizer: a new entry


def test_train_ids_cover_each_epoch_once():
    n, b = 50, 8
    per_epoch = n // b
    for epoch in range(2):
        seen = np.concatenate([train_ids(n, b, 7, epoch * per_epoch + i) for i in range(per_epoch)])
        assert len(set(seen.tolist())) == per_epoch * b
    assert not np.array_equal(train_ids(n, b, 7, 0), train_ids(n, b, 7, per_epoch))
    np.testing.assert_array_equal(train_ids(n, b, 7, 3), train_ids(n, b, 7, 3))


def _rows(split) -> tuple[np.ndarray, np.ndarray]:
    """A next-token task's split as rows (N, T+1) and the scored mask (N, T)."""
    inputs, labels, targets = split
    np.testing.assert_array_equal(inputs[:, 1:], targets[:, :-1])  # targets: next tokens
    np.testing.assert_array_equal(labels[labels >= 0], targets[labels >= 0])
    return np.concatenate([inputs, targets[:, -1:]], axis=1), labels >= 0


def test_repeat_tokens_structure():
    cfg = validate(
        {
            "data": {
                "task": "repeat_tokens",
                "vocab_size": 50,
                "seq_len": 40,
                "segment_len": 12,
                "min_segment_len": 3,
                "num_train": 400,
            }
        }
    ).data
    rows, mask = _rows(repeat_tokens(cfg, "train"))
    assert rows.shape == (400, 41) and mask.shape == (400, 40)
    assert rows.min() >= 0 and rows.max() < 50
    scored = mask.sum(axis=1)
    assert scored.min() == 2 and scored.max() == 11  # S - 1 for S in [3, 12]
    assert len(set(scored.tolist())) > 5  # segment lengths vary
    for i in range(400):
        t = np.flatnonzero(mask[i])  # input positions whose target is scored
        seg = len(t) + 1
        # each scored target equals the token one segment earlier
        np.testing.assert_array_equal(rows[i, t + 1], rows[i, t + 1 - seg])
    first_scored = np.array([np.flatnonzero(m)[0] for m in mask])
    assert len(set(first_scored.tolist())) > 10  # the repeat moves around
    again, _ = _rows(repeat_tokens(cfg, "train"))
    np.testing.assert_array_equal(rows, again)
    other, _ = _rows(repeat_tokens(cfg, "validation"))
    assert not np.array_equal(rows[:32], other[:32])


def test_repeat_tokens_batches_carry_the_mask(tiny_cfg):
    ds = data.build(tiny_cfg().data)
    b = ds.splits["validation"].get(np.arange(4))
    assert b.mask is not None and b.mask.dtype.is_floating_point is False
    assert (b.y[b.mask] < 16).all()


def test_hugging_face_dataset_rows_are_joined_per_split(monkeypatch):
    """The Hub path, with `datasets.load_dataset` answered locally (no network in tests)."""
    import datasets

    rows = {
        "train": [" \n", " = Title = \n", " The cat sat on the mat . \n"] * 200,
        "validation": [" \n", " A dog ran . \n"] * 100,
        "test": [" \n", " Birds sang . \n"] * 100,
    }
    seen = {}

    def fake_load(name, config):
        seen["args"] = (name, config)
        return datasets.DatasetDict(
            {k: datasets.Dataset.from_dict({"text": v}) for k, v in rows.items()}
        )

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    cfg = validate(
        {
            "data": {
                "task": "lm_text",
                "dataset": "wikitext",
                "dataset_config": "wikitext-2-raw-v1",
                "tokenizer": "char",
                "seq_len": 16,
                "batch_size": 4,
            }
        }
    ).data
    ds = data.build(cfg)
    assert seen["args"] == ("wikitext", "wikitext-2-raw-v1")
    train = ds.splits["train"]
    assert len(train.tokens) == len("".join(rows["train"]))  # rows keep their own newlines
    assert ds.tokenizer.decode(train.tokens[:14]) == " \n = Title = \n"


def test_hugging_face_failure_is_a_clear_error(monkeypatch):
    import datasets

    def offline(*_):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    cfg = validate({"data": {"task": "lm_text", "dataset": "wikitext", "tokenizer": "char"}}).data
    with pytest.raises(
        DataError, match=r"could not load Hugging Face dataset 'wikitext'.*data\.path"
    ):
        data.build(cfg)


def test_mqar_is_zoologys_task():
    """Every property of Zoology's `multiquery_ar`: keys from [1, V/2) and values from
    [V/2, V), each without replacement; every key queried once, at an even offset of the
    query region; only the query is labelled, with its value; the value is not written
    after the query; random tokens elsewhere."""
    V, T, N = 128, 64, 8
    inputs, labels = mqar(V, 300, T, N, seed=3)
    assert inputs.shape == labels.shape == (300, T)
    for x, y in zip(inputs, labels, strict=True):
        keys, values = x[0 : 2 * N : 2], x[1 : 2 * N : 2]
        assert len(set(keys)) == N and ((keys >= 1) & (keys < V // 2)).all()
        assert len(set(values)) == N and ((values >= V // 2) & (values < V)).all()
        assert (y[: 2 * N] == IGNORE).all()
        q = np.flatnonzero(y != IGNORE)  # query positions
        assert len(q) == N and ((q - 2 * N) % 2 == 0).all()
        pairs = dict(zip(keys.tolist(), values.tolist(), strict=True))
        assert sorted(x[q].tolist()) == sorted(keys.tolist())  # each key queried once
        assert all(y[t] == pairs[x[t]] for t in q)
    rest = np.ones_like(labels, dtype=bool)
    rest[:, : 2 * N] = False
    rest[labels != IGNORE] = False
    filler = inputs[rest]
    assert len(np.unique(filler)) > V // 2 and (filler == 0).mean() < 0.05  # random, not 0
    # a value follows its query no more often than chance: it is never written back
    q_rows, q_pos = np.nonzero((labels != IGNORE)[:, :-1])
    assert (inputs[q_rows, q_pos + 1] == labels[q_rows, q_pos]).mean() < 0.05
    again = mqar(V, 300, T, N, seed=3)
    np.testing.assert_array_equal(inputs, again[0])
    zeros, _ = mqar(V, 50, T, N, random_non_queries=False, seed=3)
    assert (zeros[:, 2 * N :] == 0).mean() > 0.8


def test_mqar_gaps_follow_the_power_law():
    """Small power_a puts queries near the start of the query region (Zoology's default
    0.01); power_a = 1 spreads them evenly."""
    V, T, N = 256, 128, 4
    first = {}
    for a in (0.01, 1.0):
        _, labels = mqar(V, 2000, T, N, power_a=a, seed=0)
        gaps = (np.nonzero(labels != IGNORE)[1] - 2 * N) // 2
        first[a] = float(gaps.mean())
    space = (T - 2 * N) // 2
    assert first[0.01] < 0.3 * space and abs(first[1.0] - (space - 1) / 2) < 2


def test_mqar_config_errors_and_split():
    with pytest.raises(ConfigError, match="even"):
        validate({"data": {"task": "mqar", "seq_len": 63}})
    with pytest.raises(ConfigError, match="4 x num_kv_pairs"):
        validate({"data": {"task": "mqar", "seq_len": 30, "num_kv_pairs": 8}})
    with pytest.raises(ConfigError, match="distinct keys"):
        validate({"data": {"task": "mqar", "vocab_size": 16, "num_kv_pairs": 8}})
    cfg = MQARData(vocab_size=64, num_kv_pairs=4, seq_len=32, num_train=20)
    _inputs, labels, targets = mqar_split(cfg, "train")
    np.testing.assert_array_equal(targets[labels >= 0], labels[labels >= 0])


def test_copying_structure():
    cfg = CopyingData(vocab_size=12, segment_len=6, min_segment_len=2, seq_len=20, num_train=40)
    rows, mask = _rows(copying(cfg, "train"))
    for row, m in zip(rows, mask, strict=True):
        S = int(np.nonzero(row == 1)[0][0])
        assert 2 <= S <= 6 and (row[:S] >= 2).all()
        assert np.array_equal(row[S + 1 : 2 * S + 1], row[:S]) and (row[2 * S + 1 :] == 0).all()
        assert m.nonzero()[0].tolist() == list(range(S, 2 * S))


def test_selective_copying_is_the_papers_task():
    """Data tokens among noise, then markers; the answers are labels at the markers, never
    inputs (the model writes them from memory)."""
    cfg = SelectiveCopyingData(vocab_size=10, num_tokens=5, seq_len=20, num_train=40)
    assert cfg.form == "paper"
    inputs, labels, _ = selective_copying(cfg, "train")
    assert inputs.shape == labels.shape == (40, 20)
    for x, y in zip(inputs, labels, strict=True):
        region = x[:15]
        tokens = region[region != 0]
        assert len(tokens) == 5 and ((tokens >= 1) & (tokens <= 8)).all()
        assert (x[15:] == 9).all()  # markers carry no content
        np.testing.assert_array_equal(y[15:], tokens)  # in order
        assert (y[:15] == IGNORE).all()
    gaps = [np.diff(np.nonzero(r[:15])[0]).tolist() for r in inputs]
    assert len({tuple(g) for g in gaps}) > 10  # positions vary from row to row
    again = selective_copying(cfg, "train")[0]
    np.testing.assert_array_equal(inputs, again)


def test_selective_copying_teacher_forced_form():
    cfg = SelectiveCopyingData(
        vocab_size=10, num_tokens=5, seq_len=20, num_train=40, form="teacher_forced"
    )
    rows, mask = _rows(selective_copying(cfg, "train"))
    for row, m in zip(rows, mask, strict=True):
        region, tokens = row[:15], row[16:]
        assert row[15] == 1 and (tokens >= 2).all()
        assert np.array_equal(region[region != 0], tokens)  # fed back after the separator
        assert m.nonzero()[0].tolist() == list(range(15, 20))


def test_induction_heads_is_the_mamba_papers_task():
    cfg = InductionHeadsData(vocab_size=16, seq_len=32, num_train=200)
    inputs, labels, _ = induction_heads(cfg, "train")
    for x, y in zip(inputs, labels, strict=True):
        special = np.flatnonzero(x == 15)
        assert len(special) == 2 and special[1] == 31 and special[0] <= 29
        assert (y[:-1] == IGNORE).all() and y[-1] == x[special[0] + 1] != 15
    firsts = [int(np.flatnonzero(x == 15)[0]) for x in inputs]
    assert len(set(firsts)) > 15


def test_eval_subset_is_fixed_and_random():
    """Periodic evaluations read the same seeded random subset every time, not the first
    batches (which for ordered data is no sample of the split)."""
    ids = eval_ids(1000, 16, 10)
    assert len(ids) == 160 and len(set(ids.tolist())) == 160
    np.testing.assert_array_equal(ids, eval_ids(1000, 16, 10))
    assert ids.max() > 500 and not np.array_equal(ids, np.arange(160))
    np.testing.assert_array_equal(eval_ids(100, 16, 10), np.arange(100))  # whole split
    np.testing.assert_array_equal(eval_ids(100, 16, None), np.arange(100))


@pytest.mark.parametrize(
    ("task", "bad", "needle"),
    [
        ("selective_copying", {"num_tokens": 40}, "num_tokens"),
        ("mqar", {"num_kv_pairs": 200, "seq_len": 1024}, "distinct keys"),
        ("mqar", {"num_kv_pairs": 20, "seq_len": 60}, "4 x num_kv_pairs"),
        ("copying", {"segment_len": 30}, "seq_len"),
    ],
)
def test_synthetic_configs_reject_impossible_layouts(task, bad, needle):
    with pytest.raises(ConfigError, match=needle):
        validate({"data": {"task": task, **bad}}, "t")


@pytest.mark.parametrize("task", ["mqar", "copying", "selective_copying", "induction_heads"])
def test_synthetic_tasks_build_and_train(task, tmp_path):
    raw = tiny_raw()
    raw["data"] = {
        "task": task,
        "vocab_size": 16,
        "seq_len": 24,
        "batch_size": 8,
        "num_train": 64,
        "num_val": 16,
        "num_test": 16,
    }
    if task == "mqar":
        raw["data"].update(num_kv_pairs=4, vocab_size=32)
    elif task == "selective_copying":
        raw["data"]["num_tokens"] = 4
    elif task == "copying":
        raw["data"].update(segment_len=8, min_segment_len=3)
    summary = train(validate(raw, "t"), tmp_path / "run")
    assert summary["data"]["sources"]["train"] == f"{task} (generated)"
    assert 0 <= summary["final_val_accuracy"] <= 1


def test_rows_layout_pads_each_line_and_scores_padding_only_when_asked(tmp_path):
    """write-up 001's pipeline: one example per non-blank line, padded to seq_len."""
    text = tmp_path / "t.txt"
    text.write_text("ab ab\n\nabcabcabcabcabc\nb\n" * 40)
    raw = {"task": "lm_text", "path": str(text), "tokenizer": "char", "seq_len": 8}
    raw.update(layout="rows", batch_size=4, val_fraction=0.2, test_fraction=0.2)
    cfg = validate({"data": raw}, "t")
    split = data.build(cfg.data).splits["train"]
    assert split.inputs.shape == (split.num_sequences, 8)
    # "ab ab": 5 characters, 4 scored targets; the 15-character line is cut to 9 tokens,
    # 8 targets; the 1-character line has no target and is dropped
    assert split.mask[:2].sum(1).tolist() == [4, 8] and split.num_sequences % 2 == 0
    scored = validate({"data": {**raw, "score_pad": True}}, "t")
    padded = data.build(scored.data).splits["train"]
    assert padded.mask.all()
    # which targets are the row's own tokens is kept either way (the probes leave padding out)
    assert (padded.real == split.mask).all() and (split.real == split.mask).all()
    assert padded.get(np.arange(2)).real.sum(1).tolist() == [4, 8]
    with pytest.raises(ConfigError, match="score_pad"):
        validate({"data": {**raw, "layout": "stream", "score_pad": True}}, "t")


def test_all_rows_keeps_blank_rows_as_padding_and_each_rows_newline(tmp_path):
    """write-up 001 as it ran: every row of the split as `datasets` hands WikiText out,
    blank ones as all-padding rows (scored with the padding) and each other row with its
    newline; with the padding masked, a batch of blank rows trains on nothing."""
    text = tmp_path / "t.txt"
    text.write_text(" \n = A = \n \nab ab\n" * 30)
    raw = {"task": "lm_text", "path": str(text), "tokenizer": "char", "seq_len": 8}
    raw.update(layout="rows", all_rows=True, score_pad=True, batch_size=4)
    raw.update(val_fraction=0.2, test_fraction=0.2)
    split = data.build(validate({"data": raw}, "t").data).splits["train"]
    lines = text.read_text()[: len(text.read_text()) * 6 // 10].split("\n")
    # every line of the cut is a row, blank ones included (the cut's last line may be partial)
    assert split.num_sequences in (len(lines) - 1, len(lines))
    assert split.mask.all()  # padding scored: every slot of every row, blank rows too
    real = split.real.sum(1)
    assert 0 in real.tolist()  # a blank row: no token of its own
    # "ab ab\n" is 6 characters: 5 own targets (the newline is one)
    assert 5 in real.tolist()
    masked = data.build(validate({"data": {**raw, "score_pad": False}}, "t").data)
    assert (masked.splits["train"].mask == masked.splits["train"].real).all()
    with pytest.raises(ConfigError, match="all_rows"):
        validate({"data": {**raw, "layout": "stream", "score_pad": False}}, "t")


def _stories(n: int) -> list[str]:
    return [f"Once upon a time story {i} had a cat.\n" for i in range(n)]


def test_a_dataset_without_a_test_split_gets_one_cut_from_train(monkeypatch):
    """TinyStories on the Hub has train and validation only: test_fraction of train's
    rows, drawn with split_seed, become the test split, and leave train."""
    import datasets

    from attnlab.data.text import hub_splits

    rows = {"train": _stories(400), "validation": _stories(40)}
    monkeypatch.setattr(
        datasets,
        "load_dataset",
        lambda name, config: datasets.DatasetDict(
            {k: datasets.Dataset.from_dict({"text": v}) for k, v in rows.items()}
        ),
    )
    base = {"task": "lm_text", "dataset": "roneneldan/TinyStories", "test_fraction": 0.05}
    texts, sources = hub_splits(validate({"data": base}).data)
    train, test = texts["train"].splitlines(), texts["test"].splitlines()
    assert len(test) == 20 and len(train) == 380
    assert sorted(train + test) == sorted(r.strip("\n") for r in rows["train"])
    assert "split_seed 0" in sources["test"] and sources["train"].startswith("hf:")
    again, _ = hub_splits(validate({"data": base}).data)
    other, _ = hub_splits(validate({"data": {**base, "split_seed": 1}}).data)
    assert again["test"] == texts["test"] != other["test"]


def test_tinystories_config_runs_on_a_local_copy_in_its_layout(tmp_path, monkeypatch, capsys):
    """The packaged TinyStories config on a small local copy laid out like the Hub's
    (train.txt and validation.txt, one story a line; no test file)."""
    from attnlab.config import config_path, load_config
    from tests.helpers import run_cli

    (tmp_path / "ts").mkdir()
    (tmp_path / "ts" / "train.txt").write_text("".join(_stories(600)))
    (tmp_path / "ts" / "validation.txt").write_text("".join(_stories(60)))
    sets = [f"data.path={tmp_path / 'ts'}", "data.tokenizer=char", "data.test_fraction=0.05"]
    cfg = load_config(config_path("tinystories/attn_2layer"), sets)
    assert cfg.data.dataset == "roneneldan/TinyStories"
    args = ["train", "tinystories/attn_2layer", "--out", str(tmp_path / "run")]
    small = ["model.d_model=32", "model.mixer.n_heads=4", "data.seq_len=32", "data.batch_size=4"]
    small += [
        "train.max_steps=4",
        "train.eval_every=2",
        "train.eval_batches=1",
        "train.final_eval_batches=2",
    ]
    for s in sets + small:
        args += ["--set", s]
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert code == 0, err
    summary = (tmp_path / "run" / "summary.json").read_text()
    assert "test: 0.05 of train's rows, split_seed 0" in summary
