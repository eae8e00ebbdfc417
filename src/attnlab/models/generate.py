"""Greedy and beam decoding for decoder-only models and encoder-decoders.

Legend: B batch, k beam width, N = B·k rows, P prompt length, L buffer length, Vp padded
vocabulary.

Both decoders keep one right-padded token buffer per row and the position of each row's
last token, so prompts of different lengths (prefix-LM prompts `[SOS] word [SEP]`) decode
in one batch: a causal model's logits at a row's last position do not depend on the
padding after it. Each step runs the model over the buffer up to the longest row (no
key-value cache: the sequences here are words). An encoder-decoder encodes its source
once; the model is put in eval mode while generating and restored afterwards.
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
) -> torch.Tensor:
    """Argmax decoding: (B, max_new) new tokens per row, `pad` after each row's `eos`.

    `prompt` (B, P) right-padded with its `lengths` (B,); `src` (B, S) for an
    encoder-decoder (then the prompt is the decoder's start, e.g. `[SOS]`).
    """
    was_training = model.training
    model.eval()
    try:
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
) -> torch.Tensor:
    """Beam search: the best of `width` hypotheses per row, (B, max_new) like `greedy`.

    A hypothesis scores the sum of its tokens' log-probabilities (through `eos`), divided
    by (its length)^`length_penalty`; finished hypotheses stay in the beam and compete
    with the open ones. Width 1 is greedy decoding.
    """
    if width < 1:
        raise ValueError(f"beam width must be >= 1 (got {width})")
    was_training = model.training
    model.eval()
    try:
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
