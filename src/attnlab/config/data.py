"""The `data` section: one config class per task, tagged by `task` (`DataConfig`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from attnlab.config.base import PositiveInt, Section, require_tag


class LMTextData(Section):
    """Next-token prediction on text: a Hugging Face dataset or local files.

    `path` (a directory or a single text file) wins over `dataset` when both are set, so
    one config runs online (`dataset: Salesforce/wikitext`) and offline (`--set data.path=DIR`).
    """

    task: Literal["lm_text"] = "lm_text"
    dataset: str | None = Field(
        None, description="Hugging Face dataset, e.g. 'Salesforce/wikitext'"
    )
    dataset_config: str | None = Field(None, description="e.g. 'wikitext-2-raw-v1'")
    path: str | None = Field(None, description="local directory or .txt file")
    text_column: str = "text"
    val_fraction: float = Field(0.05, gt=0, lt=0.5, description="for a single file")
    test_fraction: float = Field(
        0.05,
        gt=0,
        lt=0.5,
        description="for a single file; and the share of train's rows cut out as the test "
        "split when the data has none (TinyStories)",
    )
    split_seed: int = Field(
        0, description="the seed that picks train's rows for a test split the data lacks"
    )
    tokenizer: Literal["gpt2", "char", "bpe"] = "gpt2"
    tokenizer_path: str | None = Field(
        None, description="directory with vocab.json + merges.txt (gpt2); Hub when unset"
    )
    bpe_vocab_size: int = Field(4096, ge=260, description="vocabulary of a trained 'bpe'")
    seq_len: PositiveInt = 256
    batch_size: PositiveInt = 32
    layout: Literal["stream", "rows"] = Field(
        "stream",
        description="stream: the split's tokens cut into windows of seq_len; rows: one "
        "example per non-blank line, truncated or padded to seq_len (write-up 001's)",
    )
    score_pad: bool = Field(
        False,
        description="rows: score the padding targets too, as a pipeline that forgets to "
        "mask them does (predicting padding is easy: it inflates accuracy)",
    )
    all_rows: bool = Field(
        False,
        description="rows: every row of the split as the Hub's `datasets` hands it out, "
        "blank ones included (all padding) and each other row with its newline, as a "
        "pipeline that tokenises the split row by row does (write-up 001's 36,718)",
    )
    cache_dir: str | None = Field(None, description="token cache; default ~/.cache/attnlab")

    @model_validator(mode="after")
    def _has_source(self) -> LMTextData:
        if self.path is None and self.dataset is None:
            raise ValueError("lm_text needs data.path (local) or data.dataset (Hugging Face)")
        if self.score_pad and self.layout != "rows":
            raise ValueError("data.score_pad is for layout: rows (a stream has no padding)")
        if self.all_rows and self.layout != "rows":
            raise ValueError("data.all_rows is for layout: rows (a stream has no rows)")
        return self


class GeneratedData(Section):
    """Fields every synthetic task shares: split sizes, generator seed, batch and cache."""

    batch_size: PositiveInt = 32
    num_train: PositiveInt = 20000
    num_val: PositiveInt = 512
    num_test: PositiveInt = 512
    seed: int = 1234
    cache_dir: str | None = None


def _check_segments(cfg: RepeatTokensData | CopyingData) -> None:
    """Segment bounds in order, and two longest segments fit in seq_len (+ 1) tokens."""
    lo, hi = cfg.min_segment_len, cfg.segment_len
    if lo > hi:
        raise ValueError(f"min_segment_len ({lo}) > segment_len ({hi})")
    if 2 * hi > cfg.seq_len:
        raise ValueError(f"2 * segment_len ({2 * hi}) must be <= seq_len ({cfg.seq_len})")


class RepeatTokensData(GeneratedData):
    """Random token segments shown twice (Olsson et al. 2022), generated from a seed.

    Each sequence is `prefix (random length) · segment · segment · filler`, all tokens
    uniform over `vocab_size`; loss and accuracy are scored on the predictable part of
    the repeat (every repeated token but the first). The segment length is drawn from
    [min_segment_len, segment_len] per sequence, so the distance back to the earlier
    copy varies too: neither an absolute nor a relative positional offset solves it.
    """

    task: Literal["repeat_tokens"] = "repeat_tokens"
    vocab_size: int = Field(128, ge=2)
    segment_len: PositiveInt = Field(24, description="longest segment")
    min_segment_len: int = Field(4, ge=2, description="shortest segment")
    seq_len: PositiveInt = 64

    @model_validator(mode="after")
    def _fits(self) -> RepeatTokensData:
        _check_segments(self)
        return self


class MQARData(GeneratedData):
    """Multi-query associative recall exactly as Zoology generates it (`multiquery_ar`,
    Arora et al. 2023, "Zoology"); see `attnlab.data.synthetic.mqar`.

    Each sequence of `seq_len` tokens starts with `num_kv_pairs` key–value pairs (keys
    drawn without replacement from [1, V/2), values without replacement from [V/2, V)),
    then every key once more as a query, at gaps drawn without replacement with a power
    law (`power_a`; 1.0 is uniform) over the (T - 2N) / 2 even slots that follow. Only the
    prediction at a query key is scored, and its target is that key's value; the value is
    never written into the input after its query. Every other place holds a random token
    from [0, V) (`random_non_queries`) or 0.
    """

    task: Literal["mqar"] = "mqar"
    vocab_size: int = Field(256, ge=4)
    num_kv_pairs: PositiveInt = 8
    seq_len: PositiveInt = 64
    power_a: float = Field(0.01, gt=0, le=1, description="power law of the query gaps")
    random_non_queries: bool = Field(True, description="random tokens, not 0, between queries")

    @model_validator(mode="after")
    def _fits(self) -> MQARData:
        check_mqar(self.vocab_size, self.seq_len, self.num_kv_pairs)
        return self


def check_mqar(vocab_size: int, seq_len: int, num_kv_pairs: int) -> None:
    """Zoology's layout constraints, as a ValueError naming the setting that breaks them."""
    n = num_kv_pairs
    if seq_len % 2:
        raise ValueError(f"seq_len ({seq_len}) must be even (query slots come in pairs)")
    if 4 * n > seq_len:
        raise ValueError(
            f"4 x num_kv_pairs ({4 * n}) must be <= seq_len ({seq_len}): the pairs and a "
            "query slot per key"
        )
    if n > vocab_size // 2 - 1 or n > vocab_size - vocab_size // 2:
        raise ValueError(
            f"num_kv_pairs ({n}) > distinct keys ({vocab_size // 2 - 1} = V/2 - 1) or "
            f"values ({vocab_size - vocab_size // 2})"
        )


