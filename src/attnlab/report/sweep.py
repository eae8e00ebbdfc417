"""The report of a sweep directory: per-configuration statistics over seeds, differences
with 95% intervals, failed trials, figures, `results.json`, `report.md` and `report.html`.

Reads what the caller loaded from the Optuna study (the trials' states, values and
failure reasons) and the trials' run directories only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from attnlab.report.html import load_explorer_run, write_html
from attnlab.report.plots import curves, interval_plot, line_plot, seed_lines_plot
from attnlab.report.run import load_run
from attnlab.report.tables import markdown_table, summary_value
from attnlab.run_dir import PLOTS, REPORT, RESULTS, RunDir, atomic_write_text, plot_link, write_json
from attnlab.stats import format_pm, mean_interval, mean_std, welch_interval

# (configuration label → runs, labels best first, plots folder) → Markdown: a task's figures
SweepSection = Callable[[dict, list[str], Path], str]

# (key in the run's figures, column label); a column shows when any run has the key
COLUMNS = (
    ("final_val_loss", "val loss"),
    ("final_val_accuracy", "val accuracy"),
    ("test_loss", "test loss"),
    ("test_accuracy", "test accuracy"),
    ("final_val_word_accuracy", "val word acc"),
    ("test_word_accuracy", "test word acc"),
    ("classification.best_val_accuracy", "best val acc"),
    ("classification.best_epoch", "best epoch"),
    ("classification.test_accuracy", "test acc (best ckpt)"),
    ("train_word_accuracy", "train word acc"),
    ("max_induction", "max induction"),
    ("icl_score", "ICL score"),
    ("max_alignment", "best alignment"),
    ("params", "params"),
    ("wall_s", "wall (s)"),
)


def run_figures(run_dir: Path) -> dict:
    """The figures a sweep tabulates for one finished run: summary keys (dotted) and probes."""
    summary, records = load_run(run_dir)
    p = RunDir(run_dir).read_probes()
    out = {"summary": summary, "records": records, "probes": p}
    if p is not None and "heads" in p:
        out["max_induction"] = p["heads"]["max_induction"]["score"]
        out["icl_score"] = p.get("icl", {}).get("score")
    if p is not None and "alignment" in p:
        scores = p["alignment"]["scores"]
        out["max_alignment"] = max((max(row) for row in scores), default=None)
    return out


def figure(run: dict, key: str) -> float | None:
    """A (dotted) summary key or a probe figure of one run, as a float or None."""
    if key in run and key not in ("summary", "records", "probes"):
        return run[key]
    return summary_value(run["summary"], key)


def group_runs(sweep_dir: Path, trials: list[dict]) -> dict[str, list[dict]]:
    """Configuration label → its finished runs (each with `seed`, `dir` and figures)."""
    groups: dict[str, list[dict]] = {}
    for t in sorted(trials, key=lambda t: t["number"]):
        if t["state"] != "complete":
            continue
        for rel in t.get("run_dirs") or []:
            d = Path(sweep_dir) / rel
            if RunDir(d).is_finished():
                groups.setdefault(t["label"], []).append({"dir": d, **run_figures(d)})
    return groups


def write_sweep_report(
    sweep_dir: Path,
    spec,
    trials: list[dict],
    labels: list[str],
    section: SweepSection | None = None,
) -> Path:
    """Write `results.json`, `report.md`, `report.html` and `plots/` of a sweep directory.

    `trials` are the study's trials (`experiments.sweep.load_trials`), `labels` the spec's
    configurations in its order, `section` the task's own figures.
    """
    sweep_dir = Path(sweep_dir)
    groups = group_runs(sweep_dir, trials)
    if spec.search is None:  # table order: the spec's
        order = [label for label in labels if label in groups]
    else:  # best first
        sign = 1 if spec.direction == "minimize" else -1
        order = sorted(
            groups, key=lambda g: sign * mean_std([figure(r, spec.metric) for r in groups[g]])[0]
        )
    plots = sweep_dir / PLOTS
    metric_vals = {
        g: [v for r in groups[g] if (v := figure(r, spec.metric)) is not None] for g in order
    }
    text = _header(spec, trials)
    if not order:
        text += "\nNo trial has finished yet.\n"
    else:
        text += _config_table(spec, groups, order)
        text += _differences(spec, order, metric_vals)
        text += _figures(spec, groups, order, metric_vals, trials, plots)
        if section is not None:
            text += section(groups, order, plots)
    text += _failures(trials)
    results = {
        "spec": spec.model_dump(mode="json", by_alias=True),
        "trials": trials,
        "configurations": {
            g: {
                "runs": [str(r["dir"].relative_to(sweep_dir)) for r in groups[g]],
                spec.metric: metric_vals[g],
            }
            for g in order
        },
    }
    write_json(sweep_dir / RESULTS, results)
    md = atomic_write_text(sweep_dir / REPORT, text)
    explorer = [load_explorer_run(groups[g][0]["dir"], g) for g in order]
    write_html(md, [e for e in explorer if e is not None])
    return md


def _header(spec, trials: list[dict]) -> str:
    from collections import Counter

    rerun = _reruns(trials)
    states = Counter("rerun" if t["number"] in rerun else t["state"] for t in trials)
    what = {
        "grid": "every combination of " + ", ".join(f"`{k}`" for k in spec.grid or {}),
        "ablation": "the base, then one change at a time: "
        + ", ".join(f"`{k}`" for k in spec.ablation or {}),
        "search": f"{spec.search.sampler if spec.search else ''} search over "
        + ", ".join(f"`{k}`" for k in (spec.search.params if spec.search else {})),
    }[spec.kind]
    seeds = spec.seed_list
    shown = f"1..{len(seeds)}" if seeds == list(range(1, len(seeds) + 1)) else str(seeds)
    return (
        f"# Sweep: {spec.name}\n\n"
        + (f"{spec.description.strip()}\n\n" if spec.description else "")
        + (f"Only: {', '.join(spec.only)}.\n\n" if spec.only is not None else "")
        + f"{'An' if spec.kind[0] in 'aeiou' else 'A'} {spec.kind}: {what}. "
        + (f"Base config `{spec.base}`" if spec.base else "No base config")
        + (f", overrides {', '.join(f'`{s}`' for s in spec.set)}" if spec.set else "")
        + f"; {len(seeds)} seed(s) per configuration (`train.seed` = {shown}). "
        f"Objective: {spec.direction} `{spec.metric}`. Trials: "
        + ", ".join(f"{n} {_STATE_WORDS.get(s, s)}" for s, n in sorted(states.items()))
        + ".\n\n"
    )


_STATE_WORDS = {
    "complete": "complete",
    "fail": "failed (see below)",
    "rerun": "stopped and rerun (see below)",
    "running": "running",
}


def _reruns(trials: list[dict]) -> dict[int, dict]:
    """The failed trials that were enqueued again (their worker died): number → the rerun."""
    return {
        t["retry_of"]: t
        for t in sorted(trials, key=lambda t: t["number"])
        if t.get("retry_of") is not None
    }


def _config_table(spec, groups: dict, order: list[str]) -> str:
    keys = [
        (k, lab)
        for k, lab in COLUMNS
        if any(figure(r, k) is not None for g in order for r in groups[g])
    ]
    if spec.metric not in [k for k, _ in keys]:
        keys.insert(0, (spec.metric, spec.metric))
    rows = []
    for g in order:
        row = [g, len(groups[g])]
        for k, _ in keys:
            vals = [v for r in groups[g] if (v := figure(r, k)) is not None]
            if k in ("params", "wall_s", "classification.best_epoch") and vals:
                row.append(format_pm(vals, 1) if k != "params" else f"{vals[0]:,.0f}")
            else:
                row.append(format_pm(vals, 4))
        rows.append(row)
    return (
        "## Configurations\n\n"
        + markdown_table(["configuration", "n", *(lab for _, lab in keys)], rows)
        + "\nEach cell: mean ± sample standard deviation over the seeds that finished, and "
        "their number n. Final figures use the final weights.\n\n"
    )


def _differences(spec, order: list[str], vals: dict[str, list[float]]) -> str:
    if len(order) < 2:
        return ""
    ref = order[0]
    rows = []
    for g in order[1:]:
        d = welch_interval(vals[g], vals[ref])
        if d is None:
            point = (
                f"{mean_std(vals[g])[0] - mean_std(vals[ref])[0]:+.4f} [no interval]"
                if vals[g] and vals[ref]
                else "–"
            )
            rows.append([g, ref, point, "n < 2 on a side: not tested"])
            continue
        verdict = "yes" if d.significant else "no"
        rows.append(
            [g, ref, f"{d.diff:+.4f} [{d.low:+.4f}, {d.high:+.4f}]", f"{verdict} (df {d.df:.1f})"]
        )
    better = "lower" if spec.direction == "minimize" else "higher"
    return (
        f"## Differences in `{spec.metric}`\n\n"
        + markdown_table(["configuration", "minus", "difference [95% CI]", "CI excludes 0"], rows)
        + f"\nDifference of means with a 95% Welch t interval over seeds ({better} is "
        f"better). With {len(spec.seed_list)} seed(s) per configuration an interval is wide or "
        "missing: a difference whose interval holds 0, or has none, is not established by "
        "this sweep.\n\n"
    )


def _figures(spec, groups, order, metric_vals, trials, plots: Path) -> str:
    text = "## Figures\n\n"
    means, lows, highs = zip(*(mean_interval(metric_vals[g]) for g in order), strict=True)
    interval_plot(
        order,
        list(means),
        list(lows),
        list(highs),
        [metric_vals[g] for g in order],
        spec.metric,
        f"{spec.metric}: mean (bar), 95% t interval, seeds (dots)",
        plots / "metric_by_configuration.png",
    )
    text += f"![metric by configuration]({plot_link('metric_by_configuration.png')})\n\n"
    series = {
        g: [curves(r["records"], "validation", "loss") for r in groups[g]] for g in order[:10]
    }
    seed_lines_plot(
        series, "step", "validation loss", "validation loss (thin: seeds)", plots / "val_loss.png"
    )
    text += f"![validation loss]({plot_link('val_loss.png')})\n\n"
    acc = {
        g: [curves(r["records"], "validation", "accuracy") for r in groups[g]] for g in order[:10]
    }
    if any(x for runs in acc.values() for x, _ in runs):
        seed_lines_plot(
            acc,
            "step",
            "validation accuracy",
            "validation accuracy (thin: seeds)",
            plots / "val_accuracy.png",
        )
        text += f"![validation accuracy]({plot_link('val_accuracy.png')})\n\n"
    if spec.search is not None:
        done = sorted((t for t in trials if t["state"] == "complete"), key=lambda t: t["number"])
        best, sofar = [], math.inf if spec.direction == "minimize" else -math.inf
        pick = min if spec.direction == "minimize" else max
        for t in done:
            sofar = pick(sofar, t["value"])
            best.append(sofar)
        xs = [t["number"] for t in done]
        line_plot(
            {"trial": (xs, [t["value"] for t in done]), "best so far": (xs, best)},
            "trial",
            spec.metric,
            "search history",
            plots / "search_history.png",
        )
        text += f"![search history]({plot_link('search_history.png')})\n\n"
    return text


def _failures(trials: list[dict]) -> str:
    failed = [t for t in trials if t["state"] == "fail"]
    if not failed:
        return ""
    rerun = _reruns(trials)
    rows = [
        [
            t["number"],
            t.get("job"),
            t.get("fail_reason") or "–",
            f"trial {r['number']} ({r['state']})" if (r := rerun.get(t["number"])) else "–",
        ]
        for t in failed
    ]
    return (
        "## Stopped or failed trials\n\n"
        + markdown_table(["trial", "job", "reason", "rerun as"], rows)
        + "\nA trial whose worker died is enqueued again and rerun; a trial that failed by "
        "itself (NaN loss, an error) is not retried; its run directory holds `error.txt`.\n"
    )
