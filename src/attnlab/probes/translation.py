"""Probes of a translation run (Pig Latin): attention maps of chosen words, how closely
the attention follows the rule, character embeddings and positional similarity.

Legend: B words, H heads, T target steps, S source characters, V vocabulary.

Both model kinds are read: an encoder-decoder has encoder self-attention, decoder
self-attention and cross-attention; a prefix LM (`[SOS] word [SEP] translation`) has one
causal self-attention per block, whose target rows looking back at the word play the part
of cross-attention.

**Alignment.** The first n characters of `ownbray` (brown) are the word's own characters
rotated: the character emitted at target step t is the source character at
`(c + t) mod n`, c the length of the leading consonant cluster. A head's alignment score
is its mean attention mass on that source character at the query that emits it (over
unhyphenated words, teacher-forced with the reference). A head that reads the character
it is about to write scores 1; attention spread evenly over the word scores 1/n on average
(`uniform`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from attnlab.data.piglatin import VOWELS, CharVocab, TranslationSplit
from attnlab.errors import UserError
from attnlab.models.generate import beam_search, greedy
from attnlab.probes import static
from attnlab.probes.capture import capture, softmax_patterns
from attnlab.probes.explorer import ExplorerLog, layer_patterns
from attnlab.probes.ssm import ssm_data
from attnlab.run_dir import RunDir, encode_matrix

ALIGN_WORDS = 512  # validation words scored for alignment


def _is_seq2seq(model: nn.Module) -> bool:
    return getattr(model, "is_encoder_decoder", False)


def _labels(vocab: CharVocab, ids) -> list[str]:
    return [vocab.tokens[int(i)] for i in ids]


KINDS = {  # attention kind → which captured pattern names belong to it
    "encoder": lambda n: n.startswith("encoder."),
    "decoder": lambda n: n.startswith("decoder.") and ".attn." in n,
    "cross": lambda n: ".cross." in n,
    "self": lambda n: n.startswith("blocks."),
}


def translate_word(
    model: nn.Module, vocab: CharVocab, word: str, max_new: int, beam_width: int = 1
) -> str:
    """The model's translation of one word (greedy, or beam search when `beam_width` > 1)."""
    dev = next(model.parameters()).device
    src_ids = torch.from_numpy(vocab.encode(word.lower()))[None].to(dev)  # (1, n)
    if _is_seq2seq(model):
        prompt, src = torch.full((1, 1), vocab.SOS, device=dev), src_ids
    else:
        sos, sep = (
            torch.full((1, 1), vocab.SOS, device=dev),
            torch.full((1, 1), vocab.SEP, device=dev),
        )
        prompt, src = torch.cat([sos, src_ids, sep], dim=1), None  # (1, n + 2)
    P, L = prompt.shape[1], model.max_seq_len
    if max(P, src_ids.shape[1]) > L:
        raise UserError(f"{word!r} is longer than the model's {L} positions")
    max_new = min(max_new, L - P + 1)  # every fed position has a positional embedding
    lengths = torch.tensor([P], device=dev)
    if beam_width > 1:
        out = beam_search(model, prompt, lengths, max_new, vocab.EOS, beam_width, src=src)
    else:
        out = greedy(model, prompt, lengths, max_new, vocab.EOS, src=src)
    return vocab.decode(out[0].tolist())


def word_attention(
    model: nn.Module,
    vocab: CharVocab,
    word: str,
    max_new: int,
    log: ExplorerLog,
) -> dict:
    """Every layer and head of each attention kind for one word, on the model's own output:
    the patterns go to the explorer `log`, whose example index each kind names
    (`explorer[kind]`); a Mamba model adds its Δ profile (`ssm`)."""
    pred = translate_word(model, vocab, word, max_new)
    dev = next(model.parameters()).device
    src = vocab.encode(word)
    tgt_in = np.concatenate([[vocab.SOS], vocab.encode(pred)])  # [SOS] prediction
    room = model.max_seq_len - (0 if _is_seq2seq(model) else len(src) + 1)
    tgt_in = tgt_in[:room]  # a translation that never ends is cut where positions end
    out = {"word": word, "prediction": pred, "explorer": {}}
    with torch.no_grad(), capture(model, softmax_patterns(model)) as cache:
        if _is_seq2seq(model):
            model(torch.from_numpy(tgt_in)[None].to(dev), torch.from_numpy(src)[None].to(dev))
            kinds = {  # kind → (query labels, key labels)
                "encoder": (_labels(vocab, src), _labels(vocab, src)),
                "decoder": (_labels(vocab, tgt_in), _labels(vocab, tgt_in)),
                "cross": (_labels(vocab, tgt_in), _labels(vocab, src)),
            }
        else:
            seq = np.concatenate([[vocab.SOS], src, [vocab.SEP], tgt_in[1:]])
            model(torch.from_numpy(seq)[None].to(dev))
            kinds = {"self": (_labels(vocab, seq), _labels(vocab, seq))}
    for kind, (rows, cols) in kinds.items():
        layers = layer_patterns(cache, lambda n, k=kind: KINDS[k](n))
        index = log.add(f"{word} → {pred} ({kind})", rows, cols, layers)
        if index is not None:  # None: no attention layer (a Mamba model)
            out["explorer"][kind] = index
    if not _is_seq2seq(model):
        seq = np.concatenate([[vocab.SOS], src, [vocab.SEP], tgt_in[1:], [vocab.EOS]])
        seq = seq[: model.max_seq_len]
        ssm = ssm_data(model, seq, _labels(vocab, seq))
        if ssm is not None:
            out["ssm"] = ssm
    return out


