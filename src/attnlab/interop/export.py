"""`attnlab export RUN_DIR [--to hf|transformer-lens] OUT`: a run's model as a folder that
Hugging Face `transformers` loads without attnlab (`AutoModelForCausalLM.from_pretrained(OUT)`:
GPT-2, or `MambaForCausalLM` for a Mamba model, as `config.json` and `model.safetensors`;
`attnlab.interop.hf`) and TransformerLens 4 opens (`TransformerBridge.boot_transformers`),
with the run's tokenizer and a README with the lines that load it. The two formats write
the same folder; `--to` picks the README's first snippet."""

from __future__ import annotations

from pathlib import Path

from attnlab.errors import UserError
from attnlab.run_dir import RunDir, atomic_write_text

FORMATS = ("hf", "transformer-lens")

HF_SNIPPET = """from transformers import AutoModelForCausalLM

model = AutoModelForCausalLM.from_pretrained("{out}")  # {cls}
"""

TL_SNIPPET = """from transformers import AutoModelForCausalLM
from transformer_lens import TransformerBridge  # TransformerLens 4

hf = AutoModelForCausalLM.from_pretrained("{out}", attn_implementation="eager")
model = TransformerBridge.boot_transformers("{out}", hf_model=hf, device="cpu")
logits, cache = model.run_with_cache(tokens)  # cache["blocks.0.attn.hook_pattern"]
"""


def export_run(run_dir: str | Path, out: str | Path, to: str = "hf",
               weights: str = "final") -> Path:  # fmt: skip
    """Write the run's model (its `weights` checkpoint) into `out` as a Hugging Face
    folder; returns `out`. A model the export cannot express is a UserError naming the
    option, raised before anything is written."""
    from attnlab.interop.hf import to_hf
    from attnlab.probes.run import load_trained

    if to not in FORMATS:
        raise UserError(f"--to {to!r}: one of {', '.join(FORMATS)}")
    _, model, _ = load_trained(run_dir, weights)
    out = Path(out)
    hf = to_hf(model)
    _new_folder(out)
    hf.save_pretrained(out)
    _save_hf_tokenizer(RunDir(run_dir).tokenizer, out)
    snippets = [
        ("Hugging Face transformers", HF_SNIPPET.format(out=out, cls=type(hf).__name__)),
        ("TransformerLens 4", TL_SNIPPET.format(out=out)),
    ]
    if to == "transformer-lens":
        snippets.reverse()
    body = "".join(f"With {what}:\n\n```python\n{code}```\n\n" for what, code in snippets)
    readme = (
        f"# {Path(run_dir).name} as {type(hf).__name__}\n\n"
        f"Exported by attnlab ({weights} weights).\n\n{body}"
        "Logits are over the run's real vocabulary (attnlab's padded rows are left out); "
        "the tokenizer is the run's (`AutoTokenizer.from_pretrained`), when it has one.\n"
    )
    atomic_write_text(out / "README.md", readme)
    return out


def _new_folder(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} exists and is not empty; choose a new folder")
    out.mkdir(parents=True, exist_ok=True)


def _save_hf_tokenizer(tok: Path, out: Path) -> None:
    """The run's `tokenizers` file as a `transformers` fast tokenizer beside the model
    (`AutoTokenizer.from_pretrained(out)`); nothing when the run has none."""
    if not tok.is_file():
        return
    from transformers import PreTrainedTokenizerFast

    PreTrainedTokenizerFast(tokenizer_file=str(tok)).save_pretrained(out)
