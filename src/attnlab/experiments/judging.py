"""Judging a claims file: each claim's verdicts, an observation measured
(`observations`), a number, ordering or difference judged by the rule (`verdicts`)."""

from __future__ import annotations

from pathlib import Path

from attnlab.experiments.claims import Claim, ClaimsFile, Ours
from attnlab.experiments.observations import measure
from attnlab.experiments.verdicts import (
    Groups,
    Verdict,
    budget_note,
    differences,
    judge_count,
    judge_difference,
    judge_ordering,
    judge_value,
    setting_phrase,
    values,
)
from attnlab.stats import format_pm, mean_std


def judge(
    cf: ClaimsFile, claim: Claim, groups: Groups, scale: str, out: Path | None = None
) -> list[Verdict]:
    """Every verdict of one claim: one per answer of ours (a measured observation, or
    not tested, is one); `out` is the reproduction's folder (a benchmark's measurement)."""
    shown = claim.value_text or claim.quote
    if claim.kind == "observation" and claim.measure:
        return measure(cf, claim, groups, scale, out)
    if not claim.ours:
        return [Verdict(claim, shown, why=claim.not_tested)]
    return [_answer(cf, claim, ans, groups, scale) for ans in claim.ours]


def _answer(cf: ClaimsFile, claim: Claim, ans: Ours, groups: Groups, scale: str) -> Verdict:
    metric = cf.metrics.get(claim.metric)
    key = metric.ours if metric else ""
    v = Verdict(claim, claim.value_text or claim.quote, answer=ans)
    runs = groups.get(ans.part, {}).get(ans.label, [])
    if not runs:
        v.word, v.why = "no finished run", f"{ans.part} / {ans.label} has not run"
        return v
    v.differences = differences(cf, claim, runs[0])
    v.setting = setting_phrase(scale, v.differences)
    if not key:
        v.why = "we have no measurement of this metric"
        return v
    mine = values(groups, ans.part, ans.label, key)
    if claim.kind in ("ordering", "difference"):
        other = values(groups, ans.other_part or ans.part, ans.other or "", key)
        if claim.kind == "ordering":
            v.ours, v.interval, v.word = judge_ordering(mine, other, claim.better)
            if claim.budget:
                v.word += budget_note(
                    runs,
                    groups.get(ans.other_part or ans.part, {}).get(ans.other or "", []),
                    claim.budget,
                    claim.better,
                )
        else:
            v.ours, v.interval, v.word = judge_difference(claim.value, mine, other, claim.relative)
        return v
    if not mine:
        v.word, v.why = "no measurement", f"the runs have no {key}"
        return v
    v.ours = format_pm(mine, 4)
    v.means[""] = mean_std(mine)[0]
    if claim.kind == "count":
        v.ours = f"{mine[0]:,.0f}" + ("" if len(set(mine)) == 1 else f" … {max(mine):,.0f}")
        v.interval, v.word = judge_count(claim.value, claim.value_text, mine)
    else:
        v.interval, v.word = judge_value(claim.value, mine)
    for name, other_key in (metric.candidates if metric else {}).items():
        alt = values(groups, ans.part, ans.label, other_key)
        if alt:
            v.candidates.append(f"{name}: {format_pm(alt, 4)}")
            v.means[name] = mean_std(alt)[0]
    return v


def judge_all(cf: ClaimsFile, groups: Groups, scale: str, out: Path | None = None) -> list[Verdict]:
    """Every verdict of a claims file, in its order."""
    return [v for c in cf.all_claims() for v in judge(cf, c, groups, scale, out)]
