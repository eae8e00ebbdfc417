"""Sweeps: specs, exactly-once trials with two workers, resume after a killed worker,
failed trials recorded, searches with a budget, the sweep report; and the statistics."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from attnlab import stats
from attnlab.config.sweep import SweepSpec, load_sweep_spec
from attnlab.errors import ConfigError, UserError
from attnlab.experiments.sweep import configurations, jobs, read_spec, run_sweep
from attnlab.experiments.sweep_results import load_trials
from attnlab.run_dir import RunDir

TINY = [
    "data.vocab_size=16",
    "data.seq_len=24",
    "data.segment_len=8",
    "data.min_segment_len=3",
    "data.batch_size=8",
    "data.num_train=128",
    "data.num_val=16",
    "data.num_test=16",
    "model.d_model=16",
    "model.n_layers=1",
    "model.mixer.n_heads=2",
    "train.max_steps=4",
    "train.eval_every=2",
    "train.eval_batches=1",
    "train.warmup_steps=0",
]


def _spec(tmp_path: Path, **fields) -> Path:
    raw = {"name": "t", "base": "synthetic/repeat_tokens", "set": TINY, "probe": False, **fields}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def _quiet(*_a, **_k) -> None:
    pass


# ---- statistics ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("df", "want"), [(1, 12.7062), (2, 4.3027), (4, 2.7764), (10, 2.2281), (1e6, 1.9600)]
)
def test_t_quantile_matches_tables(df, want):
    assert stats.t_quantile(0.975, df) == pytest.approx(want, abs=2e-4)


def test_welch_interval_by_hand():
    a, b = [1.0, 2.0, 3.0], [2.0, 3.0, 4.5]
    d = stats.welch_interval(a, b)
    # var 1 and 1.5833 over n = 3: se = sqrt((1 + 1.5833) / 3); Welch df from the formula
    se = ((1 + 19 / 12) / 3) ** 0.5
    df = (1 / 3 + 19 / 36) ** 2 / ((1 / 3) ** 2 / 2 + (19 / 36) ** 2 / 2)
    assert d.df == pytest.approx(df)
    assert d.diff == pytest.approx(-7 / 6)
    assert d.high - d.diff == pytest.approx(stats.t_quantile(0.975, df) * se)
    assert not d.significant
    far = stats.welch_interval([10.0, 10.1, 9.9], [1.0, 1.1, 0.9])
    assert far.significant and far.low > 8
    assert stats.welch_interval([1.0], [2.0, 3.0]) is None


def test_format_pm_shows_n():
    assert stats.format_pm([1.0, 3.0]) == "2.000 ± 1.414 (n=2)"
    assert stats.format_pm([]) == "–"


# ---- specs ---------------------------------------------------------------------------


def test_spec_needs_exactly_one_kind(tmp_path):
    with pytest.raises(ConfigError, match="exactly one"):
        load_sweep_spec(_spec(tmp_path))
    with pytest.raises(ConfigError, match="exactly one"):
        load_sweep_spec(_spec(tmp_path, grid={"train.lr": [1]}, ablation={"train.lr": [2]}))
    with pytest.raises(ConfigError, match="low"):
        load_sweep_spec(_spec(tmp_path, search={"params": {"train.lr": {"low": 2, "high": 1}}}))


def test_grid_and_ablation_jobs(tmp_path):
    grid = SweepSpec(base="synthetic/repeat_tokens", grid={"a.b": [1, 2], "c": ["x"]}, seeds=2)
    assert [lab for lab, _ in configurations(grid)] == ["b=1, c=x", "b=2, c=x"]
    names = [j.name for j in jobs(grid, tmp_path)]
    assert names == ["b-1__c-x-s1", "b-1__c-x-s2", "b-2__c-x-s1", "b-2__c-x-s2"]
    abl = SweepSpec(base="synthetic/repeat_tokens", ablation={"model.pos": ["none", "rope"]})
    assert [(lab, p) for lab, p in configurations(abl)] == [
        ("base", {}),
        ("pos=none", {"model.pos": "none"}),
        ("pos=rope", {"model.pos": "rope"}),
    ]
    vary = SweepSpec(grid={"config": ["smeared_keys/attn_attn_quick", "x/conv_attn_quick"]})
    assert [lab for lab, _ in configurations(vary)] == ["attn_attn_quick", "conv_attn_quick"]


# ---- running -------------------------------------------------------------------------


def _assert_each_job_once(trials: list[dict], want_jobs: set[str]) -> None:
    done = [t["job"] for t in trials if t["state"] == "complete"]
    assert sorted(done) == sorted(want_jobs), "a job is missing or ran twice"
    assert not [t for t in trials if t["state"] in ("running", "waiting")]


def test_failed_trial_is_recorded_and_the_sweep_goes_on(tmp_path):
    # 4 training sequences cannot fill a batch of 8: that trial fails at data building
    spec = _spec(tmp_path, grid={"data.num_train": [4, 128]})
    out = run_sweep(spec, tmp_path / "sw", echo=_quiet)
    _, trials = load_trials(out)
    by_job = {t["job"]: t for t in trials}
    assert by_job["num_train-128-s1"]["state"] == "complete"
    bad = by_job["num_train-4-s1"]
    assert bad["state"] == "fail" and "batch" in bad["fail_reason"]
    assert "Traceback" in (out / "trials" / "num_train-4-s1" / "error.txt").read_text()
    run_sweep(spec, tmp_path / "sw", echo=_quiet)  # a failure by itself is not retried
    assert len(load_trials(out)[1]) == 2
    report = (out / "report.md").read_text()
    assert "1 complete, 1 failed (see below)" in report and "stopped and rerun" not in report


def test_search_stops_at_its_budget(tmp_path):
    search = {
        "sampler": "random",
        "budget": 3,
        "params": {"train.lr": {"low": 1e-4, "high": 1e-2, "log": True}, "data.batch_size": [4, 8]},
    }
    spec = _spec(tmp_path, search=search, metric="final_val_accuracy", direction="maximize")
    out = run_sweep(spec, tmp_path / "sw", echo=_quiet)
    _, trials = load_trials(out)
    assert [t["state"] for t in trials] == ["complete"] * 3
    for t in trials:
        assert 1e-4 <= t["params"]["train.lr"] <= 1e-2
        cfg = yaml.safe_load((out / t["run_dirs"][0] / "config.yaml").read_text())
        assert cfg["train"]["lr"] == pytest.approx(t["params"]["train.lr"])
        assert cfg["data"]["batch_size"] == t["params"]["data.batch_size"]
    assert "search history" in (out / "report.md").read_text()
    run_sweep(spec, tmp_path / "sw", echo=_quiet)
    assert len(load_trials(out)[1]) == 3


def test_another_spec_in_the_same_directory_is_refused(tmp_path):
    out = tmp_path / "sw"
    run_sweep(_spec(tmp_path, grid={"train.lr": [0.001]}), out, echo=_quiet)
    with pytest.raises(UserError, match="another sweep"):
        run_sweep(_spec(tmp_path, grid={"train.lr": [0.002]}), out, echo=_quiet)


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_concurrent_search_workers_draw_different_points(tmp_path, sampler):
    """Two workers that load the study at once (equal sampler seeds) must not claim the
    same point: the sampler is seeded by the trial's number."""
    import optuna

    from attnlab.config.sweep import load_sweep_spec
    from attnlab.experiments.sweep import _claim, _sampler, _trial_plan, open_study, storage_url
    from attnlab.experiments.sweep_claim import open_storage

    search = {"sampler": sampler, "budget": 4, "params": {"train.lr": {"low": 1e-4, "high": 1e-2}}}
    path = _spec(tmp_path, search=search, metric="final_val_loss")
    spec = load_sweep_spec(path)
    url = storage_url(tmp_path / "sw", None)
    (tmp_path / "sw").mkdir()
    open_study(tmp_path / "sw", spec, url, path.parent)
    storages = [open_storage(url), open_storage(url)]
    workers = [
        (optuna.load_study(study_name=spec.name, storage=st, sampler=_sampler(spec)), st)
        for st in storages
    ]
    lrs = []
    for study, storage in workers * 2:
        trial = _claim(study, storage, spec)
        _trial_plan(trial, spec, path.parent)
        lrs.append(trial.params["train.lr"])
    assert len(set(lrs)) == 4, lrs


