"""Measurements that answer a write-up's observations (`kind: observation` claims).

Each measurement reads what our runs wrote (summaries, metrics logs, probes, translations)
and states its criterion; the claim's `expect` says what the write-up's statement
predicts there. Words: `seen` / `not seen` (every run agrees), `seen in k of n runs`,
`not established` (an interval that holds the boundary), `explained by …` (a switch
measurement). A claim with no data gets `no measurement` and the reason.

- `probe` / `summary`: the value at `path` of `probes.json` / `summary.json` (`*` takes
  every key or item; the values reached are reduced by `reduce`), against `expect`;
- `switches`: write-up 001's mechanisms, each configuration's value of the claim's metric
  beside the write-up's; the configuration within the claim's `tolerance` of it with the fewest
  mechanisms on explains it (`tolerance`, 0.05 unless the claim says);
- `budget_curve`: two configurations' validation loss at equal tokens seen, their
  difference with a 95% Welch band at every evaluation, and where its sign changes;
- `clipped_share`: the share of logged steps whose gradient norm exceeded the clip;
- `first_letter_errors` / `errors_by_length`: Pig Latin mistakes by the word's first
  letter (vowel or consonant) and by its length;
- `dt_after_separator`: a Mamba model's Δ after the separator over Δ up to it;
- `playground_key_change`: the attention exercise of write-up 003 (1.4.3), computed.
"""

from __future__ import annotations

import itertools
import math
import operator
from pathlib import Path

from attnlab.experiments.claims import Claim, ClaimsFile, Ours
from attnlab.experiments.verdicts import (
    Groups,
    Verdict,
    differences,
    metric_value,
    setting_phrase,
)
from attnlab.run_dir import RunDir
from attnlab.stats import format_pm, mean_std, welch_interval

OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
OPS["=="] = lambda a, b: math.isclose(a, b, abs_tol=1e-9)
VOWELS = set("aeiou")
LONG_WORD = 10  # letters: a long word for `errors_by_length`


def _runs(groups: Groups, part: str, label: str) -> list[dict]:
    return groups.get(part, {}).get(label, [])


def _reach(obj, path: list[str]) -> list[float]:
    """Every number at `path` in nested dicts / lists (`*`: all keys or items)."""
    if obj is None:
        return []
    if not path:
        if isinstance(obj, dict):
            return [x for v in obj.values() for x in _reach(v, [])]
        if isinstance(obj, list):
            return [x for v in obj for x in _reach(v, [])]
        return [float(obj)] if isinstance(obj, int | float) and not isinstance(obj, bool) else []
    key, rest = path[0], path[1:]
    if key == "*":
        items = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, list) else []
        return [x for v in items for x in _reach(v, rest)]
    if isinstance(obj, dict):
        return _reach(obj.get(key), rest)
    if isinstance(obj, list) and key.lstrip("-").isdigit() and -len(obj) <= int(key) < len(obj):
        return _reach(obj[int(key)], rest)
    return []


def _config(run: dict) -> dict:
    import yaml

    return yaml.safe_load(RunDir(run["dir"]).config.read_text(encoding="utf-8"))


def _reduce(xs: list[float], how: str) -> float | None:
    if not xs:
        return None
    return {"max": max, "min": min, "mean": lambda v: sum(v) / len(v)}[how](xs)


def _source(run: dict, measure: str):
    return run["probes"] if measure == "probe" else run["summary"]


def _per_run(runs: list[dict], claim: Claim, path: list[str]) -> list[float]:
    out = []
    for r in runs:
        v = _reduce(_reach(_source(r, claim.measure), path), claim.reduce)
        if v is not None:
            out.append(v)
    return out


def _base(cf: ClaimsFile, claim: Claim, ans: Ours, groups: Groups, scale: str) -> Verdict:
    v = Verdict(claim, claim.value_text or claim.quote, answer=ans)
    runs = _runs(groups, ans.part, ans.label)
    if runs:
        v.differences = differences(cf, claim, runs[0])
        v.setting = setting_phrase(scale, v.differences)
    return v


