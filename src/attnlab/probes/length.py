"""Length generalisation: a model trained at one sequence length, evaluated on fresh data of
its synthetic task at longer ones (`probes.lengths`, `attnlab probe RUN_DIR --lengths`).

The Mamba paper (Gu & Dao 2023, section 4.1.2) trains its induction-heads task at 256
tokens and tests up to a million: the selective SSM keeps its accuracy, attention does not.
Beyond the training length each positional scheme does what it defines:
- `none` and `rope`: nothing depends on the table length (RoPE's angles are computed for
  any position), so the model is rebuilt with a longer `max_seq_len` and the same weights;
- `sinusoidal`: the sinusoids are defined at every position: the same;
- `learned` positions (and Mamba's `dt: positional`) stop at the table's end: no position
  beyond it is defined, so those lengths are reported as not run, with that reason,
  rather than guessed (clamping or wrapping would be a choice the model never saw).

Legend: N sequences, L evaluated length.
"""

from __future__ import annotations

import torch
from torch import nn

from attnlab import data as data_mod
from attnlab.config.schema import RunConfig
from attnlab.data.splits import eval_batches
from attnlab.train.loop import LossStats

SEQUENCES = 256  # fresh validation sequences per length


def undefined_beyond(cfg: RunConfig) -> str | None:
    """Why the model has no defined output beyond its `max_seq_len` (None: it has one)."""
    m = cfg.model
    if m.pos == "learned":
        return f"learned positions stop at {m.max_seq_len}"
    if getattr(m.mixer, "dt", None) == "positional":
        return f"Mamba's positional Δ stops at {m.max_seq_len}"
    return None


def length_generalisation(cfg: RunConfig, model: nn.Module, lengths: list[int]) -> dict:
    """Loss and accuracy of the trained `model` on `SEQUENCES` fresh validation sequences
    of its synthetic task at each of `lengths` (a model rebuilt at the length where its
    positions allow, see the module docstring). The task decides whether it applies
    (generated data only: `tasks.lm`)."""
    from attnlab import models

    trained = cfg.data.seq_len
    weights = {k: v.detach() for k, v in model.state_dict().items()}
    device = next(model.parameters()).device
    rows = []
    for L in lengths:
        row = {"length": L, "times_trained": L / trained}
        limit = cfg.model.max_seq_len or trained
        why = undefined_beyond(cfg) if limit < L else None
        if why is not None:
            rows.append({**row, "skipped": why})
            continue
        at = model
        if limit < L:  # the same weights in a model whose buffers reach L
            at = models.build(cfg.model.model_copy(update={"max_seq_len": L})).to(device)
            at.load_state_dict(weights)
            at.eval()
        d = cfg.data.model_copy(
            update={"seq_len": L, "num_train": cfg.data.batch_size, "num_val": SEQUENCES}
        )
        d = d.model_copy(update={"num_test": 1})
        val = data_mod.build(d).splits["validation"]
        rows.append({**row, **_evaluate(at, val, cfg.data.batch_size)})
    return {"trained_length": trained, "task": cfg.data.task, "rows": rows}


@torch.no_grad()
def _evaluate(model: nn.Module, split, batch_size: int) -> dict:
    """Mean loss and accuracy over the scored targets of a split."""
    stats = LossStats(model, None)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    loss = n = correct = 0.0
    try:
        for batch in eval_batches(split, batch_size):
            s_loss, s_n, s_correct = stats(model, batch.to(device))
            loss, n, correct = loss + float(s_loss), n + float(s_n), correct + float(s_correct)
    finally:
        model.train(was_training)
    return {"loss": loss / max(n, 1), "accuracy": correct / max(n, 1), "targets": int(n)}