def test_a_sweep_without_its_database_takes_finished_runs_back(tmp_path):
    """Committed results (run directories without weights or sweep.db) resume, not rerun."""
    spec = _spec(tmp_path, grid={"model.n_layers": [1, 2]})
    out = run_sweep(spec, tmp_path / "sw", echo=_quiet)
    run = out / "trials" / "n_layers-1-s1"
    stamp = (run / "summary.json").stat().st_mtime_ns
    (out / "sweep.db").unlink()
    for p in run.glob("*.safetensors"):
        p.unlink()
    run_sweep(spec, tmp_path / "sw", echo=_quiet)
    _, trials = load_trials(out)
    assert sorted(t["state"] for t in trials) == ["complete", "complete"]
    assert (run / "summary.json").stat().st_mtime_ns == stamp
    # a taken-back trial's time is its run's own wall time, not the read-back's
    wall = RunDir(run).read_summary()["wall_s"]
    assert [t["seconds"] for t in trials if t["run_dirs"] == ["trials/n_layers-1-s1"]] == [wall]


def test_a_run_with_another_config_is_trained_again(tmp_path):
    spec = _spec(tmp_path, grid={"model.n_layers": [1]})
    out = run_sweep(spec, tmp_path / "sw", echo=_quiet)
    run = out / "trials" / "n_layers-1-s1"
    stamp = (run / "summary.json").stat().st_mtime_ns
    (out / "sweep.db").unlink()
    spec.write_text(spec.read_text().replace("train.max_steps=4", "train.max_steps=6"))
    (out / "spec.yaml").unlink()
    run_sweep(spec, tmp_path / "sw", echo=_quiet)
    assert (run / "summary.json").stat().st_mtime_ns != stamp
    assert RunDir(run).read_summary()["steps"] == 6
    (old,) = (out / "replaced").iterdir()  # the first run is kept, not deleted
    assert old.name.startswith("n_layers-1-s1-")
    assert RunDir(old).read_summary()["steps"] == 4


