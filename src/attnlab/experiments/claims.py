"""A write-up's claims as data: `experiments/claims/NAME.yaml`, one file per reproduction.

Every number of a write-up's results tables, and every claim of its text, is an entry
with its verbatim quote, where it stands, its kind, the metric as the write-up defines
it, the settings the write-up states, and what of ours answers it. A table row is
written once (`rows:`), its quote the row as the write-up has it; the row's numbers are
read from that quote, never typed again, so a claim cannot misquote its number. The
files are checked against the write-ups themselves (`check_quotes`, `uncovered_cells`)
where `../shared/writeups/` is present.

Kinds:
- `value`: a number the write-up reports from one run, judged against our seeds by a
  prediction interval for one new run (`attnlab.experiments.verdicts`);
- `count`: a parameter count as the write-up rounds it ("143K");
- `ordering`: A is better than B (`better: lower | higher`);
- `difference`: A − B is the write-up's number;
- `observation`: a statement about a model, answered by a named measurement
  (`attnlab.experiments.observations`) or not tested, with the reason.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from attnlab.config.load import format_validation_error
from attnlab.errors import ConfigError

KINDS = ("value", "count", "ordering", "difference", "observation")
NUMBER = re.compile(r"[-+−]?\d+(?:[.,]\d+)*(?:e[-+]?\d+)?\s*[%KkMm]?")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Metric(Strict):
    """A metric as the write-up defines it, and the summary key of ours that matches it."""

    what: str  # in words, as the write-up has it
    split: str = ""  # train | validation | test | "" (not stated)
    when: str = ""  # at which epoch / step, as far as stated
    quote: str = ""  # the write-up's own definition, where it gives one
    ours: str = ""  # our summary key (dotted) or run figure; "" when we have none
    candidates: dict[str, str] = Field(default_factory=dict)  # other readings → our key


class Settings(Strict):
    """Settings a write-up states, as config paths (or derived keys: `data.variant`,
    `epochs`, `tokens_seen`, `precision`), with where it states them."""

    quote: str = ""
    values: dict[str, Any] = Field(default_factory=dict)
    unstated: dict[str, str] = Field(default_factory=dict)  # key → why we chose ours


class Ours(Strict):
    """What of ours answers a claim: a configuration (`label`) of a reproduction's part,
    and for orderings and differences the configuration compared with it."""

    part: str
    label: str
    other: str | None = None  # ordering / difference: the other configuration
    other_part: str | None = None  # its part, when not `part` ("REPRODUCTION/PART": another's)
    name: str = ""  # what this configuration stands for (a switch measurement's row)


class Expect(Strict):
    """What an observation predicts of a measurement: `op` against a number (`value`),
    another configuration's same measurement (`other`), or another path of the same
    run (`path`)."""

    op: Literal["<", "<=", ">", ">=", "=="]
    value: float | None = None
    other: str | None = None
    path: list[str] | None = None

    @model_validator(mode="after")
    def _one(self) -> Expect:
        if sum(x is not None for x in (self.value, self.other, self.path)) != 1:
            raise ValueError("expect: give exactly one of value, other, path")
        return self


class Claim(Strict):
    """One number or statement of a write-up (see the module docstring)."""

    id: str
    quote: str
    file: str = ""  # the write-up file; the claims file's `writeup` when empty
    also: dict[str, str] = Field(default_factory=dict)  # the same in another file → quote
    where: str
    kind: Literal["value", "count", "ordering", "difference", "observation"]
    value_text: str = ""  # the number as the quote writes it ("91%", "143K", "0.909")
    column: str = ""  # a table row's claim: the column header it stands under
    metric: str = ""  # a key of the file's `metrics`
    settings: list[str] = Field(default_factory=list)  # keys of the file's `settings`
    own_settings: dict[str, Any] = Field(default_factory=dict)  # this row's own values
    ours: list[Ours] = Field(default_factory=list)  # each answer gets its own verdict
    better: Literal["lower", "higher"] = "higher"  # ordering: which side wins
    relative: bool = False  # difference: A / B − 1 (an "improvement of 5.83%")
    tolerance: float = 0.05  # switches: how close a configuration must come to explain it
    budget: str = ""  # ordering: the validation-record key whose order can change with the
    # tokens seen ("loss", "accuracy"): the verdict says where the order holds
    measure: str = ""  # observation: a measurement of `experiments.observations`
    path: list[str] = Field(default_factory=list)  # measure probe / summary: where ("*": all)
    reduce: Literal["max", "min", "mean"] = "max"  # over the values `path` reaches
    expect: Expect | None = None  # observation: what the write-up's statement predicts
    not_tested: str = ""  # why nothing of ours answers it
    headline: str = ""  # a row of the README's table: its words there
    note: str = ""

    @property
    def value(self) -> float | None:
        """The number the write-up states, parsed from `value_text`."""
        return parse_number(self.value_text) if self.value_text else None

    @model_validator(mode="after")
    def _answerable(self) -> Claim:
        if self.value_text and self.value_text not in self.quote:
            raise ValueError(f"{self.id}: value_text {self.value_text!r} is not in its quote")
        if self.kind in ("value", "count", "difference") and not self.value_text:
            raise ValueError(f"{self.id}: a {self.kind} claim needs value_text")
        if not (self.ours or self.measure or self.not_tested):
            raise ValueError(f"{self.id}: give ours, measure or not_tested (why not tested)")
        if self.kind in ("ordering", "difference") and any(not o.other for o in self.ours):
            raise ValueError(f"{self.id}: an {self.kind} names ours.other")
        return self


class Row(Strict):
    """A results-table row: its verbatim quote and the configuration of ours that answers
    it; expanded into one `value` claim per numeric cell."""

    quote: str
    ours: list[Ours] = Field(default_factory=list)
    not_tested: str = ""
    own_settings: dict[str, Any] = Field(default_factory=dict)
    headline: dict[str, str] = Field(default_factory=dict)  # column → README row words
    note: str = ""


class Table(Strict):
    """A results table: its header as quoted, the metric key of each column (by header
    cell; columns not listed are labels), the settings its rows share, and its rows."""

    id: str
    where: str
    header: str
    columns: dict[str, str]  # header cell → metric key
    settings: list[str] = Field(default_factory=list)
    rows: list[Row]
    file: str = ""


class NotCovered(Strict):
    """Write-up text (a table, a row) whose numbers are deliberately not claims."""

    quote: str
    reason: str
    file: str = ""


class ClaimsFile(Strict):
    """`experiments/claims/NAME.yaml`."""

    reproduction: str
    writeup: str  # the write-up's file name in shared/writeups
    title: str
    metrics: dict[str, Metric] = Field(default_factory=dict)
    settings: dict[str, Settings] = Field(default_factory=dict)
    tables: list[Table] = Field(default_factory=list)
    claims: list[Claim] = Field(default_factory=list)
    not_covered: list[NotCovered] = Field(default_factory=list)

    def all_claims(self) -> list[Claim]:
        """The table rows expanded into claims, then the text's claims, in file order."""
        out = []
        for t in self.tables:
            header = table_cells(t.header)
            for r in t.rows:
                cells = table_cells(r.quote)
                if len(cells) != len(header):
                    raise ConfigError(
                        f"{self.reproduction}: table {t.id}: row {r.quote!r} has {len(cells)} "
                        f"cells, its header {len(header)}"
                    )
                label = cells[0]
                for head, cell in zip(header, cells, strict=True):
                    if head not in t.columns or parse_number(cell) is None:
                        continue
                    out.append(
                        Claim(
                            id=f"{t.id}.{slug(label)}.{t.columns[head]}",
                            quote=r.quote,
                            file=t.file,
                            where=f"{t.where}, row “{label}”, column “{head}”",
                            kind="value",
                            value_text=cell,
                            column=head,
                            metric=t.columns[head],
                            settings=t.settings,
                            own_settings=r.own_settings,
                            ours=r.ours,
                            not_tested=r.not_tested,
                            headline=r.headline.get(head, ""),
                            note=r.note,
                        )
                    )
        return [*out, *self.claims]

    @model_validator(mode="after")
    def _references(self) -> ClaimsFile:
        for c in self.claims:
            if c.metric and c.metric not in self.metrics:
                raise ValueError(f"{c.id}: metric {c.metric!r} is not in metrics")
            for s in c.settings:
                if s not in self.settings:
                    raise ValueError(f"{c.id}: settings {s!r} is not in settings")
        for t in self.tables:
            for key in t.columns.values():
                if key not in self.metrics:
                    raise ValueError(f"table {t.id}: metric {key!r} is not in metrics")
            for s in t.settings:
                if s not in self.settings:
                    raise ValueError(f"table {t.id}: settings {s!r} is not in settings")
        return self


