"""attnlab models in the tools researchers already use: Hugging Face `transformers` both
ways (GPT-2 and Mamba: `to_hf`, `from_hf`), TransformerLens 4 both ways through it
(`to_transformer_bridge`, `from_transformer_bridge`), and a run directory exported as a
folder both load (`export_run`). See `attnlab.interop.hf` and
`attnlab.interop.transformer_lens`."""

from __future__ import annotations

from attnlab.interop.export import export_run
from attnlab.interop.hf import from_gpt2, from_hf, from_mamba, to_gpt2, to_hf, to_mamba
from attnlab.interop.transformer_lens import (
    boot_bridge,
    from_transformer_bridge,
    to_transformer_bridge,
)

__all__ = [
    "boot_bridge",
    "export_run",
    "from_gpt2",
    "from_hf",
    "from_mamba",
    "from_transformer_bridge",
    "to_gpt2",
    "to_hf",
    "to_mamba",
    "to_transformer_bridge",
]
