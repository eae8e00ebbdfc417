"""Tokenizers: GPT-2 byte-level BPE, characters, and a BPE trained on the train split.

All three share one small interface (`encode`, `decode`, `vocab_size`, `fingerprint`,
`save`) so the rest of the data path does not care which one it holds. GPT-2 and the
trained BPE are Hugging Face `tokenizers` objects; the character tokenizer is a sorted
character table with `<unk>` at id 0 for characters unseen in training.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np

from attnlab.errors import DataError

# Split long texts for parallel encoding only where GPT-2's pre-tokenizer splits anyway:
# between a letter and " letter" (the space belongs to the next word either way).
_SAFE_SPLIT = re.compile(r"(?<=[A-Za-z])(?= [A-Za-z])")
_CHUNK_CHARS = 1 << 18


def _chunks(text: str, size: int = _CHUNK_CHARS) -> list[str]:
    """Cut `text` into pieces of about `size` characters at safe split points."""
    pieces, start = [], 0
    while start < len(text):
        end = start + size
        if end >= len(text):
            pieces.append(text[start:])
            break
        m = _SAFE_SPLIT.search(text, end)
        cut = m.start() if m else len(text)
        pieces.append(text[start:cut])
        start = cut
    return pieces


class HFTokenizer:
    """A Hugging Face `tokenizers.Tokenizer` behind attnlab's tokenizer interface."""

    def __init__(self, tok, name: str):
        self.tok = tok
        self.name = name

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size()

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.tok.to_str().encode()).hexdigest()[:16]

    def encode(self, text: str) -> np.ndarray:
        """Token ids of `text` (no special tokens), encoded in parallel chunks."""
        encs = self.tok.encode_batch(_chunks(text), add_special_tokens=False)
        ids = [np.asarray(e.ids, dtype=np.int64) for e in encs]
        return np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)

    def encode_lines(self, lines: list[str]) -> list[np.ndarray]:
        """Token ids of each line, in one parallel batch."""
        encs = self.tok.encode_batch(lines, add_special_tokens=False)
        return [np.asarray(e.ids, dtype=np.int64) for e in encs]

    @property
    def eos_id(self) -> int | None:
        """GPT-2's `<|endoftext|>` id (the usual padding of GPT-2 pipelines), or None."""
        return self.tok.token_to_id("<|endoftext|>")

    def decode(self, ids) -> str:
        return self.tok.decode([int(i) for i in ids], skip_special_tokens=False)

    def save(self, path: Path) -> None:
        self.tok.save(str(path))


def _byte_level(tok):
    from tokenizers import decoders, pre_tokenizers

    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return tok


def gpt2_tokenizer(path: str | None = None) -> HFTokenizer:
    """GPT-2's byte-level BPE from a local `vocab.json` + `merges.txt`, or from the Hub."""
    from tokenizers import Tokenizer
    from tokenizers.models import BPE

    if path is not None:
        d = Path(path)
        vocab, merges = d / "vocab.json", d / "merges.txt"
        for f in (vocab, merges):
            if not f.is_file():
                raise DataError(f"GPT-2 tokenizer file not found: {f}")
        return HFTokenizer(_byte_level(Tokenizer(BPE.from_file(str(vocab), str(merges)))), "gpt2")
    try:
        return HFTokenizer(Tokenizer.from_pretrained("gpt2"), "gpt2")
    except Exception as e:  # network, missing cache
        raise DataError(
            "could not load the GPT-2 tokenizer from the Hugging Face Hub "
            f"({type(e).__name__}); offline, set data.tokenizer_path to a directory "
            "holding vocab.json and merges.txt"
        ) from None


def train_bpe(text: str, vocab_size: int) -> HFTokenizer:
    """Train a byte-level BPE with `vocab_size` tokens on `text` (deterministic)."""
    from tokenizers import Tokenizer, pre_tokenizers, trainers
    from tokenizers.models import BPE

    tok = _byte_level(Tokenizer(BPE()))
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_chunks(text, 1 << 14), trainer=trainer, length=None)
    return HFTokenizer(tok, f"bpe{vocab_size}")


class CharTokenizer:
    """One id per character seen in training; id 0 is `<unk>` for anything else."""

    UNK = "<unk>"

    def __init__(self, chars: list[str]):
        self.chars = [self.UNK, *chars]
        self.name = "char"
        self._codes = np.array([ord(c) for c in chars], dtype=np.int64)  # sorted

    @classmethod
    def fit(cls, text: str) -> CharTokenizer:
        """The character table of `text`, sorted by code point."""
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256("".join(self.chars[1:]).encode("utf-8")).hexdigest()[:16]

    def encode(self, text: str) -> np.ndarray:
        """Vectorised lookup of each code point (no Python loop over characters)."""
        cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        pos = np.searchsorted(self._codes, cps)  # (N,)
        pos = np.minimum(pos, len(self._codes) - 1)
        hit = self._codes[pos] == cps
        return np.where(hit, pos + 1, 0)

    def encode_lines(self, lines: list[str]) -> list[np.ndarray]:
        """Token ids of each line."""
        return [self.encode(line) for line in lines]

    eos_id = None  # characters have no end-of-text token

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] if int(i) else "?" for i in ids)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"type": "char", "chars": self.chars[1:]}), encoding="utf-8")


def load_tokenizer(path: Path):
    """Load a tokenizer that `save` wrote (a run directory's `tokenizer.json`)."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    if raw.get("type") == "char":
        return CharTokenizer(raw["chars"])
    if raw.get("type") == "word":
        from attnlab.data.classification import WordTokenizer

        return WordTokenizer(raw["words"])
    if raw.get("type") == "charvocab":
        from attnlab.data.piglatin import CharVocab

        return CharVocab(raw["chars"])
    from tokenizers import Tokenizer

    return HFTokenizer(Tokenizer.from_file(str(path)), "saved")
