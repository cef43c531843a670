"""Dagster definitions: the loads as assets partitioned by connection, the reconciliation models downstream,
a schedule, and the push as a job of its own.

    .venv/bin/pip install -e ".[orchestration]"
    .venv/bin/dagster dev -m orchestration      # the UI; settings as for `accounting-etl load`

What is defined:
- per registered provider, one `@dlt_assets` multi-asset (dagster-dlt) with one asset per table group
  (`payments`, `invoices`, `tracking_categories`, `contacts`), partitioned by a dynamic partition per configured account
  (`<provider>_<accounts setting>`: `panora_connections`, `rootfi_companies`): one account is loaded,
  reloaded or backfilled alone, and accounts run in parallel; with ACCOUNTING_ETL__CONNECTIONS_PER_PARTITION
  above 1, a partition holds that many accounts (key `a,b,c`), loaded in one run;
- `connection_partitions` (a sensor) keeps the partitions equal to the configured connections;
- load runs carry the tag `accounting_etl/provider`, so the instance's `tag_concurrency_limits` cap the
  workers per provider (orchestration/dagster.yaml);
- `reconciliation_models` (dagster-dbt): one asset per model of the dbt project in transforms/, each downstream
  of the load assets of the tables it reads; a run is `dbt build` of them all, once for all accounts;
- `scheduled_load_<provider>` (schedules): a run per account, every 6 hours by
  default (`ACCOUNTING_ETL__LOAD_SCHEDULE`), and `models_after_loads` half an hour later;
- `push` (a job): `accounting-etl push`.

Each partition runs `pipelines.load.run_load` for its connection(s), in a dlt pipeline of its own
(`accounting_<provider>_<alias>`, or one per group, so two partitions never share dlt state) with the load job's
lock, which belongs to the warehouse (a second load of the same connection into it while one runs fails with a
clear message). It does not go through `DagsterDltResource.run`: the load job keeps dlt's state in the warehouse
and empties dlt's local folder itself before every run, and the push keeps its progress in the warehouse ledger,
never in dlt's local state. Partitions fetch side by side; their writes take turns (`pipelines/warehouse/`).
"""

import hashlib
import os
from collections.abc import Iterator, Mapping
from graphlib import TopologicalSorter
from typing import Any

import dagster as dg
import dlt
from dagster import AssetExecutionContext, OpExecutionContext, ScheduleEvaluationContext, SensorEvaluationContext
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, dbt_assets
from dagster_dlt import DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData

from pipelines import settings
from pipelines.load import connection_pipeline_name as pipeline_name
from pipelines.load import run_load
from pipelines.push import run_push
from pipelines.registry import providers
from pipelines.settings import ConfigurationError, dataset_name
from pipelines.transform import project_manifest, transform_database
from pipelines.warehouse.locks import AlreadyRunning
from sources.common.provider import Provider

LOAD_SCHEDULE = os.environ.get("ACCOUNTING_ETL__LOAD_SCHEDULE", settings.DEFAULT_LOAD_SCHEDULE)

PROVIDERS = {provider.name: provider for provider in providers()}
PARTITIONS = {
    name: dg.DynamicPartitionsDefinition(name=f"{name}_{provider.accounts_setting}")
    for name, provider in PROVIDERS.items()
}


class _Translator(DagsterDltTranslator):
    """Asset keys `accounting/<provider>/<table group>`, in one group per provider."""

    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        spec = super().get_asset_spec(data)
        provider = data.resource.source_name
        return spec.replace_attributes(
            key=dg.AssetKey(["accounting", provider, data.resource.name]),
            group_name=f"load_{provider}",
            deps=[],
        )


def connections_per_partition() -> int:
    """ACCOUNTING_ETL__CONNECTIONS_PER_PARTITION (default 1): how many connections one partition loads together.
    A load's fixed cost (dlt's steps, reading back hashes, the writer's turn) is then paid once per group, and
    the group's connections draw on the shared rate budget side by side."""
    return max(1, int(dlt.config.get("accounting_etl.connections_per_partition") or 1))


