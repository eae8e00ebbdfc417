"""The "Probes" section of a token model's report, and its figures, from `probes.json`,
`attention.json` and `metrics.jsonl` alone."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from attnlab.probes.ablation import INDUCTION_HEAD, top_channels
from attnlab.probes.composition import top_pairs
from attnlab.probes.explorer import example_patterns
from attnlab.report import probe_plots
from attnlab.report.circuit_section import circuit_section, sweep_circuit_section
from attnlab.report.plots import line_plot, seed_lines_plot
from attnlab.report.tables import fmt, markdown_table
from attnlab.run_dir import RunDir, decode_matrix, plot_link
from attnlab.stats import format_pm

DEFINITIONS = """\
Scores are measured on a fixed, seeded probe set of repeated random token sequences
(`prefix · segment · segment · filler`), at the query positions of the second copy:

- **previous-token**: attention mass on the key just before the query.
- **duplicate-token**: attention mass on the earlier copy of the query's own token.
- **induction**: attention mass on the token *after* the earlier copy of the query's token
  (Olsson et al. 2022's prefix matching). TransformerLens's `head_detector` uses the same
  three masks over every position; scoring only the repeat keeps chance near 0.
- **copying**: share of queries at which the most-attended key's token is among the 5
  tokens the head's own output raises most (its direct path to the logits); chance 5/V.
- **OV copying**: Olsson et al.'s Σλ/Σ|λ| of the head's OV circuit W_U γ W_O W_V W_E
  (+1 copies, −1 suppresses; convolutions and block norms left out).
- **ICL score**: validation loss at a late position minus an early one (Olsson et al.:
  token 500 minus token 50 of 512; scaled to the context length here, and each averaged
  over a window of ±T/64 positions to cut the noise).

A head exactly of a kind scores 1; the "uniform" row is a head that spreads its attention
evenly over the keys it can see.

"""


def probe_section(rd: RunDir, p: dict, attention: dict | None) -> str:
    """Markdown for the probes of one run (definitions, tables), drawing its figures."""
    parts = ["## Probes\n", DEFINITIONS]
    if p["heads"]["layers"]:
        parts.append(_heads(rd, p["heads"]))
    if p.get("ablation"):
        parts.append(ablation_section(p["ablation"]))
        if p["ablation"].get("patching", {}).get("layers"):
            parts.append(_patching(rd, p["ablation"]["patching"]))
        if p["ablation"].get("circuit"):
            parts.append(circuit_section(p["ablation"]["circuit"]))
    if p.get("composition"):
        parts.append(_composition(p["composition"]))
    if p.get("attribution"):
        parts.append(_attribution(p["attribution"]))
    if p.get("lengths"):
        parts.append(_lengths(rd, p["lengths"]))
    parts.append(_icl(rd, p.get("icl", {})))
    if p.get("loss_by_frequency"):
        parts.append(_frequency(rd, p["loss_by_frequency"]))
    during = training_probe_figures(rd)
    if during:
        parts.append("During training (`train.probe_every`):\n\n" + during)
    if p["conv"]:
        parts.append(_kernels(rd, p["conv"]))
    for name, gates in p.get("smear_gates", {}).items():
        parts.append(
            f"Smear gates σ(α) of `{name}` (weight of a key's own token, 1 − σ on the "
            f"previous one): {', '.join(fmt(g, 3) for g in gates)}\n\n"
        )
    parts.append(_grids(rd, p, attention))
    parts.append(_embeddings(rd, p.get("embeddings", {})))
    return "".join(parts)


TABLE_CHANNELS = 8  # a Mamba layer's channels listed in the tables: the top by each score


def _units(h: dict, li: int, layer: int) -> list[int]:
    """The heads of a layer the tables list: all of an attention layer's; a Mamba layer's
    top `TABLE_CHANNELS` channels by induction and by previous-token score."""
    induction, previous = h["scores"]["induction"][li], h["scores"]["previous_token"][li]
    if h.get("units", {}).get(str(layer)) != "channel":
        return list(range(len(induction)))
    return top_channels(induction, previous, TABLE_CHANNELS)


def _heads(rd: RunDir, h: dict) -> str:
    """Head scores per layer and head, attention mass by offset, the best heads; a Mamba
    layer's channels as a distribution and its top channels."""
    channels = "channel" in h.get("units", {}).values()
    if channels:
        probe_plots.channel_distribution(h["scores"], h["layers"], rd.plot("head_scores.png"))
    else:
        probe_plots.score_maps(h["scores"], h["layers"], rd.plot("head_scores.png"))
    names = list(h["scores"])
    rows = [
        [f"L{layer}", head, *(h["scores"][n][li][head] for n in names)]
        for li, layer in enumerate(h["layers"])
        for head in _units(h, li, layer)
    ]
    rows.append(["uniform", "–", *(h["uniform"].get(n) for n in names)])
    best, ahead = h["max_induction"], h["max_copy_ahead"]
    offs = list(h["by_offset"])
    by_offset = [
        [f"L{layer}", head, *(h["by_offset"][j][li][head] for j in offs)]
        for li, layer in enumerate(h["layers"])
        for head in _units(h, li, layer)
    ]
    note = (
        f"Mamba layers are scored channel by channel ({h['heads']} a layer; 'head' is the "
        f"channel): the tables list each layer's top {TABLE_CHANNELS} channels by induction "
        "and by previous-token score, the figure every channel's scores in rank order.\n\n"
        if channels
        else ""
    )
    return (
        note
        + markdown_table(["layer", "head", *names], rows)
        + "\nAttention mass by key offset from the earlier copy of the query's token "
        "(0: duplicate-token, +1: induction, > 1: a look-ahead that a convolution "
        "window can turn into copying):\n\n"
        + markdown_table(["layer", "head", *(f"{int(j):+d}" for j in offs)], by_offset)
        + f"\nMax induction score **{best['score']:.3f}** (layer {best['layer']}, head "
        f"{best['head']}); largest mass at or after +1: {ahead['score']:.3f} at offset "
        f"+{ahead['offset']} (layer {ahead['layer']}, head {ahead['head']}); next-token "
        "accuracy inside the repeat "
        f"{h['repeat_accuracy']:.3f}, loss {h['repeat_loss']:.3f}.\n\n"
        f"![head scores]({plot_link('head_scores.png')})\n\n"
    )


ABLATION_WORDS = {
    "zero": "A head's output is set to zero. ",
    "mean": "A head's output is replaced by its mean over every position of a reference set. ",
    "mean_pos": "A head's output is replaced by its mean at the same position over a "
    "reference set (it stays on the distribution of that position). ",
    "resample": "A head's output is replaced by its output on another input of the "
    "reference set, at the same position (resample ablation). ",
}


def _reference(a: dict) -> str:
    """Which rows the ablated values came from (runs probed before it was recorded: ''),
    as a sentence."""
    return f"Reference: {a['reference']}. " if a.get("reference") else ""


def ablation_section(a: dict) -> str:
    """The head-ablation table of one run (`probes.ablation`): repeat accuracy and loss
    with each head, and each group of heads, ablated."""
    base = a["baseline"]
    rows = [
        [
            "none",
            "",
            "",
            fmt(base["repeat_accuracy"], 3),
            fmt(base["repeat_loss"], 3),
        ]
    ]
    for g in a["groups"]:
        heads = "; ".join(f"L{k}: {', '.join(map(str, v))}" for k, v in g["heads"].items())
        rows.append([f"**{g['what']}** ({heads})", "", "", *_ablated(g, base)])
    for r in a["heads"]:
        rows.append(
            [
                f"L{r['layer']}H{r['head']}",
                fmt(r["previous_token"], 2),
                fmt(r["induction"], 2),
                *_ablated(r, base),
            ]
        )
    t = a["thresholds"]
    return (
        f"### Head ablation ({a['how']} ablation)\n\n"
        "Repeat accuracy and loss on the probe set with heads ablated: which heads the "
        f"behaviour needs. {ABLATION_WORDS.get(a['how'], '')}"
        f"{_reference(a)}Groups: a layer's previous-token heads (score >= "
        f"{t['previous_token']}), every induction head (>= {t['induction']}).\n\n"
        + markdown_table(
            ["ablated", "prev-token", "induction", "repeat accuracy", "repeat loss"], rows
        )
        + "\n"
    )


def _composition(c: dict) -> str:
    """The strongest head pair of each composition mode (`probes.composition`)."""
    rows = []
    for mode in ("Q", "K", "V"):
        best = top_pairs({**c, "scores": {mode: c["scores"][mode]}}, k=1)[0]
        rows.append(
            [
                f"{mode}-composition",
                f"layer {best['writer'][0]} head {best['writer'][1]}",
                f"layer {best['reader'][0]} head {best['reader'][1]}",
                fmt(best["score"], 3),
                fmt(best["score"] / c["baseline"], 2) + "x",
            ]
        )
    caveat = (
        ""
        if c["exact"]
        else " The model convolves or smears its keys: the weights' scores leave that out."
    )
    return (
        "### Composition scores (from the weights)\n\n"
        "‖W_OV¹ W_QK²‖ / (‖W_OV¹‖ ‖W_QK²‖) and its K (W_QK²ᵀ) and V (W_OV²) forms "
        "(Elhage et al. 2021; TransformerLens's `all_composition_scores`), the strongest "
        f"pair of each; random matrices of these shapes score about {fmt(c['baseline'], 3)}."
        f"{caveat}\n\n"
        + markdown_table(["mode", "writer", "reader", "score", "× random"], rows)
        + "\n"
    )


def _attribution(a: dict, k: int = 6) -> str:
    """The components that write the repeated token's logit most, and the logit lens
    (`probes.attribution`)."""
    order = sorted(range(len(a["names"])), key=lambda i: -abs(a["mean"][i]))[:k]
    top = [[a["names"][i], fmt(a["mean"][i], 3)] for i in order]
    lens = [[r["after"], fmt(r["accuracy"], 3), fmt(r["loss"], 3)] for r in a["lens"]]
    return (
        "### Direct logit attribution and the logit lens (repeated tokens)\n\n"
        f"Over {a['positions']:,} positions whose next token repeats the first copy: each "
        "component's direct contribution to that token's logit through the final norm "
        f"(frozen at the whole stream; its bias adds {fmt(a['norm_bias'], 3)}; the parts "
        f"sum to the logit within {a['check']:.1g}). Direct only: what a head does through "
        f"later layers is not in it. The {k} largest:\n\n"
        + markdown_table(["component", "mean direct logit"], top)
        + _by_position(a)
        + "\nThe logit lens: the residual stream after each block read through the final "
        "norm and the unembedding.\n\n"
        + markdown_table(["after", "repeat accuracy", "repeat loss"], lens)
        + "\n"
    )


def _by_position(a: dict, every: int = 4) -> str:
    """The largest components' direct logit at every `every`-th position of the second
    copy (runs probed before it was recorded: nothing)."""
    bp = a.get("by_position")
    if not bp or not bp["queries"]:
        return ""
    ks = list(range(0, len(bp["queries"]), every))
    rows = [[name, *(fmt(v[k], 2) for k in ks)] for name, v in bp["components"].items()]
    rows.append(["queries", *(bp["queries"][k] for k in ks)])
    return (
        "\nBy position in the second copy (k = 0 predicts its second token):\n\n"
        + markdown_table(["component", *(f"k={k}" for k in ks)], rows)
    )


def _lengths(rd: RunDir, lg: dict) -> str:
    """The length-generalisation table and plot of one run (`probes.lengths`)."""
    rows, xs, ys = [], [], []
    for r in lg["rows"]:
        if "skipped" in r:
            rows.append([f"{r['length']:,}", f"{r['times_trained']:g}x", "not run", r["skipped"]])
            continue
        rows.append(
            [
                f"{r['length']:,}",
                f"{r['times_trained']:g}x",
                fmt(r["accuracy"], 3),
                fmt(r["loss"], 3),
            ]
        )
        xs.append(r["length"])
        ys.append(r["accuracy"])
    text = (
        f"### Length generalisation (trained at {lg['trained_length']:,} tokens)\n\n"
        + markdown_table(["length", "x trained", "accuracy", "loss"], rows)
        + "\n"
    )
    if xs:
        line_plot(
            {"accuracy": (xs, ys)},
            "sequence length",
            "accuracy",
            "accuracy by length",
            rd.plot("length_generalisation.png"),
            logx=True,
        )
        text += f"![length generalisation]({plot_link('length_generalisation.png')})\n\n"
    return text


def _patching(rd: RunDir, pt: dict) -> str:
    """The per-head activation-patching heat map (`probes.ablation`)."""
    grid = np.array(pt["recovered"], dtype=float)  # (L, H)
    probe_plots.heatmap(
        grid,
        "share of the repeat's log-prob restored by patching one head",
        "head",
        "layer",
        rd.plot("patching_heads.png"),
    )
    best = np.unravel_index(np.nanargmax(grid), grid.shape)
    return (
        f"Activation patching ({pt['sequences']} probe rows; clean: the repeat, "
        "corrupted: its first copy redrawn; metric: mean log-probability of the repeated "
        f"tokens, clean {fmt(pt['clean'], 3)}, corrupted {fmt(pt['corrupted'], 3)}): "
        "each head's output patched from the clean run alone restores this share of the "
        f"gap; most: layer {pt['layers'][best[0]]} head {best[1]} "
        f"({fmt(grid[best], 3)}).\n\n![patching]({plot_link('patching_heads.png')})\n\n"
    )


def _ablated(r: dict, base: dict) -> list[str]:
    """Repeat accuracy and loss of an ablation, each with its change from the baseline."""
    da = r["repeat_accuracy"] - base["repeat_accuracy"]
    dl = r["repeat_loss"] - base["repeat_loss"]
    return [
        f"{fmt(r['repeat_accuracy'], 3)} ({da:+.3f})",
        f"{fmt(r['repeat_loss'], 3)} ({dl:+.3f})",
    ]


def _icl(rd: RunDir, icl: dict) -> str:
    """The ICL score and the loss-by-position curve it is read from."""
    if "skipped" in icl:
        return f"ICL score not measured: {icl['skipped']}\n\n"
    if "score" not in icl:
        return ""
    if icl["score"] is None:  # padded rows: none reaches the late window
        return (
            f"ICL score not measured: no validation row holds its own tokens at both "
            f"positions {icl['early_position']} and {icl['late_position']} (± "
            f"{icl['window']}).\n\n"
        )
    curve = [math.nan if v is None else v for v in icl["loss_by_position"]]  # None: padding
    line_plot(
        {"validation": (list(range(len(curve))), curve)},
        "position",
        "mean next-token loss (nats)",
        f"loss by position (ICL score {icl['score']:+.3f} ± {fmt(icl['stderr'], 3)})",
        rd.plot("loss_by_position.png"),
    )
    return (
        f"ICL score **{icl['score']:+.3f} ± {fmt(icl['stderr'], 3)}** nats (positions "
        f"{icl['late_position']} minus {icl['early_position']}, each ± {icl['window']}, "
        f"{icl['sequences']} validation sequences, ± standard error).\n\n"
        f"![loss by position]({plot_link('loss_by_position.png')})\n\n"
    )


def _frequency(rd: RunDir, buckets: dict) -> str:
    """Loss and accuracy on frequent and rare tokens (`probes.frequency`)."""
    shown = {k: v for k, v in buckets.items() if v["targets"]}
    names = list(shown)
    probe_plots.bars(
        names,
        [shown[k]["loss"] for k in names],
        "validation loss (nats)",
        "loss by the target's training frequency",
        rd.plot("loss_by_frequency.png"),
    )
    rows = [[k, v["targets"], v["loss"], v["accuracy"]] for k, v in shown.items()]
    return (
        "Loss by how frequent the target token is in training (head: the tokens making "
        "the first 50% of the training text; body: to 90%; long tail: to 99%; tail: the "
        "last 1%; unseen: never in training):\n\n"
        + markdown_table(["bucket", "targets", "loss", "accuracy"], rows)
        + f"\n![loss by frequency]({plot_link('loss_by_frequency.png')})\n\n"
    )


def _kernels(rd: RunDir, conv: dict) -> str:
    """Convolution kernel profiles by offset, table and figure."""
    probe_plots.kernel_profiles(conv, rd.plot("kernel_profile.png"))
    rows = [
        [name, prof["where"], o, m, a, s, share]
        for name, prof in conv.items()
        for o, m, a, s, share in zip(
            prof["offsets"],
            prof["mean"],
            prof["mean_abs"],
            prof["std"],
            prof["peak_share"],
            strict=True,
        )
    ]
    return (
        "### Convolution kernels\n\nOffset 0 is the current token, −1 the one before. "
        "`peak share`: channels whose largest |weight| is at that offset.\n\n"
        + markdown_table(
            ["conv", "on", "offset", "mean w", "mean |w|", "std over channels", "peak share"],
            rows,
        )
        + f"\n![kernel profile]({plot_link('kernel_profile.png')})\n\n"
    )


def training_probe_figures(rd: RunDir) -> str:
    """The `probe` records of `train.probe_every` against the step: two figures and their
    Markdown ("" without any record)."""
    recs = [r for r in rd.read_metrics() if r["split"] == "probe"]
    if not recs:
        return ""
    steps = [r["step"] for r in recs]
    line_plot(
        {
            "max induction score": (steps, [r["max_induction"] for r in recs]),
            "repeat accuracy (probe set)": (steps, [r["repeat_accuracy"] for r in recs]),
        },
        "step",
        "score",
        "when an induction-shaped pattern forms",
        rd.plot("induction_by_step.png"),
    )
    line_plot(
        {"ICL score": (steps, [r["icl_score"] for r in recs])},
        "step",
        "loss(late) - loss(early), nats",
        "in-context learning score",
        rd.plot("icl_by_step.png"),
    )
    return (
        f"![induction by step]({plot_link('induction_by_step.png')})\n\n"
        f"![ICL by step]({plot_link('icl_by_step.png')})\n\n"
    )


def ssm_figure(rd: RunDir, ssm: dict, title: str, name: str) -> str:
    """Draw a Mamba Δ profile (`probes.ssm.ssm_data`) as `name`; its Markdown link."""
    probe_plots.ssm_profile(ssm["layers"], ssm["labels"], title, rd.plot(name))
    return plot_link(name)


def explorer_figure(rd: RunDir, example: dict, title: str, name: str) -> str:
    """Draw every layer and head of one `attention.json` example as `name`; its link."""
    probe_plots.attention_grid(
        example_patterns(example), example["keys"], title, rd.plot(name), example["queries"]
    )
    return plot_link(name)


def embedding_figure(rd: RunDir, e: dict, name: str = "embeddings_pca.png") -> str:
    """Draw the embedding PCA of `e` (points, labels, groups, variance); its link."""
    probe_plots.embedding_scatter(
        np.asarray(e["pca_points"]), e["pca_labels"], e["pca_groups"], e["pca_variance"],
        rd.plot(name),
    )  # fmt: skip
    return plot_link(name)


def position_figure(rd: RunDir, cosine, title: str, name: str) -> str:
    """Draw a positional cosine-similarity matrix (`encode_matrix`'s form) as `name`; its
    link."""
    probe_plots.heatmap(decode_matrix(cosine), title, "position", "position", rd.plot(name))
    return plot_link(name)


def _grids(rd: RunDir, p: dict, attention: dict | None) -> str:
    out = ["### Attention patterns (Mamba: Δ and decay)\n\n"]
    examples = (attention or {}).get("examples", [])
    for name, g in p.get("grids", {}).items():
        if name.startswith("ssm_"):
            what = f"Mamba Δ and decay on {name[4:]}"
            link = ssm_figure(rd, g, f"{p['run']}: {what}", f"{name}.png")
        elif g.get("explorer") is not None and g["explorer"] < len(examples):
            what = f"attention on {name}"
            title = f"{p['run']}: {g['what']}"
            link = explorer_figure(rd, examples[g["explorer"]], title, f"attention_{name}.png")
        else:
            continue
        out.append(f"![{what}]({link})\n\n")
        if "stats" in g:
            out.append(_pattern_stats(g))
    return "".join(out)


def _pattern_stats(g: dict) -> str:
    """Per head: entropy (1: even, 0: one key), mass on the first token, on itself and on
    the token before (`probes.patterns`)."""
    rows = [
        [layer, h, *(st[k][h] for k in ("entropy", "sink", "diagonal", "previous"))]
        for layer, st in g["stats"].items()
        for h in range(len(st["entropy"]))
    ]
    u = g["uniform"]
    rows.append(["uniform head", "–", u["entropy"], u["sink"], u["diagonal"], u["previous"]])
    return (
        f"Per head on {g['what']}: normalised entropy (1: spread evenly, 0: one key, "
        "attention collapse), mass on the first token (a sink: a vertical stripe), on the "
        "query's own position and on the token before, averaged over the queries:\n\n"
        + markdown_table(["layer", "head", "entropy", "first token", "self", "previous"], rows)
        + "\n"
    )


def _embeddings(rd: RunDir, e: dict) -> str:
    out = []
    if e:
        link = embedding_figure(rd, e)
        out.append(
            "### Embeddings\n\nPCA of the "
            f"{e['pca_tokens']} most frequent tokens (PC1 {100 * e['pca_variance'][0]:.1f}%, "
            f"PC2 {100 * e['pca_variance'][1]:.1f}% of their variance).\n\n"
            f"![embeddings]({link})\n\nNearest neighbours by cosine:\n\n"
        )
        rows = [
            [tok, ", ".join(f"{n} ({c:.2f})" for n, c in nbrs)]
            for tok, nbrs in e["neighbours"].items()
        ]
        out.append(markdown_table(["token", "neighbours"], rows) + "\n")
        if "position_cosine" in e:
            title = "learned positional embeddings: cosine similarity"
            link = position_figure(rd, e["position_cosine"], title, "position_cosine.png")
            d = e["position_cosine_by_distance"]
            out.append(
                f"Learned positions: mean cosine of neighbours {fmt(d[1], 3)}, 4 apart "
                f"{fmt(d[min(4, len(d) - 1)], 3)}.\n\n![positions]({link})\n"
            )
    return "".join(out)


def sweep_probe_section(groups: dict, order: list[str], plots: Path) -> str:
    """Head probes across a sweep's configurations: the copy-ahead score and its offset,
    the chance levels, and (with `train.probe_every`) when an induction-shaped pattern forms, one
    thin line per seed."""
    probed = [g for g in order if all(r["probes"] and "heads" in r["probes"] for r in groups[g])]
    if not probed:
        return ""
    rows = []
    for g in probed:
        heads = [r["probes"]["heads"] for r in groups[g]]
        ahead = [h["max_copy_ahead"] for h in heads]
        rows.append(
            [
                g,
                format_pm([h["max_induction"]["score"] for h in heads], show_n=False),
                format_pm([a["score"] for a in ahead], show_n=False),
                ", ".join(f"+{a['offset']}" for a in ahead),
            ]
        )
    first = groups[probed[0]][0]
    vocab = first["summary"]["data"]["vocab_size"]
    uniform = first["probes"]["heads"]["uniform"]["induction"]
    text = (
        "## Head probes\n\n"
        + markdown_table(
            ["configuration", "max induction", "max copy-ahead", "its offset (per seed)"], rows
        )
        + f"\nChance: next-token accuracy 1/{vocab} = {1 / vocab:.3f} on a uniform guess; "
        f"induction score of a uniform causal head {uniform:.3f}. Max induction: the largest "
        "induction score of any head on the fixed probe set. Max copy-ahead: the same for "
        "the key j >= 1 tokens after the earlier copy, at the head and offset j where it is "
        "largest (j = 1 is induction; a conv window lets a head read the next token from "
        "j > 1).\n\n"
    )
    curves = {}
    for g in probed:
        runs = []
        for r in groups[g]:
            recs = [x for x in r["records"] if x["split"] == "probe"]
            if recs:
                runs.append(([x["step"] for x in recs], [x["max_induction"] for x in recs]))
        if runs:
            curves[g] = runs
    if curves:
        seed_lines_plot(
            curves,
            "step",
            "max induction score",
            "max induction score during training (thin: seeds)",
            plots / "induction_by_step.png",
        )
        text += f"![max induction score by step]({plot_link('induction_by_step.png')})\n\n"
        text += _formed_table(groups, [g for g in probed if g in curves])
    return (
        text
        + _sweep_ablation(groups, probed)
        + sweep_circuit_section(groups, probed)
        + _sweep_lengths(groups, order, plots)
    )


def _sweep_lengths(groups: dict, order: list[str], plots: Path) -> str:
    """Accuracy at each evaluated length per configuration (mean ± std over seeds) and
    one plot with a thin line per seed (`probes.lengths`)."""
    have = [g for g in order if all(r["probes"] and r["probes"].get("lengths") for r in groups[g])]
    if not have:
        return ""
    lengths = sorted(
        {x["length"] for g in have for r in groups[g] for x in r["probes"]["lengths"]["rows"]}
    )
    rows, curves = [], {}
    for g in have:
        row, runs = [g], []
        for L in lengths:
            vals = [
                x["accuracy"]
                for r in groups[g]
                for x in r["probes"]["lengths"]["rows"]
                if x["length"] == L and "accuracy" in x
            ]
            skipped = [
                x["skipped"]
                for r in groups[g]
                for x in r["probes"]["lengths"]["rows"]
                if x["length"] == L and "skipped" in x
            ]
            row.append(format_pm(vals) if vals else f"not run ({skipped[0]})" if skipped else "–")
        for r in groups[g]:
            ok = [x for x in r["probes"]["lengths"]["rows"] if "accuracy" in x]
            if ok:
                runs.append(([x["length"] for x in ok], [x["accuracy"] for x in ok]))
        rows.append(row)
        if runs:
            curves[g] = runs
    trained = groups[have[0]][0]["probes"]["lengths"]["trained_length"]
    text = (
        f"## Length generalisation (trained at {trained:,} tokens; accuracy)\n\n"
        + markdown_table(["configuration", *[f"{L:,}" for L in lengths]], rows)
        + "\n"
    )
    if curves:
        seed_lines_plot(
            curves,
            "sequence length",
            "accuracy",
            "accuracy by length (thin: seeds)",
            plots / "length_generalisation.png",
            logx=True,
        )
        text += f"![length generalisation]({plot_link('length_generalisation.png')})\n\n"
    return text


def _sweep_ablation(groups: dict, order: list[str]) -> str:
    """Repeat accuracy with the previous-token heads of each layer, or every induction
    head, ablated, per configuration (mean ± std over seeds; `probes.ablation`)."""
    ablated = [g for g in order if all(r["probes"].get("ablation") for r in groups[g])]
    if not ablated:
        return ""
    whats: list[str] = []
    for g in ablated:
        for r in groups[g]:
            for x in r["probes"]["ablation"]["groups"]:
                whats += [x["what"]] if x["what"] not in whats else []
    rows = []
    for g in ablated:
        tables = [r["probes"]["ablation"] for r in groups[g]]
        row = [g, format_pm([t["baseline"]["repeat_accuracy"] for t in tables])]
        for w in whats:
            vals = [x["repeat_accuracy"] for t in tables for x in t["groups"] if x["what"] == w]
            row.append(format_pm(vals) if vals else "–")
        patched = [
            float(np.nanmax(t["patching"]["recovered"]))
            for t in tables
            if t.get("patching", {}).get("layers")
        ]
        row.append(format_pm(patched) if patched else "–")
        rows.append(row)
    how = tables[0]["how"]
    return (
        f"### Head ablation ({how} ablation; repeat accuracy on the probe set)\n\n"
        + markdown_table(
            ["configuration", "nothing ablated", *whats, "one head's patch restores"], rows
        )
        + "\nA group is ablated in the seeds that have such heads (n says how many); an "
        "induction circuit needs both its previous-token and its induction heads, so "
        "ablating either should drop repeat accuracy toward a model that cannot induce. "
        "The last column: the largest share of the repeat's log-probability gap (clean vs "
        "first copy redrawn) that patching one head's output restores.\n\n"
    )


def formed_at(records: list[dict]) -> int | None:
    """The first `train.probe_every` step at which the max induction score reaches
    `INDUCTION_HEAD` (None: never)."""
    for r in records:
        if r["split"] == "probe" and r["max_induction"] >= INDUCTION_HEAD:
            return r["step"]
    return None


def _formed_table(groups: dict, order: list[str]) -> str:
    """When an induction-shaped pattern formed in each run: the step and the training
    tokens."""
    rows = []
    for g in order:
        for r in groups[g]:
            probes = [x for x in r["records"] if x["split"] == "probe"]
            step = formed_at(probes)
            per_step = r["summary"]["train_tokens"] / max(1, r["summary"]["steps"])
            rows.append(
                [
                    g,
                    str(r["summary"].get("seed", "")),
                    fmt(max(x["max_induction"] for x in probes), 3),
                    "not formed" if step is None else f"step {step:,}",
                    "–" if step is None else f"{step * per_step / 1e6:.2f}M",
                    f"{probes[-1]['step'] * per_step / 1e6:.2f}M",
                ]
            )
    return (
        f"When an induction-shaped pattern formed (max induction score first >= "
        f"{INDUCTION_HEAD}; whether the repeat needs it is the ablation's question):\n\n"
        + markdown_table(
            ["configuration", "seed", "highest", "formed at", "tokens then", "tokens probed"],
            rows,
        )
        + "\n"
    )
