"""The `attnlab` command: parse, call an importable function, print. Nothing runs at import.

Every user error (bad config, missing data, a leaking model) exits with status 2 and a
one-paragraph message, never a traceback.
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path

import typer

from attnlab.config.load import config_path
from attnlab.errors import LeakageError, UserError
from attnlab.run_dir import COMPARE, SPEC, RunDir, read_json

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="attnlab: train, compare and look inside small sequence models.",
)
config_app = typer.Typer(no_args_is_help=True, help="Inspect configs.")
app.add_typer(config_app, name="config")
bench_app = typer.Typer(no_args_is_help=True, help="Measure speed and precision.")
app.add_typer(bench_app, name="bench")

SET_HELP = "Override a config value, e.g. --set train.lr=1e-3 (repeatable)."


class Weights(StrEnum):
    """Which checkpoint of a run: the last weights or the best by validation loss."""

    final = "final"
    best = "best"


class Scale(StrEnum):
    """`attnlab reproduce --scale`: the write-up's settings, a 2-core CPU's hour, minutes."""

    full = "full"
    cpu = "cpu"
    quick = "quick"


class Precision(StrEnum):
    """`train.precision` choices."""

    auto = "auto"
    true32 = "32-true"
    bf16 = "bf16-mixed"
    fp16 = "16-mixed"


def _version(value: bool) -> None:
    if value:
        import attnlab

        typer.echo(f"attnlab {attnlab.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """attnlab: train, compare and look inside small sequence models."""


def _fail(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(2)


@app.command()
def configs() -> None:
    """List the packaged configs and sweep specs with their one-line descriptions."""
    from attnlab.config.load import packaged_configs

    rows = packaged_configs()
    width = max(len(name) for _, name, _ in rows)
    for kind, heading in (
        ("config", "configs (attnlab train NAME)"),
        ("sweep", "sweeps (attnlab sweep NAME)"),
    ):
        typer.echo(f"{heading}:")
        for _, name, text in (r for r in rows if r[0] == kind):
            typer.echo(f"  {name:<{width}}  {text}")


@config_app.command("show")
def config_show(
    file: str = typer.Argument(..., help="Config YAML file or packaged name."),
    sets: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Print the fully resolved config (after `base:` merges and overrides)."""
    from attnlab.config import dump_config, load_config

    typer.echo(dump_config(load_config(config_path(file), sets)), nl=False)


@app.command()
def train(
    config: str = typer.Argument(None, help="Config YAML file or packaged name."),
    sets: list[str] = typer.Option([], "--set", help=SET_HELP),
    out: Path = typer.Option(None, "--out", help="Run directory (default runs/NAME-TIME)."),
    resume: Path = typer.Option(None, "--resume", help="Continue the run in this directory."),
    devices: int = typer.Option(None, "--devices", help="Devices (DDP processes) per node."),
    num_nodes: int = typer.Option(
        None, "--num-nodes", help="Machines; start the command on each with torchrun or srun."
    ),
    precision: Precision = typer.Option(None, "--precision", help="Sets train.precision."),
    stop_after: int = typer.Option(
        None, "--stop-after", help="Stop after this many steps, leaving a resumable checkpoint."
    ),
) -> None:
    """Train one model; writes config, metrics, checkpoints, summary and report."""
    import time

    from attnlab import runs
    from attnlab.config import load_config
    from attnlab.train import is_main_process

    if resume is not None:
        if config is not None or sets:
            _fail("--resume takes the config from the run directory; drop CONFIG and --set")
        summary, run_dir = runs.resume(resume, stop_after=stop_after), resume
    else:
        if config is None:
            _fail("give a CONFIG file (or --resume RUN_DIR)")
        extra = [f"train.devices={devices}"] if devices else []
        extra += [f"train.num_nodes={num_nodes}"] if num_nodes else []
        extra += [f"train.precision={precision.value}"] if precision else []
        cfg = load_config(config_path(config), [*sets, *extra])
        run_dir = out or Path("runs") / f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        summary = runs.train(cfg, run_dir, stop_after=stop_after)
    if not is_main_process():
        return
    if summary is None:
        typer.echo(f"stopped with a checkpoint; continue with: attnlab train --resume {run_dir}")
        return
    report = runs.report(run_dir)
    for line in runs.summary_lines(summary, load_config(RunDir(run_dir).config)):
        typer.echo(line)
    typer.echo(f"run directory: {run_dir}\nreport: {report}")


