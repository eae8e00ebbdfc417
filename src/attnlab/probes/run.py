"""`probe(run_dir)`: every probe of a trained run → `probes.json` and `plots/`.

Also `TrainingProbe`, the cheap subset (head pattern scores, and the ICL score on at most
`train.eval_batches` validation batches) that
`train.probe_every` records into `metrics.jsonl` while a model trains, so a plot shows
when induction heads form. Reads the run directory (and rebuilds the validation split from
the run's data config, from the token cache when it is there).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from attnlab.config import load_config
from attnlab.config.schema import RunConfig
from attnlab.data.piglatin import VOWELS
from attnlab.errors import UserError
from attnlab.probes import weights as W
from attnlab.probes.capture import capture
from attnlab.probes.explorer import ExplorerLog, layer_patterns
from attnlab.probes.heads import PATTERN_SCORES, attention_layers, head_scores
from attnlab.probes.icl import icl_score
from attnlab.probes.sequences import ProbeSet, repeated_sequences
from attnlab.probes.ssm import ssm_plot
from attnlab.report import probe_curves
from attnlab.report import probe_plots as P
from attnlab.report.plots import line_plot
from attnlab.run_dir import CONFIG, METRICS, PROBES


def load_trained(run_dir: Path, weights: str = "final") -> tuple[RunConfig, nn.Module, object]:
    """(config, model with the run's final or best weights, tokenizer or None)."""
    from attnlab import models
    from attnlab.data.tokenizers import load_tokenizer
    from attnlab.train.checkpoint import BEST, WEIGHTS, load_weights

    run_dir = Path(run_dir)
    cfg_path = run_dir / CONFIG
    file = run_dir / {"final": WEIGHTS, "best": BEST}[weights]
    for p in (cfg_path, file):
        if not p.is_file():
            raise UserError(f"{run_dir} is not a trained run directory ({p.name} is missing)")
    cfg = load_config(cfg_path)
    model = models.build(cfg.model)
    load_weights(model, file)
    model.eval()
    tok_path = run_dir / "tokenizer.json"
    return cfg, model, load_tokenizer(tok_path) if tok_path.is_file() else None


def probe_set_for(cfg: RunConfig, vocab_size: int) -> ProbeSet:
    """The run's fixed probe set (seeded by `probes.seed`, not by the training seed)."""
    p = cfg.probes
    seq_len = min(p.seq_len or cfg.data.seq_len, cfg.model.max_seq_len or cfg.data.seq_len)
    return repeated_sequences(vocab_size, p.num_sequences, seq_len, p.seed)


class TrainingProbe:
    """Head pattern scores and the ICL score of a model in training, as a metrics record."""

    def __init__(self, model: nn.Module, cfg: RunConfig, dataset):
        self.model, self.cfg = model, cfg
        self.probe = probe_set_for(cfg, model.vocab_size)
        self.val = dataset.splits["validation"]
        # as many validation batches as a periodic evaluation, so probing costs about as much
        caps = [c for c in (cfg.probes.icl_batches, cfg.train.eval_batches) if c is not None]
        self.icl_batches = min(caps) if caps else None

    def __call__(self, step: int) -> dict:
        p = self.cfg.probes
        heads = head_scores(self.model, self.probe, p.batch_size, False, p.layers)
        icl = icl_score(self.model, self.val, self.cfg.data.batch_size, self.icl_batches)
        best = heads["max_induction"]
        return {
            "step": step,
            "split": "probe",
            "max_induction": best["score"],
            "max_induction_head": [best["layer"], best["head"]],
            **{k: heads["scores"][k] for k in PATTERN_SCORES},
            "repeat_accuracy": heads["repeat_accuracy"],
            "icl_score": icl["score"],
            "icl_stderr": icl["stderr"],
        }


def _label(tok, i: int) -> str:
    """A printable label of token i: spaces as ·, newlines as ⏎, other controls escaped."""
    if tok is None:
        return str(i)
    text = tok.decode([i]).replace("\n", "⏎").replace(" ", "·")
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text) or f"<{i}>"


