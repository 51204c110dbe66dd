"""Exact money (pure): amounts are integers of 1e-12 USD ("units").

A price of P USD per million tokens is P x 10**6 units per token, so a request's cost is an
integer product, sums never drift, and $9,000,000 still fits in a signed 64-bit counter (the
width Redis and SQLite keep integers in).
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

UNITS_PER_USD = 10**12
UNITS_PER_TOKEN_PER_PRICE = 10**6  # 1 USD per 1M tokens = 10**6 units per token
MAX_UNITS = 2**63 - 1


def usd_to_units(usd: float | int | str) -> int:
    """Dollars as written (0.1 stays exactly 0.1, not 0.1000000000000000055)."""
    try:
        exact = Decimal(str(usd))
    except InvalidOperation:
        raise ValueError(f"not an amount of dollars: {usd!r}") from None
    if not exact.is_finite():
        raise ValueError(f"not an amount of dollars: {usd!r}")
    return int((exact * UNITS_PER_USD).to_integral_value(ROUND_HALF_EVEN))


def price_units_per_token(price_per_million: float) -> int:
    """A catalog price (USD per 1M tokens) as whole units per token."""
    exact = Decimal(str(price_per_million)) * UNITS_PER_TOKEN_PER_PRICE
    return int(exact.to_integral_value(ROUND_HALF_EVEN))


def token_cost(tokens: int, price_per_million: float) -> int:
    return tokens * price_units_per_token(price_per_million)


def units_to_usd_text(units: int) -> str:
    """Fixed point with no trailing zeros: 1_500_000 -> "0.0000015", 50 * 10**12 -> "50"."""
    sign = "-" if units < 0 else ""
    whole, fraction = divmod(abs(units), UNITS_PER_USD)
    text = f"{fraction:012d}".rstrip("0")
    return f"{sign}{whole}.{text}" if text else f"{sign}{whole}"


def units_to_usd(units: int) -> float:
    """For JSON numbers (OpenAI's cost `value` is a number); exact text uses units_to_usd_text."""
    return float(Decimal(units) / UNITS_PER_USD)