@app.command()
def compare(
    run_dirs: list[Path] = typer.Argument(..., help="Run directories to compare."),
    out: Path = typer.Option(
        None, "--out", help="Where the comparison goes (default runs/compare-TIME; never reused)."
    ),
) -> None:
    """Table and overlaid validation curves of several runs."""
    import time

    from attnlab.experiments.compare import compare as compare_runs

    if out is None:
        out = Path("runs") / f"compare-{time.strftime('%Y%m%d-%H%M%S')}"
    if (out / COMPARE).is_file():
        _fail(
            f"{out} already holds a comparison; choose another --out, or rebuild that one "
            f"from its run list with `attnlab report {out}`"
        )
    path = compare_runs(run_dirs, out)
    typer.echo(path.read_text(encoding="utf-8"))
    typer.echo(f"written: {path}")


@app.command()
def report(
    directory: Path = typer.Argument(..., help="A run, comparison or sweep directory."),
    storage: str = typer.Option(None, "--storage", help="A sweep's database URL, if not its own."),
) -> None:
    """Redraw report.md, report.html and every figure of a run, comparison or sweep.

    Everything is read from the directory's files alone.
    """
    from attnlab import runs

    d = Path(directory)
    if (d / SPEC).is_file():
        from attnlab.experiments.sweep_results import report_sweep

        path = report_sweep(d, storage)
    elif (d / COMPARE).is_file():
        from attnlab.experiments.compare import compare as compare_runs

        listed = read_json(d / COMPARE)["runs"]
        path = compare_runs([Path(r) for r in listed], d)
    else:
        path = runs.report(d)
    typer.echo(f"report: {path}\nhtml: {path.with_suffix('.html')}")


@app.command()
def sweep(
    spec: Path = typer.Argument(..., help="Sweep spec YAML (grid, ablation or search)."),
    out: Path = typer.Option(None, "--out", help="Sweep directory (default runs/sweep-NAME)."),
    storage: str = typer.Option(
        None, "--storage", help="Optuna database URL (default: SQLite in the sweep directory)."
    ),
    workers: int = typer.Option(1, "--workers", help="Local worker processes."),
    sets: list[str] = typer.Option([], "--set", help="Override for every trial (repeatable)."),
    seeds: int = typer.Option(None, "--seeds", help="Seeds per configuration (1..N)."),
    quick: bool = typer.Option(False, "--quick", help="Only the spec's `quick` configurations."),
) -> None:
    """Run or resume a sweep: every trial a run directory, then the sweep's report."""
    from attnlab.experiments.sweep import run_sweep

    if not spec.is_file():
        spec = config_path(f"sweeps/{spec}")
    run_sweep(spec, out, storage, workers, sets, echo=typer.echo, seeds=seeds, quick=quick)


@app.command()
def probe(
    run_dir: Path = typer.Argument(..., help="A trained run directory."),
    weights: Weights = typer.Option(Weights.final, "--weights", help="Which checkpoint."),
    ablation: bool = typer.Option(
        False, "--ablation", help="Ablate each head: which heads the repeat behaviour needs."
    ),
    lengths: str = typer.Option(
        None, "--lengths", help="Synthetic tasks: also evaluate at these lengths (256,1024)."
    ),
    sets: list[str] = typer.Option(
        [], "--set", help="probes.KEY=VALUE for this call (e.g. probes.tokens=frequent)."
    ),
) -> None:
    """Look inside a trained model: head scores, ICL score, kernels, embeddings, grids."""
    from attnlab import runs
    from attnlab.train.memory import keep_freed_memory

    keep_freed_memory()  # each batch's large logits reuse the heap: ~2x faster on CPU
    if lengths:
        try:
            sets = [*sets, f"probes.lengths=[{','.join(str(int(n)) for n in lengths.split(','))}]"]
        except ValueError:
            _fail(f"--lengths {lengths!r}: comma-separated whole numbers, e.g. 256,1024")
    res = runs.probe(run_dir, weights.value, ablation, sets)
    for line in runs.probe_lines(res, run_dir):
        typer.echo(line)
    rd = RunDir(run_dir)
    typer.echo(f"written: {rd.probes}")
    if rd.is_finished():
        typer.echo(f"report: {runs.report(run_dir)}, figures in {rd.plots}")


