"""The write-ups' claims as data: every quote stands in its write-up, every numeric cell of
every results table is a claim or deliberately left out, and the verdict rule."""

from __future__ import annotations

import math
import random

import pytest

from attnlab.errors import ConfigError
from attnlab.experiments.claims import (
    Claim,
    ClaimsFile,
    claims_names,
    load_claims,
    missing_quotes,
    numeric_cells,
    parse_number,
    table_rows,
    uncovered_cells,
)
from attnlab.experiments.reproductions import REPRODUCTIONS
from attnlab.experiments.verdicts import judge_count, judge_difference, judge_ordering, judge_value
from attnlab.stats import false_rejection_rate, mean_interval, prediction_interval
from tests.helpers import ROOT, SHARED_DATA

WRITEUPS = SHARED_DATA.parent / "writeups"
needs_writeups = pytest.mark.skipif(not WRITEUPS.is_dir(), reason="shared write-ups absent")


def test_every_reproduction_has_a_valid_claims_file():
    assert claims_names() == sorted(REPRODUCTIONS)
    for name in claims_names():
        cf = load_claims(name)
        assert cf.reproduction == name and cf.all_claims()
        parts = set(REPRODUCTIONS[name].parts)
        for c in cf.all_claims():  # every answer names a part this reproduction has
            for a in c.ours:
                assert a.part in parts, (name, c.id, a.part)
                assert a.other_part is None or a.other_part in parts or "/" in a.other_part


@needs_writeups
@pytest.mark.parametrize("name", sorted(REPRODUCTIONS))
def test_every_quote_stands_in_its_write_up(name):
    assert missing_quotes(load_claims(name), WRITEUPS) == []


@needs_writeups
def test_every_numeric_cell_of_every_results_table_is_covered():
    files = [load_claims(n) for n in claims_names()]
    for path in sorted(WRITEUPS.glob("*.txt")):
        assert uncovered_cells(files, WRITEUPS, path.name) == [], path.name


@needs_writeups
def test_coverage_finds_a_cell_no_claim_quotes(tmp_path):
    (tmp_path / "w.txt").write_text("| model | acc |\n|---|---|\n| A | 0.91 |\n| B | n/a |\n")
    empty = ClaimsFile(reproduction="x", writeup="w.txt", title="t")
    assert uncovered_cells([empty], tmp_path, "w.txt") == ["| A | 0.91 | → acc"]
    raw = {
        "reproduction": "x",
        "writeup": "w.txt",
        "title": "t",
        "not_covered": [{"quote": "| model | acc |", "reason": "settings"}],
    }
    assert uncovered_cells([ClaimsFile.model_validate(raw)], tmp_path, "w.txt") == []


def test_numbers_are_read_from_the_quote():
    assert parse_number("0.909") == 0.909 and parse_number("**5.98**") == 5.98
    assert parse_number("91%") == pytest.approx(0.91) and parse_number("99.81%") == 0.9981
    assert parse_number("143K") == 143_000 and parse_number("162 K") == 162_000
    assert parse_number("3e\u20114") == 3e-4 and parse_number("NA") is None
    assert parse_number("Beast Small (143K)") is None  # a label with its count
    rows = table_rows("| a | b |\n|---|---|\n| x | 1.5 |\ntext\n| c |\n")
    assert rows == [("| a | b |", "| x | 1.5 |")]
    assert numeric_cells(*rows[0]) == ["b"]
    with pytest.raises(ValueError, match="not in its quote"):
        Claim(id="c", quote="acc 0.91", where="w", kind="value", value_text="0.92", not_tested="x")
    with pytest.raises(ValueError, match="give ours, measure or not_tested"):
        Claim(id="c", quote="acc 0.91", where="w", kind="value", value_text="0.91")


def test_a_table_row_must_match_its_header():
    raw = {
        "reproduction": "x",
        "writeup": "w.txt",
        "title": "t",
        "metrics": {"acc": {"what": "accuracy"}},
        "tables": [
            {
                "id": "t",
                "where": "w",
                "header": "| model | acc |",
                "columns": {"acc": "acc"},
                "rows": [{"quote": "| A | 0.9 | 0.8 |", "not_tested": "x"}],
            }
        ],
    }
    with pytest.raises(ConfigError, match="3 cells, its header 2"):
        ClaimsFile.model_validate(raw).all_claims()


