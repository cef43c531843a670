"""Typed readers for one field of one record. Each returns the typed value or raises `RecordError`
naming the field, so the normalizer can quarantine that record and load the rest."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import Any

import orjson

from sources.common.currencies import CurrencyError, minor_unit_exponent
from sources.common.errors import RecordError

_WIDE = Context(prec=80)  # quantizing must not fail before the 38-digit range check
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Python's datetime, and so every reader of the loaded tables (pandas, notebooks, read-back), ends here
EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
NUL = "\x00"  # PostgreSQL cannot store it in text or JSON; refused on every warehouse alike
# `\u0000` in JSON text, as an escape (not the text `\\u0000`: a backslash escaped, then `u0000`)
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def _storable_text(value: str, field: str) -> str:
    """Text a warehouse can store: no NUL character, no unpaired surrogate (a lenient JSON parser lets
    `\\ud800` through; it is no character, and no warehouse takes it)."""
    if NUL in value:
        raise RecordError(field, "text with a NUL character (\\u0000), which a warehouse cannot store")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise RecordError(field, "text with an unpaired surrogate, which is no character") from None
    return value


def finite_float(value: float, field: str) -> float:
    """A JSON fraction a column can hold exactly as it came: finite, and below 2^63 in magnitude (orjson
    gives an integer literal beyond 64 bits as a float, its last digits already lost)."""
    if not math.isfinite(value) or abs(value) >= 2.0**63:
        raise RecordError(field, f"{preview(value)} is beyond the range a column holds exactly (2^63)")
    return value


def whole_number(value: Any, field: str, what: str = "an integer amount in minor units") -> int:
    """A JSON integer (or a float with no fraction, as a parser gives one beyond 64 bits) within BIGINT."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(field, f"expected {what}, got {type(value).__name__} {preview(value)}")
    if isinstance(value, float):
        if not value.is_integer():
            raise RecordError(field, f"expected {what}, got {type(value).__name__} {preview(value)}")
        if abs(value) >= 2.0**63:  # and beyond it, a float is an integer whose last digits were lost
            raise RecordError(field, f"{preview(value)} is beyond the 64-bit integer range of the column")
        value = int(value)
    if not INT64_MIN <= value <= INT64_MAX:
        raise RecordError(field, f"{preview(value)} is beyond the 64-bit integer range of the column")
    return value


def text(value: Any, field: str) -> str | None:
    """A string field; numbers are accepted as their decimal text, objects are not."""
    if value is None:
        return None
    if isinstance(value, str):
        return _storable_text(value, field)
    if isinstance(value, float):
        return str(finite_float(value, field))
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise RecordError(field, f"expected text, got {type(value).__name__} {preview(value)}")


def boolean(value: Any, field: str) -> bool | None:
    """A JSON true or false; anything else (1, "yes") is not guessed at."""
    if value is None or isinstance(value, bool):
        return value
    raise RecordError(field, f"expected true or false, got {type(value).__name__} {preview(value)}")


# How the providers spell an invoice's side of the ledger: Xero's ACCREC / ACCPAY (through Panora), the
# ACCOUNTS_RECEIVABLE / ACCOUNTS_PAYABLE of Panora's and Merge's docs, and the unified words themselves (an
# adapter for a provider whose invoices are all receivables writes `receivable`). ASCII only, on purpose: a
# look-alike letter (a dotless i) must not make a bill a receivable through Unicode case rules.
RECEIVABLE_SPELLINGS = frozenset({"ACCREC", "ACCOUNTS_RECEIVABLE", "RECEIVABLE"})
PAYABLE_SPELLINGS = frozenset({"ACCPAY", "ACCOUNTS_PAYABLE", "PAYABLE", "BILL"})
ASCII_SPACE = " \t\n\v\f\r"


def invoice_kind(value: Any, field: str) -> str | None:
    """`receivable`, `payable` (a bill) or None: absent, or a spelling not known (the provider's own word
    stays in its column, `type`; the models count such an invoice as a receivable and say so). A value that
    is not a word at all (a number, an object) is refused: it is no spelling, and guessing would hide it."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecordError(
            field, f"expected a word such as ACCREC or ACCPAY, got {type(value).__name__} {preview(value)}"
        )
    word = value.strip(ASCII_SPACE)
    if not word.isascii():
        return None
    word = word.upper()
    if word in PAYABLE_SPELLINGS:
        return "payable"
    return "receivable" if word in RECEIVABLE_SPELLINGS else None


def required_id(value: Any, field: str = "id") -> str:
    if not isinstance(value, str) or not value.strip():
        raise RecordError(field, "missing" if value is None else f"expected a non-empty id, got {preview(value)}")
    return _storable_text(value, field)


def minor_units(value: Any, field: str) -> int | None:
    """An amount in integer minor units. Absent stays None (the API drops zeros: the caller decides)."""
    if value is None:
        return None
    return whole_number(value, field)


def currency_exponent(code: Any, field: str) -> int:
    """The ISO 4217 minor-unit exponent of a currency code (JPY 0, EUR 2, KWD 3), or a `RecordError`."""
    if not isinstance(code, str) or not code.strip():
        raise RecordError(field, f"a currency is needed to convert amounts, got {preview(code)}")
    try:
        return minor_unit_exponent(code)
    except CurrencyError as exc:
        raise RecordError(field, str(exc)) from None


def major_to_minor(value: Any, field: str, exponent: int) -> int | None:
    """An amount in major units (100.5, as a JSON number or text) -> integer minor units (10050 for an
    exponent of 2). Exact: an amount with more decimals than the currency has is an error, never rounded."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise RecordError(field, f"expected an amount, got {type(value).__name__} {preview(value)}")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise RecordError(field, f"expected an amount, got {preview(value)}") from None
    if not number.is_finite():
        raise RecordError(field, f"expected a finite amount, got {preview(value)}")
    if number.adjusted() + exponent > 19:  # far beyond BIGINT: not even scaled (1e999999 would overflow)
        raise RecordError(field, f"amount {preview(value)} is beyond the 64-bit integer range of minor units")
    scaled = number.scaleb(exponent, context=_WIDE)
    if scaled != scaled.to_integral_value():
        raise RecordError(field, f"amount {preview(value)} has more than {exponent} decimal places for its currency")
    minor = int(scaled)
    if not INT64_MIN <= minor <= INT64_MAX:
        raise RecordError(field, f"amount {preview(value)} is beyond the 64-bit integer range of minor units")
    return minor