@app.command()
def translate(
    run_dir: Path = typer.Argument(..., help="A trained Pig Latin run directory."),
    words: list[str] = typer.Argument(..., help="English words to translate."),
    beam: int = typer.Option(1, "--beam", help="Beam width (1: greedy)."),
    weights: Weights = typer.Option(Weights.final, "--weights", help="Which checkpoint."),
) -> None:
    """Translate words with a trained model; each line marks a mismatch with the rules."""
    from attnlab.data.piglatin import CharVocab, to_pig_latin
    from attnlab.probes.run import load_trained
    from attnlab.probes.translation import translate_word

    if beam < 1:
        _fail("--beam must be >= 1")
    cfg, model, vocab = load_trained(run_dir, weights.value)
    if not isinstance(vocab, CharVocab):
        _fail(f"{run_dir} is not a translation run (data.task is {cfg.data.task})")
    max_new = 3 * cfg.data.max_len + 4  # room for every hyphenated part's "ay"
    for word in words:
        got = translate_word(model, vocab, word, max_new, beam)
        want = to_pig_latin(word)
        typer.echo(f"{word} → {got}" + ("" if got == want else f"   (rules: {want})"))


@app.command()
def study(
    name: str = typer.Argument(
        ..., help="Study name: induction, piglatin or mamba_discretization."
    ),
    seeds: int = typer.Option(
        None, "--seeds", help="Seeds per model (train.seed = 1..N; default: the study's)."
    ),
    quick: bool = typer.Option(False, "--quick", help="Only the study's quick subset of models."),
    jobs: int = typer.Option(None, "--jobs", help="Runs at a time (default: CPU cores)."),
    out: Path = typer.Option(None, "--out", help="Study directory (default runs/study-NAME)."),
) -> None:
    """Run a named study (a packaged sweep: models x seeds, probed), then its report."""
    from attnlab.experiments.study import run_study

    path = run_study(name, out or Path("runs") / f"study-{name}", seeds, quick, jobs, typer.echo)
    typer.echo(path.read_text(encoding="utf-8"))
    typer.echo(f"written: {path}")


@app.command()
def reproduce(
    name: str = typer.Argument(None, help="A write-up's reproduction (see --list)."),
    list_them: bool = typer.Option(False, "--list", help="List the reproductions."),
    scale: Scale = typer.Option(
        None, "--scale", help="full | cpu | quick (default full; --report-only: as last written)."
    ),
    seeds: int = typer.Option(None, "--seeds", help="Seeds per configuration (1..N)."),
    jobs: int = typer.Option(None, "--jobs", help="Runs at a time (default: CPU cores)."),
    out: Path = typer.Option(
        None, "--out", help="Where its sweeps go (default runs/reproduce-NAME-SCALE)."
    ),
    sets: list[str] = typer.Option([], "--set", help="Override for every run (repeatable)."),
    parts: list[str] = typer.Option(
        [], "--part", help="Run only this part (repeatable); the report covers every part."
    ),
    report_only: bool = typer.Option(
        False, "--report-only", help="Rebuild the report and verdicts from --out; run nothing."
    ),
    headline: Path = typer.Option(
        None,
        "--headline",
        help="Rewrite this file's marked headline table (README.md) from --out's reproductions.",
    ),
) -> None:
    """Rerun a write-up's studies; its numbers beside ours, with intervals and verdicts."""
    from attnlab.experiments.reproduce import run_reproduction
    from attnlab.experiments.reproductions import list_reproductions

    if headline is not None:
        from attnlab.experiments.reproduce import write_headline

        changed = write_headline(headline, out or Path("docs/results"))
        typer.echo(f"{headline}: {'rewritten' if changed else 'already current'}")
        return
    if list_them or name is None:
        for n, line in list_reproductions():
            typer.echo(f"  {n:<18} {line}")
        return
    if report_only:
        from attnlab.experiments.reproduce import rebuild_report

        if out is None:
            raise UserError("--report-only rebuilds a reproduction directory: give --out DIR")
        path = rebuild_report(name, out, scale.value if scale else None)
    else:
        scale = scale or Scale.full
        out = out or Path("runs") / f"reproduce-{name}-{scale.value}"
        path = run_reproduction(name, out, scale.value, seeds, jobs, typer.echo, sets, parts)
    typer.echo(f"written: {path}")


