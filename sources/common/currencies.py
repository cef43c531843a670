"""ISO 4217, from the `iso4217` package (ISO's own table): the one place that says which codes exist and
how many decimals their minor unit has. Amounts are kept in integer minor units, so a code without a minor
unit (metals such as XAU, funds, XXX) cannot carry an amount: it is refused everywhere, never taken as 0."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import iso4217


class CurrencyError(ValueError):
    """A code that is no ISO 4217 currency, or one whose amounts have no minor unit."""


def minor_unit_exponent(code: Any) -> int:
    """The decimals of a currency's minor unit (JPY 0, EUR 2, KWD 3); `CurrencyError` otherwise."""
    if not isinstance(code, str) or not code.strip():
        raise CurrencyError(f"no currency code, got {code!r}")
    try:
        exponent = iso4217.Currency(code.strip().upper()).exponent
    except ValueError:
        raise CurrencyError(f"{code.strip()[:20]!r} is not an ISO 4217 currency code") from None
    if exponent is None:
        raise CurrencyError(f"{code.strip().upper()} has no minor unit to count amounts in")
    return exponent


def currency_table() -> list[tuple[str, str, int | None, Decimal | None]]:
    """Every ISO 4217 code: code, name, exponent, the minor unit as a decimal (0.01 for EUR, 1 for JPY, 0.001
    for KWD); codes without a minor unit have no exponent and no unit (their amounts stay unconverted)."""
    return [
        (c.code, c.currency_name, c.exponent, None if c.exponent is None else Decimal(1).scaleb(-c.exponent))
        for c in iso4217.Currency
    ]