def test_prediction_interval_and_the_rates_that_motivate_it():
    _, lo, hi = prediction_interval([0.9565, 0.9660, 0.9705])
    assert (round(lo, 3), round(hi, 4)) == (0.929, 0.9998) and lo < 0.983 < hi
    assert round(false_rejection_rate(3), 2) == 0.16 and round(false_rejection_rate(10), 2) == 0.51
    # the rates are what a simulation of one new run against the mean's interval gives
    rng = random.Random(0)
    misses = 0
    for _ in range(4000):
        xs = [rng.gauss(0, 1) for _ in range(3)]
        _, a, b = mean_interval(xs)
        misses += not a <= rng.gauss(0, 1) <= b
    assert abs(misses / 4000 - false_rejection_rate(3)) < 0.03


def test_verdicts_follow_the_rule():
    assert judge_value(0.983, [0.9565, 0.9660, 0.9705])[1] == "consistent"
    assert judge_value(0.5, [0.60, 0.61, 0.62])[1] == "write-up below"
    assert judge_value(0.7, [0.60, 0.61, 0.62])[1] == "write-up above"
    assert judge_value(0.5, [0.6, 0.61])[1] == "not judged (2 seeds; ours +0.1050 from it)"
    assert judge_count(143_000, "143K", [143_104])[1] == "reproduced"
    assert judge_count(162_000, "162 K", [69_568])[1].startswith("differs (ours 69,568")
    assert judge_ordering([5.0, 5.1, 5.05], [6.0, 6.1, 6.05], "lower")[2] == "same order"
    assert judge_ordering([6.0, 6.1, 6.05], [5.0, 5.1, 5.05], "lower")[2] == "opposite order"
    assert judge_ordering([5.0, 6.0, 5.5], [5.4, 5.6, 5.5], "lower")[2] == "not established"
    assert judge_ordering([5.0], [6.0, 6.1], "lower")[2].startswith("not judged")
    assert judge_difference(0.0583, [0.0], [0.0], True)[2].startswith("not judged (the ref")
    _, shown, word = judge_difference(0.0583, [0.96, 0.962, 0.964], [0.909, 0.91, 0.911], True)
    assert word == "consistent" and shown.startswith("+0.0571")
    assert judge_difference(0.4, [0.9, 0.91, 0.92], [0.1, 0.11, 0.12], False)[2] == "write-up below"


def test_the_interval_of_the_mean_would_reject_more_as_seeds_grow():
    assert false_rejection_rate(3) < false_rejection_rate(10) < false_rejection_rate(30)
    assert math.isclose(false_rejection_rate(2), 0.0863, abs_tol=1e-3)


@pytest.mark.parametrize("doc", ["README.md", "docs/results.md"])
def test_the_headline_table_is_generated_from_the_claims(doc):
    from attnlab.experiments.reproduce import headline
    from attnlab.report.claims_section import HEADLINE_END, HEADLINE_START

    root = ROOT
    text = (root / doc).read_text(encoding="utf-8")
    table = text.split(HEADLINE_START, 1)[1].split(HEADLINE_END, 1)[0].strip()
    assert table == headline(root / "docs" / "results").strip(), (
        f"{doc}'s headline table is stale: run `attnlab reproduce --headline {doc}`"
    )


def test_the_budget_curve_finds_where_the_order_changes():
    from attnlab.experiments.curves import crossover, loss_difference

    def run(losses, offset):
        recs = [
            {"step": 100 * (i + 1), "split": "validation", "loss": x + offset}
            for i, x in enumerate(losses)
        ]
        return {"records": recs, "summary": {"train_tokens": 4000 * len(losses), "steps": 400}}

    conv = [run([4.0, 3.8, 3.75, 3.72], d) for d in (0.0, 0.01, -0.01)]
    attn = [run([4.2, 3.9, 3.6, 3.5], d) for d in (0.0, 0.01, -0.01)]
    points = loss_difference(conv, attn)
    assert [round(p.diff, 2) for p in points] == [-0.2, -0.1, 0.15, 0.22]
    assert points[0].high < 0 < points[2].low and points[0].tokens == 4000
    assert crossover(points).step == 300
    assert crossover(loss_difference(conv[:1], conv[:1])) is None
    assert loss_difference(conv, []) == []
