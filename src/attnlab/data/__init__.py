"""Data: task → tokenizer → cached token arrays → batches.

`build(cfg.data)` is the one entry point; it returns a `Dataset` whose splits hand out
`Batch(x, y, mask)` objects. This package knows nothing of models.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from attnlab.config.schema import ClassificationData, LMTextData, PigLatinData, SyntheticData
from attnlab.data.cache import cache_root, cached_array, content_hash, smallest_uint
from attnlab.data.piglatin import CharVocab, TranslationSplit, build_splits
from attnlab.data.splits import SPLITS, Batch, RowSplit, StreamSplit, eval_batches, train_ids
from attnlab.data.synthetic import GENERATORS
from attnlab.data.text import load_splits
from attnlab.data.tokenizers import CharTokenizer, HFTokenizer, gpt2_tokenizer, train_bpe
from attnlab.errors import DataError

__all__ = [
    "Batch",
    "CharVocab",
    "Dataset",
    "TranslationSplit",
    "build",
    "eval_batches",
    "train_ids",
]


@dataclass
class Dataset:
    """The splits of one task, its vocabulary size and (for text) its tokenizer.

    `src_len` is the source length of encoder-decoder tasks (None for the others).
    """

    splits: dict[str, StreamSplit | RowSplit | TranslationSplit]
    vocab_size: int
    seq_len: int
    batch_size: int
    tokenizer: object | None = None
    sources: dict[str, str] = field(default_factory=dict)
    src_len: int | None = None
    info: dict = field(default_factory=dict)

    def describe(self) -> dict:
        """Sizes and sources, for the run summary."""
        return {
            "vocab_size": self.vocab_size,
            "sources": self.sources,
            **self.info,
            **{f"{s}_sequences": sp.num_sequences for s, sp in self.splits.items()},
            **{f"{s}_scored_targets": sp.num_tokens for s, sp in self.splits.items()},
        }


def _tokenizer(cfg: LMTextData, train_text: str, root: Path):
    if cfg.tokenizer == "gpt2":
        return gpt2_tokenizer(cfg.tokenizer_path)
    if cfg.tokenizer == "char":
        return CharTokenizer.fit(train_text)
    path = root / f"bpe-{content_hash(train_text)}-{cfg.bpe_vocab_size}.json"
    if path.is_file():
        from tokenizers import Tokenizer

        return HFTokenizer(Tokenizer.from_file(str(path)), f"bpe{cfg.bpe_vocab_size}")
    tok = train_bpe(train_text, cfg.bpe_vocab_size)
    root.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tok.save(tmp)
    tmp.replace(path)
    return tok


def _rows(text: str, all_rows: bool) -> list[str]:
    """The rows of a split: its non-blank lines, or with `all_rows` every line as the Hub's
    `datasets` hands WikiText out (a blank line as "", any other with its newline)."""
    lines = text.split("\n")
    if text.endswith("\n"):
        lines = lines[:-1]  # the file's last newline ends a row; it opens none
    if not all_rows:
        return [line for line in lines if line.strip()]
    return [line + "\n" if line.strip() else "" for line in lines]


def _row_split(text: str, tok, cfg: LMTextData, root: Path) -> RowSplit:
    """One example per row (`_rows`): its first seq_len + 1 tokens, padded after its end
    with the tokenizer's end-of-text id (GPT-2's, else 0); the padding targets are scored
    only with `score_pad`. Cached as (N, T + 2): the tokens, then each row's length."""
    T = cfg.seq_len

    def make() -> np.ndarray:
        pad = tok.eos_id if tok.eos_id is not None else 0
        lines = _rows(text, cfg.all_rows)
        out = np.full((len(lines), T + 2), pad, dtype=np.int64)  # (N, T + 2)
        for i, ids in enumerate(tok.encode_lines(lines)):
            ids = ids[: T + 1]
            out[i, : len(ids)] = ids
            out[i, -1] = len(ids)
        return out

    layout = "all-rows" if cfg.all_rows else "rows"
    key = f"{layout}-{content_hash(text)}-{tok.name}-{tok.fingerprint}-{T}"
    rows = cached_array(root, key, make)
    tokens, lengths = np.asarray(rows[:, :-1]), np.asarray(rows[:, -1])  # (N, T+1), (N,)
    if not cfg.all_rows:  # a row needs an input and a target
        rows_kept = lengths >= 2
        tokens, lengths = tokens[rows_kept], lengths[rows_kept]
    real = np.arange(T)[None, :] < (lengths[:, None] - 1)  # (N, T) targets inside the row
    mask = np.ones_like(real) if cfg.score_pad else real
    return RowSplit(tokens[:, :-1], tokens[:, 1:], mask, real)