@app.command()
def export(
    run_dir: Path = typer.Argument(..., help="A trained decoder-only run directory."),
    out: Path = typer.Argument(..., help="A new folder for the exported model."),
    to: str = typer.Option(
        "hf",
        "--to",
        help="hf (transformers: GPT-2 or Mamba) or transformer-lens (the same folder, "
        "opened with TransformerLens 4's TransformerBridge).",
    ),
    weights: Weights = typer.Option(Weights.final, "--weights", help="Which checkpoint."),
) -> None:
    """Export a run's model as a Hugging Face transformers folder
    (AutoModelForCausalLM.from_pretrained(OUT): GPT-2, or MambaForCausalLM), which
    TransformerLens 4 opens too (TransformerBridge.boot_transformers)."""
    from attnlab.interop import export_run

    path = export_run(run_dir, out, to, weights.value)
    typer.echo(f"written: {path} (README.md shows the load)")


@app.command()
def demo(
    data_dir: Path = typer.Option(
        None, "--data-dir", help="A local WikiText copy (wiki.{train,valid,test}.*) to add."
    ),
    tokenizer_dir: Path = typer.Option(
        None, "--tokenizer-dir", help="GPT-2 vocab.json + merges.txt (else a BPE is trained)."
    ),
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Where the demo's runs go."),
) -> None:
    """Train, probe and compare the demo's three quick models offline (a packaged sweep)."""
    from attnlab.experiments.demo import run_demo

    report_path = run_demo(out, data_dir, tokenizer_dir, echo=typer.echo)
    typer.echo(f"\nreport: {report_path}")


@app.command()
def playground(
    out: Path = typer.Option(Path("runs/playground"), "--out", help="Where plots go."),
) -> None:
    """Attention by hand: copying, averaging and changing one key; numbers and plots.

    Runs on the models' own attention function.
    """
    from attnlab.experiments.playground import run_playground

    run_playground(out, echo=typer.echo)


@bench_app.command("scan")
def bench_scan_cmd(
    lengths: str = typer.Option(
        "64,128,256,512,1024,2048,4096", "--lengths", help="Comma-separated sequence lengths."
    ),
    batch: int = typer.Option(2, "--batch", help="Batch size of the problem."),
    channels: int = typer.Option(64, "--channels", help="Channels D of the problem."),
    state: int = typer.Option(16, "--state", help="State size N of the problem."),
    repeats: int = typer.Option(3, "--repeats", help="Timed calls per cell (median)."),
    compile: bool = typer.Option(True, "--compile/--no-compile", help="Also torch.compile."),
    compile_lengths: str = typer.Option(
        "256,1024,4096", "--compile-lengths", help="Lengths at which to compile (slow)."
    ),
    threads: int = typer.Option(None, "--threads", help="torch threads (default: torch's)."),
    out: Path = typer.Option(Path("runs/bench-scan"), "--out", help="Output directory."),
) -> None:
    """Time and float64 error of the sequential, parallel and log scans (forward+backward).

    Adds mambapy's pscan when installed; writes JSON and two plots.
    """
    import torch

    from attnlab.bench.scan import bench_scan

    try:
        ls = tuple(int(x) for x in lengths.split(",") if x.strip())
        cls = tuple(int(x) for x in compile_lengths.split(",") if x.strip())
    except ValueError:
        _fail("--lengths and --compile-lengths take integers separated by commas")
    if not ls or min(ls) < 1 or min(batch, channels, state, repeats) < 1:
        _fail("lengths, --batch, --channels, --state and --repeats must be >= 1")
    if threads:
        torch.set_num_threads(threads)
    bench_scan(out, ls, batch, channels, state, repeats, compile, cls, echo=typer.echo)
    typer.echo(
        f"written: {out / 'scan_bench.json'}, {out / 'scan_time.png'}, {out / 'scan_precision.png'}"
    )