def _path_measure(cf, claim, ans, groups, scale) -> Verdict:
    """`probe` / `summary`: the value at `claim.path` against `claim.expect`."""
    v = _base(cf, claim, ans, groups, scale)
    mine = _per_run(_runs(groups, ans.part, ans.label), claim, claim.path)
    if not mine:
        v.word, v.why = "no measurement", f"{ans.part} / {ans.label}: nothing at {claim.path}"
        return v
    v.ours = format_pm(mine, 4)
    exp, op = claim.expect, OPS[claim.expect.op]
    if exp.other is not None:
        theirs = _per_run(_runs(groups, ans.part, exp.other), claim, claim.path)
        if not theirs:
            v.word, v.why = "no measurement", f"{exp.other}: nothing at {claim.path}"
            return v
        v.ours = f"{format_pm(mine, 4)} against {exp.other} {format_pm(theirs, 4)}"
        d = welch_interval(mine, theirs)
        if d is None:
            held = op(mean_std(mine)[0], mean_std(theirs)[0])
            v.interval = "none"
            v.word = f"{'seen' if held else 'not seen'} (one run a side: no interval)"
            return v
        v.interval = f"{d.diff:+.4f} [{d.low:+.4f}, {d.high:+.4f}]"
        wants_up = exp.op in (">", ">=")
        if (d.low > 0) == wants_up and d.significant:
            v.word = "seen"
        elif d.significant:
            v.word = "not seen (the opposite holds)"
        else:
            v.word = "not established (the interval holds 0)"
        return v
    if exp.path is not None:
        rs = _runs(groups, ans.part, ans.label)
        refs = _per_run(rs, claim, exp.path)
        held = [op(a, b) for a, b in zip(mine, refs, strict=False)]
        v.ours = f"{format_pm(mine, 4)} against {format_pm(refs, 4)} ({'/'.join(exp.path)})"
    else:
        held = [op(a, exp.value) for a in mine]
        v.interval = f"criterion {exp.op} {exp.value:g}"
    v.word = _agreement(held)
    return v


def _agreement(held: list[bool]) -> str:
    if all(held):
        return "seen" + (f" (all {len(held)} runs)" if len(held) > 1 else "")
    if not any(held):
        return "not seen" + (f" (all {len(held)} runs)" if len(held) > 1 else "")
    return f"seen in {sum(held)} of {len(held)} runs"


def _switches(cf: ClaimsFile, claim: Claim, groups: Groups, scale: str) -> list[Verdict]:
    """Each configuration (a set of mechanisms on) beside the write-up's value; the one
    within the claim's `tolerance` with the fewest mechanisms on explains it."""
    metric = cf.metrics[claim.metric]
    target = claim.value
    v = _base(cf, claim, claim.ours[0], groups, scale)
    rows, close = [], []
    for ans in claim.ours:
        runs = _runs(groups, ans.part, ans.label)
        vals = [x for r in runs if (x := metric_value(r, metric.ours)) is not None]
        if not vals:
            rows.append(f"{ans.name}: not run")
            continue
        m = mean_std(vals)[0]
        other = []
        for name, key in metric.candidates.items():
            alt = [x for r in runs if (x := metric_value(r, key)) is not None]
            other += [f"{name} {mean_std(alt)[0]:.4f}"] if alt else []
        shown = f" ({'; '.join(other)})" if other else ""
        rows.append(f"{ans.name} {format_pm(vals, 4, show_n=len(vals) > 1)}{shown}")
        if abs(m - target) <= claim.tolerance:
            close.append(ans.name)
    v.ours = "; ".join(rows)
    v.interval = f"within {claim.tolerance:g} of {target:.4f}"
    if any(r.endswith("not run") for r in rows) and not close:
        v.word, v.why = "not measured yet", "a configuration has not run"
    elif close:
        v.word = f"explained by: {close[-1]}"
    else:
        v.word = "explained by none (no configuration comes within the tolerance)"
    return [v]


