"""Text classification data: local CSV / JSONL, a Hugging Face dataset, or the built-in
synthetic negation task; a word tokenizer; padded rows and labels.

Legend: N examples, T = seq_len, B batch.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from attnlab.config.schema import ClassificationData
from attnlab.data.splits import SPLITS, Batch
from attnlab.errors import DataError
from attnlab.run_dir import RunDir

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")

# ---- the synthetic task --------------------------------------------------------------

POSITIVE = ["good", "great", "fine", "lovely", "superb", "fun", "moving", "clever", "bright"]
NEGATIVE = ["bad", "awful", "dull", "boring", "weak", "messy", "bland", "silly", "tired"]
FILLER = [
    *[
        "the",
        "a",
        "film",
        "movie",
        "story",
        "plot",
        "actor",
        "scene",
        "it",
        "was",
        "is",
        "and",
        "but",
        "with",
        "this",
        "that",
        "its",
        "of",
        "to",
    ],
    *[
        "in",
        "very",
        "quite",
        "rather",
        "music",
        "cast",
        "ending",
        "script",
        "director",
        "pace",
        "some",
    ],
]


def synthetic_examples(n: int, seed: int, noise: float) -> tuple[list[str], list[int]]:
    """`n` sentences with 1–4 sentiment words, each negated ("not good") with p = 0.4.

    The label is 1 when the negation-aware sum of +1 / −1 is positive (sums of 0 are
    redrawn), then flipped with probability `noise`. A bag of words sees "not" but not
    which word it negates, so it stays well below the ceiling 1 − noise.
    """
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    while len(texts) < n:
        k = int(rng.integers(1, 5))
        words = list(rng.choice(FILLER, size=int(rng.integers(6, 16))))
        total = 0
        for _ in range(k):
            sign = 1 if rng.random() < 0.5 else -1
            word = str(rng.choice(POSITIVE if sign > 0 else NEGATIVE))
            phrase = [word]
            if rng.random() < 0.4:
                phrase, sign = ["not", word], -sign
            at = int(rng.integers(0, len(words) + 1))
            words[at:at] = phrase
            total += sign
        if total == 0:
            continue
        label = int(total > 0)
        if rng.random() < noise:
            label = 1 - label
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


# ---- reading sources -----------------------------------------------------------------


def _read_file(path: Path, text_col: str, label_col: str) -> tuple[list[str], list]:
    """Texts and raw labels of one CSV / TSV / JSONL file."""
    rows: list[dict] = []
    try:
        if path.suffix in (".jsonl", ".json"):
            for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise DataError(f"{path}:{i + 1}: not JSON ({e.msg})") from None
        elif path.suffix in (".csv", ".tsv"):
            with path.open(encoding="utf-8", newline="") as fh:
                rows = list(csv.DictReader(fh, delimiter="\t" if path.suffix == ".tsv" else ","))
        else:
            raise DataError(f"{path}: use a .csv, .tsv or .jsonl file")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    if not rows:
        raise DataError(f"{path}: no examples")
    for col in (text_col, label_col):
        if col not in rows[0]:
            raise DataError(f"{path}: no column {col!r} (has {sorted(rows[0])})")
    return [str(r[text_col]) for r in rows], [r[label_col] for r in rows]


def _local(cfg: ClassificationData) -> tuple[dict, dict]:
    p = Path(cfg.path)
    if p.is_file():
        return {"train": _read_file(p, cfg.text_column, cfg.label_column)}, {"train": str(p)}
    if not p.is_dir():
        raise DataError(f"data.path {p} does not exist")
    found, sources = {}, {}
    names = {"train": ("train",), "validation": ("validation", "valid", "dev"), "test": ("test",)}
    for split, stems in names.items():
        for stem in stems:
            files = [f for f in p.glob(f"{stem}.*") if f.suffix in (".csv", ".tsv", ".jsonl")]
            if files:
                found[split] = _read_file(files[0], cfg.text_column, cfg.label_column)
                sources[split] = str(files[0])
                break
    if "train" not in found:
        raise DataError(f"{p}: no train.csv / train.tsv / train.jsonl")
    return found, sources


def _hub(cfg: ClassificationData) -> tuple[dict, dict]:
    try:
        import datasets

        ds = datasets.load_dataset(cfg.dataset, cfg.dataset_config)
    except Exception as e:
        raise DataError(
            f"could not load the Hugging Face dataset {cfg.dataset!r} ({type(e).__name__}: "
            f"{e}); offline, point data.path at a local CSV / JSONL copy"
        ) from None
    found, sources = {}, {}
    for split, names in {
        "train": ("train",),
        "validation": ("validation", "valid"),
        "test": ("test",),
    }.items():
        for name in names:
            if name in ds:
                d = ds[name]
                for col in (cfg.text_column, cfg.label_column):
                    if col not in d.column_names:
                        raise DataError(f"{cfg.dataset}/{name}: no column {col!r}")
                found[split] = (list(map(str, d[cfg.text_column])), list(d[cfg.label_column]))
                sources[split] = f"{cfg.dataset}/{cfg.dataset_config or ''}:{name}"
                break
    return found, sources


def _label_ids(found: dict) -> tuple[dict, list[str]]:
    """Raw labels → ids 0..C-1 (integers as they are; strings in sorted order); drops
    rows whose label is missing or negative (hidden test labels)."""
    raw = [lab for _, labs in found.values() for lab in labs]

    ints = all(_int(lab) is not None for lab in raw if lab not in (None, ""))
    keep_vals = sorted({(_int(lab) if ints else str(lab)) for lab in raw if _valid(lab, ints)})
    names = [str(v) for v in keep_vals]
    index = {v: i for i, v in enumerate(keep_vals)}
    out = {}
    for split, (texts, labs) in found.items():
        pairs = [
            (t, index[_int(lab) if ints else str(lab)])
            for t, lab in zip(texts, labs, strict=True)
            if _valid(lab, ints)
        ]
        out[split] = ([t for t, _ in pairs], [y for _, y in pairs])
    return out, names


def _int(lab) -> int | None:
    try:
        f = float(lab)
    except (TypeError, ValueError):
        return None
    return int(f) if f == int(f) else None


def _valid(lab, ints: bool) -> bool:
    if lab is None or lab == "":
        return False
    return _int(lab) >= 0 if ints else True


def _carve(found: dict, cfg: ClassificationData) -> tuple[dict, list[str]]:
    """Cut the splits the source lacks, or that are empty once unlabelled rows are dropped
    (GLUE's hidden test labels), out of its training split (shuffled by `seed`); returns
    the splits and the names of those cut."""
    texts, labels = found["train"]
    n = len(texts)
    if n == 0:
        raise DataError("the training split holds no labelled example")
    perm = np.random.default_rng(cfg.seed).permutation(n)
    take, out, cut = 0, {}, []
    for split, frac in (("test", cfg.test_fraction), ("validation", cfg.val_fraction)):
        if split in found and found[split][0]:
            continue
        cut.append(split)
        k = max(1, round(frac * n))
        ids = perm[take : take + k]
        out[split] = ([texts[i] for i in ids], [labels[i] for i in ids])
        take += k
    rest = perm[take:]
    out["train"] = ([texts[i] for i in rest], [labels[i] for i in rest])
    return {**{k: v for k, v in found.items() if k != "train"}, **out}, cut


# ---- tokenizer and rows --------------------------------------------------------------


class WordTokenizer:
    """Lower-cased words and punctuation; ids 0 `[PAD]`, 1 `[UNK]`, then by frequency."""

    PAD, UNK = 0, 1

    def __init__(self, words: list[str]):
        self.words = ["[PAD]", "[UNK]", *words]
        self.index = {w: i for i, w in enumerate(self.words)}
        self.name = "word"

    @classmethod
    def fit(cls, texts: list[str], max_vocab: int) -> WordTokenizer:
        """The `max_vocab` - 2 most frequent words of `texts` (ties by first appearance)."""
        counts = Counter(w for t in texts for w in _WORD.findall(t.lower()))
        return cls([w for w, _ in counts.most_common(max_vocab - 2)])

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    def encode(self, text: str) -> np.ndarray:
        return np.array([self.index.get(w, 1) for w in _WORD.findall(text.lower())], np.int64)

    def decode(self, ids) -> str:
        return " ".join(self.words[int(i)] for i in ids if int(i))

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"type": "word", "words": self.words[2:]}), encoding="utf-8")


class ClassificationSplit:
    """Padded token rows (N, T) and labels (N,); batches are cut to their longest text.
    Padding is `pad_id` (0 = the word tokenizer's `[PAD]`)."""

    def __init__(self, texts: list[str], labels: list[int], tok, seq_len: int, pad_id: int = 0):
        self.texts = texts
        self.labels = np.asarray(labels, dtype=np.int64)  # (N,)
        rows = np.full((len(texts), seq_len), pad_id, dtype=np.int64)  # (N, T)
        self.lengths = np.zeros(len(texts), dtype=np.int64)
        for i, t in enumerate(texts):
            ids = tok.encode(t)[:seq_len]
            rows[i, : len(ids)] = ids
            self.lengths[i] = len(ids)
        self.rows = rows
        self.num_sequences = len(texts)
        self.seq_len = seq_len

    @property
    def num_tokens(self) -> int:
        """Scored targets: one label per example."""
        return self.num_sequences

    def scored(self, ids: np.ndarray) -> int:
        """Targets a batch of `ids` scores: one label each."""
        return len(ids)

    def get(self, ids: np.ndarray) -> Batch:
        ids = np.asarray(ids, dtype=np.int64)
        T = max(1, int(self.lengths[ids].max()))
        x = torch.from_numpy(self.rows[ids, :T])  # (B, T')
        return Batch(x, torch.from_numpy(self.labels[ids]))  # y (B,)


def build_classification(cfg: ClassificationData):
    """(splits, tokenizer, class names, sources) of a classification config; `sources`
    says which splits were cut from the training split, and why."""
    if cfg.synthetic:
        n = {"train": cfg.num_train or 4000, "validation": cfg.num_val, "test": cfg.num_test}
        found = {
            s: synthetic_examples(n[s], cfg.seed * 3 + i, cfg.label_noise)
            for i, s in enumerate(SPLITS)
        }
        sources = dict.fromkeys(SPLITS, f"synthetic negation task (noise {cfg.label_noise})")
    else:
        found, sources = _local(cfg) if cfg.path is not None else _hub(cfg)
    found, names = _label_ids(found)
    if len(names) < 2:
        raise DataError(f"classification needs at least 2 labels, found {names}")
    given = {s for s in SPLITS if s in found}
    found, cut = _carve(found, cfg)
    for s in cut:
        why = "no labels there" if s in given else "not in the source"
        sources[s] = f"{sources['train']} (cut with seed {cfg.seed}: {why})"
    if cfg.num_train is not None and not cfg.synthetic:
        found["train"] = (found["train"][0][: cfg.num_train], found["train"][1][: cfg.num_train])
    tok, pad = _tokenizer(cfg, found["train"][0])
    splits = {s: ClassificationSplit(*found[s], tok, cfg.seq_len, pad) for s in SPLITS}
    return splits, tok, names, sources


def _tokenizer(cfg: ClassificationData, train_texts: list[str]) -> tuple[object, int]:
    """The tokenizer and padding id: a word vocabulary fitted on the training texts (pad
    0), or a run's saved tokenizer (pad = its vocabulary size, an id no text uses; the
    fine-tuned classifier masks it)."""
    if cfg.tokenizer == "word":
        return WordTokenizer.fit(train_texts, cfg.max_vocab), WordTokenizer.PAD
    from attnlab.data.tokenizers import load_tokenizer

    path = RunDir(cfg.tokenizer_path).tokenizer
    if not path.is_file():
        raise DataError(f"data.tokenizer_path: {path} not found (not an attnlab run directory)")
    tok = load_tokenizer(path)
    return tok, tok.vocab_size