def _lm_text(cfg: LMTextData) -> Dataset:
    texts, sources = load_splits(cfg)
    root = cache_root(cfg.cache_dir)
    tok = _tokenizer(cfg, texts["train"], root)
    dtype = smallest_uint(tok.vocab_size)

    def encode(text: str):
        return lambda: tok.encode(text).astype(dtype)

    splits = {}
    for s in SPLITS:
        if cfg.layout == "rows":
            splits[s] = _row_split(texts[s], tok, cfg, root)
            continue
        key = f"tokens-{content_hash(texts[s])}-{tok.name}-{tok.fingerprint}"
        splits[s] = StreamSplit(cached_array(root, key, encode(texts[s])), cfg.seq_len)
    need = {"train": cfg.batch_size, "validation": 1, "test": 1}
    for s, n in need.items():
        if splits[s].num_sequences < n:
            raise DataError(
                f"{sources[s]}: the {s} split has {len(splits[s].tokens)} tokens, fewer than "
                f"one batch needs ({n} x {cfg.seq_len} + 1); use more text or a smaller "
                "data.batch_size / data.seq_len"
            )
    return Dataset(splits, tok.vocab_size, cfg.seq_len, cfg.batch_size, tok, sources)


def _synthetic(cfg: SyntheticData) -> Dataset:
    """Generate (once per config hash, cached) the inputs and labels of a synthetic task."""
    make = GENERATORS[cfg.task]
    root = cache_root(cfg.cache_dir)
    spec = cfg.model_dump(exclude={"batch_size", "cache_dir"})
    dtype = smallest_uint(cfg.vocab_size)
    splits = {}
    for s in SPLITS:
        key = f"{cfg.task}-v2-{content_hash(json.dumps(spec, sort_keys=True), s)}"
        generate = functools.cache(lambda s=s: make(cfg, s))  # once, if at all
        inputs = cached_array(root, key, lambda g=generate: g()[0].astype(dtype))
        targets = cached_array(root, key + "-y", lambda g=generate: g()[2].astype(dtype))
        mask = cached_array(root, key + "-m", lambda g=generate: g()[1] >= 0)
        splits[s] = RowSplit(inputs, targets, mask)
    if splits["train"].num_sequences < cfg.batch_size:
        raise DataError(f"{cfg.task}: num_train ({cfg.num_train}) < batch_size")
    sources = dict.fromkeys(SPLITS, f"{cfg.task} (generated)")
    return Dataset(splits, cfg.vocab_size, cfg.seq_len, cfg.batch_size, None, sources)


def _piglatin(cfg: PigLatinData) -> Dataset:
    """Word pairs from a word list or corpus, split by word, over one character vocabulary."""
    splits, vocab, info = build_splits(cfg)
    if splits["train"].num_sequences < cfg.batch_size:
        raise DataError(f"piglatin: {splits['train'].num_sequences} training words < batch_size")
    sources = dict.fromkeys(SPLITS, info.pop("source"))
    src_len = info["src_len"] if cfg.format == "pairs" else None
    seq_len = splits["train"].seq_len
    return Dataset(splits, vocab.vocab_size, seq_len, cfg.batch_size, vocab, sources, src_len, info)


def _classification(cfg: ClassificationData) -> Dataset:
    """Labelled texts (local, Hub or synthetic) as padded rows; `info` names the classes."""
    from attnlab.data.classification import build_classification

    splits, tok, names, sources = build_classification(cfg)
    if splits["train"].num_sequences < cfg.batch_size:
        raise DataError(
            f"classification: {splits['train'].num_sequences} training examples < batch_size"
        )
    info = {"classes": names, "n_classes": len(names)}
    return Dataset(splits, tok.vocab_size, cfg.seq_len, cfg.batch_size, tok, sources, None, info)


def build(cfg: LMTextData | SyntheticData | PigLatinData | ClassificationData) -> Dataset:
    """Build the dataset a data config describes (tokenizing or generating once, cached)."""
    if isinstance(cfg, ClassificationData):
        return _classification(cfg)
    if isinstance(cfg, LMTextData):
        return _lm_text(cfg)
    if isinstance(cfg, PigLatinData):
        return _piglatin(cfg)
    if cfg.task in GENERATORS:
        return _synthetic(cfg)
    raise TypeError(f"unknown data config {type(cfg).__name__}")
