"""Typed readers for one field of one record. Each returns the typed value or raises `RecordError`
naming the field, so the normalizer can quarantine that record and load the rest."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import Any

import iso4217
import orjson

from sources.common.errors import RecordError

_WIDE = Context(prec=80)  # quantizing must not fail before the 38-digit range check


def text(value: Any, field: str) -> str | None:
    """A string field; numbers are accepted as their decimal text, objects are not."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise RecordError(field, f"expected text, got {type(value).__name__} {_preview(value)}")


def required_id(value: Any, field: str = "id") -> str:
    if not isinstance(value, str) or not value.strip():
        raise RecordError(field, "missing" if value is None else f"expected a non-empty id, got {_preview(value)}")
    return value


def minor_units(value: Any, field: str) -> int | None:
    """An amount in integer minor units. Absent stays None (the API drops zeros: the caller decides)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise RecordError(field, f"expected an integer amount in minor units, got boolean {value}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise RecordError(field, f"expected an integer amount in minor units, got {type(value).__name__} {_preview(value)}")


def currency_exponent(code: Any, field: str) -> int:
    """The ISO 4217 minor-unit exponent of a currency code (JPY 0, EUR 2, KWD 3)."""
    if not isinstance(code, str) or not code.strip():
        raise RecordError(field, f"a currency is needed to convert amounts, got {_preview(code)}")
    try:
        exponent = iso4217.Currency(code.strip().upper()).exponent
    except ValueError:
        raise RecordError(field, f"unknown ISO 4217 currency {_preview(code)}") from None
    if exponent is None:  # metals and funds have no minor unit
        raise RecordError(field, f"currency {code} has no minor unit to convert amounts into")
    return exponent


def major_to_minor(value: Any, field: str, exponent: int) -> int | None:
    """An amount in major units (100.5, as a JSON number or text) -> integer minor units (10050 for an
    exponent of 2). Exact: an amount with more decimals than the currency has is an error, never rounded."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise RecordError(field, f"expected an amount, got {type(value).__name__} {_preview(value)}")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise RecordError(field, f"expected an amount, got {_preview(value)}") from None
    if not number.is_finite():
        raise RecordError(field, f"expected a finite amount, got {_preview(value)}")
    scaled = number.scaleb(exponent, context=_WIDE)
    if scaled != scaled.to_integral_value():
        raise RecordError(field, f"amount {_preview(value)} has more than {exponent} decimal places for its currency")
    return int(scaled)


def timestamp(value: Any, field: str) -> datetime | None:
    """An ISO 8601 date or date-time; a value without an offset is read as UTC."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise RecordError(field, f"expected an ISO 8601 date-time, got {type(value).__name__} {_preview(value)}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise RecordError(field, f"malformed date-time {_preview(value)}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def decimal(value: Any, field: str, scale: int = 12) -> Decimal | None:
    """A decimal number sent as text or number (Panora sends `exchange_rate` as a string), rounded half
    to even at `scale` places (12 places keep any exchange rate exact to far below a minor unit)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise RecordError(field, f"expected a decimal number, got {type(value).__name__} {_preview(value)}")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise RecordError(field, f"expected a decimal number, got {_preview(value)}") from None
    if not number.is_finite():
        raise RecordError(field, f"expected a finite decimal number, got {_preview(value)}")
    number = number.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_EVEN, context=_WIDE)
    if len(number.as_tuple().digits) > 38:
        raise RecordError(field, f"decimal number out of range: {_preview(value)}")
    return number


def json_text(value: Any, field: str) -> str | None:
    """Nested JSON kept as JSON text (loaded into a JSON column)."""
    if value is None:
        return None
    if value == {}:
        return "{}"  # Panora's usual `field_mappings`
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except (orjson.JSONEncodeError, TypeError):  # e.g. an integer beyond 64 bits
        try:
            return json.dumps(value, separators=(",", ":"), sort_keys=True)
        except (TypeError, ValueError):
            raise RecordError(field, "not serializable as JSON") from None


def id_list(value: Any, field: str) -> list[str]:
    """A list of ids; elements may be ids or objects with an `id`."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise RecordError(field, f"expected a list of ids, got {type(value).__name__} {_preview(value)}")
    out = []
    for position, item in enumerate(value):
        if isinstance(item, dict):
            item = item.get("id")
        if not isinstance(item, str) or not item:
            raise RecordError(f"{field}[{position}]", f"expected an id, got {_preview(item)}")
        out.append(item)
    return out


def _preview(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."
