"""llmbench's local tools: the "external APIs" of a tool-using task, offline and
reproducible. Weather and stock quotes are read from fixture tables shipped with llmbench
(``llmbench/tools/data/*.csv``: invented values for a few cities, tickers and days, not
real observations or prices); the calculator evaluates arithmetic with ``simpleeval``
(operators and a few math functions, never Python code); unit conversion is ``pint``'s
(its unit definitions, offset temperatures included).

Each tool is a typed function; its JSON schema is derived from its hints
(:func:`llmbench.tools.python.function_tool`), so what the model is told and what the
function takes cannot drift apart.
"""

from __future__ import annotations

import csv
import functools
import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from llmbench.tools.base import BoundTool, ToolFailure
from llmbench.tools.python import function_tool

DATA = Path(__file__).with_name("data")
Date = Annotated[str, Field(description="the day, as YYYY-MM-DD", pattern=r"^\d{4}-\d{2}-\d{2}$")]


@functools.cache
def _table(name: str, *keys: str) -> dict[tuple[str, ...], dict[str, str]]:
    with (DATA / name).open(encoding="utf-8", newline="") as handle:
        return {tuple(row[k].casefold() for k in keys): row for row in csv.DictReader(handle)}


def _values(name: str, key: str) -> str:
    return ", ".join(sorted({row[key] for row in _table(name, key).values()}))


def get_weather(
    city: Annotated[str, Field(description="the city's English name, e.g. Paris")],
    date: Date,
) -> dict[str, Any]:
    """The weather of a city on a day: condition, high and low in degrees Celsius and
    precipitation in millimetres."""
    row = _table("weather.csv", "city", "date").get((city.strip().casefold(), date))
    if row is None:
        raise ToolFailure(
            f"no weather for {city!r} on {date} (cities: {_values('weather.csv', 'city')}; "
            f"dates: {_values('weather.csv', 'date')})"
        )
    return {
        "city": row["city"],
        "date": row["date"],
        "condition": row["condition"],
        "high_c": float(row["high_c"]),
        "low_c": float(row["low_c"]),
        "precipitation_mm": float(row["precipitation_mm"]),
    }


def get_stock_quote(
    ticker: Annotated[str, Field(description="the stock's ticker symbol, e.g. ACME")],
    date: Date,
) -> dict[str, Any]:
    """A stock's daily quote: open, close, high and low price, volume and currency."""
    row = _table("stocks.csv", "ticker", "date").get((ticker.strip().casefold(), date))
    if row is None:
        raise ToolFailure(
            f"no quote for {ticker!r} on {date} (tickers: {_values('stocks.csv', 'ticker')}; "
            f"dates: {_values('stocks.csv', 'date')})"
        )
    prices = {k: float(row[k]) for k in ("open", "close", "high", "low")}
    return {
        "ticker": row["ticker"],
        "date": row["date"],
        **prices,
        "volume": int(row["volume"]),
        "currency": row["currency"],
    }


MATH_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "sqrt": math.sqrt,
    "log": math.log,
    "log10": math.log10,
    "exp": math.exp,
    "floor": math.floor,
    "ceil": math.ceil,
}


def number_text(value: float | int) -> str:
    """A result as people write it: 90, not 90.0; at most 12 significant digits."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return format(value, ".12g") if isinstance(value, float) else str(value)


def calculator(
    expression: Annotated[
        str, Field(description="arithmetic, e.g. (12.5 - 3) * 4 / 2, sqrt(2), 2 ** 10")
    ],
) -> str:
    """Evaluate an arithmetic expression: + - * / // % **, parentheses, pi, e and abs,
    round, min, max, sqrt, log, log10, exp, floor, ceil."""
    from simpleeval import SimpleEval

    evaluator = SimpleEval(functions=MATH_FUNCTIONS, names={"pi": math.pi, "e": math.e})
    try:
        value = evaluator.eval(expression)
    except Exception as exc:  # simpleeval's errors and arithmetic ones alike
        raise ToolFailure(f"cannot evaluate {expression!r}: {type(exc).__name__}: {exc}") from None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ToolFailure(f"{expression!r} is not a number ({type(value).__name__})")
    return number_text(value)


_UNITS_LOCK = threading.Lock()


@functools.cache
def _units() -> Any:
    import pint

    return pint.UnitRegistry()


def convert_units(
    value: Annotated[float, Field(description="the quantity to convert")],
    from_unit: Annotated[str, Field(description="its unit, e.g. km, mile, degC, kg, lb")],
    to_unit: Annotated[str, Field(description="the unit wanted")],
) -> str:
    """Convert a quantity between units of the same dimension (length, mass, temperature,
    time, volume, speed ...)."""
    import pint

    with _UNITS_LOCK:  # pint's registry caches parsed units: one thread at a time
        units = _units()
        try:
            converted = units.Quantity(value, from_unit).to(to_unit)
        except (pint.errors.PintError, AttributeError, ValueError, TypeError) as exc:
            raise ToolFailure(f"cannot convert {from_unit!r} to {to_unit!r}: {exc}") from None
    return f"{number_text(round(float(converted.magnitude), 6))} {to_unit}"


FUNCTIONS: dict[str, Callable[..., Any]] = {
    f.__name__: f for f in (get_weather, get_stock_quote, calculator, convert_units)
}


def builtin_tool(name: str) -> BoundTool:
    """One local tool by name (KeyError: no such tool). Local tools are quick and pure:
    they run on the event loop, not in a thread."""
    return function_tool(FUNCTIONS[name], source="builtin", in_thread=False)
