"""`attnlab reproduce NAME`: rerun a write-up's studies and set its numbers beside ours.

A reproduction is a few packaged sweeps (`configs/sweeps/reproduce/`), its parts, run on
the sweep machinery (resumable, failures recorded, 95% intervals) into `OUT/PART/`, and
`reproduction.md` / `.html`: for every number the write-up reports (its `claims`), the
write-up's value beside our mean ± std (n), our 95% t interval and a verdict; each part's
configuration table; the figures the write-up shows, drawn from our runs; and the
settings the write-up leaves open with what we chose.

Verdicts, by the interval and never by eye:
- a value: `reproduced` when the write-up's value lies in our 95% interval (for an exact
  count, when ours rounds to it), `not reproduced` otherwise, with how far; with one seed
  there is no interval, and the verdict says so;
- a threshold ("at least"): `reproduced` when our interval's low end reaches it,
  `not reproduced` when its high end stays below, else `not established`;
- a comparison ("A is lower than B"): the 95% Welch interval of mean(A) − mean(B):
  `reproduced` when it lies below 0, `contradicted` above 0, else `not established`.

Scales: `full` is the write-up's own settings; `cpu` the largest version a 2-core CPU
finishes in about an hour per study (each reproduction states what it changes); `quick`
a minutes-long smoke version for tests.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from attnlab.config.load import config_path
from attnlab.errors import UserError
from attnlab.experiments.sweep import run_sweep
from attnlab.experiments.sweep_results import load_trials, report_sweep
from attnlab.probes.ablation import INDUCTION_HEAD
from attnlab.report.html import write_html
from attnlab.report.sweep import figure, group_runs
from attnlab.report.tables import fmt, markdown_table
from attnlab.run_dir import REPORT, REPRO_FIGURES, REPRODUCTION, SPEC, RunDir, atomic_write_text
from attnlab.stats import format_pm, mean_interval, welch_interval
from attnlab.train.precision import AUTO_ENV

SCALES = ("full", "cpu", "quick")


@dataclass(frozen=True)
class Claim:
    """A number a write-up reports: where our runs have it, and how to judge it."""

    part: str  # the reproduction's part (a sweep)
    label: str  # the configuration in that sweep
    metric: str  # summary key (dotted) or probe figure
    value: float  # the write-up's
    what: str
    kind: str = "value"  # value | at_least | count (rounded as reported) | lower_than
    rounding: float = 0.0  # count: the write-up's rounding (1000 for "143K")
    other: str = ""  # lower_than: the configuration `label` should be lower than


@dataclass(frozen=True)
class Reproduction:
    """One write-up: its parts, its numbers, what it leaves open, and its scales."""

    name: str
    writeup: str
    question: str
    parts: dict[str, str]  # part → packaged sweep spec
    claims: tuple[Claim, ...] = ()
    setup: tuple[str, ...] = ()
    figures: tuple[str, ...] = ()  # per-run figures the write-up shows (plot names)
    scales: dict[str, list[str]] = field(default_factory=dict)  # scale → --set for all
    scale_notes: dict[str, str] = field(default_factory=dict)
    part_scales: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # replaces
    # `scales` for a part whose runs differ (a language model among classifiers)
    part_sets: dict[str, tuple[str, ...]] = field(default_factory=dict)  # a part's own
    # --set; "{out}" is the reproduction's directory (a later part reads an earlier one's)
    ready: str | None = None  # None, or why it cannot run yet
    skip: dict[str, tuple[str, ...]] = field(default_factory=dict)  # scale → parts not run
    # there (a part that only matters at that scale)


WALL_NOTE = (
    "Wall times are one thread's, with two to four runs sharing the 2-core CPU (an Intel "
    "Xeon until 2026-12-02, an AMD EPYC after). A run resumed "
    "from a checkpoint committed before 2026-12-06 reports only the time after the resume: "
    "those checkpoints did not carry the wall time so far (it was in a side file that was "
    "not committed; the checkpoint's state holds it now)."
)


def _count(part: str, label: str, value: float, what: str) -> Claim:
    """A parameter count the write-up reports in thousands ("143K")."""
    return Claim(part, label, "params", value, what, "count", 1000)


def _at_least(part: str, label: str, metric: str, value: float, what: str) -> Claim:
    return Claim(part, label, metric, value, what, "at_least")


TEXT_QUICK = [  # a minutes-long smoke version of the text studies (characters, d 32)
    "data.tokenizer=char",
    "data.batch_size=4",
    "model.d_model=32",
    "train.epochs=null",
    "train.max_steps=6",
    "train.warmup_steps=0",
    "train.eval_every=3",
    "train.eval_batches=2",
    "train.final_eval_batches=2",
]
PIG_QUICK = [
    "data.num_train=256",
    "data.num_val=32",
    "data.num_test=32",
    "train.epochs=null",
    "train.max_steps=6",
    "train.eval_every=3",
    "train.task_eval_every=null",
    "train.warmup_steps=0",
]

REPRODUCTIONS = {
    r.name: r
    for r in (
        Reproduction(
            name="piglatin",
            writeup="write-up 004: a Pig Latin transformer",
            question="How well does a small encoder-decoder learn Pig Latin from ~5,100 "
            "words, and which of positions, heads, width and depth matter?",
            parts={
                "beast": "reproduce/piglatin_beast",
                "base": "reproduce/piglatin_base",
                "ablation": "reproduce/piglatin_ablation",
            },
            claims=(
                _at_least(
                    "beast",
                    "beast_small",
                    "test_word_accuracy",
                    0.97,
                    "Beast Small: test word accuracy",
                ),
                _count("beast", "beast_small", 143_000, "Beast Small: parameters"),
                _count("beast", "beast_large", 276_000, "Beast Large: parameters"),
            ),
            setup=(
                "Data: the english-words GCIDE list, 5,120 training words (the write-up's "
                "40 steps × 128 a epoch), 2,000 validation and 2,000 test words, split by "
                "word (no test word trained on); the write-up's own word list is not named.",
                "Feed-forward width = hidden (64): it fits both Beast parameter counts.",
                "Base: cosine schedule, weight decay 0.01, dropout 0.1, 100 warmup steps "
                "(the write-up states these for the Beasts only).",
                "Batches of 128 words padded to the longest in the batch. The write-up's "
                "equal-length batches with accumulation are `data.equal_length: true`: the "
                "same gradient (tested), ~19x slower here (30 Beast Small steps: 128 s "
                "against 18 s on one contended core), so not used.",
                "Word accuracy: exact match of the greedy translation; every 10 epochs.",
                WALL_NOTE,
                "The decoder-positions table: `model.decoder_pos: none | learned` with the "
                "encoder's fixed sinusoids (a trained table starts from the sinusoids).",
            ),
            figures=(
                "word_accuracy.png",
                "errors_by_length.png",
                "attention_0_brown_cross.png",
                "embeddings_pca.png",
                "position_cosine_encoder.png",
            ),
            scales={"full": [], "cpu": ["train.epochs=50"], "quick": PIG_QUICK},
            scale_notes={"cpu": "50 epochs instead of 100 (about an hour on 2 cores)"},
        ),
        Reproduction(
            name="mamba_piglatin",
            writeup="write-up 004: a Mamba model on Pig Latin",
            question="Does a small Mamba prefix LM learn Pig Latin as well as the "
            "transformer, and which discretisation works?",
            parts={
                "sizes": "reproduce/mamba_piglatin_sizes",
                "a_dt": "reproduce/mamba_piglatin_a_dt",
                "discretization": "reproduce/mamba_piglatin_discretization",
                "matched": "reproduce/mamba_piglatin_matched",
            },
            claims=(
                _at_least(
                    "sizes",
                    "piglatin_large",
                    "test_word_accuracy",
                    0.983,
                    "Mamba large: test word accuracy",
                ),
                _count("sizes", "piglatin_small", 162_000, "Mamba small: parameters"),
                _count("sizes", "piglatin_large", 276_000, "Mamba large: parameters"),
                _at_least(
                    "matched",
                    "piglatin_large_matched",
                    "test_word_accuracy",
                    0.983,
                    "Mamba large at the write-up's size (hidden 96, 279K): test word accuracy",
                ),
            ),
            setup=(
                "Data as the Pig Latin reproduction: 5,120 training words, 2,000 "
                "validation and 2,000 test words.",
                "Hidden 64, d_state 16, expand 2, conv 4, no positions, RMSNorm: the "
                "write-up's parameter counts (162K, 276K) cannot both come from 2 and 4 "
                "layers of one width (see configs/mamba/piglatin_small.yaml); the "
                "`matched` part widens each to its own count (small hidden 104: 165,464; "
                "large hidden 96: 279,264).",
                "Plateau schedule: halve the lr after 2 epochs without a new best "
                "validation loss (on a fixed subset of 1,024 validation words).",
                "The A/Δ table: A frozen at −I is `a_init: neg_identity` with `a_trained: "
                "false`; Δ as a positional embedding is `dt: positional` (softplus of a "
                "learned (position, channel) table, started at the learned Δ's start).",
                "What we tried against a shortfall from 0.983: the write-up's widths (the "
                "`matched` part), A and Δ as its table varies them, and the three "
                "discretisations; the train word accuracy column tells a model that "
                "cannot fit the training words from one that fits them and does not "
                "generalise.",
                WALL_NOTE,
            ),
            figures=(
                "word_accuracy.png",
                "errors_by_length.png",
                "ssm_0_brown.png",
                "embeddings_pca.png",
            ),
            scales={"full": [], "cpu": ["train.epochs=20"], "quick": PIG_QUICK},
            scale_notes={"cpu": "20 epochs instead of 100 (about an hour on 2 cores)"},
        ),
        Reproduction(
            name="classifier",
            writeup="write-up 003: attention exercises and a classifier search",
            question="Which of three hand-picked batch / learning-rate settings trains the "
            "classifier best, and when does it start to overfit — from scratch, and "
            "fine-tuned from a pre-trained language model as those settings suggest?",
            parts={
                "handpicked": "reproduce/classifier_handpicked",
                "pretrain": "reproduce/classifier_pretrain",
                "finetuned": "reproduce/classifier_finetuned",
            },
            setup=(
                "Data: the built-in synthetic sentiment task with negation (offline; the "
                "write-up used SST-2: `--set data.dataset=glue` online).",
                "The write-up's numbers are not in this repository; the table gives ours.",
                "Best epoch by validation accuracy (`train.select_by: val_accuracy`), as "
                "the write-up chose it.",
                "Its lr 1e-6 and batch 5 are fine-tuning settings: the `finetuned` part "
                "starts each classifier from the `pretrain` part's language model "
                "(hidden 64, 2 layers, WikiText-2 with a trained 8,192-token BPE, 3,000 "
                "steps; `model.init_from`), read at each text's last token; the write-up's "
                "pre-trained model is not named. Offline: `--set pretrain:data.path=DIR`.",
            ),
            figures=("accuracy_by_epoch.png",),
            scales={
                "full": [],
                "cpu": [],
                "quick": [
                    "train.epochs=2",
                    "data.num_train=400",
                    "data.num_val=100",
                    "data.num_test=100",
                ],
            },
            part_scales={
                "pretrain": {"quick": [*TEXT_QUICK, "data.seq_len=64"]},
                "finetuned": {
                    "quick": [
                        "train.epochs=2",
                        "data.num_train=100",
                        "data.num_val=50",
                        "data.num_test=50",
                    ]
                },
            },
            scale_notes={
                "cpu": "the same as full: the write-up's own settings fit a 2-core CPU "
                "(20 to 40 minutes of training in all, by the CPU)"
            },
            part_sets={"finetuned": ("model.init_from={out}/pretrain/trials/pretrain_lm-s1",)},
        ),
        Reproduction(
            name="smeared_keys",
            writeup="write-up 000: Conv-Attn vs Attn-Attn on WikiText-2",
            question="Does a causal conv before one attention layer beat two attention "
            "layers, and does an induction head form on text?",
            parts={
                "main": "reproduce/smeared_keys",
                "kernels": "reproduce/smeared_keys_kernels",
                "writeup_model": "reproduce/smeared_keys_writeup_model",
            },
            skip={"full": ("writeup_model",)},  # at full scale `main` is the write-up's model
            claims=(
                Claim(
                    "main",
                    "conv_attn",
                    "final_val_loss",
                    0.0,
                    "Conv-Attn's validation loss is lower than Attn-Attn's",
                    "lower_than",
                    other="attn_attn",
                ),
            ),
            setup=(
                "Data: WikiText-2 raw from the Hub (`Salesforce/wikitext`), or a local "
                "copy with `--set data.path=DIR`; a token stream cut into sequences.",
                "The write-up's other figures (its loss curves and kernel profile) are "
                "not in this repository: the tables give ours.",
                "Induction on text: see the part reports' head-probe tables (max induction "
                "against a uniform head) and docs/LOG.md's calibration runs.",
            ),
            figures=(
                "loss_by_frequency.png",
                "kernel_profile.png",
                "grad_norm.png",
                "attention_text.png",
            ),
            scales={
                "full": ["model.pos=none"],
                "cpu": [
                    "data.tokenizer=bpe",
                    "data.bpe_vocab_size=2048",
                    "data.batch_size=16",
                    "model.d_model=128",
                    "train.lr=1.0e-3",
                    "train.epochs=null",
                    "train.max_steps=4000",
                    "train.warmup_steps=100",
                    "train.eval_every=500",
                    "train.eval_batches=20",
                    "train.final_eval_batches=50",
                    "train.probe_every=500",
                ],
                "quick": [*TEXT_QUICK, "data.seq_len=64"],
            },
            part_scales={
                "writeup_model": {
                    "cpu": [
                        "train.stop_step=160",
                        "train.eval_every=40",
                        "train.eval_batches=8",
                        "train.final_eval_batches=16",
                    ],
                    "quick": [*TEXT_QUICK, "data.seq_len=64"],
                }
            },
            scale_notes={
                "cpu": "d_model 128 instead of 512, a trained 2,048-token BPE instead of "
                "GPT-2's, batch 16 × 256, lr 1e-3, 4,000 steps (16M tokens) instead of 15 "
                "epochs, head probes every 500 steps; the setting where the calibration "
                "formed an induction head on text (docs/LOG.md, 2026-12-02)",
            },
        ),
        Reproduction(
            name="smeared_keys_k3",
            writeup="write-up 001: the k = 3 variant (its 99.8% accuracy)",
            question="What does the k = 3, 2-layer variant reach when it cannot see the "
            "future, and does a centred conv reach the write-up's 99.8%?",
            parts={
                "k3": "reproduce/smeared_keys_k3",
                "rows": "reproduce/smeared_keys_k3_rows",
                "as_run": "reproduce/smeared_keys_k3_as_run",
            },
            part_scales={
                "as_run": {
                    "full": [],
                    "cpu": [
                        "model.d_model=64",
                        "train.epochs=1",
                        "train.eval_batches=20",
                        "train.final_eval_batches=50",
                    ],
                    "quick": [*TEXT_QUICK, "data.seq_len=31"],
                }
            },
            claims=(
                Claim(
                    "k3",
                    "conv_attn_k3_leaky",
                    "final_val_accuracy",
                    0.998,
                    "Conv-Attn k = 3 with a centred conv: next-token accuracy",
                ),
                Claim(
                    "k3",
                    "conv_attn_k3",
                    "final_val_accuracy",
                    0.998,
                    "Conv-Attn k = 3, causal: next-token accuracy",
                ),
            ),
            setup=(
                "The write-up's Conv1d padding is not stated; its 99.8% next-token "
                "accuracy on WikiText is out of reach of any causal model (chance-level "
                "models reach ~0.2 here), and write-up 000's kernel profile shows weight at "
                "offset +2, which a causal kernel cannot have: we take it as centred.",
                "Data: WikiText-2 (raw) as a token stream cut into sequences of 128; the "
                "`rows` part runs the write-up's pipeline, one example per non-blank row "
                "padded to 128 (`data.layout: rows`), with the padding targets masked or "
                "scored (`data.score_pad`): how much scoring padding inflates accuracy.",
            ),
            figures=("kernel_profile.png", "attention_text.png", "loss.png"),
            scales={
                "full": [],
                "cpu": [
                    "data.tokenizer=bpe",
                    "data.bpe_vocab_size=8192",
                    "data.batch_size=16",
                    "model.d_model=128",
                    "train.epochs=null",
                    "train.max_steps=1500",
                    "train.warmup_steps=100",
                    "train.eval_every=250",
                    "train.eval_batches=20",
                    "train.final_eval_batches=50",
                ],
                "quick": TEXT_QUICK,
            },
            scale_notes={
                "cpu": "d_model 128 instead of 512, a trained 8,192-token BPE instead of "
                "GPT-2's, batch 16, 1,500 steps (2.5M tokens) instead of 25 epochs",
            },
        ),
    )
}


def list_reproductions() -> list[tuple[str, str]]:
    """(name, one line) of every reproduction."""
    out = []
    for r in REPRODUCTIONS.values():
        note = f" [not runnable yet: {r.ready}]" if r.ready else ""
        out.append((r.name, f"{r.writeup}: {r.question}{note}"))
    return out


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
    `reproduction.md`; `sets` are overrides for every run (e.g. `data.path=DIR` offline). `train.precision: auto`
    means float32 on a CPU here unless `ATTNLAB_AUTO_PRECISION` says otherwise: the
    write-ups' figures are float32 (fp16 AMP on their GPUs), and a study's runs must not
    differ in precision by the machine they ran on."""
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


