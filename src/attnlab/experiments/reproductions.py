"""The reproductions: each write-up's studies as packaged sweeps (its parts), their scales,
and the notes on what we chose where the write-up is silent. The write-ups' numbers and
claims are data, in `experiments/claims/NAME.yaml`; `experiments.reproduce` runs the parts
and writes the report.

Scales: `full` is the write-up's own settings; `cpu` the largest version a 2-core CPU
finishes in about an hour per study (each reproduction states what it changes); `quick`
a minutes-long smoke version for tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SCALES = ("full", "cpu", "quick")


@dataclass(frozen=True)
class Reproduction:
    """One write-up: its parts, its numbers, what it leaves open, and its scales."""

    name: str
    writeup: str
    question: str
    parts: dict[str, str]  # part → packaged sweep spec
    setup: tuple[str, ...] = ()
    figures: tuple[str, ...] = ()  # per-run figures the write-up shows (plot names)
    scales: dict[str, list[str]] = field(default_factory=dict)  # scale → --set for all
    scale_notes: dict[str, str] = field(default_factory=dict)
    part_scales: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # replaces
    # `scales` for a part whose runs differ (a language model among classifiers)
    part_sets: dict[str, tuple[str, ...]] = field(default_factory=dict)  # a part's own
    # --set; "{out}" is the reproduction's directory (a later part reads an earlier one's)
    ready: str | None = None  # None, or why it cannot run yet
    skip: dict[str, tuple[str, ...]] = field(default_factory=dict)  # scale → parts not run
    # there (a part that only matters at that scale)


WALL_NOTE = (
    "Wall times are one thread's, with two to four runs sharing the 2-core CPU (an Intel "
    "Xeon until 2026-12-02, an AMD EPYC after). A run resumed "
    "from a checkpoint committed before 2026-12-06 reports only the time after the resume: "
    "those checkpoints did not carry the wall time so far (it was in a side file that was "
    "not committed; the checkpoint's state holds it now)."
)


TEXT_QUICK = [  # a minutes-long smoke version of the text studies (characters, d 32)
    "data.tokenizer=char",
    "data.batch_size=4",
    "model.d_model=32",
    "train.epochs=null",
    "train.max_steps=6",
    "train.warmup_steps=0",
    "train.eval_every=3",
    "train.eval_batches=2",
    "train.final_eval_batches=2",
]
PIG_QUICK = [
    "data.num_train=256",
    "data.num_val=32",
    "data.num_test=32",
    "train.epochs=null",
    "train.max_steps=6",
    "train.eval_every=3",
    "train.task_eval_every=null",
    "train.warmup_steps=0",
]

REPRODUCTIONS = {
    r.name: r
    for r in (
        Reproduction(
            name="piglatin",
            writeup="write-up 004: a Pig Latin transformer",
            question="How well does a small encoder-decoder learn Pig Latin from ~5,100 "
            "words, and which of positions, heads, width and depth matter?",
            parts={
                "beast": "reproduce/piglatin_beast",
                "base": "reproduce/piglatin_base",
                "ablation": "reproduce/piglatin_ablation",
            },
            setup=(
                "Data: the english-words GCIDE list, 5,120 training words (the write-up's "
                "40 steps × 128 a epoch), 2,000 validation and 2,000 test words, split by "
                "word (no test word trained on); the write-up's own word list is not named.",
                "Feed-forward width = hidden (64): it fits both Beast parameter counts.",
                "Base: cosine schedule, weight decay 0.01, dropout 0.1, 100 warmup steps "
                "(the write-up states these for the Beasts only).",
                "Batches of 128 words padded to the longest in the batch. The write-up's "
                "equal-length batches with accumulation are `data.equal_length: true`: the "
                "same gradient (tested), ~19x slower here (30 Beast Small steps: 128 s "
                "against 18 s on one contended core), so not used.",
                "Word accuracy: exact match of the greedy translation; every 10 epochs.",
                WALL_NOTE,
                "The decoder-positions table: `model.decoder_pos: none | learned` with the "
                "encoder's fixed sinusoids (a trained table starts from the sinusoids).",
            ),
            figures=(
                "word_accuracy.png",
                "errors_by_length.png",
                "attention_0_brown_cross.png",
                "embeddings_pca.png",
                "position_cosine_encoder.png",
            ),
            scales={"full": [], "cpu": ["train.epochs=50"], "quick": PIG_QUICK},
            scale_notes={"cpu": "50 epochs instead of 100 (about an hour on 2 cores)"},
        ),
        Reproduction(
            name="mamba_piglatin",
            writeup="write-up 004: a Mamba model on Pig Latin",
            question="Does a small Mamba prefix LM learn Pig Latin as well as the "
            "transformer, and which discretisation works?",
            parts={
                "sizes": "reproduce/mamba_piglatin_sizes",
                "a_dt": "reproduce/mamba_piglatin_a_dt",
                "discretization": "reproduce/mamba_piglatin_discretization",
                "matched": "reproduce/mamba_piglatin_matched",
                "separator": "reproduce/mamba_piglatin_separator",
            },
            setup=(
                "Data as the Pig Latin reproduction: 5,120 training words, 2,000 "
                "validation and 2,000 test words.",
                "Hidden 64, d_state 16, expand 2, conv 4, no positions, RMSNorm: the "
                "write-up's parameter counts (162K, 276K) cannot both come from 2 and 4 "
                "layers of one width (see configs/mamba/piglatin_small.yaml); the "
                "`matched` part widens each to its own count (small hidden 104: 165,464; "
                "large hidden 96: 279,264).",
                "Plateau schedule: halve the lr after 2 epochs without a new best "
                "validation loss (on a fixed subset of 1,024 validation words).",
                "The A/Δ table: A frozen at −I is `a_init: neg_identity` with `a_trained: "
                "false`; Δ as a positional embedding is `dt: positional` (softplus of a "
                "learned (position, channel) table, started at the learned Δ's start).",
                "The `matched` part's widths (104, 96) are fitted to the write-up's "
                "parameter counts; the write-up states hidden 64 and no other width.",
                "The `separator` part: A = −I frozen, one seed, probed on the words of the "
                "write-up's Δ figures (conditioning, pleasure-grounds, is).",
                "The write-up reports validation word accuracy; ours is on 2,000 "
                "validation words, with the test split's beside it (the verdicts read "
                "validation). The train word accuracy tells a model that cannot fit the "
                "training words from one that fits them and does not generalise.",
                WALL_NOTE,
            ),
            figures=(
                "word_accuracy.png",
                "errors_by_length.png",
                "ssm_0_brown.png",
                "embeddings_pca.png",
            ),
            scales={"full": [], "cpu": ["train.epochs=20"], "quick": PIG_QUICK},
            scale_notes={"cpu": "20 epochs instead of 100 (about an hour on 2 cores)"},
        ),
        Reproduction(
            name="classifier",
            writeup="write-up 003: attention exercises and a classifier search",
            question="Which of three hand-picked batch / learning-rate settings trains the "
            "classifier best, and when does it start to overfit — from scratch, and "
            "fine-tuned from a pre-trained language model as those settings suggest?",
            parts={
                "handpicked": "reproduce/classifier_handpicked",
                "pretrain": "reproduce/classifier_pretrain",
                "finetuned": "reproduce/classifier_finetuned",
            },
            setup=(
                "Data: the write-up names no data set and no model; ours is the built-in "
                "synthetic sentiment task with negation (offline; `--set "
                "data.dataset=glue` trains on SST-2 online, a choice of ours, not the "
                "write-up's).",
                "Best epoch by validation accuracy (`train.select_by: val_accuracy`), as "
                "the write-up chose it.",
                "Its lr 1e-6 and batch 5 are fine-tuning settings: the `finetuned` part "
                "starts each classifier from the `pretrain` part's language model "
                "(hidden 64, 2 layers, WikiText-2 with a trained 8,192-token BPE, 3,000 "
                "steps; `model.init_from`), read at each text's last token; the write-up's "
                "pre-trained model is not named. Offline: `--set pretrain:data.path=DIR`.",
            ),
            figures=("accuracy_by_epoch.png",),
            scales={
                "full": [],
                "cpu": [],
                "quick": [
                    "train.epochs=2",
                    "data.num_train=400",
                    "data.num_val=100",
                    "data.num_test=100",
                ],
            },
            part_scales={
                "pretrain": {"quick": [*TEXT_QUICK, "data.seq_len=64"]},
                "finetuned": {
                    "quick": [
                        "train.epochs=2",
                        "data.num_train=100",
                        "data.num_val=50",
                        "data.num_test=50",
                    ]
                },
            },
            scale_notes={
                "full": "the write-up's batch sizes, learning rates and epochs; its data set "
                "and model are not named, so ours are our choice",
                "cpu": "the same as full: the write-up's own settings fit a 2-core CPU "
                "(20 to 40 minutes of training in all, by the CPU)",
            },
            part_sets={"finetuned": ("model.init_from={out}/pretrain/trials/pretrain_lm-s1",)},
        ),
        Reproduction(
            name="smeared_keys",
            writeup="write-up 000: Conv-Attn vs Attn-Attn on WikiText-2",
            question="Does a causal conv before one attention layer beat two attention "
            "layers, and does an induction head form on text?",
            parts={
                "main": "reproduce/smeared_keys",
                "kernels": "reproduce/smeared_keys_kernels",
                "writeup_model": "reproduce/smeared_keys_writeup_model",
            },
            skip={"full": ("writeup_model",)},  # at full scale `main` is the write-up's model
            setup=(
                "Data: WikiText-2 from the Hub (`Salesforce/wikitext`, raw) or a local copy "
                "with `--set data.path=DIR`; a token stream cut into sequences. The "
                "committed runs read the word-level v1 `.tokens` files (with `<unk>`), "
                "as the shared data has no raw train split: every verdict lists it.",
                "The CPU scale keeps learned positions (the calibration's setting); the "
                "write-up names none, and the `writeup_model` part (its size, GPT-2's "
                "tokenizer, no positions, its schedule) runs the first part of its run.",
                "Induction on text: see the part reports' head-probe tables (max induction "
                "against a uniform head) and docs/LOG.md's calibration runs.",
            ),
            figures=(
                "loss_by_frequency.png",
                "kernel_profile.png",
                "grad_norm.png",
                "attention_text.png",
            ),
            scales={
                "full": ["model.pos=none"],
                "cpu": [
                    "data.tokenizer=bpe",
                    "data.bpe_vocab_size=2048",
                    "data.batch_size=16",
                    "model.d_model=128",
                    "train.lr=1.0e-3",
                    "train.epochs=null",
                    "train.max_steps=4000",
                    "train.warmup_steps=100",
                    "train.eval_every=500",
                    "train.eval_batches=20",
                    "train.final_eval_batches=50",
                    "train.probe_every=500",
                ],
                "quick": [*TEXT_QUICK, "data.seq_len=64"],
            },
            part_scales={
                "writeup_model": {
                    "cpu": [
                        "train.stop_step=160",
                        "train.eval_every=40",
                        "train.eval_batches=8",
                        "train.final_eval_batches=16",
                    ],
                    "quick": [*TEXT_QUICK, "data.seq_len=64"],
                }
            },
            scale_notes={
                "cpu": "d_model 128 instead of 512, a trained 2,048-token BPE instead of "
                "GPT-2's, batch 16 × 256, lr 1e-3, 4,000 steps (16M tokens) instead of 15 "
                "epochs, head probes every 500 steps; the setting where the calibration "
                "formed an induction head on text (docs/LOG.md, 2026-12-02)",
            },
        ),
        Reproduction(
            name="smeared_keys_k3",
            writeup="write-up 001: the k = 3 variant (its 99.8% accuracy)",
            question="What does the k = 3, 2-layer variant reach when it cannot see the "
            "future, and does a centred conv reach the write-up's 99.8%?",
            parts={
                "k3": "reproduce/smeared_keys_k3",
                "rows": "reproduce/smeared_keys_k3_rows",
                "as_run": "reproduce/smeared_keys_k3_as_run",
            },
            part_scales={
                "as_run": {
                    "full": [],
                    "cpu": [
                        "model.d_model=64",
                        "train.epochs=1",
                        "train.eval_batches=20",
                        "train.final_eval_batches=50",
                    ],
                    "quick": [*TEXT_QUICK, "data.seq_len=31"],
                }
            },
            setup=(
                "The write-up names causal padding for its conv, yet lists it among the "
                "fixes still to make; its pipeline also scores padding (CrossEntropyLoss "
                "with no ignore index over rows padded to 128). Either could make its "
                "99.81%, so the `as_run` part runs its pipeline as it describes it (every "
                "train row, blank ones too; GPT-2's tokenizer at max_length 128; padding "
                "scored) with the conv centred, and switches each mechanism off in turn.",
                "The `k3` part: a token stream of the v1 `.tokens` files in windows of "
                "128 (no padding), a trained 8,192-token BPE at CPU scale; the `rows` "
                "part: one example per non-blank row padded to 128, padding masked or "
                "scored (`data.score_pad`).",
            ),
            figures=("kernel_profile.png", "attention_text.png", "loss.png"),
            scales={
                "full": [],
                "cpu": [
                    "data.tokenizer=bpe",
                    "data.bpe_vocab_size=8192",
                    "data.batch_size=16",
                    "model.d_model=128",
                    "train.epochs=null",
                    "train.max_steps=1500",
                    "train.warmup_steps=100",
                    "train.eval_every=250",
                    "train.eval_batches=20",
                    "train.final_eval_batches=50",
                ],
                "quick": TEXT_QUICK,
            },
            scale_notes={
                "cpu": "d_model 128 instead of 512, a trained 8,192-token BPE instead of "
                "GPT-2's, batch 16, 1,500 steps (2.5M tokens) instead of 25 epochs",
            },
        ),
    )
}


def list_reproductions() -> list[tuple[str, str]]:
    """(name, one line) of every reproduction."""
    out = []
    for r in REPRODUCTIONS.values():
        note = f" [not runnable yet: {r.ready}]" if r.ready else ""
        out.append((r.name, f"{r.writeup}: {r.question}{note}"))
    return out
