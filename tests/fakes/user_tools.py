"""User tools as a config names them (``tests.fakes.user_tools:...``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field


def shipping_cost(
    weight_kg: Annotated[float, Field(gt=0, description="the parcel's weight")],
    zone: Literal["domestic", "international"] = "domestic",
) -> dict[str, float]:
    """A parcel's shipping cost in USD.

    Flat rates: 5 USD plus 2 per kg at home, 15 plus 6 per kg abroad."""
    base, per_kg = (5.0, 2.0) if zone == "domestic" else (15.0, 6.0)
    return {"usd": base + per_kg * weight_kg}


def untyped(a, b):  # type: ignore[no-untyped-def]
    return a + b


NOT_A_FUNCTION = 3