def _budget_curve(cf, claim, ans, groups, scale) -> Verdict:
    """Validation loss of `label` minus `other` at each evaluation both logged."""
    from attnlab.experiments.curves import loss_difference

    v = _base(cf, claim, ans, groups, scale)
    curve = loss_difference(
        _runs(groups, ans.part, ans.label), _runs(groups, ans.part, ans.other or "")
    )
    if not curve:
        v.word, v.why = "no measurement", "no evaluation both configurations logged"
        return v
    first, last = curve[0], curve[-1]

    def at(p) -> str:
        band = f" [{p.low:+.4f}, {p.high:+.4f}]" if p.low is not None else ""
        return f"{p.diff:+.4f}{band} at {p.tokens / 1e6:.2f}M tokens"

    v.ours = f"{ans.label} − {ans.other} val loss: {at(first)}; {at(last)}"
    if first.low is None:  # one run a side: no band, the sign only
        lower = [p for p in curve if p.diff < 0]
        v.word = (
            f"seen at {len(lower)} of {len(curve)} evaluations (one run a side: no band)"
            if lower and curve[0].diff < 0
            else "not seen at the first evaluation (one run a side: no band)"
        )
    else:
        ahead = [p for p in curve if p.high is not None and p.high < 0]
        behind = [p for p in curve if p.low is not None and p.low > 0]
        if not ahead or ahead[0] is not first:
            v.word = "not seen at the first evaluation"
        elif not behind:
            v.word = f"seen: {ans.label} lower through {ahead[-1].tokens / 1e6:.1f}M tokens"
        else:
            v.word = (
                f"seen early: {ans.label} lower through {ahead[-1].tokens / 1e6:.1f}M tokens, "
                f"{ans.other} lower from {behind[0].tokens / 1e6:.1f}M"
            )
    v.interval = "95% Welch band over seeds"
    return v


def _clipped_share(cf, claim, ans, groups, scale) -> Verdict:
    """The share of logged steps whose gradient norm exceeded the run's clip."""
    v = _base(cf, claim, ans, groups, scale)

    def share(runs: list[dict]) -> list[float]:
        out = []
        for r in runs:
            norms = [x["grad_norm"] for x in r["records"] if x.get("split") == "train"]
            clip = _config(r).get("train", {}).get("grad_clip") or math.inf
            if norms:
                out.append(sum(n > clip for n in norms) / len(norms))
        return out

    mine = share(_runs(groups, ans.part, ans.label))
    theirs = share(_runs(groups, ans.part, claim.expect.other if claim.expect else ""))
    if not mine or not theirs:
        v.word, v.why = "no measurement", "no gradient norms logged"
        return v
    v.ours = f"{format_pm(mine, 4)} of logged steps clipped, against {format_pm(theirs, 4)}"
    d = welch_interval(mine, theirs)
    if d is None:
        more = mean_std(mine)[0] > mean_std(theirs)[0]
        v.word = f"{'seen' if more else 'not seen'} (one run a side: no interval)"
    else:
        v.interval = f"{d.diff:+.4f} [{d.low:+.4f}, {d.high:+.4f}]"
        v.word = "seen" if d.low > 0 else ("not seen" if d.high < 0 else "not established")
    return v


