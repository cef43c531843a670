"""ISO 4217 as the loads and the models know it (`sources/common/currencies.py`): the models' currencies seed
is the table the loads read exponents from."""

from __future__ import annotations

import csv

from sources.common.currencies import currency_table
from tests.support import ROOT


def test_the_currencies_seed_is_iso_4217_as_the_loads_know_it():
    seed = ROOT / "transforms" / "seeds" / "accounting__currencies.csv"
    with open(seed, newline="") as handle:
        stored = {(r["code"], r["name"], r["exponent"], r["minor_unit"]) for r in csv.DictReader(handle)}
    expected = {
        (code, name, "" if exp is None else str(exp), "" if unit is None else format(unit, "f"))
        for code, name, exp, unit in currency_table()
    }
    assert stored == expected, "regenerate transforms/seeds/accounting__currencies.csv from the iso4217 package"