def _group(tok, label: str) -> str:
    """Colour groups: vowels / consonants for characters, word starts for subwords."""
    if tok is None:
        return "token"
    text = label.replace("·", " ")
    if len(text) == 1:
        if text.lower() in VOWELS:
            return "vowel"
        return "consonant" if text.isalpha() else "other"
    if text.startswith(" ") and text[1:].isalpha():
        return "word start"
    return "word piece" if text.isalpha() else "other"


def _patterns(
    model: nn.Module, x: torch.Tensor, layers: list[int] | None
) -> list[tuple[str, np.ndarray]]:
    """(layer name, (H, T, T) pattern) of the attention `layers` (default: all) for one
    sequence x (T,)."""
    names = [f"blocks.{i}.attn.hook_pattern" for i in attention_layers(model, layers)]
    with torch.no_grad(), capture(model, names) as cache:
        model(x[None].to(next(model.parameters()).device))
    return layer_patterns(cache)


def _grids(model, cfg, tok, text: np.ndarray | None, plots: Path, log: ExplorerLog) -> dict:
    """Attention grids on a repeated random sequence and on a text snippet shown twice.

    `text` is the validation token stream of a text task (None for synthetic tasks); the
    patterns also go to the explorer `log`.
    """
    n = min(cfg.probes.grid_len, model.max_seq_len) // 2  # two copies fit the model
    V = model.vocab_size
    rng = np.random.default_rng(cfg.probes.seed)
    seg = rng.permutation(V)[:n] if n <= V else rng.integers(0, V, n)
    out = {}
    sources = {"repeat": torch.from_numpy(np.concatenate([seg, seg]).astype(np.int64))}
    if text is not None and len(text) > n:
        snippet = np.asarray(text[:n], dtype=np.int64)
        sources["text"] = torch.from_numpy(np.concatenate([snippet, snippet]))
    for name, x in sources.items():
        labels = [_label(tok, int(i)) for i in x]
        title = f"{cfg.name}: Mamba Δ and decay on {name}"
        ssm = ssm_plot(model, x, labels, title, plots / f"ssm_{name}.png")
        if ssm is not None:
            out[f"ssm_{name}"] = ssm
        layers = _patterns(model, x, cfg.probes.layers)
        if not layers:
            continue
        what = "repeated random tokens" if name == "repeat" else "a validation snippet, twice"
        log.add(what, labels, labels, layers)
        pats = [p for _, p in layers]
        P.attention_grid(pats, labels, f"{cfg.name}: {what}", plots / f"attention_{name}.png")
        out[name] = {"tokens": x.tolist(), "labels": labels, "plot": f"plots/attention_{name}.png"}
    return out


def _embeddings(model, cfg, tok, text: np.ndarray | None, plots: Path) -> dict:
    """PCA of the most frequent tokens' embeddings, their neighbours, positional cosines."""
    V = model.vocab_size
    if text is not None:
        counts = np.bincount(np.asarray(text[:2_000_000]), minlength=V)[:V]
        ids = [int(i) for i in np.argsort(-counts, kind="stable")[: min(V, 300)] if counts[i]]
    else:
        ids = list(range(min(V, 300)))
    emb = model.embed.weight.detach().float().cpu()[:V]  # (V, D)
    points, var = W.pca_2d(emb[ids])
    k = cfg.probes.label_tokens
    labels = [_label(tok, i) for i in ids]
    shown = [lab if j < k else "" for j, lab in enumerate(labels)]
    groups = [_group(tok, lab) for lab in labels]
    P.embedding_scatter(points.numpy(), shown, groups, var, plots / "embeddings_pca.png")
    near = W.nearest_neighbours(emb, ids[: min(10, len(ids))])
    out = {
        "pca_tokens": len(ids),
        "pca_variance": var,
        "neighbours": {
            _label(tok, i): [[_label(tok, j), round(c, 4)] for j, c in nn_list]
            for i, nn_list in near.items()
        },
        "plot": "plots/embeddings_pca.png",
    }
    cos = W.position_cosine(model)
    if cos is not None:
        L = min(cos.shape[0], cfg.data.seq_len)
        P.heatmap(
            cos[:L, :L].numpy(),
            "learned positional embeddings: cosine similarity",
            "position",
            "position",
            plots / "position_cosine.png",
        )
        out["position_cosine_by_distance"] = W.cosine_by_distance(cos[:L, :L])
        out["position_plot"] = "plots/position_cosine.png"
    return out


