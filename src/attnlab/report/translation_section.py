"""Report sections of translation runs (Pig Latin): scores, mistakes, errors by length,
and the translation probes, with their figures, from `summary.json`, `translations.json`,
`metrics.jsonl`, `probes.json` and `attention.json`."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from attnlab.report.plots import curves, finish_plot, line_plot
from attnlab.report.probe_section import (
    embedding_figure,
    explorer_figure,
    position_figure,
    ssm_figure,
)
from attnlab.report.tables import fmt, markdown_table
from attnlab.run_dir import RunDir, plot_link

MISTAKES_SHOWN = 15


def errors_by_length_plot(details: dict, path: Path) -> Path:
    """Word error rate by source-word length per split, with the word counts as bars."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    counts = ax.twinx()
    for split, d in details.items():
        rows = sorted((int(k), v) for k, v in d["errors_by_length"].items())
        x = [k for k, _ in rows]
        ax.plot(x, [v["errors"] / v["words"] for _, v in rows], marker="o", label=split)
        if split == "test":
            counts.bar(x, [v["words"] for _, v in rows], color="grey", alpha=0.2)
    counts.set_ylabel("test words (bars)")
    ax.set_zorder(counts.get_zorder() + 1)
    ax.patch.set_visible(False)
    xlabel = "source word length (characters)"
    return finish_plot(fig, ax, xlabel, "word error rate", "errors by word length", path, True)


def scores_section(rd: RunDir, summary: dict, records: list[dict]) -> str:
    """Train / valid / test table, sample mistakes, and the errors-by-length and
    word-accuracy figures."""
    details = rd.read_translations()
    details.pop("scores", None)
    if details:
        errors_by_length_plot(details, rd.plot("errors_by_length.png"))
    line_plot(
        {"validation": curves(records, "validation", "word_accuracy")},
        "step",
        "word accuracy (exact match)",
        f"{summary['name']}: word accuracy",
        rd.plot("word_accuracy.png"),
    )
    vocab_size = summary["data"]["vocab_size"]
    t = summary["translation"]
    rows = [
        [s, t[s]["words"], t[s]["loss_per_char"], t[s]["char_accuracy"], t[s]["word_accuracy"]]
        for s in ("train", "validation", "test")
    ]
    out = [
        "## Translation\n\n",
        markdown_table(["split", "words", "loss / char", "char accuracy", "word accuracy"], rows),
        f"\nLoss per character is in nats; chance is log V = {math.log(vocab_size):.2f} "
        f"(V = {vocab_size}). Character accuracy is teacher-forced (each next character "
        "given the true ones before it); word accuracy is exact match of the generated "
        "translation. Train is scored on as many of its words as validation.\n\n",
    ]
    test = details.get("test", {})
    for key, what in (("errors_by_kind", "kind"), ("errors_by_start", "first letter")):
        groups = test.get(key, {})
        if groups:
            parts = [
                f"{k} {1 - v['errors'] / v['words']:.4f} ({v['words']:,} words)"
                for k, v in groups.items()
            ]
            out.append(f"Test word accuracy by {what}: " + "; ".join(parts) + ".\n\n")
    if "mistakes_repeating_last" in test:
        n_wrong = sum(v["errors"] for v in test.get("errors_by_kind", {}).values())
        out.append(
            f"Test mistakes that repeat the word's last character (`is` → `isssway`): "
            f"{test['mistakes_repeating_last']} of {n_wrong}.\n\n"
        )
    mistakes = details.get("test", {}).get("mistakes", [])[:MISTAKES_SHOWN]
    if mistakes:
        out.append("Sample test mistakes:\n\n")
        out.append(
            markdown_table(
                ["word", "true", "predicted"],
                [[m["word"], m["target"], m["predicted"]] for m in mistakes],
            )
        )
    if details:
        out.append(f"\n![errors by length]({plot_link('errors_by_length.png')})\n\n")
    out.append(f"![word accuracy]({plot_link('word_accuracy.png')})\n\n")
    return "".join(out)


DEFINITIONS = """\
- **Alignment**: the k-th character of a translation (before `ay`/`way`) is a character of
  the word itself, at source position (c + k) mod n (c: leading consonants, n: length).
  A head's score is its attention mass on that source character at the query that emits
  it (validation words without hyphens, teacher-forced). 1: the head reads exactly the
  character it writes; `uniform`: attention spread evenly over the word.
- **Vowel/consonant separation**: distance between the mean vowel and the mean consonant
  in the embedding PCA plane, in units of the points' spread.
"""