def _values(out: Path, part: str) -> dict[str, list[dict]]:
    """Configuration label → its finished runs in one part's sweep directory."""
    _, trials = load_trials(out / part)
    return group_runs(out / part, trials)


def verdict(claim: Claim, values: list[float]) -> tuple[str, str]:
    """(our interval as text, the verdict) of one claim; see the module docstring."""
    if not values:
        return "–", "no finished run"
    m, lo, hi = mean_interval(values)
    n = len(values)
    shown = f"[{fmt(lo, 4)}, {fmt(hi, 4)}]" if n > 1 else "none (n = 1)"
    if claim.kind == "count":
        ours = round(m / claim.rounding) * claim.rounding
        if ours == claim.value:
            return shown, "reproduced"
        return shown, f"not reproduced (ours {m:,.0f}: {m - claim.value:+,.0f})"
    if n < 2:
        gap = m - claim.value
        return shown, f"not tested (one seed; ours {gap:+.4f} from it)"
    if claim.kind == "at_least":
        if lo >= claim.value:
            return shown, "reproduced"
        if hi < claim.value:
            return shown, f"not reproduced (mean {m - claim.value:+.4f} below it)"
        return shown, f"not established (the interval holds it; mean {m - claim.value:+.4f})"
    if lo <= claim.value <= hi:
        return shown, "reproduced"
    side = "above" if lo > claim.value else "below"
    return shown, f"not reproduced (ours {side} it: {m - claim.value:+.4f})"