class CopyingData(GeneratedData):
    """Copy a random segment after a separator, from a seed.

    Each sequence is `segment · SEP · segment · filler` with segment tokens uniform over
    [2, V), SEP = 1 and filler 0; the segment length is drawn from
    [min_segment_len, segment_len]. Every token of the copy is scored, the first one too:
    the separator says where the copy starts.
    """

    task: Literal["copying"] = "copying"
    vocab_size: int = Field(32, ge=3)
    segment_len: PositiveInt = Field(16, description="longest segment")
    min_segment_len: PositiveInt = Field(4, description="shortest segment")
    seq_len: PositiveInt = 48

    @model_validator(mode="after")
    def _fits(self) -> CopyingData:
        _check_segments(self)  # segment · SEP · segment: 2S + 1 <= seq_len + 1 tokens
        return self


class SelectiveCopyingData(GeneratedData):
    """Selective copying (the Mamba paper's, Gu & Dao 2023, section 4.1.1), from a seed.

    `form: paper` (the default) is the paper's task as the S4 / Mamba code generates it:
    `num_tokens` data tokens (uniform over [1, V - 1)) sit at random positions, in order,
    among noise tokens 0 in a region of `seq_len - num_tokens` positions, followed by
    `num_tokens` marker tokens (V - 1). At the i-th marker the model must output the i-th
    data token, from memory: the markers carry no content. Only the marker positions are
    scored; chance is 1 / (V - 2).

    `form: teacher_forced` is the older, easier layout `region · SEP(1) · tokens` scored as
    next-token prediction (data tokens over [2, V)): after the first answer every input is
    the previous answer, so the model can also read its place in the list from the input.

    Unlike `copying`, where the copy sits a fixed distance back, the model must select the
    content tokens and skip the noise: a time-invariant model (`mixer.selective: false`)
    cannot.
    """

    task: Literal["selective_copying"] = "selective_copying"
    vocab_size: int = Field(16, ge=3)
    num_tokens: PositiveInt = Field(8, description="data tokens to remember and write")
    seq_len: PositiveInt = 64
    form: Literal["paper", "teacher_forced"] = Field(
        "paper", description="paper: answers at marker tokens; teacher_forced: fed back"
    )

    @model_validator(mode="after")
    def _fits(self) -> SelectiveCopyingData:
        if 2 * self.num_tokens > self.seq_len:
            raise ValueError(
                f"2 x num_tokens ({2 * self.num_tokens}) must be <= seq_len ({self.seq_len})"
            )
        return self


class InductionHeadsData(GeneratedData):
    """The Mamba paper's induction-heads task (Gu & Dao 2023, section 4.1.2), from a seed.

    Each sequence is `seq_len` random tokens over [0, V - 1) with a special token (V - 1)
    at one random position p in [0, T - 3] and again at the last position; the one scored
    target, at the last position, is the token that followed the first special token
    (x_{p+1}). Chance is 1 / (V - 1). Unlike `repeat_tokens` there is one recall per
    sequence, triggered by a token that means nothing else.
    """

    task: Literal["induction_heads"] = "induction_heads"
    vocab_size: int = Field(16, ge=3)
    seq_len: int = Field(256, ge=4)


SyntheticData = (
    RepeatTokensData | MQARData | CopyingData | SelectiveCopyingData | InductionHeadsData
)


