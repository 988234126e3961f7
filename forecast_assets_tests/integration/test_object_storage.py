"""The whole graph with ``output.dir`` in an object store: a real S3 API on loopback (moto's
server) reached through s3fs, as a deployment reaches S3 or MinIO."""

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from forecast_assets.core.clustering import ClusterResult
from forecast_assets.core.data.history import HistoryStore
from forecast_assets.core.inference.forecast import FORECAST_COLUMNS
from forecast_assets.core.models.artifact import load_cluster_model
from forecast_assets.core.storage import artifact_path
from forecast_assets.definitions import build_definitions
from forecast_assets.demo import run_graph
from forecast_assets.jobs import CLUSTER_ASSETS

pytestmark = pytest.mark.integration


def test_every_artifact_lands_in_the_object_store(
    write_settings, instance: dg.DagsterInstance, s3_bucket, tmp_path: Path
) -> None:
    url, options = s3_bucket
    settings_file = write_settings(
        {"output": {"dir": f"{url}/forecast", "storage_options": options}}
    )
    defs = build_definitions(str(settings_file))

    keys = run_graph(defs, instance)

    root = artifact_path(f"{url}/forecast", options)
    with (root / "forecasts.parquet").open("rb") as handle:
        table = pd.read_parquet(handle)
    assert list(table.columns) == list(FORECAST_COLUMNS)
    assert sorted(table["cluster"].unique()) == keys
    assert (root / "forecasts.csv").is_file()

    history = HistoryStore(root / "history")
    assert history.version == 1 and history.read()["sku"].nunique() == 40
    for key in keys:
        assert (root / "models" / f"{key}.served.pt").is_file()
        assert (root / "models" / f"{key}.onnx").is_file()
        assert (root / "reports" / f"evaluation_{key}.md").is_file()
        assert (root / "reports" / f"evaluation_{key}_forecast_vs_actual.png").is_file()
        for asset in CLUSTER_ASSETS:
            assert (root / "assets" / asset / key).is_file(), (asset, key)

    # Asset values come back through the IO manager from the store, in any process.
    clusters: ClusterResult = defs.load_asset_value("clusters", instance=instance)
    assert clusters.keys == keys
    # Nothing landed on local disk: not in the settings' folder, not in the instance's.
    assert not (tmp_path / "output").exists()
    assert not list(Path(instance.storage_directory()).glob("**/clusters"))

    # A second night: ingest finds no new data, retraining reads the served model back from
    # the store for the accuracy gate and stores its successor, publishing replaces the table.
    first_model = load_cluster_model(root / "models" / f"{keys[0]}.served.pt")
    for job, partition in [("ingest_job", None), ("train_job", keys[0]), ("forecasts_job", None)]:
        result = defs.resolve_job_def(job).execute_in_process(
            instance=instance, partition_key=partition
        )
        assert result.success, job
    assert HistoryStore(root / "history").version == 1
    latest = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("cluster_model"), asset_partitions=[keys[0]]),
        limit=1,
    ).records[0]
    metadata = latest.asset_materialization.metadata
    second_model = load_cluster_model(root / "models" / f"{keys[0]}.served.pt")
    assert second_model.trained_at == metadata["served_trained_at"].value
    assert second_model.trained_at != first_model.trained_at
    with (root / "forecasts.parquet").open("rb") as handle:
        assert len(pd.read_parquet(handle)) == len(table)