def comparison_verdict(a: list[float], b: list[float]) -> tuple[str, str]:
    """(the difference mean(a) − mean(b) with its 95% Welch interval, the verdict that a
    is lower)."""
    d = welch_interval(a, b)
    if d is None:
        return "none (n < 2 on a side)", "not tested (fewer than 2 seeds)"
    shown = f"{d.diff:+.4f} [{d.low:+.4f}, {d.high:+.4f}]"
    if d.high < 0:
        return shown, "reproduced"
    if d.low > 0:
        return shown, "contradicted (higher, and the interval excludes 0)"
    return shown, "not established (the interval holds 0)"


def _claims_table(rep: Reproduction, groups: dict[str, dict]) -> str:
    rows = []
    for c in rep.claims:
        by_label = groups.get(c.part, {})

        def vals(label: str, c=c, by_label=by_label) -> list[float]:
            runs = by_label.get(label, [])
            return [v for r in runs if (v := figure(r, c.metric)) is not None]

        if c.kind == "lower_than":
            a, b = vals(c.label), vals(c.other)
            interval, word = comparison_verdict(a, b)
            ours = f"{format_pm(a, 4)} vs {format_pm(b, 4)}" if a and b else "–"
            rows.append([c.what, f"{c.label} < {c.other}", ours, interval, word])
            continue
        mine = vals(c.label)
        interval, word = verdict(c, mine)
        shown = f"≥ {c.value:g}" if c.kind == "at_least" else f"{c.value:,g}"
        if c.kind == "count" and mine:
            ours = f"{mine[0]:,.0f}" + ("" if len(set(mine)) == 1 else f" … {max(mine):,.0f}")
        else:
            ours = format_pm(mine, 4) if mine else "–"
        rows.append([c.what, shown, ours, interval, word])
    if not rows:
        return "The write-up's numbers are not in this repository: the tables below give ours.\n\n"
    return (
        markdown_table(
            ["what", "write-up", "attnlab mean ± std (n)", "95% interval", "verdict"], rows
        )
        + "\n"
    )


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
                word = f"causal ({checked[0]['positions']} positions, every pair)"
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
        "## Induction heads on text\n\n"
        "The highest induction score of any head (attention from a repeated token to the "
        "token after its first occurrence, on the probe set's repeated random sequences) "
        f"against a head attending uniformly; a head counts as formed from {INDUCTION_HEAD}.\n\n"
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
    return "## Figures (first seed of each configuration)\n\n" + "\n".join(lines) + "\n"


