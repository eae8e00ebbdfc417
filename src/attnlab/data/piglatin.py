"""Pig Latin: the rule-exact translator, the word lists, the character vocabulary and the
splits of the third write-up's task.

Rules, applied to the lower-cased word:
- a word (or hyphen-separated part) that starts with a vowel (a e i o u) gets "way";
- otherwise its leading consonant cluster, everything before the first vowel, moves to
  the end, followed by "ay" (a part without any vowel moves whole: "rhythm" → "rhythmay");
- hyphenated words are translated part by part ("good-humoured" → "oodgay-umouredhay");
- "y" is a consonant and apostrophes are ordinary letters ("don't" → "on'tday").

Legend: N words in a split, S longest source word, T target steps (longest translation + 1).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import torch

from attnlab.data.splits import Batch
from attnlab.errors import DataError

VOWELS = frozenset("aeiou")
WORD = re.compile(r"[a-z]+(?:['-][a-z]+)*")  # letters, joined by single ' or -


def _part(word: str) -> str:
    if not word:
        return word
    if word[0] in VOWELS:
        return word + "way"
    first = next((i for i, c in enumerate(word) if c in VOWELS), len(word))
    return word[first:] + word[:first] + "ay"


def to_pig_latin(word: str) -> str:
    """Translate one English word (hyphenated parts one by one) into lower-case Pig Latin."""
    return "-".join(_part(p) for p in word.lower().split("-"))


class CharVocab:
    """Characters plus `[PAD]` 0, `[SOS]` 1, `[EOS]` 2 and `[SEP]` 3 (the tokenizer interface)."""

    SPECIALS = ("[PAD]", "[SOS]", "[EOS]", "[SEP]")
    PAD, SOS, EOS, SEP = range(4)

    def __init__(self, chars: list[str]):
        self.chars = list(chars)
        self.tokens = [*self.SPECIALS, *self.chars]
        self.index = {c: i for i, c in enumerate(self.tokens)}
        self.name = "piglatin-chars"

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256("".join(self.chars).encode("utf-8")).hexdigest()[:16]

    def encode(self, text: str) -> np.ndarray:
        """Ids of the characters of `text` (an unknown character is a `DataError`)."""
        try:
            return np.array([self.index[c] for c in text], dtype=np.int64)
        except KeyError as e:
            raise DataError(f"character {e.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids) -> str:
        """Characters up to the first `[EOS]`; `[PAD]`, `[SOS]` and `[SEP]` are dropped."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.EOS:
                break
            if i >= len(self.SPECIALS):
                out.append(self.tokens[i])
        return "".join(out)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"type": "charvocab", "chars": self.chars}), encoding="utf-8")


def words_of_text(text: str) -> set[str]:
    """The distinct lower-case words of a text (curly apostrophes read as ')."""
    return set(WORD.findall(text.lower().replace("\u2019", "'")))


def _package_words(name: str) -> set[str]:
    try:
        from english_words import get_english_words_set
    except ImportError:
        raise DataError(
            "the word lists come from the english-words package: pip install english-words, "
            "or set data.path to a text file"
        ) from None
    return {w for w in get_english_words_set([name], lower=True) if WORD.fullmatch(w)}


def _hub_words(name: str, config: str | None, column: str) -> set[str]:
    try:
        import datasets

        ds = datasets.load_dataset(name, config)
    except Exception as e:  # offline, unknown name, ...
        raise DataError(
            f"could not load Hugging Face dataset {name!r}: {type(e).__name__}: {e}; "
            "offline, set data.path to a local text file"
        ) from None
    words = set()
    for split in ds.values():
        if column not in split.column_names:
            raise DataError(f"hf:{name}: no column {column!r} (it has {split.column_names})")
        words |= words_of_text("\n".join(split[column]))
    return words


def _local_words(path: str) -> set[str]:
    from attnlab.data.text import read_text

    root = Path(path).expanduser()
    if root.is_dir():
        files = sorted(root.glob("*.txt"))
        if not files:
            raise DataError(f"{root}: no .txt files to take words from")
    elif root.exists():
        files = [root]
    else:
        raise DataError(f"data path not found: {root}")
    return set().union(*(words_of_text(read_text(f)) for f in files))


def load_words(cfg) -> tuple[list[str], str]:
    """The usable distinct words a `PigLatinData` names, sorted, and where they came from."""
    if cfg.path is not None:
        words, source = _local_words(cfg.path), str(cfg.path)
    elif cfg.dataset is not None:
        words = _hub_words(cfg.dataset, cfg.dataset_config, cfg.text_column)
        source = f"hf:{cfg.dataset}/{cfg.dataset_config or ''}"
    else:
        words, source = _package_words(cfg.words), f"english-words:{cfg.words}"
    keep = sorted(w for w in words if cfg.min_len <= len(w) <= cfg.max_len)
    return keep, source


def split_words(words: list[str], cfg) -> dict[str, list[str]]:
    """Shuffle with `cfg.seed`, then cut test, validation and train: no word in two splits."""
    need = cfg.num_test + cfg.num_val + (cfg.num_train or 1)
    if len(words) < need:
        raise DataError(
            f"piglatin: {len(words)} usable words ({cfg.min_len}-{cfg.max_len} letters), fewer "
            f"than the {need} that num_test + num_val + num_train ask for"
        )
    order = np.random.default_rng(cfg.seed).permutation(len(words))
    shuffled = [words[i] for i in order]
    a, b = cfg.num_test, cfg.num_test + cfg.num_val
    end = None if cfg.num_train is None else b + cfg.num_train
    return {"train": shuffled[b:end], "validation": shuffled[a:b], "test": shuffled[:a]}


