"""Text corpora for `lm_text`: local files or a Hugging Face dataset, as split → text.

Local layouts understood, in this order:
- a directory with WikiText's `wiki.{train,valid,test}.{raw,tokens}`;
- a directory with `{train,valid|validation,test}.txt`;
- either of those without a test file, or a Hugging Face dataset without a test split
  (TinyStories has train and validation only): `test_fraction` of train's rows (lines
  of a local file), drawn with `split_seed`, become the test split and leave train;
- a directory with other `.txt` files, or a single file: concatenated, and the tail cut
  into validation and test by `val_fraction` / `test_fraction`.
"""

from __future__ import annotations

from pathlib import Path

from attnlab.config.schema import LMTextData
from attnlab.data.splits import SPLITS
from attnlab.errors import DataError

_NAMED = {
    "train": ("wiki.train.raw", "wiki.train.tokens", "train.txt"),
    "validation": ("wiki.valid.raw", "wiki.valid.tokens", "valid.txt", "validation.txt"),
    "test": ("wiki.test.raw", "wiki.test.tokens", "test.txt"),
}


def read_text(path: Path) -> str:
    """Read a UTF-8 file; a missing, empty or non-UTF-8 file is a `DataError` naming it."""
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        bad = data[e.start : e.start + 1].hex()
        raise DataError(
            f"{path} is not UTF-8 text: invalid byte 0x{bad} at byte offset {e.start}"
        ) from None
    if not text.strip():
        raise DataError(f"{path} is empty (no text to train on)")
    return text


def _split_tail(text: str, cfg: LMTextData, source: str) -> dict[str, str]:
    n = len(text)
    n_test, n_val = int(n * cfg.test_fraction), int(n * cfg.val_fraction)
    n_train = n - n_val - n_test
    if min(n_test, n_val) == 0:
        raise DataError(f"{source}: too little text to cut validation and test splits from")
    return {
        "train": text[:n_train],
        "validation": text[n_train : n_train + n_val],
        "test": text[n_train + n_val :],
    }


def local_splits(cfg: LMTextData) -> tuple[dict[str, str], dict[str, str]]:
    """Read a local directory or file; returns (split → text, split → source path)."""
    root = Path(cfg.path).expanduser()
    if not root.exists():
        raise DataError(f"data path not found: {root}")
    if root.is_file():
        return _split_tail(read_text(root), cfg, str(root)), dict.fromkeys(SPLITS, str(root))
    found = {}
    for split, names in _NAMED.items():
        hit = next((root / n for n in names if (root / n).is_file()), None)
        if hit is not None:
            found[split] = hit
    if found:
        missing = [s for s in SPLITS if s not in found and not (s == "test" and "train" in found)]
        if missing:
            raise DataError(
                f"{root}: found {', '.join(p.name for p in found.values())} but no "
                f"{' / '.join(missing)} split (looked for {', '.join(_NAMED[missing[0]])})"
            )
        texts = {s: read_text(p) for s, p in found.items()}
        sources = {s: str(p) for s, p in found.items()}
        if "test" not in found:
            rows = texts["train"].splitlines(keepends=True)
            train, test = cut_test(rows, cfg, sources["train"])
            texts["train"], texts["test"] = "".join(train), "".join(test)
            sources["test"] = cut_source(sources["train"], cfg)
        return texts, sources
    files = sorted(root.glob("*.txt"))
    if not files:
        raise DataError(f"{root}: no text files (.txt or wiki.*.raw) in this directory")
    text = "".join(read_text(f) for f in files)
    return _split_tail(text, cfg, str(root)), dict.fromkeys(SPLITS, str(root))


def cut_test(rows: list[str], cfg: LMTextData, source: str) -> tuple[list[str], list[str]]:
    """(train rows, test rows): `test_fraction` of the rows, drawn with `split_seed`
    (order kept on both sides), for data that has no test split."""
    import numpy as np

    n_test = int(len(rows) * cfg.test_fraction)
    if n_test == 0 or n_test == len(rows):
        raise DataError(f"{source}: too few rows ({len(rows)}) to cut a test split from train")
    pick = np.zeros(len(rows), dtype=bool)
    pick[np.random.default_rng(cfg.split_seed).permutation(len(rows))[:n_test]] = True
    return [r for r, p in zip(rows, pick, strict=True) if not p], [
        r for r, p in zip(rows, pick, strict=True) if p
    ]


def cut_source(train: str, cfg: LMTextData) -> str:
    """How a cut test split names its source (summary.json's data sources)."""
    return f"{train} [test: {cfg.test_fraction:g} of train's rows, split_seed {cfg.split_seed}]"


def hub_splits(cfg: LMTextData) -> tuple[dict[str, str], dict[str, str]]:
    """Load a Hugging Face dataset and join its text column per split."""
    try:
        import datasets

        ds = datasets.load_dataset(cfg.dataset, cfg.dataset_config)
    except Exception as e:  # offline, unknown name, ...
        raise DataError(
            f"could not load Hugging Face dataset {cfg.dataset!r} "
            f"({cfg.dataset_config or 'default config'}): {type(e).__name__}: {e}; "
            "offline, set data.path to a local copy"
        ) from None
    names = {"train": "train", "validation": "validation", "test": "test"}
    if "validation" not in ds and "valid" in ds:
        names["validation"] = "valid"
    src = f"hf:{cfg.dataset}/{cfg.dataset_config or ''}"
    out, sources = {}, dict.fromkeys(SPLITS, src)
    cut = "test" not in ds and "train" in ds
    for split, name in names.items():
        if split == "test" and cut:
            continue
        if name not in ds:
            raise DataError(f"{src} has no {name!r} split (it has {', '.join(ds)})")
        if cfg.text_column not in ds[name].column_names:
            raise DataError(f"{src}: no column {cfg.text_column!r} in split {name!r}")
        rows = ds[name][cfg.text_column]
        if split == "train" and cut:
            rows, test = cut_test(list(rows), cfg, src)
            out["test"] = _join(test, src, "test (cut from train)")
            sources["test"] = cut_source(src, cfg)
        out[split] = _join(rows, src, repr(name))
    return {s: out[s] for s in SPLITS}, sources


def _join(rows: list[str], src: str, what: str) -> str:
    """A split's rows as one text: WikiText rows keep their trailing newline; other
    corpora get one per row. An empty split is a `DataError`."""
    sep = "" if rows and all(r.endswith("\n") or not r for r in rows[:100]) else "\n"
    text = sep.join(rows)
    if not text.strip():
        raise DataError(f"{src}: split {what} is empty")
    return text


def load_splits(cfg: LMTextData) -> tuple[dict[str, str], dict[str, str]]:
    """Split → text and split → source, from `cfg.path` when set, else the Hub."""
    return local_splits(cfg) if cfg.path is not None else hub_splits(cfg)
