from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from llmbench.config import load_task_file
from llmbench.scoring.extract import ExtractorSpec, extract, normalize_number

ADAPTER: TypeAdapter[ExtractorSpec] = TypeAdapter(ExtractorSpec)


def chain(*specs: dict[str, object]) -> list[ExtractorSpec]:
    return [ADAPTER.validate_python(s) for s in specs]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("She makes 9 * 2 = $18 every day.\n#### 18", "18"),
        ("The answer is 1,250.", "1250"),
        ("It costs 3.50 dollars", "3.5"),
        ("Total: 18.00", "18"),
        ("no digits here", None),
        ("from -4 to -7", "-7"),
    ],
)
def test_last_number(text: str, expected: str | None) -> None:
    assert extract(text, chain({"type": "last_number"})) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # an answer statement
        ("The answer is (C).", "C"),
        ("Answer: b", "B"),
        ("answer is (B)", "B"),
        ("The correct answer is: D", "D"),
        ("The answer is B because it is the only planet with liquid water.", "B"),
        ("The best option is C.", "C"),
        ("D\nExplanation:\nThe answer is C.", "C"),  # a statement beats a bare line
        # a letter standing alone: bracketed, in bold, or alone on its line
        ("(B)", "B"),
        ("I'd go with [c] here", "C"),
        ("**A**", "A"),
        ("B. Earth", "B"),
        ("  B\n", "B"),
        ("B) Earth", "B"),
        ("\nD\nAnswer:\nD\nAnswer:\nD", "D"),  # the same letter again
        # a letter that is a word of a sentence is not an answer
        ("the answer is a tough one", None),
        ("A child not inheriting the characteristic of its parents", None),
        ("A good question. I would say Earth.", None),
        ("I think it is D because...", None),
        ("B Earth", None),  # no mark: cannot tell the letter from a word without the options
        # several letters standing alone and no statement: no choice was made
        ("\nA. Venus\nB. Earth\nC. Jupiter", None),
        ("(A) or (B)", None),
        # letters outside the task's options, and no letter
        ("(E)", None),
        ("none of them", None),
    ],
)
def test_choice_letter(text: str, expected: str | None) -> None:
    assert extract(text, chain({"type": "choice_letter", "letters": "ABCD"})) == expected


def test_choice_letter_respects_the_letters_and_escapes_them() -> None:
    assert extract("(E)", chain({"type": "choice_letter", "letters": "ABCDE"})) == "E"
    assert extract("Answer: 3", chain({"type": "choice_letter", "letters": "1234"})) == "3"
    assert extract("Answer: ]", chain({"type": "choice_letter", "letters": "AB]"})) == "]"


def test_regex_selects_first_or_last_and_group() -> None:
    text = "Answer: 3. Wait, Answer: 5"
    first = chain({"type": "regex", "pattern": r"Answer: (\d+)"})
    last = chain({"type": "regex", "pattern": r"Answer: (\d+)", "select": "last"})
    assert extract(text, first) == "3"
    assert extract(text, last) == "5"
    assert extract("no match", first) is None


def test_chain_runs_in_order_and_stops_on_none() -> None:
    steps = chain({"type": "first_line"}, {"type": "strip", "chars": "."}, {"type": "normalize"})
    assert extract("\n  The Eiffel Tower.\nmore text", steps) == "eiffel tower"
    assert extract("   \n  ", steps) is None


def test_invalid_regex_is_rejected() -> None:
    with pytest.raises(ValueError, match="invalid regular expression"):
        chain({"type": "regex", "pattern": "(unclosed"})


def test_normalize_number() -> None:
    assert normalize_number("1,000") == "1000"
    assert normalize_number("abc") is None


# Real replies of the two default models on the shipped multiple-choice tasks (bench.yaml's
# multiple_choice; arc_challenge and mmlu, first 150 items), each with the letter it states,
# read by hand (None: it states none).
ROOT = Path(__file__).resolve().parents[2]
CHOICE_OUTPUTS = ROOT / "tests" / "data" / "choice_outputs.jsonl"


def _choice_outputs() -> list[dict[str, Any]]:
    return [json.loads(line) for line in CHOICE_OUTPUTS.read_text().splitlines()]


@pytest.mark.parametrize(
    "row", _choice_outputs(), ids=lambda r: f"{r['task']}-{r['model']}-{r['sample_id']}"
)
def test_choice_letter_on_real_replies(row: dict[str, Any]) -> None:
    task = load_task_file(ROOT / "configs" / "tasks" / f"{row['task']}.yaml")
    assert extract(row["output"], task.extract) == row["stated"]
