"""Word-level scores of translation tasks: generate each word of a split and compare.

Loss per character and character accuracy are the training loop's teacher-forced token
metrics on the scored target characters (and `[EOS]`); word accuracy is the share of
words whose generated translation, up to `[EOS]`, equals the reference exactly.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
from torch import nn

from attnlab.data.piglatin import VOWELS, CharVocab, TranslationSplit
from attnlab.models.generate import beam_search, greedy

GEN_BATCH = 512  # words decoded at once
MISTAKES_KEPT = 50


def translate(
    model: nn.Module,
    split: TranslationSplit,
    vocab: CharVocab,
    device,
    beam_width: int = 1,
    max_words: int | None = None,
    cache: bool = True,
) -> list[str]:
    """The model's translation of the first `max_words` words of `split` (all when None),
    decoded with the model's cache or (`cache=False`) by full recomputation."""
    n = split.num_sequences if max_words is None else min(max_words, split.num_sequences)
    hyps = []
    for start in range(0, n, GEN_BATCH):
        ids = np.arange(start, min(n, start + GEN_BATCH))
        prompt, lengths, src = split.prompts(ids)
        prompt, lengths = prompt.to(device), lengths.to(device)
        src = None if src is None else src.to(device)
        args = (model, prompt, lengths, split.max_new, vocab.EOS)
        if beam_width == 1:
            out = greedy(*args, pad=vocab.PAD, src=src, cache=cache)
        else:
            out = beam_search(*args, beam_width, pad=vocab.PAD, src=src, cache=cache)
        hyps += [vocab.decode(row) for row in out.cpu().tolist()]
    return hyps


def repeats_last(word: str, target: str, predicted: str) -> bool:
    """Whether a wrong translation doubles the word's last character more often than the
    right one does (`is` → `isssway`): the "repeats its last character" mistake."""
    twice = word[-1:] * 2
    return bool(twice) and predicted.count(twice) > target.count(twice)


def word_scores(words: list[str], refs: list[str], hyps: list[str]) -> dict:
    """Word accuracy; errors by source-word length, by kind (plain or hyphenated), by the
    first letter (vowel or consonant) and, among the mistakes, by whether the prediction
    repeats the word's last character; and the first mistakes (word, true, predicted)."""
    by_len = defaultdict(lambda: [0, 0])  # length → [words, errors]
    by_kind = defaultdict(lambda: [0, 0])  # plain | hyphenated → [words, errors]
    by_start = defaultdict(lambda: [0, 0])  # vowel | consonant → [words, errors]
    repeats = 0  # mistakes that repeat the word's last character
    mistakes = []
    for w, r, h in zip(words, refs, hyps, strict=True):
        wrong = r != h
        by_len[len(w)][0] += 1
        by_len[len(w)][1] += wrong
        kind = "hyphenated" if "-" in w else "plain"
        by_kind[kind][0] += 1
        by_kind[kind][1] += wrong
        start = "vowel" if w[:1] in VOWELS else "consonant"
        by_start[start][0] += 1
        by_start[start][1] += wrong
        repeats += wrong and repeats_last(w, r, h)
        if wrong and len(mistakes) < MISTAKES_KEPT:
            mistakes.append({"word": w, "target": r, "predicted": h})
    errors = sum(e for _, e in by_len.values())
    return {
        "word_accuracy": 1 - errors / max(len(hyps), 1),
        "words": len(hyps),
        "errors_by_length": {
            str(k): {"words": n, "errors": e} for k, (n, e) in sorted(by_len.items())
        },
        "errors_by_kind": {k: {"words": n, "errors": e} for k, (n, e) in sorted(by_kind.items())},
        "errors_by_start": {k: {"words": n, "errors": e} for k, (n, e) in sorted(by_start.items())},
        "mistakes_repeating_last": repeats,
        "mistakes": mistakes,
    }


class WordEval:
    """Word accuracy of a model on a dataset's translation splits (for the trainer)."""

    def __init__(self, model: nn.Module, dataset, device, beam_width: int = 1):
        self.model, self.dataset, self.device = model, dataset, device
        self.beam_width = beam_width

    def scores(self, split_name: str, max_words: int | None = None) -> dict:
        """`word_scores` of the first `max_words` words of a split."""
        split = self.dataset.splits[split_name]
        with torch.no_grad():
            hyps = translate(
                self.model, split, self.dataset.tokenizer, self.device, self.beam_width, max_words
            )
        n = len(hyps)
        return word_scores(split.words[:n], split.targets[:n], hyps)

    def __call__(self, split_name: str, max_batches: int | None) -> dict:
        """The periodic-eval record: word accuracy on the words of `max_batches` batches."""
        words = None if max_batches is None else max_batches * self.dataset.batch_size
        return {"word_accuracy": self.scores(split_name, words)["word_accuracy"]}
