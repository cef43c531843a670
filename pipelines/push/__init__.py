"""Reverse ETL: queued payments and invoices created through the providers' APIs, exactly once in effect.

job.py         the run (`run_push(PushSettings(...))`): queue CSV files, confirm, plan, dispatch
plan.py        which queued rows may be sent (checked against the loaded data)
engine.py      the exactly-once rules, over any provider's writer
ledger.py      the queues and the ledger in the warehouse
csv_import.py  queueing a CSV file, row by row
"""

from pipelines.push.engine import SendRules
from pipelines.push.job import ProviderAccess, PushSettings, PushSummary, run_push

__all__ = ["ProviderAccess", "PushSettings", "PushSummary", "SendRules", "run_push"]
