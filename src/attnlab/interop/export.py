"""`attnlab export RUN_DIR --to transformer-lens OUT`: a run's model as a folder that
TransformerLens loads without attnlab (`config.json`, `hooked_transformer.safetensors`, the
run's tokenizer, and a README with the three lines that load it)."""

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

FORMATS = ("transformer-lens",)

LOAD_SNIPPET = """import json
from safetensors.torch import load_file
from transformer_lens import HookedTransformer, HookedTransformerConfig

model = HookedTransformer(HookedTransformerConfig(**json.load(open("{out}/config.json"))))
model.load_state_dict(load_file("{out}/hooked_transformer.safetensors"), strict=False)
"""


def export_run(run_dir: str | Path, out: str | Path, to: str = "transformer-lens",
               weights: str = "final") -> Path:  # fmt: skip
    """Write the run's model (its `weights` checkpoint) for `to` into `out`; returns `out`.
    A model TransformerLens cannot express is a UserError naming the option."""
    from safetensors.torch import save_file

    from attnlab.probes.run import load_trained

    if to not in FORMATS:
        raise UserError(f"--to {to!r}: one of {', '.join(FORMATS)}")
    _, model, _ = load_trained(run_dir, weights)
    config, state = hooked_config_dict(model), hooked_state_dict(model)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} exists and is not empty; choose a new folder")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.json", json.dumps(config, indent=1) + "\n")
    save_file(state, str(out / "hooked_transformer.safetensors"))
    tok = RunDir(run_dir).tokenizer
    if tok.is_file():
        shutil.copyfile(tok, out / tok.name)
    readme = (
        f"# {Path(run_dir).name} for TransformerLens\n\n"
        f"Exported by attnlab ({weights} weights). Load it with transformer-lens 3.x:\n\n"
        f"```python\n{LOAD_SNIPPET.format(out=out)}```\n\n"
        "Logits are over the run's real vocabulary (attnlab's padded rows are left out); "
        "the tokenizer file is the run's (Hugging Face `tokenizers` format), when it has one.\n"
    )
    atomic_write_text(out / "README.md", readme)
    return out


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