def _classifier_probe(run_dir: Path, cfg: RunConfig, model: nn.Module, tok) -> dict:
    """Encoder attention on the first validation texts (for the explorer), with the
    predicted and true class of each."""
    from attnlab import data as data_mod

    val = data_mod.build(cfg.data).splits["validation"]
    log, examples = ExplorerLog(), []
    for i in range(min(4, val.num_sequences)):
        n = max(1, int(val.lengths[i]))
        x = torch.from_numpy(val.rows[i, :n])  # (T,)
        with torch.no_grad(), capture(model, lambda n_: n_.endswith("hook_pattern")) as cache:
            logits = model(x[None])  # (1, C)
        labels = [tok.decode([int(t)]) or "[UNK]" for t in x]
        pred, true = int(logits.argmax(-1)), int(val.labels[i])
        log.add(f"#{i}: predicted {pred}, label {true}", labels, labels, layer_patterns(cache))
        examples.append({"text": val.texts[i], "predicted": pred, "label": true})
    log.save(run_dir)
    return {"kind": "classification", "examples": examples}


def probe(run_dir: str | Path, weights: str = "final") -> dict:
    """Run every probe on a trained run; writes `probes.json` and `plots/`, returns the dict."""
    from attnlab import data as data_mod

    run_dir = Path(run_dir)
    cfg, model, tok = load_trained(run_dir, weights)
    plots = run_dir / "plots"
    result: dict = {"run": cfg.name, "weights": weights}
    if cfg.model.arch == "classifier":
        result.update(_classifier_probe(run_dir, cfg, model, tok))
        (run_dir / PROBES).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        return result
    if cfg.data.task == "piglatin":
        from attnlab.probes.translation import probe_translation

        result.update(probe_translation(run_dir, cfg, model, tok))
        (run_dir / PROBES).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        return result
    pset = probe_set_for(cfg, model.vocab_size)
    result["probe_set"] = {
        "sequences": len(pset.tokens),
        "seq_len": pset.tokens.shape[1],
        "seed": cfg.probes.seed,
    }
    p = cfg.probes
    result["heads"] = head_scores(model, pset, p.batch_size, p.copying, p.layers)
    if result["heads"]["layers"]:
        P.score_maps(
            result["heads"]["scores"], result["heads"]["layers"], plots / "head_scores.png"
        )
    try:
        val = data_mod.build(cfg.data).splits["validation"]
    except UserError as e:
        val = None
        result["icl"] = {"skipped": f"validation data unavailable: {e}"}
    if val is not None:
        icl = icl_score(model, val, cfg.data.batch_size, cfg.probes.icl_batches)
        result["icl"] = icl
        curve = icl["loss_by_position"]
        line_plot(
            {"validation": (list(range(len(curve))), curve)},
            "position",
            "mean next-token loss (nats)",
            f"loss by position (ICL score {icl['score']:+.3f} ± {icl['stderr']:.3f})",
            plots / "loss_by_position.png",
        )
    result["conv"] = W.conv_profiles(model)
    if result["conv"]:
        P.kernel_profiles(result["conv"], plots / "kernel_profile.png")
    result["smear_gates"] = W.smear_gates(model)
    text = getattr(val, "tokens", None)  # a text task's validation stream
    log = ExplorerLog()
    result["grids"] = _grids(model, cfg, tok, text, plots, log)
    log.save(run_dir)
    result["embeddings"] = _embeddings(model, cfg, tok, text, plots)
    result["during_training"] = probe_curves(run_dir / METRICS, plots)
    (run_dir / PROBES).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return result
