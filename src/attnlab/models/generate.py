"""Greedy and beam decoding for decoder-only models and encoder-decoders.

Legend: B batch, k beam width, N = B·k rows, P prompt length, L buffer length, Vp padded
vocabulary.

Two ways, the same tokens (tested):
- `cache=True` (default): every row advances one position per step through the model's
  `step` (attention: keys and values kept, cross-attention's projected once; Mamba: its
  conv window and SSM state, O(1) a token). Rows with prompts of different lengths move
  in lockstep: at step t a row feeds its prompt's token t while it has one, else its last
  prediction, so every row is at the same position and nothing is padded.
- `cache=False`: one right-padded token buffer per row and the position of its last
  token; each step reruns the model over the buffer up to the longest row (a causal
  model's logits at a row's last position do not depend on the padding after it).
An encoder-decoder encodes its source once; the model is put in eval mode while
generating and restored afterwards.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

Step = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _stepper(model: nn.Module, src: torch.Tensor | None) -> Step:
    """step(buf (N, L), pos (N,), rows (N,) source row of each) → (N, Vp) next-token logits."""
    if src is None:

        def step(buf, pos, rows):
            logits = model(buf[:, : int(pos.max()) + 1])  # (N, t, Vp)
            return logits[torch.arange(len(buf), device=buf.device), pos]

        return step
    memory, key_mask = model.encode(src)  # (B, S, D), (B, S)

    def step(buf, pos, rows):
        logits = model.decode(buf[:, : int(pos.max()) + 1], memory[rows], key_mask[rows])
        return logits[torch.arange(len(buf), device=buf.device), pos]

    return step


class _Cached:
    """Cached decoding state of N rows: `logits(tokens (N,), t)` → (N, Vp) of position
    t + 1; `reorder(idx (N,))` follows beams (every cached tensor's rows)."""

    def __init__(self, model: nn.Module, src: torch.Tensor | None, rows: torch.Tensor):
        self.model = model
        blocks = model.decoder if src is not None else model.blocks
        self.state: list[dict] = [{} for _ in blocks]
        self.memory = self.key_mask = None
        if src is not None:
            memory, key_mask = model.encode(src)  # (B, S, D), (B, S)
            self.memory, self.key_mask = memory[rows], key_mask[rows]

    def logits(self, tokens: torch.Tensor, t: int) -> torch.Tensor:
        if self.memory is None:
            return self.model.step(tokens, self.state, t)
        return self.model.step(tokens, self.state, t, self.memory, self.key_mask)

    def reorder(self, idx: torch.Tensor) -> None:
        self.state = [_take(st, idx) for st in self.state]
        if self.memory is not None:
            self.memory, self.key_mask = self.memory[idx], self.key_mask[idx]


def _take(state, idx: torch.Tensor):
    """Rows `idx` of every tensor in a nested dict of cached tensors."""
    if isinstance(state, dict):
        return {k: _take(v, idx) for k, v in state.items()}
    return state[idx]


def _buffer(prompt: torch.Tensor, max_new: int, pad: int) -> torch.Tensor:
    fill = torch.full((prompt.shape[0], max_new), pad, dtype=prompt.dtype, device=prompt.device)
    return torch.cat([prompt, fill], dim=1)  # (B, P + max_new)


@torch.no_grad()
def greedy(
    model: nn.Module,
    prompt: torch.Tensor,
    lengths: torch.Tensor,
    max_new: int,
    eos: int,
    pad: int = 0,
    src: torch.Tensor | None = None,
    cache: bool = True,
) -> torch.Tensor:
    """Argmax decoding: (B, max_new) new tokens per row, `pad` after each row's `eos`.

    `prompt` (B, P) right-padded with its `lengths` (B,); `src` (B, S) for an
    encoder-decoder (then the prompt is the decoder's start, e.g. `[SOS]`); `cache`:
    step by step with the model's cache, else full recomputation.
    """
    was_training = model.training
    model.eval()
    try:
        if cache:
            return _greedy_cached(model, prompt, lengths, max_new, eos, pad, src)
        step = _stepper(model, src)
        B, dev = prompt.shape[0], prompt.device
        rows = torch.arange(B, device=dev)
        buf, pos = _buffer(prompt, max_new, pad), lengths.to(dev) - 1  # (B, L), (B,)
        out = torch.full((B, max_new), pad, dtype=prompt.dtype, device=dev)
        done = torch.zeros(B, dtype=torch.bool, device=dev)
        for i in range(max_new):
            tok = step(buf, pos, rows).argmax(-1)  # (B,)
            tok = torch.where(done, pad, tok)
            out[:, i] = tok
            pos = pos + 1
            buf[rows, pos] = tok
            done |= tok == eos
            if bool(done.all()):
                break
        return out
    finally:
        model.train(was_training)


def _greedy_cached(model, prompt, lengths, max_new: int, eos: int, pad: int, src):
    """`greedy` in lockstep with the cache (see the module docstring)."""
    B, P, dev = prompt.shape[0], prompt.shape[1], prompt.device
    rows = torch.arange(B, device=dev)
    last = lengths.to(dev) - 1  # (B,) position of each prompt's last token
    dec = _Cached(model, src, rows)
    out = torch.full((B, max_new), pad, dtype=prompt.dtype, device=dev)
    done = torch.zeros(B, dtype=torch.bool, device=dev)
    tok = prompt[:, 0]
    for t in range(int(last.max()) + max_new):
        pred = dec.logits(tok, t).argmax(-1)  # (B,) the token at t + 1
        i = t - last  # (B,) which new token that is (< 0: still in the prompt)
        live = (i >= 0) & (i < max_new)
        pred = torch.where(done, pad, pred)
        out[rows[live], i[live]] = pred[live]
        done |= live & (pred == eos)
        if bool(((i >= max_new - 1) | done).all()):
            break
        nxt = prompt[:, t + 1] if t + 1 < P else torch.full_like(tok, pad)
        tok = torch.where(i >= 0, pred, nxt)
    return out


@torch.no_grad()
def beam_search(
    model: nn.Module,
    prompt: torch.Tensor,
    lengths: torch.Tensor,
    max_new: int,
    eos: int,
    width: int,
    pad: int = 0,
    src: torch.Tensor | None = None,
    length_penalty: float = 0.0,
    cache: bool = True,
) -> torch.Tensor:
    """Beam search: the best of `width` hypotheses per row, (B, max_new) like `greedy`.

    A hypothesis scores the sum of its tokens' log-probabilities (through `eos`), divided
    by (its length)^`length_penalty`; finished hypotheses stay in the beam and compete
    with the open ones. Width 1 is greedy decoding. With `cache` the caches are reordered
    with the beams.
    """
    if width < 1:
        raise ValueError(f"beam width must be >= 1 (got {width})")
    was_training = model.training
    model.eval()
    try:
        if cache:
            args = (max_new, eos, width, pad, src, length_penalty)
            return _beam_cached(model, prompt, lengths, *args)
        step = _stepper(model, src)
        B, k, dev = prompt.shape[0], width, prompt.device
        N = B * k
        rows = torch.arange(B, device=dev).repeat_interleave(k)  # (N,) source row
        buf = _buffer(prompt, max_new, pad).repeat_interleave(k, 0)  # (N, L)
        pos = lengths.to(dev).repeat_interleave(k) - 1  # (N,)
        scores = torch.full((B, k), float("-inf"), device=dev)
        scores[:, 0] = 0.0  # one live hypothesis to start from
        done = torch.zeros(B, k, dtype=torch.bool, device=dev)
        length = torch.zeros(B, k, device=dev)
        out = torch.full((B, k, max_new), pad, dtype=prompt.dtype, device=dev)
        for i in range(max_new):
            logp = step(buf, pos, rows).float().log_softmax(-1)  # (N, Vp)
            V = logp.shape[-1]
            logp = logp.view(B, k, V)
            stay = torch.full((V,), float("-inf"), device=dev)
            stay[pad] = 0.0  # a finished hypothesis continues with pad at no cost
            logp = torch.where(done[..., None], stay, logp)
            top, idx = (scores[..., None] + logp).view(B, k * V).topk(k, dim=-1)  # (B, k)
            parent, tok = idx // V, idx % V
            out = out.gather(1, parent[..., None].expand(-1, -1, max_new))
            out[:, :, i] = tok
            done, length = done.gather(1, parent), length.gather(1, parent)
            length = length + (~done).float()
            done = done | (tok == eos)
            scores = top
            flat = (torch.arange(B, device=dev)[:, None] * k + parent).view(N)  # (N,)
            buf, pos = buf[flat], pos[flat] + 1
            buf[torch.arange(N, device=dev), pos] = tok.view(N)
            if bool(done.all()):
                break
        final = scores / length.clamp(min=1) ** length_penalty if length_penalty else scores
        best = final.argmax(-1)  # (B,)
        return out[torch.arange(B, device=dev), best]
    finally:
        model.train(was_training)


def _beam_cached(model, prompt, lengths, max_new, eos, width, pad, src, length_penalty):
    """`beam_search` in lockstep with the cache: a row's beams copy its prompt until its
    last prompt token, then search; the caches follow the surviving beams."""
    B, k, P, dev = prompt.shape[0], width, prompt.shape[1], prompt.device
    N = B * k
    dec = _Cached(model, src, torch.arange(B, device=dev).repeat_interleave(k))
    last = lengths.to(dev) - 1  # (B,)
    scores = torch.full((B, k), float("-inf"), device=dev)
    scores[:, 0] = 0.0  # one live hypothesis to start from
    done = torch.zeros(B, k, dtype=torch.bool, device=dev)
    length = torch.zeros(B, k, device=dev)
    out = torch.full((B, k, max_new), pad, dtype=prompt.dtype, device=dev)
    keep = torch.arange(k, device=dev).expand(B, k)  # (B, k) parent = itself
    tok = prompt[:, 0].repeat_interleave(k)  # (N,)
    for t in range(int(last.max()) + max_new):
        logp = dec.logits(tok, t).float().log_softmax(-1)  # (N, Vp)
        V = logp.shape[-1]
        logp = logp.view(B, k, V)
        i = t - last  # (B,) which new token this step makes
        live = (i >= 0) & (i < max_new)  # (B,) rows searching now
        stay = torch.full((V,), float("-inf"), device=dev)
        stay[pad] = 0.0  # a finished hypothesis continues with pad at no cost
        logp = torch.where(done[..., None], stay, logp)
        top, idx = (scores[..., None] + logp).view(B, k * V).topk(k, dim=-1)  # (B, k)
        parent = torch.where(live[:, None], idx // V, keep)
        new = idx % V
        out = out.gather(1, parent[..., None].expand(-1, -1, max_new))
        b = torch.arange(B, device=dev)[live]
        out[b, :, i[live]] = new[live]
        was_done = done.gather(1, parent)
        length = torch.where(live[:, None], length.gather(1, parent) + (~was_done).float(), length)
        done = torch.where(live[:, None], was_done | (new == eos), done)
        scores = torch.where(live[:, None], top, scores)
        flat = (torch.arange(B, device=dev)[:, None] * k + parent).view(N)  # (N,)
        dec.reorder(flat)
        if bool(((i >= max_new - 1) | done.all(-1)).all()):
            break
        nxt = prompt[:, t + 1] if t + 1 < P else torch.full_like(prompt[:, 0], pad)
        tok = torch.where((i >= 0)[:, None], new, nxt[:, None].expand(B, k)).reshape(N)
    final = scores / length.clamp(min=1) ** length_penalty if length_penalty else scores
    best = final.argmax(-1)  # (B,)
    return out[torch.arange(B, device=dev), best]
