"""attnlab models in the tools researchers already use: TransformerLens's
`HookedTransformer` both ways (`to_hooked_transformer`, `from_hooked_transformer`),
Hugging Face's GPT-2 both ways (`to_gpt2`, `from_gpt2`) and Mamba out (`to_mamba`), and
a run directory exported for either (`export_run`). See `attnlab.interop.transformer_lens`
and `attnlab.interop.hf`."""

from __future__ import annotations

from attnlab.interop.export import export_run, load_exported
from attnlab.interop.hf import from_gpt2, to_gpt2, to_mamba
from attnlab.interop.transformer_lens import from_hooked_transformer, to_hooked_transformer

__all__ = [
    "export_run",
    "from_gpt2",
    "from_hooked_transformer",
    "load_exported",
    "to_gpt2",
    "to_hooked_transformer",
    "to_mamba",
]
