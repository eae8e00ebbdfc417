"""A reproduction's verdicts as Markdown: every claim of a write-up beside ours, the rule
that judged it, the write-up's metrics as it defines them, the settings it leaves open,
and the README's headline table. Reads verdicts (`experiments.verdicts.Verdict`) and
claims files only; writes no number that is not in them."""

from __future__ import annotations

from attnlab.report.tables import markdown_table as _table
from attnlab.stats import false_rejection_rate

RULE = (
    "**The rule.** The write-ups report one run each. A reported value is judged against "
    "our seeds by a 95% *prediction interval for one new run*, mean ± t(n−1)·s·√(1 + 1/n): "
    "`consistent` when the write-up's value lies inside it, `write-up above` or `write-up "
    "below` when it lies above or below it; with fewer than 3 seeds it is `not judged`, and"
    " our value and the gap are shown. Judging a single run by the 95% interval of our "
    "*mean* instead would call a run drawn from our own distribution different {r3:.0%} of "
    "the time at n = 3 and {r10:.0%} at n = 10 — more often the more seeds we run. An "
    "ordering (A beats B) is judged by the 95% Welch interval of our difference of means "
    "(`same order`, `opposite order`, or `not established` when it holds 0); a difference "
    "(A − B = d) by whether the write-up's d lies in that interval; a parameter count by "
    "whether ours rounds to the write-up's. An observation is measured as its row states: "
    "`seen` when what the write-up says holds in our runs by that criterion, `not seen` "
    "when it does not. "
    "Every verdict names its setting (`at CPU scale`, `at a different setting`, `at its "
    "stated settings`: none of the settings the write-up states differs), and the last "
    "column lists each stated setting where our run's resolved config differs."
)


def markdown_table(headers: list[str], rows: list[list]) -> str:
    """A Markdown table whose cells may quote a write-up's own table rows: their pipes
    escaped, so a quoted row stays in its cell."""
    return _table(headers, [[str(c).replace("|", "\\|") for c in row] for row in rows])


def rule_text() -> str:
    """The verdict rule, with the false-rejection rates that motivated it, computed."""
    return RULE.format(r3=false_rejection_rate(3), r10=false_rejection_rate(10))


def _ours_label(v) -> str:
    a = v.answer
    if a is None:
        return ""
    other = f" vs {a.other_part + ' / ' if a.other_part else ''}{a.other}" if a.other else ""
    return f"{a.part} / {a.label}{other}"