class PigLatinData(Section):
    """English words → Pig Latin, character by character (the third write-up's task).

    Words come from `path` (a text file or a directory of .txt files: its distinct words),
    else from a Hugging Face `dataset` (the words of all its splits), else from the word
    list `words` of the `english-words` package (offline). Only lower-case words of letters,
    optionally joined by `'` or `-`, with `min_len` to `max_len` characters are kept; the
    distinct words are shuffled with `seed` and cut into test, validation and train, so no
    word is in two splits. `format` lays a pair out for the model: `pairs` (source to the
    encoder, `[SOS] target` to the decoder) or `prefix_lm` (`[SOS] source [SEP] target
    [EOS]` for a decoder-only model, loss on the target only); unset, it follows
    `model.arch`. `equal_length` runs each step's batch as micro-batches of words of one
    source and one target length, their gradients accumulated (the write-up's batching):
    no padding is computed, and the step's gradient is the padded batch's.
    """

    task: Literal["piglatin"] = "piglatin"
    words: Literal["gcide", "web2"] = Field(
        "gcide", description="word list of the english-words package"
    )
    path: str | None = Field(None, description="local text file or directory: its words")
    dataset: str | None = Field(None, description="Hugging Face dataset: its words")
    dataset_config: str | None = None
    text_column: str = "text"
    min_len: PositiveInt = 1
    max_len: PositiveInt = 16
    num_train: int | None = Field(None, gt=0, description="unset: every word left over")
    num_val: PositiveInt = 2000
    num_test: PositiveInt = 2000
    seed: int = 1234
    batch_size: PositiveInt = 128
    format: Literal["pairs", "prefix_lm"] | None = None
    equal_length: bool = Field(
        False, description="micro-batches of equal word lengths, gradients accumulated"
    )

    @model_validator(mode="after")
    def _lengths(self) -> PigLatinData:
        if self.min_len > self.max_len:
            raise ValueError(f"min_len ({self.min_len}) > max_len ({self.max_len})")
        return self


class ClassificationData(Section):
    """Text → label (write-up 003's classifier, which names no data set; SST-2 and IMDB
    are our packaged choices).

    The examples come from `path` (a CSV or JSONL file with `text_column` and
    `label_column`, or a directory holding `train`, `validation` / `valid`, `test` files of
    one of those kinds), else from a Hugging Face `dataset` (e.g. `glue` + `sst2`, or
    `imdb`), else from the built-in synthetic task (`synthetic`, offline): sentences of
    filler, sentiment words and negations whose label is the sign of the negation-aware
    sum, with `label_noise` of the labels flipped, so a bag of words cannot solve it and
    no model can pass 1 - label_noise. Labels may be integers or strings (mapped to ids in
    sorted order); rows with a negative or missing label (SST-2's hidden test labels) are
    dropped. Splits that the source lacks, or that hold no labelled row once those are
    dropped (GLUE's test splits), are cut from its training split with `seed`, and the
    run's summary (`data.sources`) says so.
    Texts are lower-cased words (`tokenizer: word`, a vocabulary of the `max_vocab` most
    frequent training words, the rest `[UNK]`), or the tokens of an attnlab run's
    tokenizer (`tokenizer: run`, `tokenizer_path` its directory; set by `model.init_from`,
    padded with the id one past the tokenizer's), cut to `seq_len` tokens.
    """

    task: Literal["classification"] = "classification"
    path: str | None = Field(None, description="CSV / JSONL file or directory of them")
    dataset: str | None = Field(None, description="Hugging Face dataset, e.g. 'glue'")
    dataset_config: str | None = Field(None, description="e.g. 'sst2'")
    text_column: str = "text"
    label_column: str = "label"
    tokenizer: Literal["word", "run"] = "word"
    tokenizer_path: str | None = Field(
        None, description="tokenizer: run: the run directory whose tokenizer.json to use"
    )
    max_vocab: int = Field(20000, ge=10, description="word tokenizer: vocabulary size")
    seq_len: PositiveInt = 64
    batch_size: PositiveInt = 32
    val_fraction: float = Field(0.1, gt=0, lt=0.5)
    test_fraction: float = Field(0.1, gt=0, lt=0.5)
    seed: int = 1234
    num_train: int | None = Field(None, gt=0, description="cap / synthetic size")
    num_val: PositiveInt = 1000
    num_test: PositiveInt = 1000
    label_noise: float = Field(0.05, ge=0, lt=0.5, description="synthetic: labels flipped")
    cache_dir: str | None = None

    @property
    def synthetic(self) -> bool:
        """True when neither a path nor a dataset is given."""
        return self.path is None and self.dataset is None

    @model_validator(mode="after")
    def _run_tokenizer_named(self) -> ClassificationData:
        if self.tokenizer == "run" and self.tokenizer_path is None:
            raise ValueError("data.tokenizer: run needs data.tokenizer_path (a run directory)")
        return self


DataConfig = Annotated[
    LMTextData
    | RepeatTokensData
    | MQARData
    | CopyingData
    | SelectiveCopyingData
    | InductionHeadsData
    | PigLatinData
    | ClassificationData,
    Field(discriminator="task"),
    require_tag("task"),
]
