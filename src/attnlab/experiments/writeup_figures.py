"""Every figure a write-up shows, drawn from our runs, into a reproduction's `figures/`.

`SHOWS` names, per reproduction, each figure of the write-up and the run figure of ours
that answers it (the first seed of a configuration, redrawn from its files) or a sweep's
own figure; `draw` adds the figures computed across runs: write-up 000's validation
curves of both models overlaid (its ValAcc.png / ValLoss.png) and the budget curve (their
difference against tokens seen, with its 95% Welch band over seeds), and write-up 001's
training accuracy of every switch configuration.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from attnlab.experiments.curves import crossover, loss_difference
from attnlab.experiments.verdicts import Groups
from attnlab.report.plots import band_plot, seed_lines_plot
from attnlab.run_dir import PLOTS, REPRO_FIGURES, RunDir


def _training_curves(part: str, label: str, prefix: str) -> list[tuple[str, str, str, str]]:
    """004's training-progress table (loss, accuracy, learning rate) for one run of ours;
    `prefix` is its asset names' ("mamba_" for the Mamba's)."""
    val_acc = "mamb_val_acc" if prefix else "val_acc"  # its own spelling
    return [
        (f"training and validation loss (its assets/{prefix}train_loss.png, "
         f"{prefix}val_loss.png)", part, label, "loss.png"),
        (f"validation word accuracy (its assets/{val_acc}.png)", part, label,
         "word_accuracy.png"),
        (f"accuracy (its assets/{prefix}train_acc.png)", part, label, "accuracy.png"),
        (f"learning rate (its assets/{prefix}lr.png)", part, label, "lr.png"),
    ]  # fmt: skip


# reproduction → (the write-up's figure, part, configuration or None for the part's own
# sweep figure or a benchmark's in that folder, our figure's file name)
SHOWS: dict[str, list[tuple[str, str, str | None, str]]] = {
    "piglatin": [
        *(
            (
                f"encoder self-attention, “{w}” (its assets/image*.png)",
                "beast",
                "beast_small",
                f"attention_{i}_{w}_encoder.png",
            )
            for i, w in enumerate(("brown", "conditioning", "is"))
        ),
        *(
            (
                f"cross-attention, “{w}” (its assets/image-*.png)",
                "beast",
                "beast_small",
                f"attention_{i}_{w}_cross.png",
            )
            for i, w in enumerate(("brown", "conditioning", "is"))
        ),
        *_training_curves("beast", "beast_small", ""),
        ("embeddings (its assets/emb.png)", "beast", "beast_small", "embeddings_pca.png"),
        (
            "learned positions (its assets/pos_emb.png)",
            "beast",
            "beast_small",
            "position_cosine_encoder.png",
        ),
    ],
    "mamba_piglatin": [
        *(
            (
                f"weight per character and Δ, “{w}” (its assets/weight_*.png, dt_vec_*.png)",
                "a_dt",
                "a_init=neg_identity, a_trained=False",
                f"ssm_{i}_{w}.png",
            )
            for i, w in ((1, "conditioning"), (2, "is"), (0, "brown"))
        ),
        (
            "weight per character and Δ, “easureplay-oundsgray” (its assets/weight_p.png, "
            "dt_vec_p.png): pleasure-grounds",
            "separator",
            "piglatin_small",
            "ssm_1_pleasure-grounds.png",
        ),
        *_training_curves("sizes", "piglatin_large", "mamba_"),
        (
            "scan time: sequential (S-SCAN), parallel and log-space (P-SCAN) scans, forward and "
            "backward (its assets/time.png; ours on one CPU core, no compile)",
            "bench_scan",
            None,
            "scan_time.png",
        ),
        (
            "the scans' float32 error against float64 by length (its assets/precision.png)",
            "bench_scan",
            None,
            "scan_precision.png",
        ),
    ],
    "smeared_keys": [
        (
            "the conv kernel's mean profile (its average.png)",
            "main",
            "conv_attn",
            "kernel_profile.png",
        ),
        (
            "Conv-Attn's attention, all heads (its ConvAttn.png)",
            "main",
            "conv_attn",
            "attention_text.png",
        ),
        (
            "Attn-Attn's attention, 4 layers × 8 heads (its AttnAttn.png)",
            "main",
            "attn_attn",
            "attention_text.png",
        ),
        (
            "the same at the write-up's size, Conv-Attn",
            "writeup_model",
            "conv_attn",
            "kernel_profile.png",
        ),
    ],
    "smeared_keys_k3": [
        (
            "the as-run conv's kernel (its “Вес свертки”)",
            "as_run",
            "conv_attn_k3, score_pad=True",
            "kernel_profile.png",
        ),
        (
            "the as-run Conv-Attn's attention (its “Особенности внимания”)",
            "as_run",
            "conv_attn_k3, score_pad=True",
            "attention_text.png",
        ),
        (
            "the as-run Attn-Attn's attention (its Слой 1 / Слой 2)",
            "as_run",
            "attn_attn_k3, score_pad=True",
            "attention_text.png",
        ),
    ],
    "classifier": [
        (
            "validation accuracy by epoch, the three settings overlaid (its graph.png, "
            "hyperparam.png), from scratch",
            "handpicked",
            None,
            "val_acc_by_epoch.png",
        ),
        ("training accuracy by epoch, from scratch", "handpicked", None, "train_acc_by_epoch.png"),
        ("validation accuracy by epoch, fine-tuned", "finetuned", None, "val_acc_by_epoch.png"),
    ],
}


# reproduction → (a figure the write-up shows that we do not draw, why)
NOT_DRAWN: dict[str, list[tuple[str, str]]] = {
    "piglatin": [
        (
            "its explanatory diagrams of heads 0 and 1 (assets/head.001.jpeg, head.002.jpeg)",
            "drawings, not measurements: the encoder-head scores (previous character, "
            "identity) answer them in the verdicts",
        ),
    ],
}


def copy_shows(name: str, out: Path, groups: Groups) -> list[tuple[str, str]]:
    """(the write-up's figure, our figure's path in the reproduction) for each of `SHOWS`
    that our runs have drawn, copied into `figures/` (runs' `plots/` are not committed)."""
    from attnlab import runs

    folder = Path(out) / REPRO_FIGURES
    done: dict[Path, bool] = {}
    rows = []
    for what, part, label, plot in SHOWS.get(name, []):
        if label is None:  # a sweep's own figure, or a benchmark's
            src = Path(out) / part / PLOTS / plot
            src = src if src.is_file() else Path(out) / part / plot
            copy = folder / f"{part}-{plot}"
        else:
            found = groups.get(part, {}).get(label, [])
            if not found:
                continue
            rd = RunDir(found[0]["dir"])
            if rd.path not in done:
                runs.report(rd.path)  # every figure, redrawn from the run's files
                done[rd.path] = True
            src = rd.plot(plot)
            copy = folder / f"{part}-{rd.path.name}-{plot}"
        if src.is_file():
            folder.mkdir(exist_ok=True)
            shutil.copyfile(src, copy)
            rows.append((what, copy.relative_to(out).as_posix()))
    return rows


def _val_series(runs: list[dict], key: str) -> list[tuple[list, list]]:
    out = []
    for r in runs:
        per_step = r["summary"].get("train_tokens", 0) / max(r["summary"].get("steps", 1), 1)
        pts = [
            (x["step"] * per_step / 1e6, x[key])
            for x in r["records"]
            if x.get("split") == "validation" and not x.get("final") and x.get(key) is not None
        ]
        if pts:
            out.append(([p[0] for p in pts], [p[1] for p in pts]))
    return out


def _text_curves(out: Path, groups: Groups, part: str, a: str, b: str) -> list[tuple[str, str]]:
    """Validation loss and accuracy of `a` and `b` against tokens seen, and the budget
    curve of their loss difference."""
    runs_a, runs_b = groups.get(part, {}).get(a, []), groups.get(part, {}).get(b, [])
    if not runs_a or not runs_b:
        return []
    folder = Path(out) / REPRO_FIGURES
    rows = []
    for key, what in (("accuracy", "ValAcc.png"), ("loss", "ValLoss.png")):
        path = folder / f"{part}-val_{key}.png"
        seed_lines_plot(
            {a: _val_series(runs_a, key), b: _val_series(runs_b, key)},
            "training tokens (millions)",
            f"validation {key}",
            f"{part}: validation {key} of both models (thin lines: seeds)",
            path,
        )
        rows.append((f"validation {key} of both models overlaid (its {what})", path))
    points = loss_difference(runs_a, runs_b)
    if points:
        cross = crossover(points)
        path = folder / f"{part}-budget.png"
        band_plot(
            [p.tokens / 1e6 for p in points],
            [p.diff for p in points],
            [p.low for p in points],
            [p.high for p in points],
            "training tokens (millions)",
            f"val loss, {a} − {b}",
            f"{part}: does the order depend on the budget? (below 0: {a} ahead)",
            path,
            mark=cross.tokens / 1e6 if cross else None,
        )
        rows.append(("the budget curve: the validation-loss difference against tokens", path))
    return [(w, p.relative_to(out).as_posix()) for w, p in rows]


def _switch_curves(out: Path, groups: Groups, part: str) -> list[tuple[str, str]]:
    """Training-batch accuracy over steps of every configuration of a switch part."""
    found = groups.get(part, {})
    if not found:
        return []
    series = {}
    for label, runs in found.items():
        series[label] = [
            (
                [x["step"] for x in r["records"] if x.get("split") == "train" and "accuracy" in x],
                [
                    x["accuracy"]
                    for x in r["records"]
                    if x.get("split") == "train" and "accuracy" in x
                ],
            )
            for r in runs
        ]
    path = Path(out) / REPRO_FIGURES / f"{part}-train_accuracy.png"
    seed_lines_plot(series, "step", "training-batch accuracy (scored slots)",
                    f"{part}: each mechanism switched off in turn", path)  # fmt: skip
    return [("training accuracy of every switch (its table's Start / Final Acc)",
             path.relative_to(out).as_posix())]  # fmt: skip


def not_drawn(name: str, drawn: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(figure, why) for each of `SHOWS` that `draw` did not draw (its part has no
    finished run here), then `NOT_DRAWN`."""
    done = {what for what, _ in drawn}
    absent = [
        (
            what,
            f"no finished run of the `{part}` part here (`attnlab reproduce {name} --part {part}`)",
        )
        for what, part, _, _ in SHOWS.get(name, [])
        if what not in done
    ]
    return absent + NOT_DRAWN.get(name, [])


def draw(name: str, out: Path, groups: Groups) -> list[tuple[str, str]]:
    """The write-up's figures of reproduction `name`, drawn or copied from our runs."""
    rows = copy_shows(name, out, groups)
    if name == "smeared_keys":
        for part in ("main", "writeup_model"):
            rows += _text_curves(out, groups, part, "conv_attn", "attn_attn")
    if name == "smeared_keys_k3":
        rows += _switch_curves(out, groups, "as_run")
    return rows
