"""The deployed instance on a real PostgreSQL server: runs, event log and schedules in Postgres
(deploy/docker/dagster.yaml) and the Optuna studies in the same database.

The server is started for the test from the system's PostgreSQL binaries (`apt-get install
postgresql`; .ci/run installs it) in a temporary folder, on loopback only. Without the binaries
the test is skipped, unless FORECAST_REQUIRE_POSTGRES=1 (set by .ci/run) makes that a failure.
"""

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import optuna
import psycopg2
import pytest

from forecast_assets.definitions import build_definitions
from forecast_assets.demo import run_graph
from forecast_assets.partitions import CLUSTER_PARTITIONS_NAME

pytestmark = pytest.mark.integration

PROJECT_ROOT = Path(__file__).resolve().parents[2]
USER, PASSWORD, DATABASE = "forecast", "forecast-test-password", "forecast"
# Optuna gets its own schema in the same database, as in deploy/: Dagster and Optuna both keep
# their table versions in a table named alembic_version, so they cannot share one schema.
OPTUNA_SCHEMA = "optuna"


def _server_binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def postgres() -> Iterator[dict[str, str]]:
    """A private PostgreSQL server on 127.0.0.1; yields its connection settings."""
    binaries = _server_binaries()
    if binaries is None:
        if os.environ.get("FORECAST_REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL server binaries not found (apt-get install postgresql)")
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    # The server refuses to run as root: run it as the postgres system user when we are root.
    as_server_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="forecast-pg-"))
    data = folder / "data"
    password_file = folder / "password"
    password_file.write_text(PASSWORD)
    if as_server_user:
        shutil.chown(folder, "postgres")
        shutil.chown(password_file, "postgres")
    port = _free_port()
    subprocess.run(
        [
            *as_server_user,
            str(binaries / "initdb"),
            "-D",
            str(data),
            "-U",
            USER,
            f"--pwfile={password_file}",
            "--auth=scram-sha-256",
        ],
        check=True,
        capture_output=True,
    )
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={folder}"
    subprocess.run(
        [
            *as_server_user,
            str(binaries / "pg_ctl"),
            *("-D", str(data), "-o", options, "-l", str(folder / "server.log"), "-w", "start"),
        ],
        check=True,
        capture_output=True,
    )
    try:
        connection = dict(host="127.0.0.1", port=str(port), user=USER, password=PASSWORD)
        admin = psycopg2.connect(dbname="postgres", **connection)
        admin.autocommit = True  # CREATE DATABASE cannot run inside a transaction
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {DATABASE}")
        admin.close()
        with (
            psycopg2.connect(dbname=DATABASE, **connection) as database,
            database.cursor() as cursor,
        ):
            cursor.execute(f"CREATE SCHEMA {OPTUNA_SCHEMA}")
        yield {**connection, "dbname": DATABASE}
    finally:
        subprocess.run(
            [*as_server_user, str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
            capture_output=True,
        )
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_instance(
    postgres: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dg.DagsterInstance]:
    """A Dagster instance from the deployed dagster.yaml, connected through its env vars."""
    for name, value in {
        "DAGSTER_POSTGRES_USER": postgres["user"],
        "DAGSTER_POSTGRES_PASSWORD": postgres["password"],
        "DAGSTER_POSTGRES_HOST": postgres["host"],
        "DAGSTER_POSTGRES_PORT": postgres["port"],
        "DAGSTER_POSTGRES_DB": postgres["dbname"],
    }.items():
        monkeypatch.setenv(name, value)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "deploy" / "docker" / "dagster.yaml", home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


def query(postgres: dict[str, str], sql: str) -> list[tuple]:
    with psycopg2.connect(**postgres) as connection, connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def test_whole_graph_runs_on_postgres_with_the_optuna_study_in_the_same_database(
    postgres: dict[str, str], postgres_instance: dg.DagsterInstance, write_settings
) -> None:
    instance = postgres_instance
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
    optuna_url = (
        f"postgresql+psycopg2://{postgres['user']}:{postgres['password']}"
        f"@{postgres['host']}:{postgres['port']}/{postgres['dbname']}"
        f"?options=-csearch_path%3D{OPTUNA_SCHEMA}"
    )
    settings = write_settings(
        {
            "tuning": {"enabled": True, "n_trials": 2, "epochs": 1, "storage": optuna_url},
            "clustering": {"k_min": 2, "k_max": 2},
        }
    )
    defs = build_definitions(str(settings))

    started = time.monotonic()
    clusters = run_graph(defs, instance)
    elapsed = time.monotonic() - started

    # Dagster's runs, materializations and partitions live in Postgres...
    runs = dict(query(postgres, "SELECT run_id, status FROM runs"))
    assert len(runs) == 2 + len(clusters)  # ingest, one train run per cluster, publish
    assert set(runs.values()) == {"SUCCESS"}
    materialized = {
        row[0]
        for row in query(
            postgres, "SELECT asset_key FROM asset_keys WHERE last_materialization IS NOT NULL"
        )
    }
    assert '["forecasts"]' in materialized and '["cluster_model"]' in materialized
    partitions = query(
        postgres,
        f"SELECT partition FROM dynamic_partitions WHERE partitions_def_name = "
        f"'{CLUSTER_PARTITIONS_NAME}'",
    )
    assert sorted(row[0] for row in partitions) == sorted(clusters)
    # ...and so do the Optuna studies, one per cluster, with the trials asked for.
    studies = optuna.study.get_all_study_summaries(storage=optuna_url)
    assert sorted(study.study_name.split("-")[0] for study in studies) == sorted(clusters)
    assert all(study.n_trials == 2 for study in studies)
    trials = query(postgres, f"SELECT count(*) FROM {OPTUNA_SCHEMA}.trials")
    assert trials[0][0] == 2 * len(clusters)
    print(f"\nwhole graph on Postgres with tuning: {elapsed:.0f}s")
