"""Read a judge's grade out of its reply: the last verdict in the text wins.

Judges are asked for JSON, but small or chatty models wrap it in prose, quote the answer they
grade, or get cut off. Every verdict in the reply is collected with its position — a JSON
object's verdict field, or a verdict-shaped match outside every JSON object — and the *last*
one is taken (inspect's rule): an answer under review is quoted before the judge's own
verdict, so it cannot set the grade, and text inside a JSON field (an explanation quoting
"[[10]]") is never a verdict. A verdict outside the allowed range, or none at all, is
unscored (NaN / None), never 0.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

Preference = Literal["A", "B", "tie"]
# Bump when parsing changes what a reply means: cached judging steps then rerun.
PARSER_VERSION = 2

_NUMBER = r"(-?\d+(?:\.\d+)?)"
_RATING_PATTERNS = (
    re.compile(r"\[\[\s*" + _NUMBER + r"\s*(?:/\s*\d+\s*)?\]\]"),  # [[7]] or [[7/10]]
    re.compile(r'"(?:score|rating|grade)"\s*:\s*"?' + _NUMBER, re.IGNORECASE),  # JSON, even cut
    re.compile(r"\b(?:score|rating|grade)\s*(?:is|=|:)\s*\**\s*" + _NUMBER, re.IGNORECASE),
)
_PASS_FAIL_PATTERNS = (
    re.compile(r"\[\[\s*(PASS|FAIL)\s*\]\]", re.IGNORECASE),
    re.compile(r'"(?:verdict|grade|score)"\s*:\s*"(PASS|FAIL)"', re.IGNORECASE),
    re.compile(r"\b(?:verdict|grade)\s*(?:is|:)\s*\**\s*(PASS|FAIL)\b", re.IGNORECASE),
)
_PREFERENCE_PATTERNS = (
    re.compile(r"\[\[\s*(A|B|C|tie)\s*\]\]", re.IGNORECASE),
    re.compile(r'"(?:verdict|winner|preference)"\s*:\s*"\s*(A|B|C|tie)\s*"', re.IGNORECASE),
    # Prose: "Verdict: B", "the winner is answer A", "my verdict is a tie". The letter is
    # case-sensitive so the article in "is a draw" is not read as answer A.
    re.compile(
        r"\b(?:verdict|winner)\s*(?:is|:)\s*\**\s*(?:(?:the\s+)?(?:assistant|answer|response)\s+)?"
        r"(?:an?\s+)?((?-i:A|B)|tie)\b",
        re.IGNORECASE,
    ),
)


@dataclass(frozen=True)
class Grade:
    """A parsed rubric grade: ``value`` is NaN when the reply held no valid grade."""

    value: float
    explanation: str

    @property
    def scored(self) -> bool:
        return not math.isnan(self.value)


def json_objects(text: str) -> list[tuple[int, int, dict[str, Any]]]:
    """(start, end, object) of every top-level JSON object in the text that parses."""
    decoder = json.JSONDecoder()
    found: list[tuple[int, int, dict[str, Any]]] = []
    for match in re.finditer(r"\{", text):
        start = match.start()
        if found and start < found[-1][1]:
            continue  # inside an object already read
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            found.append((start, end, value))
    return found


def _last_verdict(
    text: str, keys: tuple[str, ...], patterns: tuple[re.Pattern[str], ...]
) -> str | None:
    """The verdict that comes last: a JSON object's verdict field, or a verdict-shaped match
    outside every JSON object (text inside an object's fields, such as an explanation quoting
    the answer's "[[10]]", is never a verdict)."""
    objects = json_objects(text)
    candidates: list[tuple[int, str]] = []
    for start, _end, data in objects:
        for key in keys:
            value = data.get(key)
            if isinstance(value, (int, float, str)) and not isinstance(value, bool):
                candidates.append((start, str(value).strip()))
                break
    for pattern in patterns:
        for match in pattern.finditer(text):
            inside = any(start <= match.start() < end for start, end, _ in objects)
            if not inside:
                candidates.append((match.start(), match.group(1)))
    return max(candidates, key=lambda c: c[0])[1] if candidates else None


def explanation_of(text: str) -> str:
    """The judge's reasoning: a JSON ``explanation`` field when there is one, else the text."""
    for _start, _end, data in reversed(json_objects(text)):
        if isinstance(data.get("explanation"), str):
            return str(data["explanation"]).strip()
    return text.strip()


def parse_grade(text: str, *, low: float, high: float, pass_fail: bool = False) -> Grade:
    """The last grade in ``text``; NaN when there is none or it is outside [low, high]."""
    explanation = explanation_of(text)
    if pass_fail:
        found = _last_verdict(text, ("verdict", "grade"), _PASS_FAIL_PATTERNS)
        known = found is not None and found.upper() in ("PASS", "FAIL")
        value = float(found.upper() == "PASS") if known and found else math.nan
        return Grade(value, explanation)
    found = _last_verdict(text, ("score", "rating", "grade"), _RATING_PATTERNS)
    try:
        value = math.nan if found is None else float(found)
    except ValueError:
        value = math.nan
    if not low <= value <= high:
        value = math.nan
    return Grade(value, explanation)


def parse_preference(text: str) -> Preference | None:
    """The last of A / B / tie (MT-Bench writes a tie as [[C]]); None when there is none."""
    found = _last_verdict(text, ("verdict", "winner", "preference"), _PREFERENCE_PATTERNS)
    if found is None:
        return None
    found = found.upper()
    if found in ("C", "TIE"):
        return "tie"
    return {"A": "A", "B": "B"}.get(found)  # type: ignore[return-value]
