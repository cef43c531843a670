"""What Rootfi's writer (`sources/rootfi/writer.py`) reads back of a created payment: an amount a double cannot
hold exactly is not compared."""

from __future__ import annotations


def test_a_rootfi_amount_a_double_cannot_hold_exactly_is_not_compared():
    from sources.rootfi.writer import _minor_units

    assert _minor_units(12.34, "EUR") == 1234
    assert _minor_units("12.34", "EUR") == 1234
    assert _minor_units(12345678901234567.0, "EUR") is None  # read as 1.2345678901234568e16: not what was sent
    assert _minor_units(True, "EUR") is None
