"""Token-level loss and accuracy, summed (not averaged) so batches and ranks add up exactly.

Legend: B batch, T time, D model width, V vocabulary, Vp padded vocabulary, N scored
targets, C rows per chunk.

Two ways to the same numbers:
- `token_stats(logits, …)`: from the model's full (B, T, Vp) logits.
- `chunked_token_stats(h, weight, bias, …)` (`train.loss_chunk`): from the final hidden
  states and the unembedding, C rows at a time. Its training gradient is formed in the
  forward pass, chunk by chunk (softmax − one-hot, then the two matmuls), so neither the
  (N, Vp) logits nor their gradient ever exist whole: at the write-up's width (Vp 50,304,
  batch 32 × 256) that is 1.6 GB of logits and 1.6 GB of gradient, against C × Vp × 4
  bytes per chunk (206 MB at C = 1024). The matmul FLOPs are the same as the plain path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def token_stats(
    logits: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor | None,
    accuracy: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(sum of cross-entropy, number of scored targets, number predicted right or None).

    `logits` (B, T, V) — possibly padded with -inf columns, which neither the loss nor the
    argmax can pick — `targets` (B, T), `mask` (B, T) bool or None for every target.
    The argmax pass is skipped when `accuracy` is False (training steps).
    """
    V = logits.shape[-1]
    flat = logits.reshape(-1, V)  # (B*T, V), a view
    y = targets.reshape(-1)  # (B*T,)
    if mask is not None:
        keep = mask.reshape(-1)
        flat, y = flat[keep], y[keep]
    loss_sum = F.cross_entropy(flat.float(), y, reduction="sum")
    correct = (flat.argmax(dim=-1) == y).sum() if accuracy else None
    return loss_sum, torch.tensor(y.numel(), device=y.device), correct


def _chunk_logits(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
    """(C, D) rows → (C, Vp) float32 logits (the matmul in autocast's dtype when active)."""
    return F.linear(h, weight, bias).float()


CACHE_ROWS = 8  # rows of logits whose float32 softmax fits a core's L2 cache (8 x 50k x 4 B)


def _softmax_rows(logits: torch.Tensor, y: torch.Tensor, grad: bool) -> torch.Tensor:
    """Σ CE of (C, Vp) `logits` against `y` (C,); with `grad`, `logits` is overwritten by
    softmax − one-hot. Worked `CACHE_ROWS` rows at a time in float32, so the five passes
    of the softmax read the cache, not memory (the pass over memory is what costs on a
    CPU: ~4 GB/s a core here)."""
    loss = torch.zeros((), dtype=torch.float32, device=logits.device)
    for r in range(0, logits.shape[0], CACHE_ROWS):
        x = logits[r : r + CACHE_ROWS].float()  # (R, Vp): a copy unless already float32
        yr = y[r : r + CACHE_ROWS, None]  # (R, 1)
        lse = torch.logsumexp(x, dim=-1, keepdim=True)  # (R, 1)
        loss += (lse - x.gather(1, yr)).sum()
        if grad:
            x.sub_(lse).exp_()  # softmax
            x.scatter_add_(1, yr, torch.full_like(yr, -1.0, dtype=x.dtype))  # − one-hot
            logits[r : r + CACHE_ROWS] = x
    return loss


class _LinearCrossEntropy(torch.autograd.Function):
    """Σ CE(h Wᵀ + bias, y) with its gradients for h and W computed during the forward.

    Under autocast (bf16-mixed) the matmuls run in autocast's dtype with the unembedding
    cast once and each chunk's softmax − one-hot cast once (autocast would cast them at
    every matmul); the softmax, the loss and W's gradient accumulate in float32.
    """

    @staticmethod
    def forward(ctx, h, weight, bias, y, chunk: int):  # h (N, D), weight (Vp, D), y (N,)
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        device = h.device.type
        mm = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else h.dtype
        loss = torch.zeros((), dtype=torch.float32, device=h.device)
        grad_h = torch.empty_like(h) if need_h else None  # (N, D)
        grad_w = torch.zeros_like(weight, dtype=torch.float32) if need_w else None  # (Vp, D)
        with torch.autocast(device, enabled=False):
            w = weight.to(mm)  # (Vp, D), cast once
            b = None if bias is None else bias.to(mm)  # (Vp,) 0 / -inf
            hm = h.to(mm)  # (N, D)
            for s in range(0, h.shape[0], chunk):
                hc, yc = hm[s : s + chunk], y[s : s + chunk]  # (C, D), (C,)
                g = F.linear(hc, w, b)  # (C, Vp) logits in mm's dtype; the gradient in place
                loss += _softmax_rows(g, yc, need_h or need_w)
                if need_h:
                    grad_h[s : s + chunk] = g @ w  # (C, D)
                if need_w:
                    grad_w += g.t() @ hc  # (Vp, D)
        ctx.save_for_backward(grad_h, grad_w)
        ctx.weight_dtype = weight.dtype
        return loss

    @staticmethod
    def backward(ctx, grad_out):
        grad_h, grad_w = ctx.saved_tensors
        gh = grad_h * grad_out.to(grad_h.dtype) if grad_h is not None else None
        gw = (grad_w * grad_out).to(ctx.weight_dtype) if grad_w is not None else None
        return gh, gw, None, None, None


def chunked_token_stats(
    h: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    mask: torch.Tensor | None,
    chunk: int,
    accuracy: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """`token_stats` of the logits `h Wᵀ + bias`, computed `chunk` rows at a time.

    `h` (B, T, D) final hidden states (after the last norm), `weight` (Vp, D) the
    unembedding, `bias` (Vp,) the padding bias (0 / -inf) or None. Differentiable in `h`
    and `weight` (the bias is a fixed buffer).
    """
    D = h.shape[-1]
    flat = h.reshape(-1, D)  # (B*T, D)
    y = targets.reshape(-1)  # (B*T,)
    if mask is not None:
        keep = mask.reshape(-1)
        flat, y = flat[keep], y[keep]  # (N, D), (N,)
    n = torch.tensor(y.numel(), device=y.device)
    if torch.is_grad_enabled() and (flat.requires_grad or weight.requires_grad):
        loss_sum = _LinearCrossEntropy.apply(flat, weight, bias, y, chunk)
        correct = None
        if accuracy:
            with torch.no_grad():
                _, _, correct = chunked_token_stats(flat, weight, bias, y, None, chunk)
        return loss_sum, n, correct
    loss_sum = torch.zeros((), dtype=torch.float32, device=flat.device)
    correct = torch.zeros((), dtype=torch.long, device=flat.device)
    for s in range(0, flat.shape[0], chunk):
        logits = _chunk_logits(flat[s : s + chunk], weight, bias)  # (C, Vp)
        yc = y[s : s + chunk]
        loss_sum += F.cross_entropy(logits, yc, reduction="sum")
        if accuracy:
            correct += (logits.argmax(dim=-1) == yc).sum()
    return loss_sum, n, correct if accuracy else None
