"""The Dagster definitions run in-process against both sandboxes: every partition, one partition alone, a
failing partition next to good ones, a second load of a running connection refused, the schedule's run
requests and the partition sensor."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import dagster as dg
import pytest

from orchestration.definitions import (
    LOAD_ASSETS,
    LOAD_JOBS,
    LOAD_SCHEDULES,
    PARTITIONS,
    PROVIDER_TAG,
    connection_partitions,
    defs,
    partition_pipeline,
    pipeline_name,
    reconciliation_models,
)
from pipelines.registry import NAMES
from pipelines.warehouse.locks import file_lock
from tests.support import DATASET, ROOT, M, Warehouse


@pytest.fixture
def configured(both: Warehouse, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Warehouse:
    """Both providers configured through the environment, as `dagster dev` would see them."""
    settings = {
        "SOURCES__PANORA__API_KEY": both.sandbox.api_key,
        "SOURCES__PANORA__CONNECTIONS": json.dumps(both.sandbox.store.tokens()),
        "SOURCES__PANORA__BASE_URL": both.sandbox.url,
        "SOURCES__PANORA__BACKOFF_BASE": "0.01",
        "SOURCES__PANORA__MAX_ATTEMPTS": "3",
        "SOURCES__ROOTFI__API_KEY": both.rootfi.api_key,
        "SOURCES__ROOTFI__COMPANIES": json.dumps(both.rootfi.store.company_ids()),
        "SOURCES__ROOTFI__BASE_URL": both.rootfi.url,
        "DESTINATION__DUCKDB__CREDENTIALS": str(both.path),
    }
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    return both


@pytest.fixture
def instance(configured: Warehouse) -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        result = connection_partitions(dg.build_sensor_context(instance=instance))
        for request in result.dynamic_partitions_requests:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        yield instance


def materialize(instance: dg.DagsterInstance, provider: str, alias: str) -> dg.ExecuteInJobResult:
    return dg.materialize([LOAD_ASSETS[provider]], partition_key=alias, instance=instance, raise_on_error=False)


def test_the_sensor_makes_one_partition_per_configured_connection(
    configured: Warehouse, instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = configured.sandbox.store.tokens()
    assert sorted(instance.get_dynamic_partitions("panora_connections")) == sorted(tokens)
    assert sorted(instance.get_dynamic_partitions("rootfi_companies")) == sorted(configured.rootfi.store.aliases)
    # settled: nothing to change
    assert connection_partitions(dg.build_sensor_context(instance=instance)).dynamic_partitions_requests == []
    # a connection removed from the settings loses its partition, the others keep theirs
    removed, *kept = sorted(tokens)
    monkeypatch.setenv("SOURCES__PANORA__CONNECTIONS", json.dumps({alias: tokens[alias] for alias in kept}))
    result = connection_partitions(dg.build_sensor_context(instance=instance))
    assert [(r.partitions_def_name, list(r.partition_keys)) for r in result.dynamic_partitions_requests] == [
        ("panora_connections", [removed])
    ]
    for request in result.dynamic_partitions_requests:
        instance.delete_dynamic_partition(request.partitions_def_name, request.partition_keys[0])
    assert sorted(instance.get_dynamic_partitions("panora_connections")) == kept


def test_every_partition_then_the_models(configured: Warehouse, instance) -> None:
    for provider, partitions in PARTITIONS.items():
        for alias in instance.get_dynamic_partitions(partitions.name):
            result = materialize(instance, provider, alias)
            assert result.success, alias
            keys = {m.asset_key for m in result.get_asset_materialization_events() for m in [m.materialization]}
            assert keys == set(LOAD_ASSETS[provider].keys)
    models = dg.materialize([reconciliation_models], instance=instance)
    assert models.success
    built = {e.materialization.asset_key for e in models.get_asset_materialization_events()}
    assert built == set(reconciliation_models.keys)  # every dbt model and the seed, one asset each
    store, rootfi = configured.sandbox.store, configured.rootfi.store
    for alias in store.tokens():
        assert configured.count("payments", "connection = ?", alias) == store.count(alias, "payments")
    for alias in rootfi.aliases:
        assert configured.count("invoices", "connection = ?", alias) == len(rootfi.all(alias, "invoices"))
    providers = configured.query(f"SELECT DISTINCT provider FROM {M}.accounting__invoice_settlement ORDER BY 1")
    assert providers == [("panora",), ("rootfi",)]
    # each connection had a dlt pipeline (and state) of its own, in the scratch folder of its warehouse
    scratch = Path(configured.path).parent / "dlt-data" / "pipelines" / "accounting-etl"
    (folder,) = scratch.iterdir()  # one warehouse
    pipelines = {p.name for p in folder.iterdir() if p.is_dir()}
    expected = {pipeline_name("panora", a) for a in store.tokens()} | {
        pipeline_name("rootfi", a) for a in rootfi.aliases
    }
    assert expected <= pipelines


def test_each_dbt_model_is_an_asset_downstream_of_the_loads_of_the_tables_it_reads() -> None:
    deps = {key.path[-1]: {d.to_user_string() for d in reconciliation_models.asset_deps[key]}
            for key in reconciliation_models.keys}  # fmt: skip
    assert {"accounting__invoice_settlement", "accounting__reconciliation_summary", "accounting__model_run"} <= set(
        deps
    )
    assert deps["stg_accounting__payments"] >= {
        "accounting/panora/payments",
        "accounting/rootfi/payments",
        "accounting/panora/tracking_categories",
    }
    assert "reconciliation/int_accounting__payment_applications" in deps["accounting__invoice_settlement"]
    loads = {key for assets in LOAD_ASSETS.values() for key in assets.keys}
    assert not loads & set(reconciliation_models.keys)


def test_one_partition_alone(configured: Warehouse, instance) -> None:
    assert materialize(instance, "panora", "acme-us").success
    connections = configured.query(f"SELECT DISTINCT connection FROM {DATASET}.payments")
    assert connections == [("acme-us",)]
    assert configured.count("invoices") == configured.sandbox.store.count("acme-us", "invoices")


def test_partitions_hold_groups_of_connections_when_configured(configured: Warehouse, monkeypatch) -> None:
    monkeypatch.setenv("ACCOUNTING_ETL__CONNECTIONS_PER_PARTITION", "2")
    with dg.instance_for_test() as instance:
        for request in connection_partitions(dg.build_sensor_context(instance=instance)).dynamic_partitions_requests:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        assert instance.get_dynamic_partitions("panora_connections") == ["acme-eu,acme-us", "globex-jp"]
        assert materialize(instance, "panora", "acme-eu,acme-us").success  # one run, one pipeline, two connections
    landed = {r[0] for r in configured.query(f"SELECT DISTINCT connection FROM {DATASET}.payments")}
    assert landed == {"acme-eu", "acme-us"}
    assert configured.count("payments") == sum(configured.sandbox.store.count(a, "payments") for a in landed)
    runs = configured.query(f"SELECT pipeline_name, connections FROM {DATASET}.load_runs")
    assert runs == [(partition_pipeline("panora", "acme-eu,acme-us"), 2)]


def test_load_runs_carry_their_provider_for_the_instances_concurrency_limits() -> None:
    import yaml

    assert {name: job.tags[PROVIDER_TAG] for name, job in LOAD_JOBS.items()} == {name: name for name in NAMES}
    example = yaml.safe_load((ROOT / "orchestration" / "dagster.yaml").read_text())
    limits = [
        limit for limit in example["concurrency"]["runs"]["tag_concurrency_limits"] if limit["key"] == PROVIDER_TAG
    ]
    # one limit per provider, whichever providers there are, and the named ones are providers
    assert any(limit["value"] == {"applyLimitPerUniqueValue": True} for limit in limits)
    assert {limit["value"] for limit in limits if isinstance(limit["value"], str)} <= set(NAMES)
    with dg.instance_for_test(overrides=example) as instance:  # a configuration the instance accepts
        assert instance.get_concurrency_config().run_queue_config.tag_concurrency_limits


def test_a_failing_partition_does_not_keep_the_others_from_landing(configured: Warehouse, instance, monkeypatch):
    tokens = {**configured.sandbox.store.tokens(), "revoked": "0000dead-0000-0000-0000-000000000000"}
    monkeypatch.setenv("SOURCES__PANORA__CONNECTIONS", json.dumps(tokens))
    instance.add_dynamic_partitions("panora_connections", ["revoked"])
    outcomes = {alias: materialize(instance, "panora", alias).success for alias in sorted(tokens)}
    assert outcomes == {"acme-eu": True, "acme-us": True, "globex-jp": True, "revoked": False}
    landed = {r[0] for r in configured.query(f"SELECT DISTINCT connection FROM {DATASET}.payments")}
    assert landed == {"acme-eu", "acme-us", "globex-jp"}


def test_a_second_load_of_a_running_connection_is_refused(configured: Warehouse, instance) -> None:
    name = pipeline_name("rootfi", "initech-us")
    path = Path(configured.path)
    lock = path.parent / f".{path.name}.etl" / f"load-{name}.lock"  # the warehouse's, beside its file
    with file_lock(lock, "a load held by this test"):
        result = materialize(instance, "rootfi", "initech-us")
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "a load held by this test (process" in str(failure.event_specific_data.error)
    assert materialize(instance, "rootfi", "initech-us").success  # and runs once the other one is done


def test_the_schedule_requests_a_run_per_connection(configured: Warehouse, instance) -> None:
    for provider, schedule in LOAD_SCHEDULES.items():
        context = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=datetime(2026, 11, 21, 6),
            repository_def=defs.get_repository_def(),
        )
        requests = schedule.evaluate_tick(context).run_requests
        expected = sorted(instance.get_dynamic_partitions(PARTITIONS[provider].name))
        assert sorted(r.partition_key for r in requests) == expected
        assert len({r.run_key for r in requests}) == len(requests)


def test_the_definitions_load_as_dagster_dev_loads_them() -> None:
    dg.Definitions.validate_loadable(defs)
    repository = defs.get_repository_def()
    assert {job.name for job in repository.get_all_jobs()} >= {"load_panora", "load_rootfi", "rebuild_models", "push"}
