"""A cron expression checked before anything is scheduled: ZenML passes it to the
orchestrator as is, which would reject a typo only at registration, far from the flag."""

from __future__ import annotations

import re

from llmbench.errors import ConfigError

# Five fields (minute hour day-of-month month day-of-week): numbers, names (JAN, MON), ranges,
# steps and lists, * and ?.
_FIELD = re.compile(
    r"^(\*|\?|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?(,(\*|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?)*$"
)
_NAMES = ("minute", "hour", "day of month", "month", "day of week")


def check_cron(expression: str) -> str:
    """The expression, stripped, if it has the five fields of standard cron; exit 2 if not."""
    fields = expression.split()
    hint = 'write five fields, minute hour day-of-month month day-of-week, e.g. "0 3 * * *"'
    if len(fields) != len(_NAMES):
        raise ConfigError(
            f"{expression!r} has {len(fields)} fields, cron has 5", field="--schedule", hint=hint
        )
    for name, field in zip(_NAMES, fields, strict=True):
        if not _FIELD.match(field):
            raise ConfigError(
                f"{expression!r}: {field!r} is not a valid {name} field",
                field="--schedule",
                hint=hint,
            )
    return " ".join(fields)
