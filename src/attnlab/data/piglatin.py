"""Pig Latin, rule-exact (the third write-up's task; the data set comes with issue 4).

Rules, applied to the lower-cased word:
- a word (or hyphen-separated part) that starts with a vowel (a e i o u) gets "way";
- otherwise its leading consonant cluster, everything before the first vowel, moves to
  the end, followed by "ay" (a part without any vowel moves whole: "rhythm" → "rhythmay");
- hyphenated words are translated part by part ("good-humoured" → "oodgay-umouredhay");
- "y" is a consonant and apostrophes are ordinary letters ("don't" → "on'tday").
"""

from __future__ import annotations

VOWELS = frozenset("aeiou")


def _part(word: str) -> str:
    if not word:
        return word
    if word[0] in VOWELS:
        return word + "way"
    first = next((i for i, c in enumerate(word) if c in VOWELS), len(word))
    return word[first:] + word[:first] + "ay"


def to_pig_latin(word: str) -> str:
    """Translate one English word (hyphenated parts one by one) into lower-case Pig Latin."""
    return "-".join(_part(p) for p in word.lower().split("-"))