def partition_keys(aliases: list[str], size: int) -> list[str]:
    """The partitions for these aliases: one per alias, or the sorted aliases in groups of `size`, each key
    naming its aliases (`a,b,c`), so that a run knows its connections from its key alone."""
    ordered = sorted(aliases)
    return [",".join(ordered[start : start + size]) for start in range(0, len(ordered), size)]


def partition_pipeline(provider_name: str, key: str) -> str:
    """A partition's dlt pipeline: a connection's own one, or one per group (named by a digest of its key; a
    group whose members change starts a new pipeline, whose first Rootfi scan is complete)."""
    aliases = key.split(",")
    if len(aliases) == 1:
        return pipeline_name(provider_name, key)
    return f"accounting_{provider_name}_group_{hashlib.blake2b(key.encode(), digest_size=6).hexdigest()}"


def _load_assets(provider: Provider) -> dg.AssetsDefinition:
    # names the destination in the asset metadata only; loads run in `pipeline_name(provider, alias)`
    spec_pipeline = dlt.pipeline(pipeline_name=f"accounting_{provider.name}_assets", dataset_name=dataset_name())

    @dlt_assets(
        dlt_source=provider.spec_source(),  # its shape only: each run builds the source with the real settings
        dlt_pipeline=spec_pipeline,
        name=f"{provider.name}_tables",
        dagster_dlt_translator=_Translator(),
        partitions_def=PARTITIONS[provider.name],
    )
    def load(context: AssetExecutionContext) -> Iterator[dg.MaterializeResult]:
        alias = context.partition_key  # one alias, or a group's aliases joined by commas
        resources = [key.path[-1] for key in context.selected_asset_keys]
        try:
            summary = run_load(
                provider.name,
                resources=resources,
                only_connections=alias.split(","),
                pipeline_name=partition_pipeline(provider.name, alias),
                transform=False,
            )
        except (ConfigurationError, AlreadyRunning) as exc:
            raise dg.Failure(description=str(exc)) from None
        if summary.status != "ok":
            failed = "; ".join(f"{s.resource}: {s.error}" for s in summary.scans if s.status != "complete")
            raise dg.Failure(description=f"{provider.name} [{alias}] did not load completely: {failed}")
        for key in context.selected_asset_keys:
            resource = key.path[-1]
            scans = [s for s in summary.scans if s.resource == resource]
            yield dg.MaterializeResult(
                asset_key=key,
                metadata={
                    "connection": alias,
                    "records": sum(s.records for s in scans),
                    "written": sum(s.written for s in scans),
                    "marked_deleted": sum(s.deleted for s in scans),
                    "rejected": sum(s.rejected for s in scans),
                    "run_id": summary.run_id,
                },
            )

    return load


LOAD_ASSETS = {name: _load_assets(provider) for name, provider in PROVIDERS.items()}


