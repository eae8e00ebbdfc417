"""Config: YAML load, `base:` merges, overrides, and errors that name the field and file."""

from __future__ import annotations

import pytest

from attnlab.config import apply_overrides, load_config, validate
from attnlab.errors import ConfigError
from tests.helpers import ROOT, run_cli

CONFIGS = ROOT / "configs"


def test_base_merge_and_overrides(tmp_path):
    (tmp_path / "a.yaml").write_text(
        "name: a\ndata: {task: repeat_tokens, seq_len: 64}\nmodel: {d_model: 64}\n"
    )
    (tmp_path / "b.yaml").write_text("base: a.yaml\nname: b\nmodel: {n_layers: 1}\n")
    cfg = load_config(tmp_path / "b.yaml", ["train.lr=1e-3", "model.mixer.conv_kernel=3"])
    assert cfg.name == "b"
    assert (cfg.model.d_model, cfg.model.n_layers) == (64, 1)
    assert cfg.data.seq_len == 64
    assert cfg.train.lr == pytest.approx(1e-3)
    assert cfg.model.mixer.conv_kernel == 3


def test_override_values_parse_as_yaml():
    raw = apply_overrides({"a": {"b": 1}}, ["a.b=null", "a.c=[1, 2]", "x.y=true"])
    assert raw == {"a": {"b": None, "c": [1, 2]}, "x": {"y": True}}


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("train.lr=-0.1", "train.lr"),
        ("model.mixer.n_heads=5", "n_heads"),
        ("model.mixer.conv_kernel=0", "model.mixer.conv_kernel"),
        ("train.bogus=1", "train.bogus"),
        ("data.seq_len=0", "data.seq_len"),
        ("model.pos=alibi", "model.pos"),
    ],
)
def test_bad_values_name_the_field(override, field):
    raw = {"data": {"task": "repeat_tokens"}, "model": {"d_model": 64}}
    with pytest.raises(ConfigError) as e:
        validate(apply_overrides(raw, [override]), "my.yaml")
    assert field in str(e.value)
    assert "my.yaml" in str(e.value)


def test_cli_bad_config_exits_2_without_traceback(tmp_path, monkeypatch, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("data: {task: repeat_tokens}\nmodel: {d_model: 30, mixer: {n_heads: 4}}\n")
    code, _, err = run_cli(["config", "show", str(path)], monkeypatch, capsys)
    assert code == 2
    assert "n_heads" in err and str(path) in err
    assert "Traceback" not in err


def test_cli_missing_file_and_unknown_key(tmp_path, monkeypatch, capsys):
    code, _, err = run_cli(["config", "show", str(tmp_path / "nope.yaml")], monkeypatch, capsys)
    assert code == 2 and "not found" in err
    path = tmp_path / "typo.yaml"
    path.write_text("data: {task: repeat_tokens}\ntrian: {lr: 1}\n")
    code, _, err = run_cli(["config", "show", str(path)], monkeypatch, capsys)
    assert code == 2 and "trian" in err and "unknown key" in err


def test_cli_config_show_prints_resolved(monkeypatch, capsys):
    code, out, _ = run_cli(
        ["config", "show", str(CONFIGS / "smeared_keys/conv_attn.yaml"), "--set", "train.lr=1e-3"],
        monkeypatch,
        capsys,
    )
    assert code == 0
    cfg = validate(__import__("yaml").safe_load(out))
    assert cfg.model.mixer.conv_kernel == 5 and cfg.model.n_layers == 1
    assert cfg.train.lr == pytest.approx(1e-3)
    assert cfg.data.batch_size == 32 and cfg.data.seq_len == 256


def test_shipped_configs_all_validate():
    files = sorted(f for f in CONFIGS.rglob("*.yaml") if "sweeps" not in f.parts)
    assert len(files) >= 7
    for f in files:
        load_config(f)


def test_shipped_sweep_specs_validate_and_name_real_configs():
    from attnlab.config.sweep import load_sweep_spec
    from attnlab.experiments.sweep import configurations, jobs

    specs = sorted((CONFIGS / "sweeps").rglob("*.yaml"))
    assert len(specs) >= 3
    for f in specs:
        spec = load_sweep_spec(f)
        if spec.search is None:
            for j in jobs(spec, f.parent):
                load_config(j.config, [*j.overrides])
            assert configurations(spec)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"task": "classification", "seq_len": -1}, "data.seq_len:"),
        ({"task": "mqar", "vocab_size": 2}, "data.vocab_size:"),
        ({"task": "induction_heads", "seq_len": 2}, "data.seq_len:"),
    ],
)
def test_errors_name_a_settable_key_for_every_task(data, field):
    """The error names the key a user can `--set` (data.seq_len), never the union's tag
    (data.classification.seq_len): the tags now come from the schema itself."""
    raw = {"data": data}
    if data["task"] == "classification":
        raw["model"] = {"arch": "classifier"}
    with pytest.raises(ConfigError) as err:
        validate(raw, "t")
    assert field in str(err.value) and f"data.{data['task']}." not in str(err.value)


@pytest.mark.parametrize("mixer", [{"name": "mamba"}, {"name": "attention"}])
def test_encoder_layers_are_refused_for_every_decoder_mixer(mixer):
    with pytest.raises(ConfigError, match="n_encoder_layers is for arch: seq2seq"):
        validate(
            {"data": {"task": "repeat_tokens"}, "model": {"mixer": mixer, "n_encoder_layers": 2}}
        )


def test_a_retagged_mapping_replaces_its_base():
    from attnlab.config.load import deep_merge

    base = {"model": {"d_model": 64, "mixer": {"name": "attention", "n_heads": 4}}}
    top = {"model": {"mixer": {"name": "mamba", "d_state": 8}}}
    assert deep_merge(base, top)["model"] == {
        "d_model": 64,
        "mixer": {"name": "mamba", "d_state": 8},
    }
    same = {"model": {"mixer": {"name": "attention", "conv_kernel": 3}}}
    assert deep_merge(base, same)["model"]["mixer"] == {
        "name": "attention",
        "n_heads": 4,
        "conv_kernel": 3,
    }