def test_a_packaged_config_path_from_another_install_resolves_here(tmp_path):
    """A sweep database committed on one machine names packaged configs by absolute path;
    resumed on another machine (another checkout or venv) they resolve to this install's."""
    from attnlab.config.load import PACKAGED, config_path

    stale = tmp_path / "gone" / "src" / "attnlab" / "configs" / "piglatin" / "base.yaml"
    assert config_path(str(stale)) == PACKAGED / "piglatin" / "base.yaml"
    missing = tmp_path / "elsewhere" / "x.yaml"
    assert config_path(str(missing)) == missing  # not packaged: reported as missing


def test_a_trial_stopped_mid_way_continues_from_its_checkpoint(tmp_path):
    from attnlab.config import load_config
    from attnlab.config.load import config_path
    from attnlab.experiments.sweep import train_one
    from attnlab.runs import train

    config = str(tmp_path / "x.yaml")
    base = load_config(config_path("synthetic/repeat_tokens"), [*TINY, "train.progress=false"])
    Path(config).write_text(yaml.safe_dump(base.model_dump(mode="json")))
    run = tmp_path / "run"
    assert train(load_config(config, ["train.progress=false"]), run, stop_after=2) is None
    stamp = (run / "config.yaml").stat().st_mtime_ns
    summary = train_one(config, [], run, probe=False)
    assert summary["steps"] == 4 and (run / "config.yaml").stat().st_mtime_ns == stamp
    steps = [r["step"] for r in RunDir(run).read_metrics() if r["split"] == "validation"]
    assert steps[0] == 2  # the first part's evaluation is kept


def test_the_hub_name_of_a_text_read_from_a_local_path_does_not_change_the_run(tmp_path):
    """Runs made before the Hub name's default moved (`wikitext` → `Salesforce/wikitext`)
    from a local copy are the same runs: the name is never read. From the Hub, it is not."""
    from attnlab.config import load_config, save_config
    from attnlab.config.load import config_path
    from attnlab.experiments.sweep import _same_run

    local = [f"data.path={tmp_path}"]
    old = load_config(config_path("smeared_keys/conv_attn"), [*local, "data.dataset=wikitext"])
    save_config(old, tmp_path / "config.yaml")
    rd = RunDir(tmp_path)
    assert _same_run(rd, load_config(config_path("smeared_keys/conv_attn"), local))
    hub = load_config(config_path("smeared_keys/conv_attn"), ["data.dataset=wikitext"])
    save_config(hub, tmp_path / "config.yaml")
    assert not _same_run(rd, load_config(config_path("smeared_keys/conv_attn")))
    other = load_config(config_path("smeared_keys/conv_attn"), [*local, "data.seq_len=64"])
    save_config(old, tmp_path / "config.yaml")
    assert not _same_run(rd, other)


def test_more_seeds_later_add_only_the_new_seeds_trials(tmp_path):
    """A grid run with 1 seed and again with 2 trains only the seed-2 runs (same sweep,
    same directory); a changed grid is still another sweep."""
    spec = _spec(tmp_path, grid={"model.n_layers": [1, 2]})
    out = run_sweep(spec, tmp_path / "sw", echo=_quiet)
    first = out / "trials" / "n_layers-1-s1"
    stamp = (first / "summary.json").stat().st_mtime_ns
    said = []
    run_sweep(spec, tmp_path / "sw", echo=said.append, seeds=2)
    assert any("seeds 1 → 2" in line for line in said)
    _, trials = load_trials(out)
    assert sorted(t["job"] for t in trials if t["state"] == "complete") == [
        "n_layers-1-s1", "n_layers-1-s2", "n_layers-2-s1", "n_layers-2-s2",
    ]  # fmt: skip
    assert (first / "summary.json").stat().st_mtime_ns == stamp  # not trained again
    assert RunDir(out / "trials" / "n_layers-2-s2").read_summary()["seed"] == 2
    run_sweep(spec, tmp_path / "sw", echo=_quiet, seeds=2)  # again: nothing to add
    assert len(load_trials(out)[1]) == 4
    said.clear()
    run_sweep(spec, tmp_path / "sw", echo=said.append)  # the spec's 1 seed: the 2 kept
    assert any("all 2 kept" in line for line in said)
    assert read_spec(out).seeds == 2
    assert len(load_trials(out)[1]) == 4
    other = _spec(tmp_path, grid={"model.n_layers": [1, 3]})
    with pytest.raises(UserError, match="another sweep"):
        run_sweep(other, tmp_path / "sw", echo=_quiet, seeds=2)
