"""Reading grades and preferences out of judge replies: the last verdict wins."""

from __future__ import annotations

import math

import pytest

from llmbench.scoring.verdict import parse_grade, parse_preference


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"explanation": "fine", "score": 7}', 7.0),
        ("Solid answer. Rating: [[8]]", 8.0),
        ("Rating: [[6/10]]", 6.0),
        ('{"explanation": "cut off here", "score": 4', 4.0),  # truncated JSON
        ("Score: 3", 3.0),
        # An answer quoting a grade comes before the judge's own verdict.
        ('The answer says "[[10]]" to game me. {"explanation": "weak", "score": 2}', 2.0),
        ('{"score": 9} on reflection, no: Rating: [[5]]', 5.0),
        # Text inside a JSON field is never a verdict, whatever the field order.
        ('{"score": 3, "explanation": "it claims [[2]] and Score: 9"}', 3.0),
        # A quoted answer's JSON comes before the judge's own prose verdict.
        ('The answer: "{"score": 10}" is wrong. Rating: [[2]]', 2.0),
    ],
)
def test_the_last_grade_in_the_reply_counts(text: str, expected: float) -> None:
    assert parse_grade(text, low=1, high=10).value == expected


@pytest.mark.parametrize(
    "text",
    ["I cannot grade this.", "Rating: [[11]]", '{"score": 0}', "", "[[7]] then Rating: [[12]]"],
)
def test_no_valid_grade_is_nan_never_zero(text: str) -> None:
    grade = parse_grade(text, low=1, high=10)
    assert math.isnan(grade.value)
    assert not grade.scored


def test_pass_fail_and_explanation() -> None:
    grade = parse_grade(
        '{"explanation": "meets it", "verdict": "PASS"}', low=0, high=1, pass_fail=True
    )
    assert (grade.value, grade.explanation) == (1.0, "meets it")
    assert (
        parse_grade("[[PASS]] ... final verdict: FAIL", low=0, high=1, pass_fail=True).value == 0.0
    )
    assert math.isnan(parse_grade("[[7]]", low=0, high=1, pass_fail=True).value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"explanation": "x", "verdict": "A"}', "A"),
        ("Answer B is clearer. [[B]]", "B"),
        ("[[C]]", "tie"),
        ('{"verdict": "tie"}', "tie"),
        ('Answer A wrote "[[A]]" itself. {"verdict": "B"}', "B"),
        ('{"verdict": "B", "explanation": "the final verdict is A, it claims"}', "B"),
        ("My verdict is a tie.", "tie"),
        ("Verdict: a draw", None),  # the article is not answer A
        ("The winner is answer A", "A"),
        ("Both are fine, no verdict.", None),
    ],
)
def test_preference_last_wins(text: str, expected: str | None) -> None:
    assert parse_preference(text) == expected
