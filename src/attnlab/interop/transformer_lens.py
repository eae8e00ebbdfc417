"""attnlab's models in TransformerLens 4 (`TransformerBridge`) and back.

TransformerLens 4 removed `HookedTransformer`: its models are `TransformerBridge`s over
Hugging Face `transformers` models. An attnlab model opens there through its exact
`transformers` export (`attnlab.interop.hf`: GPT-2 for attention, `MambaForCausalLM` for
Mamba): `to_transformer_bridge(model)` saves the export into a folder and boots the bridge
over it (`boot_bridge`), with eager attention so the bridge's `hook_pattern` sees every
pattern. The bridge keeps the Hugging Face weights as they are (no folded norms or centred
weights, `boot_transformers`' default; `enable_compatibility_mode()` would fold them), so
its logits, `run_with_cache` patterns (`blocks.{i}.attn.hook_pattern`, (B, H, T, T)) and
`hook_z` edits equal attnlab's. The way back, `from_transformer_bridge(bridge)`, reads the
bridge's Hugging Face model (`from_hf`), so attnlab's probes, ablations and patching run
on a model opened in TransformerLens. What the export cannot express is refused there by
the option's name.
"""

from __future__ import annotations

import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from torch import nn

from attnlab.errors import UserError
from attnlab.interop.hf import from_hf, to_hf
from attnlab.models.stack import DecoderLM


def _bridge_class():
    """TransformerLens 4's `TransformerBridge`, or a UserError saying what to install."""
    try:
        found = version("transformer-lens")
    except PackageNotFoundError as e:
        raise UserError(
            "TransformerLens is not installed: pip install 'attnlab[interop]' (transformer-lens 4)"
        ) from e
    import transformer_lens

    if not hasattr(transformer_lens, "TransformerBridge"):
        raise UserError(
            f"TransformerLens {found} has no TransformerBridge: attnlab opens its models in "
            "TransformerLens 4 (pip install -U 'transformer-lens>=4')"
        )
    return transformer_lens.TransformerBridge


def boot_bridge(folder: str | Path):
    """The `TransformerBridge` (CPU, eval mode) over a Hugging Face model folder, such as
    `attnlab export --to hf` writes; the folder's tokenizer comes with it when it has one."""
    import transformers

    bridge_cls = _bridge_class()
    folder = str(folder)
    hf = transformers.AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager")
    return bridge_cls.boot_transformers(folder, hf_model=hf.eval(), device="cpu").eval()


def to_transformer_bridge(model: DecoderLM, folder: str | Path | None = None):
    """A `TransformerBridge` computing `model`'s logits over its V real tokens; the
    Hugging Face export is saved in `folder` (a new temporary folder when None)."""
    if not isinstance(model, nn.Module):
        raise UserError(f"{type(model).__name__} is not an attnlab model")
    hf = to_hf(model)  # refuses what the export cannot express, before anything is written
    folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="attnlab-tl-"))
    hf.save_pretrained(folder)
    return boot_bridge(folder)


def from_transformer_bridge(bridge) -> DecoderLM:
    """An attnlab `DecoderLM` computing a `TransformerBridge`'s logits (over GPT-2 or
    Mamba), so attnlab's probes, ablations and patching run on it."""
    return from_hf(bridge.original_model)
