"""Verdicts: each claim of a write-up (`experiments.claims`) against our runs, by one rule.

The write-ups report one run each. A reported single run is judged against our seeds by a
**prediction interval for one new run**, mean ± t(n−1)·s·√(1 + 1/n) at 95%:
`consistent` when the write-up's value lies inside, `write-up above` / `write-up below`
when it lies above or below it; with fewer than 3 seeds it is **not judged** (our value
and the gap are shown). Testing a single run against the interval of our *mean* instead
would reject a run drawn from our own distribution 16% of the time at n = 3 and 51% at
n = 10 (`stats.false_rejection_rate`), more often the more seeds we run.

Orderings ("A beats B") and differences ("A − B = d") use the 95% Welch interval of our
difference of means: an ordering is `same order` when the interval lies on the write-up's
side of 0, `opposite order` on the other side, `not established` when it holds 0; a
difference is `consistent` when the write-up's d lies in the interval, else `write-up
above` / `write-up below`. A count ("143K") is `reproduced` when ours rounds to it.

Every verdict names its setting: the settings the write-up states are compared with the
resolved config of the run that answers it, and each difference is listed beside the
verdict; a verdict at another scale or setting says so in its own words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from attnlab.experiments.claims import Claim, ClaimsFile, Ours, parse_number
from attnlab.report.sweep import figure, run_figures
from attnlab.run_dir import RESULTS, RunDir, read_json
from attnlab.stats import format_pm, mean_std, prediction_interval, welch_interval

MIN_SEEDS = 3  # a single reported run is judged against at least this many of ours

Groups = dict[str, dict[str, list[dict]]]  # part → configuration label → finished runs


@dataclass
class Verdict:
    """One claim against one answer of ours."""

    claim: Claim
    writeup: str  # the write-up's number or statement, as quoted
    ours: str = "–"  # our figure: mean ± std (n), or the measurement
    interval: str = "–"  # the interval the verdict used
    word: str = "not tested"  # consistent | above | below | not judged | same order | …
    setting: str = ""  # "at CPU scale", "at its stated settings", …
    differences: list[str] = field(default_factory=list)  # setting: write-up vs ours
    candidates: list[str] = field(default_factory=list)  # other readings of the metric
    means: dict[str, float] = field(default_factory=dict)  # reading ("" ours) → our mean
    answer: Ours | None = None
    why: str = ""  # not tested / not judged: the reason

    def to_dict(self) -> dict:
        """The verdict as data (`verdicts.json`)."""
        a = self.answer
        return {
            "claim": self.claim.id,
            "kind": self.claim.kind,
            "where": self.claim.where,
            "quote": self.claim.quote,
            "writeup": self.writeup,
            "headline": self.claim.headline,
            "answer": a.model_dump(exclude_defaults=True) if a else None,
            "ours": self.ours,
            "interval": self.interval,
            "word": self.word,
            "setting": self.setting,
            "verdict": self.text,
            "differences": self.differences,
            "candidates": self.candidates,
            "why": self.why,
        }

    @property
    def text(self) -> str:
        """The verdict as one phrase, its setting in it."""
        if self.setting and self.word not in ("not tested", "no finished run"):
            return f"{self.setting}: {self.word}"
        return self.word


def part_runs(out: Path, part: str) -> dict[str, list[dict]]:
    """Configuration label → the finished runs of one part, read from its `results.json`
    (a committed reproduction needs no sweep database)."""
    path = Path(out) / part / RESULTS
    if not path.is_file():
        return {}
    groups: dict[str, list[dict]] = {}
    for t in read_json(path)["trials"]:
        if t["state"] != "complete":
            continue
        for rel in t.get("run_dirs") or []:
            d = Path(out) / part / rel
            if RunDir(d).is_finished():
                groups.setdefault(t["label"], []).append({"dir": d, **run_figures(d)})
    return groups


def metric_value(run: dict, key: str) -> float | None:
    """A run's figure: a (dotted) summary key or probe figure, or from its metrics log
    `first:SPLIT.FIELD` / `last:SPLIT.FIELD` (the first or last periodic record of that
    split, e.g. `first:train_eval.accuracy`: the end of the first epoch)."""
    if key.startswith("per100:"):  # mistakes per 100 words of an accuracy
        acc = metric_value(run, key.removeprefix("per100:"))
        return None if acc is None else 100.0 * (1.0 - acc)
    if key.startswith("epoch_mean:"):
        return _epoch_mean(run, key)
    if key.startswith(("first:", "last:")):
        which, _, rest = key.partition(":")
        split, _, name = rest.partition(".")
        recs = [
            r
            for r in run["records"]
            if r.get("split") == split and not r.get("final") and r.get(name) is not None
        ]
        if not recs:
            return None
        return float((recs[0] if which == "first" else recs[-1])[name])
    return figure(run, key)


def _epoch_mean(run: dict, key: str) -> float | None:
    """`epoch_mean:E:SPLIT.FIELD`: the mean of FIELD over the logged SPLIT records of epoch
    E (a number, or `last`): what a notebook prints as an epoch's training loss."""
    _, which, rest = key.split(":", 2)
    split, _, name = rest.partition(".")
    n = run["summary"].get("data", {}).get("train_sequences")
    batch = resolved_config(run).get("data", {}).get("batch_size")
    if not n or not batch:
        return None
    per_epoch = n // batch
    steps = run["summary"].get("steps", 0)
    epoch = max(1, -(-steps // per_epoch)) if which == "last" else int(which)
    lo, hi = (epoch - 1) * per_epoch, epoch * per_epoch
    vals = [
        r[name]
        for r in run["records"]
        if r.get("split") == split and lo < r.get("step", 0) <= hi and r.get(name) is not None
    ]
    return sum(vals) / len(vals) if vals else None


def values(groups: Groups, part: str, label: str, key: str) -> list[float]:
    """`key` over the seeds of one configuration (runs that lack it left out)."""
    runs = groups.get(part, {}).get(label, [])
    return [v for r in runs if (v := metric_value(r, key)) is not None]


# --- settings ----------------------------------------------------------------------------

DERIVED = {
    "data.variant": "raw text or the word-level v1 `.tokens` files (from the data source)",
    "epochs": "steps × batch size / training sequences",
    "tokens_seen": "training tokens",
    "data.max_length": "tokens an example holds (seq_len inputs + the last target)",
    "precision": "the precision the run trained in",
    "params": "parameters",
}


def _variant(summary: dict, cfg: dict) -> str:
    src = " ".join((summary.get("data", {}).get("sources") or {}).values())
    if ".tokens" in src:
        return "v1"
    if ".raw" in src or "raw" in str(cfg.get("data", {}).get("dataset_config") or ""):
        return "raw"
    return src or "–"


def resolved(key: str, cfg: dict, summary: dict):
    """Our value of a setting key: a config path, or one of `DERIVED`."""
    if key == "data.variant":
        return _variant(summary, cfg)
    if key == "epochs":
        n = summary.get("data", {}).get("train_sequences")
        batch = cfg.get("data", {}).get("batch_size")
        return round(summary["steps"] * batch / n, 2) if n and batch else None
    if key == "data.max_length":  # tokens an example holds: inputs and the last target
        return cfg.get("data", {}).get("seq_len", 0) + 1
    if key == "tokens_seen":
        return summary.get("train_tokens")
    if key in ("precision", "params"):
        return summary.get(key)
    cur = cfg
    for part in key.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return "(no such setting)"
        cur = cur[part]
    return cur


NOT_NAMED = "(not named)"  # a setting the write-up used but does not say: never ours


def _same(want, have) -> bool:
    if want == NOT_NAMED:
        return False
    if isinstance(want, bool) or isinstance(have, bool):
        return want == have
    w = parse_number(str(want)) if isinstance(want, str) else want
    h = parse_number(str(have)) if isinstance(have, str) else have
    if isinstance(w, int | float) and isinstance(h, int | float):
        return math.isclose(float(w), float(h), rel_tol=1e-6)
    return str(want).strip().lower() == str(have).strip().lower()


def resolved_config(run: dict) -> dict:
    """A run's config with every default filled in (a config written before a setting
    existed reads as that setting's default, which is what the run used)."""
    from attnlab.config import load_config

    path = RunDir(run["dir"]).config
    try:
        return load_config(path).model_dump(mode="json")
    except Exception:  # a config this version no longer reads: its file as written
        return yaml.safe_load(path.read_text(encoding="utf-8"))


def stated_settings(cf: ClaimsFile, claim: Claim) -> dict:
    """The settings the write-up states for this claim: its named sets, then its own."""
    out: dict = {}
    for name in claim.settings:
        out.update(cf.settings[name].values)
    return {**out, **claim.own_settings}


def differences(cf: ClaimsFile, claim: Claim, run: dict) -> list[str]:
    """Each stated setting where the run's resolved config differs: `key: write-up W, ours
    O`."""
    cfg = resolved_config(run)
    out = []
    for key, want in stated_settings(cf, claim).items():
        have = resolved(key, cfg, run["summary"])
        if not _same(want, have):
            shown = f"{have:,}" if isinstance(have, int) and not isinstance(have, bool) else have
            out.append(f"{key}: write-up {want}, ours {shown}")
    return out


def setting_phrase(scale: str, diffs: list[str]) -> str:
    """How a verdict names its setting."""
    if scale in ("cpu", "quick"):
        return f"at {scale.upper() if scale == 'cpu' else scale} scale"
    return "at a different setting" if diffs else "at its stated settings"


# --- judging -----------------------------------------------------------------------------


def judge_value(value: float, ours: list[float]) -> tuple[str, str]:
    """(interval, word) of a single reported run against our seeds (module docstring)."""
    if len(ours) < MIN_SEEDS:
        gap = (ours and f"; ours {mean_std(ours)[0] - value:+.4f} from it") or ""
        return "none", f"not judged ({len(ours)} seed{'s' * (len(ours) != 1)}{gap})"
    _, lo, hi = prediction_interval(ours)
    word = "consistent" if lo <= value <= hi else _side(value > hi)
    return f"[{lo:.4f}, {hi:.4f}]", word


def _side(above: bool) -> str:
    """Where the write-up's number lies, outside our interval."""
    return "write-up above" if above else "write-up below"


def judge_count(value: float, value_text: str, ours: list[float]) -> tuple[str, str]:
    """A count as the write-up rounds it: "143K" is 1,000s."""
    unit = {"K": 1e3, "k": 1e3, "M": 1e6}.get(value_text.strip()[-1:], 1.0)
    mine = ours[0]
    if round(mine / unit) * unit == value:
        return "–", "reproduced"
    return "–", f"differs (ours {mine:,.0f}, {mine - value:+,.0f})"


def judge_ordering(a: list[float], b: list[float], better: str) -> tuple[str, str, str]:
    """(our figures, the Welch interval of mean(a) − mean(b), word) for "a beats b"."""
    ours = f"{format_pm(a, 4)} vs {format_pm(b, 4)}"
    d = welch_interval(a, b)
    if d is None:
        return ours, "none", "not judged (fewer than 2 seeds a side)"
    shown = f"{d.diff:+.4f} [{d.low:+.4f}, {d.high:+.4f}]"
    wins = d.high < 0 if better == "lower" else d.low > 0
    loses = d.low > 0 if better == "lower" else d.high < 0
    word = "same order" if wins else ("opposite order" if loses else "not established")
    return ours, shown, word


def judge_difference(
    value: float, a: list[float], b: list[float], relative: bool
) -> tuple[str, str, str]:
    """(our figures, the Welch interval of our difference, word) for "a − b = value";
    `relative`: the interval divided by mean(b), against a / b − 1."""
    ours = f"{format_pm(a, 4)} vs {format_pm(b, 4)}"
    base = mean_std(b)[0] if relative and b else 1.0
    if base == 0:  # a relative difference from a model at 0
        return ours, "none", "not judged (the reference's mean is 0: no relative difference)"
    d = welch_interval(a, b)
    if d is None:
        diff = (mean_std(a)[0] - mean_std(b)[0]) / base if a and b else None
        shown = "none" if diff is None else f"{diff:+.4f} (no interval)"
        return ours, shown, "not judged (fewer than 2 seeds a side)"
    lo, hi, mid = d.low / base, d.high / base, d.diff / base
    word = "consistent" if lo <= value <= hi else _side(value > hi)
    return ours, f"{mid:+.4f} [{lo:+.4f}, {hi:+.4f}]", word


def budget_note(a: list[dict], b: list[dict], key: str, better: str) -> str:
    """Where along training the ordering held: the evaluations at which the 95% Welch
    interval of a − b (validation `key`) lies on the claim's side of 0."""
    from attnlab.experiments.curves import loss_difference

    points = loss_difference(a, b, key)
    if len(points) < 2:
        return ""
    judged = [p for p in points if p.low is not None]
    if not judged:
        return ""
    wins = [p for p in judged if (p.high < 0 if better == "lower" else p.low > 0)]
    first, last = judged[0].tokens / 1e6, judged[-1].tokens / 1e6
    if not wins:
        return f" (at no evaluation from {first:.1f}M to {last:.1f}M tokens)"
    if len(wins) == len(judged):
        return f" (at every evaluation from {first:.1f}M to {last:.1f}M tokens)"
    spans = ", ".join(f"{p.tokens / 1e6:.1f}M" for p in wins)
    return f" at the end; the write-up's order held at {spans} tokens (budget curve)"