def slug(text: str) -> str:
    """A claim-id piece from a table's row label."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "row"


def parse_number(text: str) -> float | None:
    """The number a write-up's cell or phrase states: "0.909", "91%" (0.91), "143K"
    (143000), "3e‑4", "99.81%"; None when the text holds no number, or more than one."""
    t = text.replace("\u2011", "-").replace("−", "-").strip().strip("*").strip()
    t = re.sub(r"\(\s*\d+(?:\.\d+)?\s*[KkMm]\s*\)", "", t).strip()  # "Beast Small (143K)"
    m = re.fullmatch(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?\s*([%KkMm]?)", t)
    if not m:
        return None
    num = float(t.rstrip("%KkMm ").strip())
    return {"%": num / 100, "K": num * 1e3, "k": num * 1e3, "M": num * 1e6, "m": num * 1e6}.get(
        m.group(1), num
    )


def table_cells(line: str) -> list[str]:
    """The cells of a Markdown table row, stripped, no-break spaces read as spaces."""
    s = line.strip()
    s = s[1:] if s.startswith("|") else s
    s = s[:-1] if s.endswith("|") else s
    return [re.sub(r"[\s\xa0\u202f]+", " ", c).strip() for c in s.split("|")]


def table_rows(text: str) -> list[tuple[str, str]]:
    """Every data row of every Markdown table in `text`, as (its header line, the row
    line), the separator rows left out."""
    out, header, prev = [], None, ""
    for line in text.splitlines():
        s = line.strip()
        if not s.startswith("|"):
            header, prev = None, ""
            continue
        if re.fullmatch(r"\|?[\s:|-]+\|?", s) and "-" in s:
            header = prev
        elif header is not None:
            out.append((header, s))
        prev = s
    return out


def numeric_cells(header: str, row: str) -> list[str]:
    """The header cells under which `row` holds a number (its first cell is its label)."""
    heads, cells = table_cells(header), table_cells(row)
    return [h for h, c in zip(heads[1:], cells[1:], strict=False) if parse_number(c) is not None]


CLAIMS_DIR = "claims"


@cache
def load_claims(name: str) -> ClaimsFile:
    """The packaged claims file of reproduction `name`, validated."""
    res = resources.files("attnlab.experiments").joinpath(CLAIMS_DIR, f"{name}.yaml")
    if not res.is_file():
        raise ConfigError(f"no claims file for reproduction {name!r}")
    raw = yaml.safe_load(res.read_text(encoding="utf-8"))
    try:
        claims = ClaimsFile.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, f"claims/{name}.yaml")) from None
    claims.all_claims()  # rows against their headers
    return claims


def claims_names() -> list[str]:
    """The reproductions that have a claims file."""
    folder = resources.files("attnlab.experiments").joinpath(CLAIMS_DIR)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def quotes(cf: ClaimsFile) -> list[tuple[str, str, str]]:
    """(write-up file, quote, what it belongs to) of every quote in a claims file."""
    out = [(cf.writeup, m.quote, f"metric {k}") for k, m in cf.metrics.items() if m.quote]
    out += [(cf.writeup, s.quote, f"settings {k}") for k, s in cf.settings.items() if s.quote]
    for t in cf.tables:
        f = t.file or cf.writeup
        out += [(f, t.header, f"table {t.id}"), *((f, r.quote, f"table {t.id}") for r in t.rows)]
    for c in cf.claims:
        out.append((c.file or cf.writeup, c.quote, c.id))
        out += [(f, q, f"{c.id} (also)") for f, q in c.also.items()]
    out += [(n.file or cf.writeup, n.quote, "not_covered") for n in cf.not_covered]
    return out


def missing_quotes(cf: ClaimsFile, writeups: Path) -> list[str]:
    """Quotes of `cf` that do not stand verbatim in their write-up file (whitespace runs
    compared as one space)."""
    bad = []
    for file, quote, owner in quotes(cf):
        text = _squeeze((Path(writeups) / file).read_text(encoding="utf-8"))
        if _squeeze(quote) not in text:
            bad.append(f"{owner}: {quote!r} is not in {file}")
    return bad


def uncovered_cells(files: list[ClaimsFile], writeups: Path, file: str) -> list[str]:
    """Numeric cells of the results tables of write-up `file` that no claim quotes and no
    `not_covered` entry explains, as "row → column"."""
    text = (Path(writeups) / file).read_text(encoding="utf-8")
    covered: dict[str, set[str]] = {}  # row (squeezed) → header cells covered
    whole: set[str] = set()  # rows or tables left out whole
    for cf in files:
        for t in cf.tables:
            if (t.file or cf.writeup) == file:
                for r in t.rows:
                    covered.setdefault(_squeeze(r.quote), set()).update(t.columns)
        for c in cf.claims:
            for f, q in [(c.file or cf.writeup, c.quote), *c.also.items()]:
                if f == file and c.column:
                    covered.setdefault(_squeeze(q), set()).add(c.column)
        whole |= {_squeeze(n.quote) for n in cf.not_covered if (n.file or cf.writeup) == file}
    out = []
    for header, row in table_rows(text):
        if _squeeze(row) in whole or _squeeze(header) in whole:
            continue
        for head in numeric_cells(header, row):
            if head not in covered.get(_squeeze(row), set()):
                out.append(f"{row} → {head}")
    return out


def _squeeze(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()