SSM_DEFINITIONS = (
    "Mamba plots: top, Δ at each character (mean ± std over channels; a large Δ writes "
    "the character into the state and forgets the past, a small one skips it); bottom, the "
    "weight each character keeps in the state at the last position, Π Ā over the "
    "positions after it, averaged over channels and states (log scale).\n"
)


def probe_section(rd: RunDir, p: dict, attention: dict | None) -> str:
    """The translation probes: alignment table, attention maps, embeddings, positions,
    drawing their figures."""
    out = ["## Probes\n\n", DEFINITIONS, "\n"]
    a = p["alignment"]
    if a["layers"]:
        H = len(a["scores"][0])
        rows = [
            [name.removesuffix(".hook_pattern"), *scores]
            for name, scores in zip(a["layers"], a["scores"], strict=True)
        ]
        out.append(
            f"### Alignment ({a['words']} words; uniform {fmt(a['uniform'], 3)})\n\n"
            + markdown_table(["layer", *(f"H{h}" for h in range(H))], rows)
            + "\n"
        )
    enc = p.get("encoder_heads")
    if enc and enc["layers"]:
        rows = [
            [name, h, scores["identity"][h], scores["previous"][h]]
            for name, scores in enc["layers"].items()
            for h in range(len(scores["identity"]))
        ]
        out.append(
            f"### Encoder heads ({enc['words']} validation words)\n\nMean attention of each "
            "character on itself and on the character before (a uniform head: "
            f"{fmt(enc['uniform'], 3)} on each):\n\n"
            + markdown_table(["layer", "head", "identity", "previous"], rows)
            + "\n"
        )
    out.append("### Chosen words\n\n")
    if any("ssm" in w for w in p["attention"]):
        out.append(SSM_DEFINITIONS + "\n")
    examples = (attention or {}).get("examples", [])
    for i, w in enumerate(p["attention"]):
        word, pred = w["word"], w["prediction"]
        out.append(f"**{word}** → `{pred}`\n\n")
        for kind, index in w["explorer"].items():
            if index >= len(examples):
                continue
            title = f"{word} → {pred}: {kind} attention"
            name = f"attention_{i}_{word}_{kind}.png"
            link = explorer_figure(rd, examples[index], title, name)
            out.append(f"![{kind} attention, {word}]({link})\n\n")
        if "ssm" in w:
            title = f"{word} → {pred}: Mamba Δ and decay"
            link = ssm_figure(rd, w["ssm"], title, f"ssm_{i}_{word}.png")
            out.append(f"![Mamba Δ and decay, {word}]({link})\n\n")
    e = p["embeddings"]
    link = embedding_figure(rd, e)
    out.append(
        "### Character embeddings\n\n"
        f"PC1 {100 * e['pca_variance'][0]:.1f}%, PC2 {100 * e['pca_variance'][1]:.1f}% of "
        f"the variance; vowel/consonant separation {fmt(e['vowel_consonant_separation'], 3)}."
        f"\n\n![embeddings]({link})\n\n"
    )
    rows = [[c, ", ".join(f"{n} ({s:.2f})" for n, s in nb)] for c, nb in e["neighbours"].items()]
    out.append(markdown_table(["vowel", "nearest characters"], rows) + "\n")
    specials = e.get("special_cosines")
    if specials:
        names = list(specials)
        rows = [[a, *(specials[a].get(b, "–") for b in names)] for a in names]
        out.append(
            "Cosine similarity of the special tokens' embeddings with each other and with "
            "the mean letter:\n\n" + markdown_table(["", *names], rows) + "\n"
        )
    if p["positions"]:
        out.append("### Positions\n\n")
        for name, pos in p["positions"].items():
            d = pos["cosine_by_distance"]
            far = fmt(d[min(4, len(d) - 1)], 3)
            title = f"{name} {pos['kind']} positions: cosine"
            link = position_figure(rd, pos["cosine"], title, f"position_cosine_{name}.png")
            out.append(
                f"{name} ({pos['kind']}): mean cosine of neighbours {fmt(d[1], 3)}, "
                f"4 apart {far}.\n\n![{name} positions]({link})\n\n"
            )
    return "".join(out)