def _source_index(word: str, t: int) -> int | None:
    """Source position of the character emitted at target step t (None for `ay`/`way`)."""
    n = len(word)
    if t >= n:
        return None
    c = next((i for i, ch in enumerate(word) if ch in VOWELS), n)
    return (c + t) % n


@torch.no_grad()
def alignment(model: nn.Module, split: TranslationSplit, max_words: int = ALIGN_WORDS) -> dict:
    """Per layer and head: attention mass on the source character being emitted (see top)."""
    dev = next(model.parameters()).device
    ids = [i for i, w in enumerate(split.words) if "-" not in w][:max_words]
    batch = split.get(np.array(ids)).to(dev)
    seq2seq = _is_seq2seq(model)
    # query row and key column of each (word, emitted source char) pair
    b_idx, q_idx, k_idx = [], [], []
    for b, i in enumerate(ids):
        w = split.words[i]
        for t in range(len(w)):
            s = _source_index(w, t)
            if seq2seq:  # decoder input t ([SOS] at 0) predicts target char t
                b_idx.append(b), q_idx.append(t), k_idx.append(s)
            else:  # [SOS] w [SEP] …: x index n + 1 + t predicts target char t
                b_idx.append(b), q_idx.append(len(w) + 1 + t), k_idx.append(1 + s)
    pick = [torch.tensor(v, device=dev) for v in (b_idx, q_idx, k_idx)]
    want = softmax_patterns(model, (lambda n: ".cross." in n) if seq2seq else (lambda _n: True))
    with capture(model, want, to_cpu=False) as cache:
        model(*batch.inputs())
    layers = cache.layer_names("hook_pattern")
    scores = []
    for name in layers:
        pat = cache[name].float()  # (B, H, Tq, Tk)
        hit = pat[pick[0], :, pick[1], pick[2]]  # (pairs, H)
        scores.append(hit.mean(0).tolist())
    uniform = float(np.mean([1 / len(split.words[ids[b]]) for b in b_idx]))
    return {"layers": layers, "scores": scores, "uniform": uniform, "words": len(ids)}


def _group(label: str) -> str:
    if label.startswith("["):
        return "special"
    if label in VOWELS:
        return "vowel"
    return "consonant" if label.isalpha() else "other"


def embeddings(model: nn.Module, vocab: CharVocab) -> dict:
    """PCA of the character embeddings (vowels and consonants coloured), and neighbours."""
    ids = list(range(1, vocab.vocab_size))  # all but [PAD]
    emb = model.embed.weight.detach().float().cpu()[: vocab.vocab_size]  # (V, D)
    points, var = static.pca_2d(emb[ids])
    labels = _labels(vocab, ids)
    letters = [i for i in ids if vocab.tokens[i].isalpha()]
    pts = points.numpy()
    vowel = np.array([vocab.tokens[i] in VOWELS for i in letters])
    xy = pts[[ids.index(i) for i in letters]]
    gap = float(np.linalg.norm(xy[vowel].mean(0) - xy[~vowel].mean(0)) / xy.std(0).mean())
    near = static.nearest_neighbours(emb, [vocab.index[c] for c in "aeiou" if c in vocab.index])
    return {
        "pca_variance": var,
        "pca_points": np.asarray(pts, dtype=np.float64).round(5).tolist(),  # (V - 1, 2)
        "pca_labels": labels,
        "pca_groups": [_group(lab) for lab in labels],
        "vowel_consonant_separation": gap,
        "special_cosines": special_cosines(emb, vocab),
        "neighbours": {
            vocab.tokens[i]: [[vocab.tokens[j], round(c, 4)] for j, c in lst]
            for i, lst in near.items()
        },
    }


