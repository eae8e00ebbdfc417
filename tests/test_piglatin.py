"""Pig Latin rules: the write-up's examples and edge cases."""

from __future__ import annotations

import pytest

from attnlab.data.piglatin import to_pig_latin


@pytest.mark.parametrize(
    ("word", "pig"),
    [
        ("brown", "ownbray"),
        ("conditioning", "onditioningcay"),
        ("is", "isway"),
        ("pleasure-grounds", "easureplay-oundsgray"),
        ("strengthening", "engtheningstray"),
        ("thoughtfulness", "oughtfulnessthay"),
        ("good-humoured", "oodgay-umouredhay"),
        ("across", "acrossway"),
        ("a", "away"),
        ("b", "bay"),
        ("rhythm", "rhythmay"),
        ("yellow", "ellowyay"),
        ("Brown", "ownbray"),
        ("don't", "on'tday"),
        ("well-", "ellway-"),
    ],
)
def test_rules(word, pig):
    assert to_pig_latin(word) == pig
