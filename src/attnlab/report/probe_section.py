"""The "Probes" section of a run report, from `probes.json` alone."""

from __future__ import annotations

from attnlab.report.tables import fmt, markdown_table

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


def probe_section(p: dict) -> str:
    """Markdown for the probes of one run (definitions, tables, figures)."""
    h = p["heads"]
    parts = ["## Probes\n", DEFINITIONS]
    if h["layers"]:
        names = list(h["scores"])
        rows = [
            [f"L{layer}", head, *(h["scores"][n][li][head] for n in names)]
            for li, layer in enumerate(h["layers"])
            for head in range(h["heads"])
        ]
        rows.append(["uniform", "–", *(h["uniform"].get(n) for n in names)])
        parts.append(markdown_table(["layer", "head", *names], rows))
        best, ahead = h["max_induction"], h["max_copy_ahead"]
        offs = list(h["by_offset"])
        rows = [
            [f"L{layer}", head, *(h["by_offset"][j][li][head] for j in offs)]
            for li, layer in enumerate(h["layers"])
            for head in range(h["heads"])
        ]
        parts.append(
            "\nAttention mass by key offset from the earlier copy of the query's token "
            "(0: duplicate-token, +1: induction, > 1: a look-ahead that a convolution "
            "window can turn into copying):\n\n"
            + markdown_table(["layer", "head", *(f"{int(j):+d}" for j in offs)], rows)
        )
        parts.append(
            f"\nMax induction score **{best['score']:.3f}** (layer {best['layer']}, head "
            f"{best['head']}); largest mass at or after +1: {ahead['score']:.3f} at offset "
            f"+{ahead['offset']} (layer {ahead['layer']}, head {ahead['head']}); next-token "
            "accuracy inside the repeat "
            f"{h['repeat_accuracy']:.3f}, loss {h['repeat_loss']:.3f}.\n\n"
            "![head scores](plots/head_scores.png)\n\n"
        )
    icl = p.get("icl", {})
    if "score" in icl:
        parts.append(
            f"ICL score **{icl['score']:+.3f} ± {icl['stderr']:.3f}** nats (positions "
            f"{icl['late_position']} minus {icl['early_position']}, each ± {icl['window']}, "
            f"{icl['sequences']} "
            "validation sequences, ± standard error).\n\n"
            "![loss by position](plots/loss_by_position.png)\n\n"
        )
    elif "skipped" in icl:
        parts.append(f"ICL score not measured: {icl['skipped']}\n\n")
    if p.get("during_training"):
        parts.append(
            "During training (`train.probe_every`):\n\n"
            "![induction by step](plots/induction_by_step.png)\n\n"
            "![ICL by step](plots/icl_by_step.png)\n\n"
        )
    if p["conv"]:
        rows = [
            [name, prof["where"], o, m, a, s, share]
            for name, prof in p["conv"].items()
            for o, m, a, s, share in zip(
                prof["offsets"],
                prof["mean"],
                prof["mean_abs"],
                prof["std"],
                prof["peak_share"],
                strict=True,
            )
        ]
        parts.append(
            "### Convolution kernels\n\nOffset 0 is the current token, −1 the one before. "
            "`peak share`: channels whose largest |weight| is at that offset.\n\n"
            + markdown_table(
                ["conv", "on", "offset", "mean w", "mean |w|", "std over channels", "peak share"],
                rows,
            )
            + "\n![kernel profile](plots/kernel_profile.png)\n\n"
        )
    for name, gates in p.get("smear_gates", {}).items():
        parts.append(
            f"Smear gates σ(α) of `{name}` (weight of a key's own token, 1 − σ on the "
            f"previous one): {', '.join(fmt(g, 3) for g in gates)}\n\n"
        )
    parts.append(_grids_and_embeddings(p))
    return "".join(parts)


def _grids_and_embeddings(p: dict) -> str:
    out = ["### Attention patterns (Mamba: Δ and decay)\n\n"]
    for name, g in p.get("grids", {}).items():
        what = (
            f"Mamba Δ and decay on {name[4:]}"
            if name.startswith("ssm_")
            else f"attention on {name}"
        )
        out.append(f"![{what}]({g['plot']})\n\n")
    e = p.get("embeddings", {})
    if e:
        out.append(
            "### Embeddings\n\nPCA of the "
            f"{e['pca_tokens']} most frequent tokens (PC1 {100 * e['pca_variance'][0]:.1f}%, "
            f"PC2 {100 * e['pca_variance'][1]:.1f}% of their variance).\n\n"
            f"![embeddings]({e['plot']})\n\nNearest neighbours by cosine:\n\n"
        )
        rows = [
            [tok, ", ".join(f"{n} ({c:.2f})" for n, c in nbrs)]
            for tok, nbrs in e["neighbours"].items()
        ]
        out.append(markdown_table(["token", "neighbours"], rows) + "\n")
        if "position_plot" in e:
            d = e["position_cosine_by_distance"]
            out.append(
                f"Learned positions: mean cosine of neighbours {fmt(d[1], 3)}, 4 apart "
                f"{fmt(d[min(4, len(d) - 1)], 3)}.\n\n![positions]({e['position_plot']})\n"
            )
    return "".join(out)
