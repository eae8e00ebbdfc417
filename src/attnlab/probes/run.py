"""Probes of a trained token model, as data: `load_trained`, `lm_probes` and `TrainingProbe`.

`lm_probes` runs every probe of a language model (text or synthetic) and returns plain
numbers: head scores, the ICL score, kernel profiles, smear gates, attention grids (their
patterns go to the explorer's `attention.json`), Mamba Δ profiles, embedding geometry.
The report draws every figure from this data; nothing here draws.

`TrainingProbe` is the cheap subset (head pattern scores, and the ICL score on at most
`train.eval_batches` validation batches) that `train.probe_every` records into
`metrics.jsonl` while a model trains, so a plot shows when induction heads form.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from attnlab.config import load_config
from attnlab.config.schema import RunConfig
from attnlab.data.piglatin import VOWELS
from attnlab.errors import UserError
from attnlab.probes import static
from attnlab.probes.ablation import ablation_table, top_units
from attnlab.probes.attribution import repeat_attribution
from attnlab.probes.capture import capture
from attnlab.probes.composition import composition_scores
from attnlab.probes.explorer import ExplorerLog
from attnlab.probes.heads import (
    PATTERN_SCORES,
    as_heads,
    attention_layers,
    head_scores,
    pattern_name,
)
from attnlab.probes.icl import icl_score
from attnlab.probes.length import length_generalisation
from attnlab.probes.patterns import pattern_stats, uniform_stats
from attnlab.probes.sequences import ProbeSet, repeated_sequences
from attnlab.probes.ssm import ssm_data
from attnlab.run_dir import RunDir, encode_matrix

EMBED_TOKENS = 300  # tokens in the embedding PCA


def load_trained(
    run_dir: str | Path, weights: str = "final"
) -> tuple[RunConfig, nn.Module, object]:
    """(config, model with the run's final or best weights, tokenizer or None)."""
    from attnlab import models
    from attnlab.train.checkpoint import load_weights

    rd = RunDir(run_dir)
    file = rd.weights_file(weights)
    for p in (rd.config, file):
        if not p.is_file():
            raise UserError(f"{rd.path} is not a trained run directory ({p.name} is missing)")
    cfg = load_config(rd.config)
    model = models.build(cfg.model)
    load_weights(model, file)
    model.eval()
    return cfg, model, run_tokenizer(rd, cfg)


def run_tokenizer(rd: RunDir, cfg: RunConfig):
    """The run's tokenizer: its `tokenizer.json`, or, for a run directory that kept none
    (a finished run taken back from a study's committed files), the one its data config
    rebuilds (cached); None for generated data, which has no tokenizer."""
    from attnlab import data as data_mod
    from attnlab.config.data import GeneratedData
    from attnlab.data.tokenizers import load_tokenizer

    if rd.tokenizer.is_file():
        return load_tokenizer(rd.tokenizer)
    if isinstance(cfg.data, GeneratedData):
        return None
    return data_mod.build(cfg.data).tokenizer


def probe_set_for(cfg: RunConfig, vocab_size: int, stream: np.ndarray | None = None) -> ProbeSet:
    """The run's fixed probe set (seeded by `probes.seed`, not by the training seed); with
    `probes.tokens: frequent`, drawn from the `probes.pool` most frequent tokens of a
    text's token `stream` (every id when there is none)."""
    p = cfg.probes
    seq_len = min(p.seq_len or cfg.data.seq_len, cfg.model.max_seq_len or cfg.data.seq_len)
    pool = None
    if p.tokens == "frequent" and stream is not None:
        counts = np.bincount(np.asarray(stream[: 10**7], dtype=np.int64), minlength=vocab_size)
        pool = np.sort(np.argsort(-counts, kind="stable")[: min(p.pool, (counts > 0).sum())])
    return repeated_sequences(vocab_size, p.num_sequences, seq_len, p.seed, pool)


class TrainingProbe:
    """Head pattern scores and the ICL score of a model in training, as a metrics record."""

    def __init__(self, model: nn.Module, cfg: RunConfig, dataset):
        self.model, self.cfg = model, cfg
        stream = getattr(dataset.splits["validation"], "tokens", None)  # a text's tokens
        self.probe = probe_set_for(cfg, model.vocab_size, stream)
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


EXPLORER_CHANNELS = 8  # a Mamba layer's channels the explorer shows (of d_inner)


def explorer_channels(heads: dict) -> dict[int, list[int]]:
    """Per Mamba layer, its `EXPLORER_CHANNELS` channels of highest induction score
    (`head_scores`'s result; attention layers show every head)."""
    out = {}
    for li, layer in enumerate(heads["layers"]):
        row = heads["scores"]["induction"][li]
        if heads.get("units", {}).get(str(layer)) == "channel":
            out[layer] = sorted(top_units(row, EXPLORER_CHANNELS))
    return out


def _patterns(
    model: nn.Module, x: torch.Tensor, layers: list[int] | None, channels: dict | None = None
) -> list[tuple[str, np.ndarray]]:
    """(layer name, (H, T, T) pattern) of the attention `layers` (default: all) for one
    sequence x (T,); a Mamba layer shows its `channels[layer]` (named in the layer's
    name), every channel when none are given."""
    found = attention_layers(model, layers)
    names = [pattern_name(model, i) for i in found]
    with torch.no_grad(), capture(model, names) as cache:
        model(x[None].to(next(model.parameters()).device))
    out = []
    for n, i in zip(names, found, strict=True):
        p = as_heads(cache[n], model.blocks[i].mixer)[0]  # (H, T, T)
        name = n.removesuffix(".hook_pattern")
        if channels and i in channels:
            p, name = p[channels[i]], f"{name} (channels {', '.join(map(str, channels[i]))})"
        out.append((name, p.numpy()))
    return out


def _grids(
    model, cfg, tok, text: np.ndarray | None, log: ExplorerLog, channels: dict | None = None
) -> dict:
    """Attention grids on a repeated random sequence and on a text snippet shown twice.

    `text` is the validation token stream of a text task (None for synthetic tasks). The
    patterns go to the explorer `log`; each grid names its example there (`explorer`).
    Mamba layers add their Δ profile (`ssm_repeat`, `ssm_text`).
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
        ssm = ssm_data(model, x, labels)
        if ssm is not None:
            out[f"ssm_{name}"] = ssm
        layers = _patterns(model, x, cfg.probes.layers, channels)
        if not layers:
            continue
        what = "repeated random tokens" if name == "repeat" else "a validation snippet, twice"
        index = log.add(what, labels, labels, layers)
        out[name] = {
            "tokens": x.tolist(),
            "labels": labels,
            "what": what,
            "explorer": index,
            "stats": {layer: pattern_stats(p) for layer, p in layers},
            "uniform": uniform_stats(len(labels)),
        }
    return out


def _embeddings(model, cfg, tok, text: np.ndarray | None) -> dict:
    """PCA of the most frequent tokens' embeddings, their neighbours, positional cosines."""
    V = model.vocab_size
    if text is not None:
        counts = np.bincount(np.asarray(text[:2_000_000]), minlength=V)[:V]
        order = np.argsort(-counts, kind="stable")[: min(V, EMBED_TOKENS)]
        ids = [int(i) for i in order if counts[i]]
    else:
        ids = list(range(min(V, EMBED_TOKENS)))
    emb = model.embed.weight.detach().float().cpu()[:V]  # (V, D)
    points, var = static.pca_2d(emb[ids])
    k = cfg.probes.label_tokens
    labels = [_label(tok, i) for i in ids]
    near = static.nearest_neighbours(emb, ids[: min(10, len(ids))])
    out = {
        "pca_tokens": len(ids),
        "pca_variance": var,
        "pca_points": points.double().numpy().round(5).tolist(),  # (N, 2)
        "pca_labels": [lab if j < k else "" for j, lab in enumerate(labels)],
        "pca_groups": [_group(tok, lab) for lab in labels],
        "neighbours": {
            _label(tok, i): [[_label(tok, j), round(c, 4)] for j, c in nn_list]
            for i, nn_list in near.items()
        },
    }
    cos = static.position_cosine(model)
    if cos is not None:
        L = min(cos.shape[0], cfg.data.seq_len)
        out["position_cosine_by_distance"] = static.cosine_by_distance(cos[:L, :L])
        out["position_cosine"] = encode_matrix(cos[:L, :L].numpy())  # (L, L)
    return out


def lm_probes(
    rd: RunDir, cfg: RunConfig, model: nn.Module, tok, val, no_val: str | None = None
) -> dict:
    """Every probe of a token model, as data; the explorer's patterns go to
    `attention.json`. `val` is the validation split, None when its data is unavailable
    (`no_val` says why; the ICL score is then skipped)."""
    pset = probe_set_for(cfg, model.vocab_size, getattr(val, "tokens", None))
    p = cfg.probes
    result: dict = {
        "probe_set": {
            "sequences": len(pset.tokens),
            "seq_len": pset.tokens.shape[1],
            "seed": p.seed,
        },
        "heads": head_scores(model, pset, p.batch_size, p.copying, p.layers),
    }
    if val is None:
        result["icl"] = {"skipped": f"validation data unavailable: {no_val}"}
    else:
        result["icl"] = icl_score(model, val, cfg.data.batch_size, p.icl_batches)
    if p.ablation and result["heads"]["layers"]:
        other = cfg.model_copy(update={"probes": p.model_copy(update={"seed": p.seed + 1})})
        reference = probe_set_for(other, model.vocab_size, getattr(val, "tokens", None))
        result["ablation"] = ablation_table(
            model, pset, result["heads"], p.batch_size, p.ablation_how, reference
        )
    result["composition"] = composition_scores(model)
    result["attribution"] = repeat_attribution(model, pset)
    if p.lengths:
        result["lengths"] = length_generalisation(cfg, model, p.lengths)
    result["conv"] = static.conv_profiles(model)
    result["smear_gates"] = static.smear_gates(model)
    text = getattr(val, "tokens", None)  # a text task's validation stream
    if text is None and getattr(val, "real", None) is not None:  # padded rows: their own
        text = np.asarray(val.inputs)[np.asarray(val.real)]  # tokens, end to end (no pad)
    log = ExplorerLog()
    result["grids"] = _grids(model, cfg, tok, text, log, explorer_channels(result["heads"]))
    log.save(rd)
    result["embeddings"] = _embeddings(model, cfg, tok, text)
    return result