def write_reproduction(rep: Reproduction, out: Path, scale: str) -> Path:
    """`reproduction.md` and `.html` from the parts' sweep directories."""
    out = Path(out)
    done = [p for p in rep.parts if (out / p / SPEC).is_file()]
    for part in done:  # the parts' own reports, current (a part may still be running)
        report_sweep(out / part)
    groups = {p: _values(out, p) for p in done}
    note = rep.scale_notes.get(scale, "the write-up's own settings" if scale == "full" else "")
    text = (
        f"# Reproduction: {rep.name} ({rep.writeup})\n\n"
        f"{rep.question}\n\n"
        f"Scale: **{scale}**{f' ({note})' if note else ''}. Verdicts by our 95% t interval "
        "over seeds (see `attnlab.experiments.reproduce`).\n\n"
        "## The write-up's numbers beside ours\n\n"
        + _claims_table(rep, groups)
        + "\n## Parts\n\n"
        + "".join(_part_section(out, p) for p in rep.parts)
        + _leak_checks(groups)
        + _induction_on_text(groups)
        + _figures(rep, out, groups)
        + "## Differences in setup\n\n"
        + "".join(f"- {s}\n" for s in rep.setup)
    )
    path = atomic_write_text(out / REPRODUCTION, text)
    write_html(path)
    return path
