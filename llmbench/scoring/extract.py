"""Answer extractors: turn a model's raw text into the answer that metrics compare.

Extraction is kept apart from scoring (as lm-evaluation-harness does with filters): a task
lists extractors in YAML and they run in order, each taking the previous one's output.
``None`` means no answer could be extracted; metrics count it as wrong, not as unscored.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from llmbench.scoring.textnorm import normalize_text


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RegexExtractor(_Spec):
    """Keep the text a regular expression captures (first or last match)."""

    type: Literal["regex"]
    pattern: str
    group: int = Field(default=1, ge=0)
    select: Literal["first", "last"] = "first"
    ignore_case: bool = False

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from exc
        return pattern


class LastNumberExtractor(_Spec):
    """The last number in the text, normalised (``1,000.0`` -> ``1000``)."""

    type: Literal["last_number"]


class ChoiceLetterExtractor(_Spec):
    """The letter of a multiple-choice answer where it stands as the answer (``(B)``,
    ``Answer: B``, a line ``B`` or ``B. Earth``), never a letter that is a word of a sentence
    ("A child ...", "the answer is a tough one")."""

    type: Literal["choice_letter"]
    letters: str = "ABCD"


class StripExtractor(_Spec):
    """Strip surrounding whitespace and the given characters."""

    type: Literal["strip"]
    chars: str = ""


class NormalizeExtractor(_Spec):
    """SQuAD-style normalisation: lower case, no punctuation, no articles, single spaces."""

    type: Literal["normalize"]


class FirstLineExtractor(_Spec):
    """The first non-empty line (small models often keep talking after the answer)."""

    type: Literal["first_line"]


ExtractorSpec = Annotated[
    RegexExtractor
    | LastNumberExtractor
    | ChoiceLetterExtractor
    | StripExtractor
    | NormalizeExtractor
    | FirstLineExtractor,
    Field(discriminator="type"),
]

EXTRACTOR_TYPES = (
    "regex",
    "last_number",
    "choice_letter",
    "strip",
    "normalize",
    "first_line",
)

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def normalize_number(text: str) -> str | None:
    """``"1,000.50"`` -> ``"1000.5"``; ``"18.00"`` -> ``"18"``; not a number -> None."""
    cleaned = text.replace(",", "").strip()
    try:
        value = float(cleaned)
    except ValueError:
        return None
    if value.is_integer():
        return str(int(value))
    return repr(value)


def _regex(spec: RegexExtractor, text: str) -> str | None:
    flags = re.IGNORECASE if spec.ignore_case else 0
    matches = list(re.finditer(spec.pattern, text, flags))
    if not matches:
        return None
    match = matches[0] if spec.select == "first" else matches[-1]
    group = spec.group if match.re.groups >= spec.group else 0
    value = match.group(group)
    return value if value is not None else None


def _last_number(text: str) -> str | None:
    numbers = _NUMBER.findall(text)
    return normalize_number(numbers[-1]) if numbers else None


@functools.cache
def _choice_patterns(letters: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Where a letter stands as an answer: (an answer statement, a letter standing alone).

    A letter counts when it is marked off from the words around it: bracketed ("(B)",
    "[B]"), in bold, alone on its line or followed there by punctuation and perhaps the
    option text ("B", "B. Earth", "B) Earth"), or named by "answer"/"option"/"choice"
    ("Answer: b", "the answer is (B)", "The answer is B because ..."). A bare letter inside a
    sentence ("A child ...", "the answer is a tough one") is a word, not an answer."""
    letter = f"[{re.escape(letters)}]"
    inline = r"[^\S\n]*"  # spaces within one line
    bracketed = rf"[(\[]{inline}({letter}){inline}[)\]]|\*\*({letter})\*\*"
    punctuated = rf"({letter})(?={inline}(?:[.):,;!]|$))"
    upper = rf"(?-i:({letter.upper()}))(?![A-Za-z0-9])"  # "is B because": a capital stands out
    marker = rf"\b(?:answer|option|choice)\b(?:{inline}(?:is|would be|should be)\b)?{inline}[:=-]?"
    statement = re.compile(
        rf"{marker}{inline}(?:{bracketed}|{punctuated}|{upper})", re.IGNORECASE | re.MULTILINE
    )
    alone = re.compile(
        rf"{bracketed}|^{inline}(?:{bracketed}|{punctuated})", re.IGNORECASE | re.MULTILINE
    )
    return statement, alone


def _letter(match: re.Match[str]) -> str:
    return next(g for g in match.groups() if g is not None).upper()


def _choice_letter(spec: ChoiceLetterExtractor, text: str) -> str | None:
    """The first answer statement's letter; else the letter standing alone, if only one
    does (a reply that lists "A. Venus / B. Earth / C. Mars" has not chosen)."""
    statement, alone = _choice_patterns(spec.letters)
    match = statement.search(text)
    if match:
        return _letter(match)
    standing = {_letter(m) for m in alone.finditer(text)}
    return standing.pop() if len(standing) == 1 else None


def _first_line(text: str) -> str | None:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return None


def _apply_one(spec: _Spec, text: str) -> str | None:
    if isinstance(spec, RegexExtractor):
        return _regex(spec, text)
    if isinstance(spec, LastNumberExtractor):
        return _last_number(text)
    if isinstance(spec, ChoiceLetterExtractor):
        return _choice_letter(spec, text)
    if isinstance(spec, StripExtractor):
        return text.strip().strip(spec.chars).strip() if spec.chars else text.strip()
    if isinstance(spec, NormalizeExtractor):
        return normalize_text(text)
    if isinstance(spec, FirstLineExtractor):
        return _first_line(text)
    raise TypeError(f"unhandled extractor spec {type(spec).__name__}")


def extract(text: str, chain: Sequence[_Spec]) -> str | None:
    """Run the extractor chain over ``text``; ``None`` as soon as a step finds nothing."""
    value: str | None = text
    for spec in chain:
        if value is None:
            return None
        value = _apply_one(spec, value)
    return value