def _translation_errors(cf, claim, ans, groups, scale, split: str = "validation") -> Verdict:
    """Mistake rates of two groups of words: vowel- against consonant-initial, or long
    against short; the words themselves are the split's, rebuilt from the run's config."""
    from attnlab.config import load_config
    from attnlab.data.piglatin import load_words, split_words

    v = _base(cf, claim, ans, groups, scale)
    rates: dict[str, list[float]] = {"a": [], "b": []}
    names = ("vowel-initial", "consonant-initial")
    if claim.measure == "errors_by_length":
        names = (f"{LONG_WORD}+ letters", f"under {LONG_WORD}")
    for r in _runs(groups, ans.part, ans.label):
        rd = RunDir(r["dir"])
        if not rd.translations.is_file():
            continue
        wrong = {m["word"] for m in rd.read_translations()[split]["mistakes"]}
        data = load_config(rd.config).data
        words = split_words(load_words(data)[0], data)[split]
        if claim.measure == "errors_by_length":
            a = [w for w in words if len(w) >= LONG_WORD]
            b = [w for w in words if len(w) < LONG_WORD]
        else:
            a = [w for w in words if w[0].lower() in VOWELS]
            b = [w for w in words if w[0].lower() not in VOWELS]
        if a and b:
            rates["a"].append(sum(w in wrong for w in a) / len(a))
            rates["b"].append(sum(w in wrong for w in b) / len(b))
    if not rates["a"]:
        v.word, v.why = "no measurement", "no translations written"
        return v
    v.ours = (
        f"mistakes per word: {names[0]} {format_pm(rates['a'], 4)}, "
        f"{names[1]} {format_pm(rates['b'], 4)} ({split})"
    )
    d = welch_interval(rates["a"], rates["b"])
    if d is None:
        more = rates["a"][0] > rates["b"][0]
        v.word = f"{'seen' if more else 'not seen'} (one run: no interval)"
    else:
        v.interval = f"{d.diff:+.4f} [{d.low:+.4f}, {d.high:+.4f}]"
        v.word = "seen" if d.low > 0 else ("not seen" if d.high < 0 else "not established")
    return v


def _dt_after_separator(cf, claim, ans, groups, scale) -> Verdict:
    """Mean Δ after the separator over mean Δ up to it, over probe words and layers."""
    v = _base(cf, claim, ans, groups, scale)
    ratios = []
    for r in _runs(groups, ans.part, ans.label):
        per = []
        for word in (r["probes"] or {}).get("attention", []):
            ssm = word.get("ssm")
            if not ssm or "[SEP]" not in ssm["labels"]:
                continue
            cut = ssm["labels"].index("[SEP]") + 1
            for layer in ssm["layers"]:
                before, after = layer["dt_mean"][:cut], layer["dt_mean"][cut:]
                if before and after:
                    per.append((sum(after) / len(after)) / (sum(before) / len(before)))
        if per:
            ratios.append(sum(per) / len(per))
    if not ratios:
        v.word, v.why = "no measurement", "no Mamba Δ probe with a separator"
        return v
    v.ours = f"Δ after / up to the separator: {format_pm(ratios, 3)}"
    v.interval = f"criterion {claim.expect.op} {claim.expect.value:g}"
    v.word = _agreement([OPS[claim.expect.op](x, claim.expect.value) for x in ratios])
    return v


def _playground_key_change(cf, claim, groups, scale) -> list[Verdict]:
    """Write-up 003's 1.4.3 on the models' attention function: a query that favours
    tokens 0 and 1; k₂ moved toward it raises q·k₂; the weights on 0 and 1 must fall."""
    import torch

    from attnlab.experiments.playground import KEYS, VALUES, attend

    q = torch.tensor([10.0, 10.0, 0.0, 0.0])
    steps = []
    for a in (0.0, 0.5, 0.7, 0.8, 1.0):
        keys = KEYS.clone()
        keys[2] = KEYS[2] + a * 10.0 * q / q.norm()  # q·k₂ grows with a
        _, w = attend(q, keys, VALUES)
        steps.append((float(q @ keys[2]), w.tolist()))
    falls = all(s[1][0] >= t[1][0] and s[1][2] <= t[1][2] for s, t in itertools.pairwise(steps))
    falls = falls and steps[-1][1][2] > 0.5 > steps[-1][1][0]
    v = Verdict(claim, claim.quote, setting="computed")
    v.ours = "; ".join(f"q·k₂ {s:.0f}: w {w[0]:.3f} / {w[1]:.3f} / {w[2]:.3f}" for s, w in steps)
    v.interval = "weights on tokens 0 / 1 / 2 as q·k₂ grows (q·k₀ = q·k₁ = 100)"
    v.word = "seen" if falls else "not seen"
    return [v]