def _pad_rows(rows: list[np.ndarray], width: int) -> np.ndarray:
    out = np.full((len(rows), width), CharVocab.PAD, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


class TranslationSplit:
    """Word pairs as batches: `pairs` (src, [SOS] target → target [EOS]) or `prefix_lm`.

    `prefix_lm` rows are `[SOS] source [SEP] target [EOS]`, padded; only the target and
    `[EOS]` are scored. `prompts()` gives what generation starts from.
    """

    def __init__(
        self,
        words: list[str],
        vocab: CharVocab,
        fmt: str,
        src_len: int,
        tgt_len: int,
        equal_length: bool = False,
    ):
        self.words = words
        self.equal_length = equal_length
        self.targets = [to_pig_latin(w) for w in words]
        self.format = fmt
        V = vocab
        src = [V.encode(w) for w in words]
        tgt = [np.concatenate([[V.SOS], V.encode(t), [V.EOS]]) for t in self.targets]
        self.src = _pad_rows(src, src_len)  # (N, S)
        if fmt == "pairs":
            self.rows = _pad_rows(tgt, tgt_len + 1)  # (N, T + 1)
            self.mask = self.rows[:, 1:] != V.PAD  # (N, T): target chars and [EOS]
        else:
            rows = [
                np.concatenate([[V.SOS], s, [V.SEP], t[1:]]) for s, t in zip(src, tgt, strict=True)
            ]
            self.rows = _pad_rows(rows, src_len + tgt_len + 2)  # (N, S + T + 2)
            y = np.arange(self.rows.shape[1] - 1)[None, :]  # target index j predicts row j+1
            starts = np.array([len(s) + 2 for s in src])[:, None]  # first target char's row
            self.mask = (y + 1 >= starts) & (self.rows[:, 1:] != V.PAD)
        self.src_lengths = np.array([len(s) for s in src])  # (N,)
        self.tgt_lengths = np.array([len(t) for t in tgt])  # (N,)
        self.num_sequences = len(words)
        self.seq_len = self.rows.shape[1] - 1
        self.max_new = tgt_len  # longest translation + [EOS]

    @property
    def num_tokens(self) -> int:
        return int(self.mask.sum())

    def micro_batches(self, ids: np.ndarray, n: int) -> list[np.ndarray]:
        """A step's words as micro-batches: `n` equal slices, or with `equal_length` one
        per (source length, target length), each cut into at most `n` slices, in order
        of length."""
        if not self.equal_length:
            return np.split(np.asarray(ids), n)
        ids = np.asarray(ids)
        keys = self.src_lengths[ids] * 1000 + self.tgt_lengths[ids]  # (B,)
        groups = [ids[keys == k] for k in np.unique(keys)]
        return [part for g in groups for part in np.array_split(g, min(n, len(g)))]

    def get(self, ids: np.ndarray) -> Batch:
        """The batch of words `ids`, its columns cut after the batch's longest word."""
        ids = np.asarray(ids, dtype=np.int64)
        rows, mask = self.rows[ids], self.mask[ids]  # (B, T + 1), (B, T)
        T = int(np.flatnonzero(mask.any(0))[-1]) + 1  # last scored column
        x, y = torch.from_numpy(rows[:, :T]), torch.from_numpy(rows[:, 1 : T + 1])
        src = None
        if self.format == "pairs":
            S = int(np.flatnonzero((self.src[ids] != CharVocab.PAD).any(0))[-1]) + 1
            src = torch.from_numpy(self.src[ids, :S])  # (B, S')
        return Batch(x, y, torch.from_numpy(mask[:, :T]), src)

    def prompts(self, ids: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Where generation starts: (prompt (B, P) right-padded, its lengths (B,), src).

        `pairs`: the prompt is `[SOS]` and src (B, S) goes to the encoder; `prefix_lm`: the
        prompt is `[SOS] source [SEP]` and src is None.
        """
        ids = np.asarray(ids, dtype=np.int64)
        src = torch.from_numpy(self.src[ids])  # (B, S)
        B, S = src.shape
        if self.format == "pairs":
            return torch.full((B, 1), CharVocab.SOS), torch.ones(B, dtype=torch.int64), src
        lengths = (src != CharVocab.PAD).sum(1)  # (B,)
        prompt = torch.full((B, S + 2), CharVocab.PAD, dtype=torch.int64)
        prompt[:, 0] = CharVocab.SOS
        prompt[:, 1 : S + 1] = src
        prompt[torch.arange(B), lengths + 1] = CharVocab.SEP
        return prompt, lengths + 2, None


def build_splits(cfg) -> tuple[dict[str, TranslationSplit], CharVocab, dict]:
    """The three splits of a `PigLatinData`, its vocabulary and a description."""
    words, source = load_words(cfg)
    parts = split_words(words, cfg)
    kept = [w for ws in parts.values() for w in ws]
    targets = [to_pig_latin(w) for w in kept]
    vocab = CharVocab(sorted(set("".join(kept)) | set("".join(targets))))
    src_len = max(len(w) for w in kept)
    tgt_len = max(len(t) for t in targets) + 1  # [SOS] t or t [EOS]
    splits = {
        s: TranslationSplit(ws, vocab, cfg.format, src_len, tgt_len, cfg.equal_length)
        for s, ws in parts.items()
    }
    info = {"source": source, "usable_words": len(words), "src_len": src_len, "tgt_len": tgt_len}
    return splits, vocab, info