@bench_app.command("train")
def bench_train_cmd(
    config: str = typer.Argument(..., help="Config YAML file or packaged name."),
    sets: list[str] = typer.Option([], "--set", help=SET_HELP),
    variants: str = typer.Option(
        "naive,32-true,bf16-mixed,chunked",
        "--variants",
        help="Comma-separated, of: naive, naive-reuse, gpt-ref, 32-true, bf16-mixed, "
        "16-mixed, chunked, bf16-chunked, 32-tied, chunked-tied, bf16-chunked-tied, compile.",
    ),
    steps: int = typer.Option(8, "--steps", help="Timed optimizer steps per variant (median)."),
    warmup: int = typer.Option(3, "--warmup", help="Untimed steps first."),
    batch: int = typer.Option(None, "--batch", help="Override data.batch_size."),
    random_data: int = typer.Option(
        None,
        "--random-data",
        help="Train on uniform random ids of this vocabulary size (no data set needed).",
    ),
    threads: int = typer.Option(None, "--threads", help="torch threads (default: torch's)."),
    rounds: int = typer.Option(
        1, "--rounds", help="Run the variants in turn this many times; report the medians."
    ),
    out: Path = typer.Option(Path("runs/bench-train"), "--out", help="Output directory."),
) -> None:
    """Tokens/s, FLOP/s, peak memory and data share of a config beside the naive model.

    FLOP/s are a share of this machine's measured matmul peak; the probe time is timed
    too. Writes JSON and a Markdown table.
    """
    import os

    from attnlab.bench.train import bench_train
    from attnlab.config import load_config

    if min(steps, warmup + 1) < 1 or (random_data is not None and random_data < 2):
        _fail("--steps must be >= 1, --warmup >= 0 and --random-data >= 2")
    extra = [f"data.batch_size={batch}"] if batch else []
    cfg = load_config(config_path(config), [*sets, *extra])
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)  # the measuring processes inherit it
    names = [v.strip() for v in variants.split(",") if v.strip()]
    bench_train(cfg, out, names, steps, warmup, random_data, echo=typer.echo, rounds=rounds)
    typer.echo(f"written: {out / 'bench_train.json'}, {out / 'bench_train.md'}")


@bench_app.command("data")
def bench_data_cmd(
    config: str = typer.Argument(..., help="Config YAML file or packaged name."),
    sets: list[str] = typer.Option([], "--set", help=SET_HELP),
    batches: int = typer.Option(50, "--batches", help="Timed batches (median)."),
    out: Path = typer.Option(Path("runs/bench-data"), "--out", help="Output directory."),
) -> None:
    """Time building the data set and its training batches (against a per-token loop)."""
    from attnlab.bench.parts import bench_data
    from attnlab.config import load_config

    if batches < 1:
        _fail("--batches must be >= 1")
    bench_data(load_config(config_path(config), sets), out, batches, echo=typer.echo)


@bench_app.command("generate")
def bench_generate_cmd(
    batch: int = typer.Option(8, "--batch", help="Prompts decoded at once."),
    prompt: int = typer.Option(16, "--prompt", help="Prompt tokens."),
    new: int = typer.Option(512, "--new", help="New tokens per prompt."),
    threads: int = typer.Option(1, "--threads", help="torch threads per run."),
    out: Path = typer.Option(Path("runs/bench-generate"), "--out", help="Output directory."),
) -> None:
    """Cached vs uncached greedy decoding: tokens/s, per-token time, peak memory."""
    from attnlab.bench.generate import bench_generate

    if min(batch, prompt, new, threads) < 1:
        _fail("--batch, --prompt, --new and --threads must be >= 1")
    bench_generate(out, batch, prompt, new, threads, echo=typer.echo)
    typer.echo(f"written: {out / 'bench_generate.json'}, {out / 'bench_generate.md'}")


@bench_app.command("probe")
def bench_probe_cmd(
    config: str = typer.Argument(..., help="Config YAML file or packaged name."),
    sets: list[str] = typer.Option([], "--set", help=SET_HELP),
    repeats: int = typer.Option(3, "--repeats", help="Timed calls per probe (median)."),
    out: Path = typer.Option(Path("runs/bench-probe"), "--out", help="Output directory."),
) -> None:
    """Time each probe (head scores, ICL) of an untrained model of the config."""
    from attnlab.bench.parts import bench_probe
    from attnlab.config import load_config

    if repeats < 1:
        _fail("--repeats must be >= 1")
    bench_probe(load_config(config_path(config), sets), out, repeats, echo=typer.echo)


def main() -> None:
    """Console entry point: user errors become status 2 and a message. Marks the process
    (and the workers it starts) as the command's, for `train.keep_freed_memory`."""
    from attnlab.train.memory import CLI_ENV

    os.environ[CLI_ENV] = "1"
    try:
        app()
    except LeakageError as e:
        typer.echo(f"error: refusing to train a leaking model: {e}", err=True)
        sys.exit(2)
    except UserError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
