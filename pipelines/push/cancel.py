"""`accounting-etl push --cancel EXTERNAL_ID[,...]`: take queued rows back before they are sent.

Only a row that cannot have been created at the provider is taken back: one the ledger has never seen, or one
it shows `rejected` (by validation, or refused by the provider with a 4xx: neither created anything). Its queue
row is deleted and the ledger says `cancelled`, so a cancel is on record like a send. A row that may have reached
the provider (`pending`, `submitted`, `unknown`, `failed` after sends that found nothing yet, `created`,
`confirmed`) is refused, with its state: taking it out of the queue would hide a payment that may exist.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from pipelines import settings
from pipelines.push.ledger import NEVER_REACHED, Ledger, PushStatus, ensure_tables, kept_tables, transaction
from pipelines.push.plan import KINDS
from pipelines.warehouse.identity import Warehouse


@dataclass
class CancelSummary:
    cancelled: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # external_id -> why not

    @property
    def ok(self) -> bool:
        return not self.refused

    def render(self) -> str:
        lines = [f"push cancel: {len(self.cancelled)} cancelled, {len(self.refused)} refused"]
        lines += [f"  cancelled {external_id}" for external_id in self.cancelled]
        lines += [f"  refused   {external_id}: {why}" for external_id, why in self.refused.items()]
        return "\n".join(lines)


def cancel_queued(
    external_ids: Sequence[str], database: str | None = None, dataset: str | None = None
) -> CancelSummary:
    """Take these queued rows back where that is safe (see the module text)."""
    raw = settings.dataset_name(dataset)
    warehouse = Warehouse.of(database=database, dataset=raw)
    summary = CancelSummary()
    kept = kept_tables(raw)
    with (
        warehouse.job_lock("push", f"a push cancel in {warehouse.describe()}"),
        warehouse.writing("a push cancel", durable=True, keep=kept) as session,
        session.connect() as con,
    ):
        ensure_tables(con, raw)
        ledger = Ledger(con, raw, f"cancel-{uuid.uuid4()}")
        entries = ledger.entries()
        for external_id in dict.fromkeys(external_ids):
            entry = entries.get(external_id, {})
            status = entry.get("status")
            queued = [
                (kind, row)
                for kind in KINDS
                for row in con.execute(
                    f"SELECT connection FROM {raw}.{kind.queue} WHERE external_id = ?", [external_id]
                ).fetchall()
            ]
            if not queued:
                summary.refused[external_id] = (
                    "already cancelled"
                    if status == PushStatus.CANCELLED
                    else f"not queued (ledger: {status or 'no entry'})"
                )
                continue
            if status not in NEVER_REACHED:
                summary.refused[external_id] = (
                    f"the ledger says {status!r}: it may have reached the provider, so it stays queued and "
                    "followed up (see `accounting-etl status`)"
                )
                continue
            kind, (connection,) = queued[0]
            with transaction(con):
                con.execute(f"DELETE FROM {raw}.{kind.queue} WHERE external_id = ?", [external_id])
            ledger.record(external_id, connection or "", PushStatus.CANCELLED, phase="cancel", kind=kind.name)
            summary.cancelled.append(external_id)
    return summary
