"""attnlab models in the tools researchers already use: TransformerLens's
`HookedTransformer` both ways (`to_hooked_transformer`, `from_hooked_transformer`) and a
run directory exported for it (`export_run`). See `attnlab.interop.transformer_lens`."""

from __future__ import annotations

from attnlab.interop.export import export_run, load_exported
from attnlab.interop.transformer_lens import from_hooked_transformer, to_hooked_transformer

__all__ = ["export_run", "from_hooked_transformer", "load_exported", "to_hooked_transformer"]
