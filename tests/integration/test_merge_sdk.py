"""The Merge sandbox agrees with Merge's own published shapes: every page it serves validates against the
models of Merge's official Python SDK (MergePythonClient), strictly.

The SDK's client builds its objects without validating them and its models accept extra keys, with every
field optional, so calling the client would prove little. Here each page is validated by the SDK's paginated
list model, and then walked: no model anywhere holds a key the SDK does not declare, amounts the SDK types as
text are text, and every enum value is one of the SDK's.
"""

from __future__ import annotations

import enum
import json
import typing

import httpx
import pydantic
import pytest

merge_types = pytest.importorskip("merge.resources.accounting.types")

from sandbox.merge import MergeSandbox, Settings  # noqa: E402

PAGES = {
    "payments": (merge_types.PaginatedPaymentList, "applied_to_lines"),
    "invoices": (merge_types.PaginatedInvoiceList, "line_items"),
    "tracking-categories": (merge_types.PaginatedTrackingCategoryList, None),
    "contacts": (merge_types.PaginatedContactList, None),
}


def undeclared(model: pydantic.BaseModel, path: str = "") -> list[str]:
    """Every key anywhere in `model` that its SDK model does not declare."""
    found = [f"{path}.{key}" for key in (model.model_extra or {})]
    for name in type(model).model_fields:
        found += _walk(getattr(model, name), f"{path}.{name}")
    return found


def _walk(value: typing.Any, path: str) -> list[str]:
    if isinstance(value, pydantic.BaseModel):
        return undeclared(value, path)
    if isinstance(value, list | tuple):
        return [f for i, item in enumerate(value) for f in _walk(item, f"{path}[{i}]")]
    return []


def enum_values(annotation: typing.Any) -> set[str] | None:
    """The values of the SDK enum inside a field's annotation (a `Union[Enum, str]` as Fern writes them)."""
    for arg in typing.get_args(annotation) or (annotation,):
        if isinstance(arg, type) and issubclass(arg, enum.Enum):
            return {member.value for member in arg}
        inner = enum_values(arg) if typing.get_args(arg) else None
        if inner:
            return inner
    return None


@pytest.mark.parametrize("kind", list(PAGES))
def test_every_page_the_sandbox_serves_validates_against_merges_sdk(kind: str) -> None:
    model, expand = PAGES[kind]
    server = MergeSandbox(settings=Settings(rate_limit=None))
    with server, httpx.Client(base_url=server.url) as client:
        token = next(iter(server.store.tokens().values()))
        headers = {"Authorization": f"Bearer {server.api_key}", "X-Account-Token": token}
        params = {"page_size": 4, "include_deleted_data": "true", **({"expand": expand} if expand else {})}
        cursor, pages, records = None, 0, 0
        while True:
            body = client.get(f"/{kind}", params={**params, **({"cursor": cursor} if cursor else {})},
                              headers=headers).json()  # fmt: skip
            page = model.model_validate(body)
            assert undeclared(page) == [], kind
            for record, raw in zip(page.results or [], body["results"], strict=True):
                check_types(type(record), raw, kind)
            pages += 1
            records += len(page.results or [])
            cursor = body["next"]
            if cursor is None:
                break
    assert pages > 1 and records == len(server.store.all(next(iter(server.store.aliases)), kind, True))


def check_types(model: type[pydantic.BaseModel], raw: dict[str, typing.Any], where: str) -> None:
    """Enum values are the SDK's; what the SDK types as text (decimal amounts, rates) is text; nested objects
    (expanded lines, applications) hold to their own models."""
    for name, field in model.model_fields.items():
        value = raw.get(name)
        if value is None:
            continue
        values = enum_values(field.annotation)
        if values is not None and isinstance(value, str):
            assert value in values, f"{where}.{name} = {value!r} is no value of the SDK's enum"
        if field.annotation in (str | None, typing.Optional[str], str):  # noqa: UP045 (the SDK writes Optional)
            assert isinstance(value, str), f"{where}.{name} is {type(value).__name__}, the SDK types text"
        if isinstance(value, list) and value and isinstance(value[0], dict):
            item = _object_model(field.annotation)
            if item is not None:
                for position, nested in enumerate(value):
                    check_types(item, nested, f"{where}.{name}[{position}]")