class _DbtTranslator(DagsterDbtTranslator):
    """The dbt models as assets `reconciliation/<model>`, downstream of the dlt assets that load the tables they
    read: a source table `invoices__line_items` is loaded by the `invoices` asset of every provider."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey(["accounting", "source", dbt_resource_props["name"]])
        return dg.AssetKey(["reconciliation", dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str:
        return "reconciliation"

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project: Any) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        if not unique_id.startswith("model."):
            return spec
        deps: list[dg.AssetKey] = []
        for dep in spec.deps:
            if dep.asset_key.path[:2] == ["accounting", "source"]:
                resource = dep.asset_key.path[-1].split("__")[0]  # the table group that loads it
                deps += [dg.AssetKey(["accounting", name, resource]) for name in PROVIDERS]
            else:
                deps.append(dep.asset_key)
        return spec.replace_attributes(deps=sorted(set(deps), key=lambda key: key.path))


DBT_TRANSLATOR = _DbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=False))


@dbt_assets(manifest=project_manifest(), dagster_dbt_translator=DBT_TRANSLATOR, name="reconciliation_models")
def reconciliation_models(context: AssetExecutionContext) -> Iterator[dg.MaterializeResult]:
    """`dbt build` of every model and test (`accounting-etl transform` on the configured warehouse), once for
    all accounts; a failing model or test fails the run and names them."""
    result = transform_database()
    if result.skipped:
        raise dg.Failure(description=f"models not built: {result.skipped}")
    if result.error:
        raise dg.Failure(description=result.error)
    graph = {key: reconciliation_models.asset_deps[key] for key in context.selected_asset_keys}
    for key in TopologicalSorter(graph).static_order():  # Dagster takes them upstream first
        if key not in context.selected_asset_keys:
            continue
        yield dg.MaterializeResult(
            asset_key=key, metadata={"rows": result.rows.get(key.path[-1], 0), "as_of": str(result.as_of)}
        )


# Runs are tagged with their provider, so that the instance can cap how many of each run at once (the
# workers a provider's rate budget can feed): `concurrency: runs: tag_concurrency_limits` in dagster.yaml,
# as in orchestration/dagster.yaml.
PROVIDER_TAG = "accounting_etl/provider"
LOAD_JOBS = {
    name: dg.define_asset_job(
        f"load_{name}", selection=[assets], partitions_def=PARTITIONS[name], tags={PROVIDER_TAG: name}
    )
    for name, assets in LOAD_ASSETS.items()
}
MODELS_JOB = dg.define_asset_job("rebuild_models", selection=[reconciliation_models])


def configured_accounts() -> dict[str, list[str]]:
    """Provider -> the aliases configured now (a provider without settings has none)."""
    return {name: sorted(p.accounts()) if p.is_configured() else [] for name, p in PROVIDERS.items()}


@dg.sensor(minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING)
def connection_partitions(context: SensorEvaluationContext) -> dg.SensorResult:
    """Keep the partitions equal to the configured connections (one each, or groups of
    ACCOUNTING_ETL__CONNECTIONS_PER_PARTITION): new ones added, gone ones deleted."""
    requests: list[Any] = []
    size = connections_per_partition()
    for name, aliases in configured_accounts().items():
        partitions = PARTITIONS[name]
        wanted = set(partition_keys(aliases, size))
        existing = set(context.instance.get_dynamic_partitions(partitions.name))
        if wanted - existing:
            requests.append(partitions.build_add_request(sorted(wanted - existing)))
        if existing - wanted:
            requests.append(partitions.build_delete_request(sorted(existing - wanted)))
    return dg.SensorResult(dynamic_partitions_requests=requests)


def _load_schedule(name: str, job: Any) -> dg.ScheduleDefinition:
    partitions = PARTITIONS[name]

    @dg.schedule(cron_schedule=LOAD_SCHEDULE, job=job, name=f"scheduled_load_{name}", execution_timezone="UTC")
    def scheduled_load(context: ScheduleEvaluationContext) -> list[dg.RunRequest]:
        """One run per connection (they run in parallel, each in its own dlt pipeline)."""
        scheduled = context.scheduled_execution_time.isoformat()
        return [
            dg.RunRequest(run_key=f"{scheduled}:{name}:{alias}", partition_key=alias)
            for alias in context.instance.get_dynamic_partitions(partitions.name)
        ]

    return scheduled_load


LOAD_SCHEDULES = {name: _load_schedule(name, job) for name, job in LOAD_JOBS.items()}
models_after_loads = dg.ScheduleDefinition(
    name="models_after_loads", job=MODELS_JOB, cron_schedule="30 */6 * * *", execution_timezone="UTC"
)


@dg.op(description="Create the queued payments and invoices through the APIs (see `accounting-etl push`).")
def push_payments(context: OpExecutionContext) -> Mapping[str, int]:
    summary = run_push()
    context.log.info(summary.render())
    failed = {k: v for k, v in summary.outcomes.items() if k not in ("created", "confirmed", "submitted")}
    if failed:
        raise dg.Failure(description=f"push ended with {failed}", metadata=summary.outcomes)
    return summary.outcomes


@dg.job(description="Reverse ETL: its progress lives in the warehouse ledger (`push_log`), never in dlt state.")
def push() -> None:
    push_payments()


defs = dg.Definitions(
    assets=[*LOAD_ASSETS.values(), reconciliation_models],
    jobs=[*LOAD_JOBS.values(), MODELS_JOB, push],
    schedules=[*LOAD_SCHEDULES.values(), models_after_loads],
    sensors=[connection_partitions],
)
