"""Report sections for the induction circuit (`probes.ablation`'s `circuit` and patching):
which input of the induction heads reads the previous-token heads, in one run and across
a sweep's seeds, and each head's patching effect beside the floor of a model that cannot
induce."""

from __future__ import annotations

import numpy as np

from attnlab.report.tables import markdown_table
from attnlab.stats import format_pm, welch_interval

PATH_ROWS = (  # circuit key → what was ablated
    ("all", "every path (the heads themselves)"),
    ("q", "only into the induction layer's queries"),
    ("k", "only into its keys"),
    ("v", "only into its values"),
    ("logits", "only into the logits (direct path)"),
    ("pattern_preserving", "every path, all attention patterns held (pattern-preserving)"),
)
HOW_WORDS = {"mean_pos": "per-position mean", "resample": "resample"}
SINGLE_PATHS = ("q", "k", "v", "logits")


def _f(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


def circuit_section(c: dict) -> str:
    """One run's circuit: path ablations, path patching and composition scores."""
    if "skipped" in c:
        return (
            f"### Which input reads the previous-token heads\n\nNot measured: {c['skipped']}.\n\n"
        )
    sender = f"L{c['sender']['layer']} heads {', '.join(map(str, c['sender']['heads']))}"
    readers = "; ".join(f"L{b} heads {', '.join(map(str, hs))}" for b, hs in c["receivers"].items())
    hows = c["ablations"]
    rows = [
        [
            words,
            *(_f(c["ablation"][h][key]["repeat_accuracy"]) for h in hows),
            _f(c["patching"].get(key)),
            _f(c["patching_attention"].get(key)),
        ]
        for key, words in PATH_ROWS
    ]
    comp = c["composition"]
    return (
        "### Which input reads the previous-token heads (path ablation and patching)\n\n"
        f"Sender: the previous-token heads ({sender}); receivers: the induction heads "
        f"({readers}). Each row removes the senders' output from one place only (Olsson "
        "et al. 2022; path patching, Wang et al. 2022): repeat accuracy with the "
        "senders ablated by "
        + " and by ".join(HOW_WORDS.get(h, h) for h in hows)
        + " (values from another probe set), then the same path patched from the clean "
        "run into the corrupted one (first copy redrawn), as the share of the gap restored "
        "(0 = corrupted, 1 = clean) in the repeat's log-probability and in the induction "
        "heads' attention to their target (the key after the earlier copy).\n\n"
        + markdown_table(
            [
                "senders ablated",
                *(f"accuracy, {HOW_WORDS.get(h, h)}" for h in hows),
                "patched: log-prob share",
                "patched: attention share",
            ],
            rows,
        )
        + "\nA path patched into the keys can restore the attention and still not the "
        "log-probability: the restored attention lands on the corrupted run's first copy, "
        "whose values carry the redrawn tokens.\n\n"
        f"Composition scores from the weights (mean over these sender → receiver head "
        f"pairs): Q {_f(comp['Q'])}, K {_f(comp['K'])}, V {_f(comp['V'])}; two "
        f"random matrices score {_f(comp['baseline'])}"
        + ("" if comp["exact"] else " (a conv or smeared keys sits between: not exact)")
        + ".\n\n"
    )


def sweep_circuit_section(groups: dict, order: list[str]) -> str:
    """Across seeds: the circuit table (mean ± std), which single path's ablation hurts
    most in each seed, and the patching floor."""
    return _sweep_paths(groups, order) + _sweep_floor(groups, order)


def _circuits(groups: dict, g: str) -> list[dict]:
    tables = [r["probes"].get("ablation") or {} for r in groups[g]]
    return [t["circuit"] for t in tables if "circuit" in t and "skipped" not in t["circuit"]]


def _sweep_paths(groups: dict, order: list[str]) -> str:
    have = [g for g in order if _circuits(groups, g)]
    if not have:
        return ""
    text = "### Which input reads the previous-token heads (path ablation, by seed)\n\n"
    for g in have:
        cs = _circuits(groups, g)
        hows = cs[0]["ablations"]
        rows = []
        for key, words in PATH_ROWS:
            row = [words]
            for h in hows:
                row.append(format_pm([c["ablation"][h][key]["repeat_accuracy"] for c in cs]))
            row.append(
                format_pm([c["patching_attention"][key] for c in cs])
                if key != "pattern_preserving"
                else "–"
            )
            rows.append(row)
        worst = [
            min(SINGLE_PATHS, key=lambda k, c=c: c["ablation"][hows[0]][k]["repeat_accuracy"])
            for c in cs
        ]
        comp = {m: format_pm([c["composition"][m] for c in cs]) for m in ("Q", "K", "V")}
        base = [
            r["probes"]["ablation"]["baseline"]["repeat_accuracy"]
            for r in groups[g]
            if r["probes"].get("ablation")
        ]
        text += (
            f"**{g}** ({len(cs)} seed(s) with a previous-token head before an induction layer; "
            f"nothing ablated: {format_pm(base)}):\n\n"
            + markdown_table(
                [
                    "senders ablated",
                    *(f"accuracy, {HOW_WORDS.get(h, h)}" for h in hows),
                    "patched: attention share",
                ],
                rows,
            )
            + f"\nThe single path whose {HOW_WORDS.get(hows[0], hows[0])} ablation hurts most, "
            f"per seed: {', '.join(worst)}. Composition scores (Q / K / V): {comp['Q']} / "
            f"{comp['K']} / {comp['V']}; random baseline "
            f"{_f(cs[0]['composition']['baseline'])}.\n\n"
        )
    return text


def _max_patch(r: dict) -> float | None:
    pt = (r["probes"].get("ablation") or {}).get("patching") or {}
    if not pt.get("layers"):
        return None
    return float(np.nanmax(np.asarray(pt["recovered"], dtype=float)))


def _sweep_floor(groups: dict, order: list[str]) -> str:
    """Each configuration's largest one-head patching share beside the floor of the
    configurations that cannot induce by construction (`lacks_induction`)."""
    control = [
        g
        for g in order
        if groups[g]
        and all(
            ((r["probes"].get("ablation") or {}).get("patching") or {}).get("control")
            for r in groups[g]
        )
    ]
    floor = [v for g in control for r in groups[g] if (v := _max_patch(r)) is not None]
    rows = []
    for g in order:
        vals = [v for r in groups[g] if (v := _max_patch(r)) is not None]
        if not vals:
            continue
        d = None if g in control else welch_interval(vals, floor)
        verdict = (
            "the floor" if g in control else ("–" if d is None else ("yes" if d.low > 0 else "no"))
        )
        rows.append(
            [
                g,
                format_pm(vals),
                "–" if d is None else f"{d.diff:+.3f} [{d.low:+.3f}, {d.high:+.3f}]",
                verdict,
            ]
        )
    if not rows or not floor:
        return ""
    return (
        "### Patching against a model that cannot induce\n\n"
        "The largest share of the repeat's log-probability gap (0 = corrupted, 1 = clean) "
        "that patching one head's output restores, beside the same number for "
        f"{', '.join(control)} (one attention-only layer: its queries cannot match the "
        "token before a key, so it has no induction head by construction). A head's effect "
        "counts as distinguishable from that floor when the 95% Welch interval of the "
        "difference lies above 0.\n\n"
        + markdown_table(
            [
                "configuration",
                "largest one-head share",
                "minus the floor [95% CI]",
                "above the floor",
            ],
            rows,
        )
        + "\n"
    )
