"""`attnlab reproduce NAME`: rerun a write-up's studies and judge its claims by ours.

A reproduction (`experiments.reproductions`) is a few packaged sweeps, its parts, run on
the sweep machinery (resumable, failures recorded) into `OUT/PART/`. Its write-up's
numbers and claims are data (`experiments/claims/NAME.yaml`); each is judged against
the parts' runs by one rule (`experiments.verdicts`), and `reproduction.md` / `.html`
set them side by side with each part's table, the leak checks, the figures the write-up
shows drawn from our runs, and the settings it states and leaves open. `verdicts.json`
holds every verdict as data: the README's headline table is generated from it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from attnlab.config.load import config_path
from attnlab.errors import UserError
from attnlab.experiments.claims import load_claims
from attnlab.experiments.judging import judge, judge_all
from attnlab.experiments.reproductions import REPRODUCTIONS, SCALES, Reproduction
from attnlab.experiments.sweep import run_sweep
from attnlab.experiments.sweep_results import report_sweep
from attnlab.experiments.verdicts import Groups, part_runs
from attnlab.probes.ablation import INDUCTION_HEAD
from attnlab.report.claims_section import (
    metrics_section,
    not_covered_section,
    settings_section,
    verdict_tables,
)
from attnlab.report.html import write_html
from attnlab.report.tables import fmt, markdown_table
from attnlab.run_dir import (
    REPORT,
    REPRO_FIGURES,
    REPRODUCTION,
    SPEC,
    VERDICTS,
    RunDir,
    atomic_write_text,
    read_json,
    write_json,
)
from attnlab.stats import format_pm
from attnlab.train.precision import AUTO_ENV

__all__ = ["REPRODUCTIONS", "SCALES", "run_reproduction", "write_reproduction"]


def run_reproduction(
    name: str,
    out: Path,
    scale: str = "full",
    seeds: int | None = None,
    jobs: int | None = None,
    echo=print,
    sets: list[str] | None = None,
    only: list[str] | None = None,
) -> Path:
    """Run (or resume) every part of a reproduction (or the parts in `only`) and write
    `reproduction.md`; `sets` are overrides for every run (e.g. `data.path=DIR` offline).
    `train.precision: auto` means float32 on a CPU here unless `ATTNLAB_AUTO_PRECISION`
    says otherwise: the write-ups' figures are float32 (fp16 AMP on their GPUs), and a
    study's runs must not differ in precision by the machine they ran on."""
    os.environ.setdefault(AUTO_ENV, "32-true")  # its worker processes inherit it
    if name not in REPRODUCTIONS:
        raise UserError(f"unknown reproduction {name!r}; known: {', '.join(REPRODUCTIONS)}")
    if scale not in SCALES:
        raise UserError(f"--scale {scale!r}: choose {', '.join(SCALES)}")
    rep = REPRODUCTIONS[name]
    if rep.ready is not None:
        raise UserError(f"reproduce {name}: {rep.ready}")
    out = Path(out)
    cpus = os.cpu_count() or 1
    workers = max(1, min(jobs or cpus, cpus))
    if scale == "quick" and seeds is None:
        seeds = 1
    unknown = [p for p in only or [] if p not in rep.parts]
    if unknown:
        raise UserError(f"--part {unknown[0]!r}: {name} has {', '.join(rep.parts)}")
    for part, spec in rep.parts.items():
        if (only and part not in only) or part in rep.skip.get(scale, ()):
            continue
        echo(f"[{name}/{part}] {scale} scale")
        run_sweep(
            config_path(f"sweeps/{spec}"),
            out / part,
            workers=workers,
            sets=part_overrides(rep, part, scale, out, sets or []),
            seeds=seeds,
            echo=echo,
        )
    return write_reproduction(rep, out, scale)


def part_overrides(rep: Reproduction, part: str, scale: str, out: Path, sets: list[str]) -> list:
    """Every --set of one part: the scale's (the part's own scale list if it has one), the
    part's own (with `{out}` filled in), then the user's: `KEY=VALUE` for every part,
    `PART:KEY=VALUE` for that part only."""
    scales = rep.part_scales.get(part, rep.scales)
    own = [s.replace("{out}", str(out)) for s in rep.part_sets.get(part, ())]
    mine = []
    for s in sets:
        head, _, rest = s.partition("=")
        where, colon, key = head.partition(":")
        if not colon:
            mine.append(s)
        elif where not in rep.parts:
            raise UserError(
                f"--set {s}: {where!r} is not a part of {rep.name} ({', '.join(rep.parts)})"
            )
        elif where == part:
            mine.append(f"{key}={rest}")
    return [*scales.get(scale, []), *own, *mine]


def claim_groups(rep: Reproduction, out: Path) -> Groups:
    """Every part's runs, and those of another reproduction's parts its claims name
    (`other_part: piglatin/beast`, read from the sibling directory `OUT/../piglatin`)."""
    out = Path(out)
    groups: Groups = {p: part_runs(out, p) for p in rep.parts}
    for claim in load_claims(rep.name).all_claims():
        for ans in claim.ours:
            for part in (ans.part, ans.other_part):
                if part and "/" in part and part not in groups:
                    name, _, sub = part.partition("/")
                    groups[part] = part_runs(out.parent / name, sub)
    return groups


