"""Running the reconciliation models: the dbt project in `transforms/`, built in-process (`dbt_runner`: dbt's
invocation, its profile, its lock; `build`: when to build, and what a build records)."""
