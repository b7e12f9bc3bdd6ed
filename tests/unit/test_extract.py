from __future__ import annotations

import pytest
from pydantic import TypeAdapter

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
        ("The answer is (C).", "C"),
        ("Answer: b", "B"),
        ("B. Earth", "B"),
        ("I think it is D because...", "D"),
        ("(E)", None),
        ("none of them", None),
    ],
)
def test_choice_letter(text: str, expected: str | None) -> None:
    assert extract(text, chain({"type": "choice_letter", "letters": "ABCD"})) == expected


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
