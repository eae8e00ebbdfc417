"""`attnlab export RUN_DIR --to transformer-lens|hf OUT`: a run's model as a folder that
TransformerLens (`config.json`, `hooked_transformer.safetensors`) or Hugging Face
`transformers` (`AutoModelForCausalLM.from_pretrained(OUT)`: GPT-2, or Mamba for a Mamba
model, as `config.json` and `model.safetensors`, `attnlab.interop.hf`) loads without
attnlab, with the run's tokenizer and a README with the lines that load it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from attnlab.errors import UserError
from attnlab.interop.transformer_lens import (
    hooked_config_dict,
    hooked_state_dict,
    load_hooked_weights,
    new_hooked_transformer,
)
from attnlab.run_dir import RunDir, atomic_write_text

FORMATS = ("transformer-lens", "hf")

HF_SNIPPET = """from transformers import AutoModelForCausalLM

model = AutoModelForCausalLM.from_pretrained("{out}")  # GPT-2 or Mamba
"""

LOAD_SNIPPET = """import json
from safetensors.torch import load_file
from transformer_lens import HookedTransformer, HookedTransformerConfig

model = HookedTransformer(HookedTransformerConfig(**json.load(open("{out}/config.json"))))
model.load_state_dict(load_file("{out}/hooked_transformer.safetensors"), strict=False)
"""


def export_run(run_dir: str | Path, out: str | Path, to: str = "transformer-lens",
               weights: str = "final") -> Path:  # fmt: skip
    """Write the run's model (its `weights` checkpoint) for `to` into `out`; returns `out`.
    A model the format cannot express is a UserError naming the option."""
    from safetensors.torch import save_file

    from attnlab.probes.run import load_trained

    if to not in FORMATS:
        raise UserError(f"--to {to!r}: one of {', '.join(FORMATS)}")
    _, model, _ = load_trained(run_dir, weights)
    out = Path(out)
    if to == "hf":
        from attnlab.interop.hf import to_gpt2, to_mamba

        # refuses what the architecture cannot express, before anything is written
        hf = to_mamba(model) if model.cfg.mixer.name == "mamba" else to_gpt2(model)
        _new_folder(out)
        hf.save_pretrained(out)
        _save_hf_tokenizer(RunDir(run_dir).tokenizer, out)
        loader, what = (
            HF_SNIPPET.format(out=out),
            f"Hugging Face transformers ({type(hf).__name__})",
        )
    else:
        config, state = hooked_config_dict(model), hooked_state_dict(model)
        _new_folder(out)
        atomic_write_text(out / "config.json", json.dumps(config, indent=1) + "\n")
        save_file(state, str(out / "hooked_transformer.safetensors"))
        tok = RunDir(run_dir).tokenizer
        if tok.is_file():
            shutil.copyfile(tok, out / tok.name)
        loader, what = LOAD_SNIPPET.format(out=out), "transformer-lens 3.x"
    readme = (
        f"# {Path(run_dir).name} for {what}\n\n"
        f"Exported by attnlab ({weights} weights). Load it with {what}:\n\n"
        f"```python\n{loader}```\n\n"
        "Logits are over the run's real vocabulary (attnlab's padded rows are left out); "
        "the tokenizer is the run's (Hugging Face `tokenizers` format), when it has one.\n"
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


def load_exported(out: str | Path):
    """The `HookedTransformer` an `export_run` folder holds (TransformerLens 3.x)."""
    from safetensors.torch import load_file

    out = Path(out)
    if not (out / "config.json").is_file():
        raise UserError(f"{out} is not an exported model (no config.json)")
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    hooked = new_hooked_transformer(config)
    load_hooked_weights(hooked, load_file(str(out / "hooked_transformer.safetensors")))
    return hooked.eval()