def timestamp(value: Any, field: str) -> datetime | None:
    """An ISO 8601 date or date-time; a value without an offset is read as UTC."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise RecordError(field, f"expected an ISO 8601 date-time, got {type(value).__name__} {preview(value)}")
    try:
        parsed = datetime.fromisoformat(value)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except ValueError:
        raise RecordError(field, f"malformed date-time {preview(value)}") from None
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is in the year 0 in UTC
        raise RecordError(field, f"date-time {preview(value)} is outside the years 1 to 9999 in UTC") from None


def decimal(value: Any, field: str, scale: int = 12) -> Decimal | None:
    """A decimal number sent as text or number (Panora sends `exchange_rate` as a string), rounded half
    to even at `scale` places (12 places keep any exchange rate exact to far below a minor unit)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise RecordError(field, f"expected a decimal number, got {type(value).__name__} {preview(value)}")
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        raise RecordError(field, f"expected a decimal number, got {preview(value)}") from None
    if not number.is_finite():
        raise RecordError(field, f"expected a finite decimal number, got {preview(value)}")
    if number and number.adjusted() >= 38 - scale:  # checked before quantizing, which could not hold it
        raise RecordError(field, f"decimal number out of range (at most {38 - scale} digits before the point): "
                          f"{preview(value)}")  # fmt: skip
    return number.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_EVEN, context=_WIDE)


def quantity(value: Any, field: str = "quantity") -> dict[str, Any]:
    """A line's quantity, which may be fractional (1.5): `quantity` (a whole number, as Panora's) only when it
    is whole, `quantity_decimal` always its exact value; nothing when it is absent."""
    number = decimal(value, field)
    if number is None:
        return {}
    whole = number == number.to_integral_value()
    return {"quantity_decimal": number.normalize() if whole else number, "quantity": int(number) if whole else None}


def server_moment(value: Any, naive_is_utc: bool = True) -> datetime | None:
    """A server's timestamp (`2026-11-20T10:00:00Z`, with an offset or without) as an aware datetime; None
    when it is none. One without an offset is UTC where the provider writes UTC without saying so, else None
    (`naive_is_utc=False`: an unknown zone is no moment to compare with)."""
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC) if naive_is_utc else None


def json_text(value: Any, field: str) -> str | None:
    """Nested JSON kept as JSON text (loaded into a JSON column)."""
    if value is None:
        return None
    if value == {}:
        return "{}"  # Panora's usual `field_mappings`
    try:
        out = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except (orjson.JSONEncodeError, TypeError):  # e.g. an integer beyond 64 bits, a lone surrogate
        try:
            out = json.dumps(value, separators=(",", ":"), sort_keys=True, allow_nan=False, ensure_ascii=False)
            out.encode()  # an unpaired surrogate is no character: no warehouse takes it as JSON
        except (TypeError, ValueError, RecursionError) as exc:
            raise RecordError(field, f"not storable as JSON ({type(exc).__name__}: {str(exc)[:80]})") from None
    if "\\u0000" in out and _NUL_ESCAPE.search(out):
        raise RecordError(field, "JSON with a NUL character (\\u0000), which a warehouse cannot store")
    return out


def id_list(value: Any, field: str) -> list[str]:
    """A list of ids; elements may be ids or objects with an `id`."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise RecordError(field, f"expected a list of ids, got {type(value).__name__} {preview(value)}")
    out = []
    for position, item in enumerate(value):
        if isinstance(item, dict):
            item = item.get("id")
        if not isinstance(item, str) or not item:
            raise RecordError(f"{field}[{position}]", f"expected an id, got {preview(item)}")
        out.append(_storable_text(item, f"{field}[{position}]"))
    return out


def preview(value: Any) -> str:
    """A value as an error shows it: its repr, cut to 60 characters."""
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."
