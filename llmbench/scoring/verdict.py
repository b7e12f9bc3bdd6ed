"""Read a judge's grade out of its reply: the last verdict in the text wins.

Judges are asked for JSON, but small or chatty models wrap it in prose, quote the answer they
grade, or get cut off. Every verdict-shaped thing in the reply is collected with its position
and the *last* one is taken (inspect's rule): an answer under review that says "[[10]]" is
quoted before the judge's own verdict, so it cannot set the grade. A verdict outside the
allowed range, or none at all, is unscored (NaN / None), never 0.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Literal

Preference = Literal["A", "B", "tie"]

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
    re.compile(
        r"\b(?:verdict|winner)\s*(?:is|:)\s*\**\s*(?:assistant|answer|response)?\s*(A|B|tie)\b",
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


def _last_match(patterns: tuple[re.Pattern[str], ...], text: str) -> str | None:
    best: tuple[int, str] | None = None
    for pattern in patterns:
        for match in pattern.finditer(text):
            if best is None or match.start() >= best[0]:
                best = (match.start(), match.group(1))
    return None if best is None else best[1]


def explanation_of(text: str) -> str:
    """The judge's reasoning: a JSON ``explanation`` field when there is one, else the text."""
    for match in reversed(list(re.finditer(r"\{.*?\}", text, re.DOTALL))):
        try:
            data = json.loads(match.group(0))
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict) and isinstance(data.get("explanation"), str):
            return str(data["explanation"]).strip()
    return text.strip()


def parse_grade(text: str, *, low: float, high: float, pass_fail: bool = False) -> Grade:
    """The last grade in ``text``; NaN when there is none or it is outside [low, high]."""
    explanation = explanation_of(text)
    if pass_fail:
        found = _last_match(_PASS_FAIL_PATTERNS, text)
        value = math.nan if found is None else float(found.upper() == "PASS")
        return Grade(value, explanation)
    found = _last_match(_RATING_PATTERNS, text)
    value = math.nan if found is None else float(found)
    if not low <= value <= high:
        value = math.nan
    return Grade(value, explanation)


def parse_preference(text: str) -> Preference | None:
    """The last of A / B / tie (MT-Bench writes a tie as [[C]]); None when there is none."""
    found = _last_match(_PREFERENCE_PATTERNS, text)
    if found is None:
        return None
    found = found.upper()
    if found in ("C", "TIE"):
        return "tie"
    return "A" if found == "A" else "B"
