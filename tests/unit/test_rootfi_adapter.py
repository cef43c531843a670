"""Rootfi's records rewritten into the unified model (`sources/rootfi/objects.py`): the amount conversion, the
keys, and errors that name the record and the field. A load paced under Rootfi's rate limit over HTTP:
`tests/integration/test_rootfi_load.py`."""

from __future__ import annotations

import pytest

from sources.common.errors import RecordError
from sources.common.reading.values import currency_exponent, major_to_minor
from sources.rootfi.objects import OBJECTS, platform_ref, record_key


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        (100.5, "EUR", 10050),
        ("100.50", "EUR", 10050),
        (9058.2, "GBP", 905820),  # a float that is not exact in binary still converts exactly
        (0.1, "USD", 10),
        (1500, "JPY", 1500),  # zero decimals: not multiplied by 100
        (1.234, "KWD", 1234),  # three decimals
        (0, "EUR", 0),
        (-12.5, "EUR", -1250),  # a credit
    ],
)
def test_major_units_become_exact_minor_units(amount, currency, minor) -> None:
    assert major_to_minor(amount, "amount", currency_exponent(currency, "currency_id")) == minor


@pytest.mark.parametrize(
    ("amount", "currency", "message"),
    [
        (1.005, "EUR", "more than 2 decimal places"),
        (10.5, "JPY", "more than 0 decimal places"),
        ("ten", "EUR", "expected an amount"),
        (True, "EUR", "expected an amount"),
    ],
)
def test_amounts_that_cannot_be_converted_exactly_are_errors(amount, currency, message) -> None:
    with pytest.raises(RecordError, match=message) as caught:
        major_to_minor(amount, "amount", currency_exponent(currency, "currency_id"))
    assert caught.value.field == "amount"


def test_unknown_or_missing_currency_is_an_error_on_the_currency_field() -> None:
    for code in ("XYZ", None, "XAU"):  # unknown, missing, a metal without minor unit
        with pytest.raises(RecordError) as caught:
            currency_exponent(code, "currency_id")
        assert caught.value.field == "currency_id"


def test_keys_are_namespaced_by_company_and_reversible() -> None:
    assert record_key(4101, "INV-7") == "rootfi:4101:INV-7"
    assert platform_ref("rootfi:4101:INV-7", "4101") == "INV-7"
    assert platform_ref("INV-7", "4101") == "INV-7"  # a bare platform id passes through
    assert platform_ref("rootfi:4102:INV-7", "4101") == "rootfi:4102:INV-7"  # another company's key is not cut


def _payment(**fields) -> dict:
    record = {
        "rootfi_id": 1,
        "rootfi_company_id": 4101,
        "platform_id": "PMT-1",
        "rootfi_updated_at": "2026-11-01T00:00:00.000Z",
        "rootfi_deleted_at": None,
        "invoice_id": "INV-1",
        "currency_id": "EUR",
        "amount": 10.5,
        "payment_date": "2026-11-01",
        "reference": "old-docs-ref",
        "description": "old-docs-memo",
        "brand_new_field": 7,
    }
    record.update(fields)
    return record


def test_payment_adapted_with_older_names_and_unknown_fields_kept() -> None:
    adapted = OBJECTS["payments"].adapter(_payment())
    assert adapted["id"] == "rootfi:4101:PMT-1" and adapted["remote_id"] == "PMT-1"
    assert adapted["invoice_id"] == "rootfi:4101:INV-1"
    assert adapted["total_amount"] == 1050 and adapted["currency"] == "EUR"
    assert adapted["transaction_date"] == "2026-11-01" and adapted["modified_at"] == "2026-11-01T00:00:00.000Z"
    assert adapted["document_number"] == "old-docs-ref" and adapted["memo"] == "old-docs-memo"
    assert adapted["brand_new_field"] == 7 and adapted["rootfi_id"] == 1
    assert "amount" not in adapted and "currency_id" not in adapted  # consumed into the unified names


def test_an_adapter_error_names_the_record_and_the_field() -> None:
    with pytest.raises(RecordError) as caught:
        OBJECTS["payments"].adapter(_payment(amount=10.555))
    assert (caught.value.record_id, caught.value.field) == ("rootfi:4101:PMT-1", "amount")
    with pytest.raises(RecordError) as caught:
        OBJECTS["payments"].adapter(_payment(platform_id=None))
    assert (caught.value.record_id, caught.value.field) == (None, "platform_id")
    invoice = {"rootfi_company_id": 4101, "platform_id": "INV-1", "currency_id": "USD", "line_items": [
        {"rootfi_id": 5, "quantity": 1, "unit_amount": 3.333}]}  # fmt: skip
    with pytest.raises(RecordError) as caught:
        OBJECTS["invoices"].adapter(invoice)
    assert (caught.value.record_id, caught.value.field) == ("rootfi:4101:INV-1", "line_items[0].unit_amount")


def _contact(**changes: object) -> dict:
    record = {
        "rootfi_id": 9, "rootfi_company_id": 4101, "platform_id": "CUST-3", "name": "Globex GmbH",
        "contact_name": "Hank Scorpio", "contact_type": "CUSTOMER", "currency_id": "EUR", "email": "ar@globex.test",
        "tax_number": "DE123", "status": "ACTIVE", "rootfi_updated_at": "2026-11-02T00:00:00Z",
    }  # fmt: skip
    return {**record, **changes}


@pytest.mark.parametrize(
    ("contact_type", "roles"),
    [("CUSTOMER", (True, False)), ("vendor", (False, True)), ("BOTH", (True, True)), (None, (None, None)),
     ("PARTNER", (None, None))],
)  # fmt: skip
def test_a_contact_is_keyed_as_invoices_name_it_and_its_roles_read_from_its_type(contact_type, roles) -> None:
    adapted = OBJECTS["contacts"].adapter(_contact(contact_type=contact_type))
    # an invoice of this company names this contact `rootfi:4101:CUST-3` (its `contact_id`, adapted the same way)
    invoice = OBJECTS["invoices"].adapter({"rootfi_company_id": 4101, "platform_id": "INV-1", "contact_id": "CUST-3"})
    assert adapted["id"] == invoice["contact_id"] == "rootfi:4101:CUST-3"
    assert (adapted["is_customer"], adapted["is_supplier"]) == roles
    assert adapted["email_address"] == "ar@globex.test" and adapted["currency"] == "EUR"
    assert adapted["contact_name"] == "Hank Scorpio"  # no unified column: kept under Rootfi's name
    assert invoice["kind"] == "receivable"  # Rootfi's invoices endpoint lists no bills


def test_a_contact_type_that_is_not_text_names_the_field() -> None:
    with pytest.raises(RecordError) as caught:
        OBJECTS["contacts"].adapter(_contact(contact_type=["CUSTOMER"]))
    assert (caught.value.record_id, caught.value.field) == ("rootfi:4101:CUST-3", "contact_type")
