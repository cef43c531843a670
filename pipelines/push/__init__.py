"""Reverse ETL: queued payments and invoices created through the providers' APIs, exactly once in effect.

job.py         the run (`run_push(PushSettings(...))`): queue CSV files, confirm, plan, dispatch
plan.py        which queued rows may be sent (checked against the loaded data)
engine.py      the exactly-once rules, over any provider's writer
ledger.py      the queues and the ledger in the warehouse
csv_import.py  reading a CSV file row by row (bank files too), then queueing it
cancel.py      taking queued rows back (`push --cancel`) where they cannot have been sent
"""

from pipelines.push.cancel import CancelSummary, cancel_queued
from pipelines.push.engine import SendRules
from pipelines.push.job import ProviderAccess, PushSettings, PushSummary, run_push

__all__ = ["CancelSummary", "ProviderAccess", "PushSettings", "PushSummary", "SendRules", "cancel_queued", "run_push"]