def _refresh_parts(out: Path, parts: list[str]) -> None:
    """Each part's sweep report, redrawn from its study database, or from its
    `results.json` where the database is not here (a committed reproduction)."""
    for part in parts:
        try:
            report_sweep(out / part)
        except KeyError:  # a database without this sweep's study (made by a bare read)
            continue


def _part_section(out: Path, part: str) -> str:
    """A part's configuration table, lifted from its sweep report, and a link to it."""
    report = out / part / REPORT
    if not report.is_file():
        return f"### {part}\n\nNo report yet.\n\n"
    text = report.read_text(encoding="utf-8")
    start = text.find("## Configurations")
    table = ""
    if start >= 0:
        end = text.find("\n## ", start + 3)
        table = text[start : end if end >= 0 else None].replace("## Configurations\n\n", "")
    link = f"{part}/{REPORT}"
    return f"### {part}\n\n{table.strip()}\n\nThe sweep's report: [{link}]({link}).\n\n"


def _leak_checks(groups: dict[str, dict]) -> str:
    """The leak check's verdict on every configuration's trained weights."""
    rows = []
    for part, by_label in groups.items():
        for label, rs in by_label.items():
            found = [r["summary"].get("leak_check", {}).get("final") for r in rs]
            errors = [f["error"] for f in found if f and "error" in f]
            checked = [f for f in found if f and "error" not in f]
            if errors:
                word = f"leaks ({len(errors)} of {len(rs)} runs): {errors[0]}"
            elif checked:
                word = f"causal ({_covered(checked[0])})"
            else:
                word = "not checked (not a causal task)"
            rows.append([part, label, word])
    if not rows:
        return ""
    return (
        "## Leak checks (trained weights)\n\n"
        + markdown_table(["part", "configuration", "verdict"], rows)
        + "\n"
    )


def _covered(check: dict) -> str:
    """What a passed leak check covered, in words."""
    full = check.get("full")
    if not full:
        return f"{check['positions']} positions, every pair"
    return (
        f"every pair of {full['positions']} positions by the gradient, "
        f"{check['positions']} by changed tokens"
    )


def _induction_on_text(groups: dict[str, dict]) -> str:
    """Whether an induction head formed on text: each text model's highest head induction
    score against a uniform head's (the write-up-000 question), and in how many seeds it
    passed the threshold from which a head counts as one."""
    rows = []
    for part, by_label in groups.items():
        for label, rs in by_label.items():
            text = [r for r in rs if (r.get("probes") or {}).get("kind") == "lm_text"]
            scores = [r["max_induction"] for r in text if r.get("max_induction") is not None]
            if not scores:
                continue
            heads = text[0]["probes"]["heads"]
            uniform = heads["uniform"]["induction"]
            best = heads["max_induction"]
            formed = sum(v >= INDUCTION_HEAD for v in scores)
            rows.append(
                [
                    part,
                    label,
                    format_pm(scores, 4),
                    fmt(uniform, 4),
                    f"{sum(scores) / len(scores) / uniform:.1f}x",
                    f"layer {best['layer']}, head {best['head']}",
                    f"{formed} of {len(scores)}",
                ]
            )
    if not rows:
        return ""
    header = ["part", "configuration", "max induction", "uniform head", "ratio"]
    header += ["best head (first seed)", "formed"]
    return (
        "## Induction-shaped patterns on text\n\n"
        "The highest induction score of any head (attention from a repeated token to the "
        "token after its first occurrence, on the probe set's repeated random sequences) "
        f"against a head attending uniformly; a pattern counts as formed from "
        f"{INDUCTION_HEAD}. A pattern, not an induction head: whether the model's repeat "
        "needs it is an ablation's question (`attnlab probe RUN --ablation`).\n\n"
        + markdown_table(header, rows)
        + "\n"
    )


def _figures(rep: Reproduction, out: Path, groups: dict[str, dict]) -> str:
    """The write-up's figures from the first run of each configuration, redrawn and copied
    into the reproduction's own `figures/` as `PART-TRIAL-NAME` (a run's `plots/` is not
    kept with a study's committed results, so a link into it would break)."""
    from attnlab import runs

    folder = out / REPRO_FIGURES
    lines = []
    for part, by_label in groups.items():
        for label, rs in by_label.items():
            rd = RunDir(rs[0]["dir"])
            runs.report(rd.path)  # draws every figure from the run's files
            for name in rep.figures:
                if rd.plot(name).is_file():
                    copy = folder / f"{part}-{rd.path.name}-{name}"
                    folder.mkdir(exist_ok=True)
                    shutil.copyfile(rd.plot(name), copy)
                    lines.append(f"![{part} / {label}: {name}]({copy.relative_to(out)})\n")
    if not lines:
        return ""
    return "## More figures (first seed of each configuration)\n\n" + "\n".join(lines) + "\n"


