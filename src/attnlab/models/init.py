"""One weight initialiser for every model kind: the decoder stack, the encoder-decoder and
the classifier (`init_weights`).

- Linear weights N(0, 0.02), biases 0; residual output projections (`.out`, `.down`)
  N(0, 0.02 / √(2 L)) so the residual stream's variance does not grow with depth L
  (GPT-2 / nanoGPT).
- Token embeddings: N(0, 0.02) for decoder LMs (GPT-2); N(0, 1/D) for the models that
  scale embeddings by √D as in "Attention is all you need" (`embed_std = D^-½`), so each
  coordinate starts at unit scale.
- Learned positions: N(0, 0.01), or the sinusoid table (`pos_init: sinusoidal`; the
  default for the encoder-decoder and the classifier, `normal` for decoders).
- Depth-wise convs keep PyTorch's default (Kaiming-uniform), as the write-ups'
  `nn.Conv1d`; smear gates α = 0 (σ = 0.5); norms weight 1, bias 0; Mamba's A_log, D and
  Δ projection: `Mamba.reset_ssm_parameters` (S4D / mamba.py).

The order of the random draws is part of the contract (same seed ⇒ same weights): decoders
draw linears, embeddings and positions in module order; the √D-scaled models draw the
linears, then the embedding, then the positions.
"""

from __future__ import annotations

import math

from torch import nn

from attnlab.models.mamba import Mamba
from attnlab.models.positional import LearnedPositions


def init_weights(
    model: nn.Module, n_layers: int, pos_init: str | None, embed_std: float | None = None
) -> None:
    """Initialise `model` in place (see the module docstring).

    `n_layers`: the residual blocks its outputs add up over; `pos_init`: the config's
    (None: the model kind's default); `embed_std`: None for a decoder LM (GPT-2 style),
    else the std of `model.embed`, drawn after the linears.
    """
    gpt2 = embed_std is None
    pos_init = pos_init or ("normal" if gpt2 else "sinusoidal")
    learned = [m for m in model.modules() if isinstance(m, LearnedPositions)]
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            std = 0.02
            if name.endswith((".out", ".down")):
                std = 0.02 / math.sqrt(2 * n_layers)
            nn.init.normal_(module.weight, 0.0, std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif gpt2 and isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, 0.0, 0.02)
        elif gpt2 and isinstance(module, LearnedPositions):
            nn.init.normal_(module.weight, 0.0, 0.01)
    if not gpt2:
        nn.init.normal_(model.embed.weight, 0.0, embed_std)
        if pos_init == "normal":
            for pos in learned:
                nn.init.normal_(pos.weight, 0.0, 0.01)
    for module in model.modules():
        if isinstance(module, Mamba):
            module.reset_ssm_parameters()
    if pos_init == "sinusoidal":
        for pos in learned:
            pos.init_sinusoidal()