SPECIAL_MARKS = ("[SOS]", "[EOS]", "[SEP]", "-", "'")


def special_cosines(emb: torch.Tensor, vocab: CharVocab) -> dict:
    """Cosine similarity between the special tokens' embeddings ([SOS], [EOS], [SEP], "-",
    "'" where the vocabulary has them), and of each with the mean letter embedding."""
    present = [t for t in SPECIAL_MARKS if t in vocab.tokens]
    letters = [i for i, t in enumerate(vocab.tokens) if t.isalpha() and len(t) == 1]
    rows = torch.stack([*(emb[vocab.tokens.index(t)] for t in present), emb[letters].mean(0)])
    cos = static.cosine_matrix(rows)  # (S + 1, S + 1)
    names = [*present, "letters (mean)"]
    return {
        a: {b: round(float(cos[i, j]), 4) for j, b in enumerate(names) if j != i}
        for i, a in enumerate(names)
    }


@torch.no_grad()
def encoder_heads(model: nn.Module, split: TranslationSplit, max_words: int = ALIGN_WORDS):
    """Per encoder layer and head: mean attention on the character itself (identity) and
    on the one before (previous), over the characters t >= 1 of validation words (an
    encoder-decoder's encoder; None for other models)."""
    if not _is_seq2seq(model):
        return None
    dev = next(model.parameters()).device
    n = min(max_words, len(split.words))
    src = torch.as_tensor(split.src[:n], device=dev)  # (B, S)
    lengths = torch.tensor([len(w) for w in split.words[:n]], device=dev)  # (B,)
    S = src.shape[1]
    t = torch.arange(1, S, device=dev)  # (S-1,)
    valid = (t[None, :] < lengths[:, None]).float()  # (B, S-1): real characters t >= 1
    with capture(model, softmax_patterns(model, lambda n: n.startswith("encoder."))) as c:
        model.encode(src)
    out = {}
    for name in c.layer_names("hook_pattern"):
        p = c[name].double()  # (B, H, S, S)
        ident = p[:, :, t, t]  # (B, H, S-1)
        prev = p[:, :, t, t - 1]  # (B, H, S-1)
        w = valid[:, None, :]
        out[name.removesuffix(".hook_pattern")] = {
            "identity": ((ident * w).sum((0, 2)) / w.sum((0, 2))).tolist(),
            "previous": ((prev * w).sum((0, 2)) / w.sum((0, 2))).tolist(),
        }
    return {"layers": out, "words": n, "uniform": float((1 / lengths.double()).mean())}


def positions(model: nn.Module, lengths: dict[str, int]) -> dict:
    """Cosine similarity of the positional tables (learned ones, or the fixed sinusoids)."""
    tables = (
        {"encoder": model.enc_pos, "decoder": model.dec_pos}
        if _is_seq2seq(model)
        else {"decoder": getattr(model, "pos", None)}
    )
    out = {}
    for name, module in tables.items():
        if module is None:
            continue
        weight = getattr(module, "weight", None)
        table = weight if weight is not None else module.table
        L = min(lengths[name], table.shape[0])
        cos = static.cosine_matrix(table[:L].detach())
        out[name] = {
            "kind": "learned" if weight is not None else "fixed sinusoidal",
            "cosine_by_distance": static.cosine_by_distance(cos),
            "cosine": encode_matrix(cos.numpy()),  # (L, L)
        }
    return out


def translation_probes(rd: RunDir, cfg, model: nn.Module, vocab: CharVocab, val) -> dict:
    """Every translation probe of a trained run, as data (`val`: the validation split);
    the attention patterns of `cfg.probes.words` go to the explorer's `attention.json`."""
    words = [w.lower() for w in cfg.probes.words]
    for w in words:
        vocab.encode(w)  # a character outside the vocabulary is a clear error
    log = ExplorerLog()
    attention = [word_attention(model, vocab, w, val.max_new, log) for w in words]
    log.save(rd)
    lengths = {"encoder": val.src.shape[1], "decoder": val.max_new + val.src.shape[1] + 2}
    if _is_seq2seq(model):
        lengths["decoder"] = val.max_new
    return {
        "arch": "seq2seq" if _is_seq2seq(model) else "prefix_lm",
        "attention": attention,
        "alignment": alignment(model, val),
        "encoder_heads": encoder_heads(model, val),
        "embeddings": embeddings(model, vocab),
        "positions": positions(model, lengths),
    }