def _object_model(annotation: typing.Any) -> type[pydantic.BaseModel] | None:
    for arg in typing.get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, pydantic.BaseModel):
            return arg
        found = _object_model(arg)
        if found is not None:
            return found
    return None


def test_what_push_sends_and_what_the_sandbox_answers_are_merges_write_shapes() -> None:
    """The body push sends validates as the SDK's PaymentRequest (no key it does not declare, enums and text
    where it says), and the sandbox's 201 as its PaymentResponse, errors and warnings included."""
    from sources.common.http.client import encode_json
    from sources.merge.writer import payment_model

    server = MergeSandbox(settings=Settings(rate_limit=None))
    with server, httpx.Client(base_url=server.url) as client:
        alias, token = next(iter(server.store.tokens().items()))
        invoice = next(i for i in server.store.all(alias, "invoices") if i["status"] == "OPEN")
        row = {"external_id": "sdk-1", "connection": alias, "invoice_id": invoice["id"],
               "currency": invoice["currency"], "total_amount": 1, "transaction_date": "2026-11-20",
               "contact_id": invoice["contact"], "exchange_rate": "1.0", "type": None}  # fmt: skip
        body = encode_json({"model": payment_model(row)})
        model = json.loads(body)["model"]
        assert undeclared(merge_types.PaymentRequest.model_validate(model)) == []
        check_types(merge_types.PaymentRequest, model, "PaymentRequest")
        headers = {"Authorization": f"Bearer {server.api_key}", "X-Account-Token": token,
                   "content-type": "application/json"}  # fmt: skip
        for payload in (body, body.replace(invoice["id"].encode(), b"00000000-0000-4000-8000-000000000000")):
            answer = client.post("/payments", content=payload, headers=headers)
            assert answer.status_code == 201
            response = merge_types.PaymentResponse.model_validate(answer.json())
            assert undeclared(response) == []
        assert response.errors and response.model.id is None  # the refused one: errors, nothing created


def test_an_invoice_push_sends_and_the_sandbox_answers_are_merges_invoice_shapes() -> None:
    from sources.common.http.client import encode_json
    from sources.merge.writer import invoice_model

    lines = json.dumps([{"description": "Audit day", "unit_price": 150000, "quantity": 1, "total_amount": 150000,
                         "item_id": "item-1", "tracking_categories": ["tc-1"]}])  # fmt: skip
    row = {"external_id": "sdk-i", "connection": "x", "number": "SDK-1", "type": "ACCREC", "currency": "USD",
           "total_amount": 150000, "sub_total": 150000, "total_tax_amount": 0, "issue_date": "2026-11-20",
           "due_date": "2026-12-20", "memo": "m", "line_items": lines}  # fmt: skip
    body = encode_json({"model": invoice_model(row)})
    model = json.loads(body)["model"]
    assert undeclared(merge_types.InvoiceRequest.model_validate(model)) == []
    check_types(merge_types.InvoiceRequest, model, "InvoiceRequest")
    server = MergeSandbox(settings=Settings(rate_limit=None))
    with server, httpx.Client(base_url=server.url) as client:
        token = next(iter(server.store.tokens().values()))
        headers = {"Authorization": f"Bearer {server.api_key}", "X-Account-Token": token,
                   "content-type": "application/json"}  # fmt: skip
        answer = client.post("/invoices", content=body, headers=headers)
    assert answer.status_code == 201
    response = merge_types.InvoiceResponse.model_validate(answer.json())
    assert undeclared(response) == [] and response.model.id and not response.errors
    check_types(merge_types.Invoice, answer.json()["model"], "Invoice")
