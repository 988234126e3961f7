-- Runs once, when the postgres service initializes an empty data volume (as POSTGRES_USER, in
-- POSTGRES_DB). The Optuna studies live in the instance's database but in their own schema:
-- Dagster and Optuna both keep their migration state in a table named alembic_version, so the
-- two cannot share one schema. FORECAST_TUNING__STORAGE selects it with
-- ?options=-csearch_path%3Doptuna.
CREATE SCHEMA IF NOT EXISTS optuna;