def _scan_bench(cf, claim, groups, scale, out) -> list[Verdict]:
    """`attnlab bench scan`'s measurement in the reproduction's `bench_scan/`: with
    `path: [METHOD, rel_error]`, whether METHOD's error grows with the length (each length
    at least the one before, the longest ≥ 2× the shortest); with `path: [A, B]`, whether
    A is faster than B (forward + backward) at every length."""
    from attnlab.run_dir import read_json

    v = Verdict(claim, claim.value_text or claim.quote, setting="one CPU core, no compile")
    path = Path(out or ".") / "bench_scan" / "scan_bench.json"
    if out is None or not path.is_file():
        v.word, v.why = "no measurement", "run `attnlab bench scan --out DIR/bench_scan`"
        return [v]
    res = read_json(path)["results"]
    lengths = sorted(res, key=int)
    a, b = claim.path
    if b == "rel_error":
        errs = [res[n][a]["rel_error"] for n in lengths if "rel_error" in res[n].get(a, {})]
        v.ours = ", ".join(f"L {n}: {e:.1e}" for n, e in zip(lengths, errs, strict=False))
        grows = all(y >= x for x, y in itertools.pairwise(errs)) and errs[-1] >= 2 * errs[0]
        v.interval = f"{a} scan's max relative error against float64"
        v.word = "seen" if grows else "not seen"
        return [v]
    ms = [(n, res[n][a]["ms"], res[n][b]["ms"]) for n in lengths if "ms" in res[n].get(a, {})]
    v.ours = ", ".join(f"L {n}: {x:.1f} against {y:.1f} ms" for n, x, y in ms)
    v.interval = f"{a} against {b}, forward + backward, median of the timed calls"
    v.word = "seen" if all(x < y for _, x, y in ms) else "not seen"
    return [v]


PER_ANSWER = {
    "probe": _path_measure,
    "summary": _path_measure,
    "budget_curve": _budget_curve,
    "clipped_share": _clipped_share,
    "first_letter_errors": _translation_errors,
    "errors_by_length": _translation_errors,
    "dt_after_separator": _dt_after_separator,
}
WHOLE = {"switches": _switches, "playground_key_change": _playground_key_change}
NEEDS_OUT = {"scan_bench": _scan_bench}  # measurements that read the reproduction folder
MEASURES = (*PER_ANSWER, *WHOLE, *NEEDS_OUT)


def measure(
    cf: ClaimsFile, claim: Claim, groups: Groups, scale: str, out: Path | None = None
) -> list[Verdict]:
    """The verdicts of an observation measured by `claim.measure` (`out`: the
    reproduction's folder, for the measurements that read it)."""
    if claim.measure in NEEDS_OUT:
        return NEEDS_OUT[claim.measure](cf, claim, groups, scale, out)
    if claim.measure in WHOLE:
        return WHOLE[claim.measure](cf, claim, groups, scale)
    if claim.measure not in PER_ANSWER:
        raise ValueError(f"{claim.id}: unknown measure {claim.measure!r}")
    out = []
    for ans in claim.ours:
        if not _runs(groups, ans.part, ans.label):
            out.append(
                Verdict(
                    claim,
                    claim.value_text or claim.quote,
                    answer=ans,
                    word="no finished run",
                    why=f"{ans.part} / {ans.label} has not run",
                )
            )
            continue
        out.append(PER_ANSWER[claim.measure](cf, claim, ans, groups, scale))
    return out