def _short(text: str, n: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _value_row(v) -> list[str]:
    return [
        v.claim.where,
        v.writeup,
        _ours_label(v),
        v.ours + (f" ({'; '.join(v.candidates)})" if v.candidates else ""),
        v.interval,
        v.text,
        "; ".join(v.differences) or "–",
    ]


def verdict_counts(verdicts: list) -> str:
    """One line: how many verdicts of each word (their settings and reasons left out)."""
    counts: dict[str, int] = {}
    for v in verdicts:
        word = v.word.split(" (")[0].split(":")[0].split(" at ")[0].strip()
        counts[word] = counts.get(word, 0) + 1
    shown = ", ".join(f"{n} {w}" for w, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    return f"In all, {len(verdicts)} verdicts: {shown}.\n"


def verdict_tables(cf, verdicts: list) -> str:
    """The verdicts in three tables (values and counts; orderings and differences;
    observations), then the claims nothing of ours answers, each with its reason."""
    values = [v for v in verdicts if v.claim.kind in ("value", "count") and v.answer]
    pairs = [v for v in verdicts if v.claim.kind in ("ordering", "difference") and v.answer]
    seen = [v for v in verdicts if v.claim.kind == "observation" and v.word != "not tested"]
    untested = [v for v in verdicts if v.word == "not tested"]
    out = ["## Verdicts\n", rule_text() + "\n", verdict_counts(verdicts)]
    if values:
        out.append("### Numbers (one run of the write-up's against our seeds)\n")
        head = ["where", "write-up", "ours: part / configuration", "ours (other readings)"]
        head += ["95% prediction interval", "verdict", "setting differences"]
        out.append(markdown_table(head, [_value_row(v) for v in values]))
    if pairs:
        out.append("### Orderings and differences\n")
        rows = []
        for v in pairs:
            stated = v.writeup if v.claim.kind == "difference" else _short(v.claim.quote, 70)
            rows.append([v.claim.where, stated, _ours_label(v), v.ours, v.interval, v.text])
            rows[-1].append("; ".join(v.differences) or "–")
        head = ["where", "write-up", "ours: A vs B", "ours", "95% Welch interval of A − B"]
        out.append(markdown_table([*head, "verdict", "setting differences"], rows))
    if seen:
        out.append("### Observations\n")
        rows = [
            [
                v.claim.where,
                _short(v.claim.quote),
                _ours_label(v) or "–",
                v.ours,
                v.interval,
                v.text + (f" ({v.why})" if v.why else ""),
                _short(v.claim.note, 160) or "–",
            ]
            for v in seen
        ]
        head = ["where", "the write-up says", "ours", "measured", "criterion / interval"]
        out.append(markdown_table([*head, "verdict", "how it is read"], rows))
    if untested:
        out.append("### Not tested\n")
        rows = [[v.claim.where, _short(v.claim.quote), v.why] for v in untested]
        out.append(markdown_table(["where", "the write-up says", "why"], rows))
    return "\n".join(out) + "\n"


def readings_fit(cf, verdicts: list) -> list[str]:
    """For each metric read more than one way: which reading of ours the write-up's
    numbers lie nearer (the mean |write-up − ours| over its value claims), and over
    how many."""
    out = []
    for name, m in cf.metrics.items():
        if not m.candidates:
            continue
        gaps: dict[str, list[float]] = {}
        for v in verdicts:
            if v.claim.metric != name or v.claim.kind != "value" or v.claim.value is None:
                continue
            for reading, mean in v.means.items():
                gaps.setdefault(reading or f"{m.what} (`{m.ours}`)", []).append(
                    abs(v.claim.value - mean)
                )
        if len(gaps) < 2:
            continue
        ranked = sorted(gaps.items(), key=lambda kv: sum(kv[1]) / len(kv[1]))
        shown = "; ".join(f"{k}: {sum(g) / len(g):.4f} (n={len(g)})" for k, g in ranked)
        out.append(
            f"- `{name}`: the write-up's numbers lie nearest **{ranked[0][0]}** "
            f"(mean |write-up − ours| by reading: {shown})."
        )
    return out


def metrics_section(cf, verdicts: list | None = None) -> str:
    """Each metric as the write-up defines it, what of ours reads it, and which reading
    the write-up's numbers fit."""
    rows = []
    for name, m in cf.metrics.items():
        other = "; ".join(f"{k}: `{key}`" for k, key in m.candidates.items()) or "–"
        quote = f"“{_short(m.quote, 80)}”" if m.quote else "–"
        rows.append([name, m.what, m.split or "–", m.when or "–", quote, f"`{m.ours}`", other])
    head = ["metric", "as the write-up defines it", "split", "when", "its words", "ours"]
    fit = readings_fit(cf, verdicts or [])
    note = (
        "Where a metric can be read more than one way, each reading is computed on the "
        "same split and the verdicts use the write-up's definition; which reading its "
        "numbers lie nearest (a distance, not a test: a run of ours at another setting can "
        "sit nearer by chance):\n\n" + "\n".join(fit) + "\n\n"
        if fit
        else ""
    )
    return (
        "## The write-up's metrics\n\n"
        + markdown_table([*head, "other readings reported beside"], rows)
        + "\n"
        + note
    )


def settings_section(cf) -> str:
    """The settings the write-up states (with its words) and those it leaves open."""
    stated, open_ = [], []
    for name, s in cf.settings.items():
        vals = ", ".join(f"`{k}` {v}" for k, v in s.values.items()) or "–"
        stated.append([name, f"“{_short(s.quote, 100)}”" if s.quote else "–", vals])
        open_ += [[f"`{k}`", why] for k, why in s.unstated.items()]
    out = "## Settings\n\nWhat the write-up states, compared with every run's resolved config:\n\n"
    out += markdown_table(["set", "its words", "settings"], stated) + "\n"
    if open_:
        out += "What it leaves open, and what we chose:\n\n"
        out += markdown_table(["setting", "ours, and why"], open_) + "\n"
    return out


def not_covered_section(cf) -> str:
    """Write-up text whose numbers are deliberately not claims, with the reason."""
    if not cf.not_covered:
        return ""
    rows = [[f"`{_short(n.quote, 80)}`", n.reason] for n in cf.not_covered]
    return "## Not covered\n\n" + markdown_table(["write-up text", "why"], rows) + "\n"


HEADLINE_START = "<!-- headline table: generated by `attnlab reproduce --headline`; do not edit -->"
HEADLINE_END = "<!-- end of the headline table -->"


def headline_table(rows: list[tuple[str, object]]) -> str:
    """The README's table: (write-up file, verdict) for every claim marked `headline`,
    one row per answer of ours."""
    out = []
    for writeup, v in rows:
        out.append(
            [
                writeup[:3],
                v.claim.headline,
                v.writeup if v.claim.kind != "ordering" else "yes",
                _ours_label(v) or "–",
                v.ours,
                v.text,
            ]
        )
    head = ["write-up", "claim", "write-up's value", "ours: part / configuration", "ours"]
    return markdown_table([*head, "verdict"], out)