def _writeup_figures(rep: Reproduction, out: Path, groups: Groups) -> str:
    """Each figure the write-up shows, from our runs (`experiments.writeup_figures`)."""
    from attnlab.experiments.writeup_figures import draw, not_drawn

    rows = draw(rep.name, out, groups)
    missing = not_drawn(rep.name, rows)
    if not rows and not missing:
        return ""
    body = "".join(f"**{what}**\n\n![{what}]({path})\n\n" for what, path in rows)
    body += "".join(f"- Not drawn: {what}: {why}.\n" for what, why in missing)
    return "## The write-up's figures, from our runs\n\n" + body + "\n"


def write_reproduction(rep: Reproduction, out: Path, scale: str, refresh: bool = True) -> Path:
    """`reproduction.md`, `.html` and `verdicts.json` from the parts' directories
    (`refresh`: redraw each part's sweep report first, where its database is here)."""
    out = Path(out)
    done = [p for p in rep.parts if (out / p / SPEC).is_file()]
    if refresh:
        _refresh_parts(out, done)
    cf = load_claims(rep.name)
    groups = claim_groups(rep, out)
    verdicts = judge_all(cf, groups, scale, out)
    write_json(out / VERDICTS, {"scale": scale, "verdicts": [v.to_dict() for v in verdicts]})
    note = rep.scale_notes.get(scale, "the write-up's own settings" if scale == "full" else "")
    text = (
        f"# Reproduction: {rep.name} ({rep.writeup})\n\n"
        f"{rep.question}\n\n"
        f"The write-up: `shared/writeups/{cf.writeup}`; its claims, quoted: "
        f"`src/attnlab/experiments/claims/{rep.name}.yaml`.\n\n"
        f"Scale: **{scale}**{f' ({note})' if note else ''}.\n\n"
        + verdict_tables(cf, verdicts)
        + metrics_section(cf, verdicts)
        + "## Parts\n\n"
        + "".join(_part_section(out, p) for p in rep.parts if p not in rep.skip.get(scale, ()))
        + _leak_checks({p: groups[p] for p in done})
        + _induction_on_text({p: groups[p] for p in done})
        + _writeup_figures(rep, out, groups)
        + _figures(rep, out, {p: groups[p] for p in done})
        + settings_section(cf)
        + ("## Notes on the setup\n\n" + "".join(f"- {s}\n" for s in rep.setup) + "\n")
        + not_covered_section(cf)
    )
    path = atomic_write_text(out / REPRODUCTION, text)
    write_html(path)
    return path


def read_scale(out: Path) -> str | None:
    """The scale a reproduction directory was last written at (its `verdicts.json`)."""
    path = Path(out) / VERDICTS
    return read_json(path)["scale"] if path.is_file() else None


def headline(root: Path) -> str:
    """The README's headline table: every claim marked `headline` of every reproduction
    written under `root` (at the scale its `verdicts.json` names), judged now."""
    from attnlab.report.claims_section import headline_table

    rows = []
    for name, rep in REPRODUCTIONS.items():
        out = Path(root) / name
        scale = read_scale(out)
        if scale is None:
            continue
        cf, groups = load_claims(name), claim_groups(rep, out)
        for claim in cf.all_claims():
            if claim.headline:
                rows += [(cf.writeup, v) for v in judge(cf, claim, groups, scale, out)]
    return headline_table(rows)


def write_headline(path: Path, root: Path) -> bool:
    """Replace the marked headline table in `path` (README.md, docs/results.md) with
    `headline(root)`; True when the file changed."""
    from attnlab.report.claims_section import HEADLINE_END, HEADLINE_START

    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if HEADLINE_START not in text or HEADLINE_END not in text:
        raise UserError(f"{path}: no headline markers ({HEADLINE_START} … {HEADLINE_END})")
    head, _, rest = text.partition(HEADLINE_START)
    _, _, tail = rest.partition(HEADLINE_END)
    new = f"{head}{HEADLINE_START}\n{headline(root)}{HEADLINE_END}{tail}"
    if new != text:
        atomic_write_text(path, new)
    return new != text


def rebuild_report(name: str, out: Path, scale: str | None = None) -> Path:
    """`reproduction.md` and `verdicts.json` of an existing reproduction directory, at
    `scale` or the one it was last written at; nothing is trained."""
    if name not in REPRODUCTIONS:
        raise UserError(f"unknown reproduction {name!r}; known: {', '.join(REPRODUCTIONS)}")
    scale = scale or read_scale(out)
    if scale is None:
        raise UserError(f"{out}: no verdicts.json to read the scale from; give --scale")
    if not any((Path(out) / p / SPEC).is_file() for p in REPRODUCTIONS[name].parts):
        raise UserError(f"{out} holds no part of reproduction {name}")
    return write_reproduction(REPRODUCTIONS[name], out, scale)
