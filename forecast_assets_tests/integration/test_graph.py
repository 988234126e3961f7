"""The whole asset graph, materialized in process against a real temporary instance."""

import hashlib
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from forecast_assets.core.clustering import ClusterResult
from forecast_assets.core.data.generator import generate_sales
from forecast_assets.core.data.history import HistoryStore
from forecast_assets.core.data.panel import SalesPanel
from forecast_assets.core.errors import ConfigurationError, DataValidationError
from forecast_assets.core.evaluation import EvaluationReport
from forecast_assets.core.inference.forecast import FORECAST_COLUMNS
from forecast_assets.definitions import build_definitions
from forecast_assets.demo import run_graph
from forecast_assets.jobs import CLUSTER_ASSETS
from forecast_assets.partitions import CLUSTER_PARTITIONS_NAME

pytestmark = pytest.mark.integration

# The evaluation report's plots, each in the UI and beside the report's markdown.
PLOTS = (
    "prediction_quality",
    "forecast_vs_actual",
    "error_by_step",
    "error_by_fold",
    "training_history",
)
CHECKS = [
    ("cluster_model", "accuracy_gate"),
    ("evaluation_report", "interval_coverage"),
    ("forecasts", "forecasts_schema"),
    ("forecasts", "forecasts_complete"),
]


def test_whole_graph_produces_the_forecast_contract(
    write_settings, instance, tmp_path: Path
) -> None:
    settings_file = write_settings()
    defs = build_definitions(str(settings_file))

    keys = run_graph(defs, instance)

    clusters: ClusterResult = defs.load_asset_value("clusters", instance=instance)
    panel: SalesPanel = defs.load_asset_value("resampled_series", instance=instance)
    assert keys == clusters.keys
    assert sorted(instance.get_dynamic_partitions(CLUSTER_PARTITIONS_NAME)) == sorted(clusters.keys)
    assert set(clusters.assignments.index) == set(panel.skus)

    output = tmp_path / "output"
    table = pd.read_parquet(output / "forecasts.parquet")
    assert list(table.columns) == list(FORECAST_COLUMNS)
    from_csv = pd.read_csv(output / "forecasts.csv", parse_dates=["date"])
    assert len(from_csv) == len(table)

    # Every SKU that survived filtering appears exactly once per future period.
    horizon = 7
    expected_dates = pd.date_range(panel.dates[-1], periods=horizon + 1, freq="D")[1:]
    assert set(table["sku"]) == set(panel.skus)
    for _sku, rows in table.groupby("sku"):
        assert list(rows["date"].sort_values()) == list(expected_dates)
    assert not table.duplicated(["sku", "date"]).any()

    assert (table["lower"] <= table["forecast"]).all()
    assert (table["forecast"] <= table["upper"]).all()
    assert (table["lower"] >= 0).all()
    assert np.isfinite(table[["forecast", "lower", "upper"]].to_numpy()).all()
    assert (table["upper"] > table["lower"]).mean() > 0.5  # intervals have width
    assigned = clusters.assignments.loc[table["sku"]].to_numpy()
    assert (table["cluster"].to_numpy() == assigned).all()
    # The model column names what serves each SKU: the pool's choice for it.
    served_by = {}
    for key in keys:
        pool = defs.load_asset_value("cluster_model", partition_key=key, instance=instance).pool
        assert pool is not None and "lightweight" in pool.backtest.names
        assert {"naive", "theta", "lightgbm"} <= set(pool.backtest.names)
        served_by.update(zip(pool.backtest.skus, pool.label_of(), strict=True))
    assert (table["model"] == table["sku"].map(served_by)).all()
    assert table["trained_at"].notna().all()

    # Every partition of every per-cluster asset is materialized in the instance.
    for asset in CLUSTER_ASSETS:
        materialized = instance.get_materialized_partitions(dg.AssetKey(asset))
        assert materialized == set(keys), asset

    for key in keys:
        report: EvaluationReport = defs.load_asset_value(
            "evaluation_report", partition_key=key, instance=instance
        )
        assert set(report.metrics) >= {
            "mse",
            "rmse",
            "mae",
            "mape",
            "smape",
            "mase",
            "r2",
            "correlation",
        }
        assert set(report.baseline) == set(report.metrics)
        assert np.isfinite(report.metrics["mase"]) and np.isfinite(report.baseline["mase"])
        assert 0.0 <= report.coverage <= 1.0
        # The default backtest: three folds half a horizon apart, ending at the last horizon.
        origins = sorted(report.predictions["origin"].unique())
        assert [pd.Timestamp(o) for o in origins] == list(panel.dates[[-13, -10, -7]])
        assert len(report.backtest.by_fold) == 3 and len(report.backtest.by_step) == horizon
        assert report.gate is not None and report.gate.served == "candidate"
        assert "Pool of forecasters" in (output / "reports" / f"evaluation_{key}.md").read_text()
        for plot in PLOTS:
            assert (output / "reports" / f"evaluation_{key}_{plot}.png").stat().st_size > 1000
        assert (output / "reports" / f"forecast_{key}_forecast.png").stat().st_size > 1000
        by_sku = pd.read_csv(output / "reports" / f"evaluation_{key}_by_sku.csv")
        assert set(by_sku["sku"]) == set(clusters.assignments.index[clusters.assignments == key])
        assert {"mase", "rmsse", "mase_seasonal_naive"} <= set(by_sku.columns)
        event = instance.get_latest_materialization_event(dg.AssetKey("evaluation_report"))
        assert event is not None
    metadata = event.asset_materialization.metadata
    assert {"mase", "mase_seasonal_naive", "rmsse", "wrmsse", "report", *PLOTS} <= set(metadata)
    for plot in PLOTS:
        assert "data:image/png;base64," in metadata[plot].value

    # The combined report covers every cluster, and every check ran and passed.
    summary = defs.load_asset_value("evaluation_summary", instance=instance)
    assert sorted(summary["cluster"]) == sorted(keys)
    assert (output / "reports" / "evaluation_summary_clusters_accuracy.png").is_file()
    for asset, check in CHECKS:
        record = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(dg.AssetKey(asset), check)]
        )[dg.AssetCheckKey(dg.AssetKey(asset), check)]
        assert record is not None, check
        evaluation = record.event.dagster_event.event_specific_data
        assert evaluation.passed or check == "interval_coverage", (check, evaluation.description)

    # One cluster partition can be materialized again on its own.
    again = defs.resolve_job_def("train_job").execute_in_process(
        instance=instance, partition_key=keys[0]
    )
    assert again.success
    # The second run compared its choice with the stored one: SKUs the new choice does not
    # beat keep what served them.
    assert (output / "models" / f"{keys[0]}.choice.json").is_file()
    gate = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey("cluster_model"), "accuracy_gate")]
    )[dg.AssetCheckKey(dg.AssetKey("cluster_model"), "accuracy_gate")]
    kept = gate.event.dagster_event.event_specific_data.metadata["pool_kept_previous"].value
    assert kept > 0
    assert (
        len(
            instance.fetch_materializations(
                dg.AssetRecordsFilter(
                    asset_key=dg.AssetKey("cluster_model"), asset_partitions=[keys[0]]
                ),
                limit=10,
            ).records
        )
        == 2
    )


def test_reclustering_removes_stale_partitions(write_settings, instance) -> None:
    three = build_definitions(
        str(write_settings({"clustering": {"k_min": 3, "k_max": 3}}, "three.yaml"))
    )
    assert three.resolve_job_def("ingest_job").execute_in_process(instance=instance).success
    assert sorted(instance.get_dynamic_partitions(CLUSTER_PARTITIONS_NAME)) == [
        "cluster_0",
        "cluster_1",
        "cluster_2",
    ]

    two = build_definitions(
        str(write_settings({"clustering": {"k_min": 2, "k_max": 2}}, "two.yaml"))
    )
    assert two.resolve_job_def("ingest_job").execute_in_process(instance=instance).success
    assert sorted(instance.get_dynamic_partitions(CLUSTER_PARTITIONS_NAME)) == [
        "cluster_0",
        "cluster_1",
    ]
    event = instance.get_latest_materialization_event(dg.AssetKey("clusters"))
    assert event.asset_materialization.metadata["partitions_removed"].value == ["cluster_2"]


def test_bad_file_fails_clearly_and_keeps_earlier_results(
    write_settings, instance, tmp_path: Path
) -> None:
    source = tmp_path / "sales"
    source.mkdir()
    generate_sales(40, 330, "2024-01-01", seed=7).to_csv(source / "2024.csv", index=False)
    defs = build_definitions(str(write_settings({"data": {"path": str(source)}})))
    run_graph(defs, instance)
    published = tmp_path / "output" / "forecasts.parquet"
    digest = hashlib.sha256(published.read_bytes()).hexdigest()
    sales_before = defs.load_asset_value("raw_sales", instance=instance)
    history = HistoryStore(tmp_path / "output" / "history")
    version = history.version

    # A second delivery into the source folder with an impossible date.
    bad_file = source / "2025.csv"
    bad_file.write_text(
        "date,sku,quantity,store,category,tags\n2025-01-01,a,3,n,x,\n2025-13-45,a,4,n,x,\n"
    )
    result = defs.resolve_job_def("ingest_job").execute_in_process(
        instance=instance, raise_on_error=False
    )

    assert not result.success
    error = root_cause(result)
    assert error.cls_name == DataValidationError.__name__
    assert str(bad_file) in error.message and "'date'" in error.message
    assert "2025-13-45" in error.message
    # Nothing published or stored earlier was touched.
    assert hashlib.sha256(published.read_bytes()).hexdigest() == digest
    assert history.version == version
    pd.testing.assert_frame_equal(history.read(), sales_before)
    pd.testing.assert_frame_equal(
        defs.load_asset_value("raw_sales", instance=instance), sales_before
    )


def test_another_data_set_does_not_mix_into_the_history(
    write_settings, instance, tmp_path: Path
) -> None:
    example = build_definitions(str(write_settings()))
    assert example.resolve_job_def("ingest_job").execute_in_process(instance=instance).success
    other = tmp_path / "other.csv"
    other.write_text("date,sku,quantity,store,category,tags\n2024-01-01,a,3,n,x,\n")
    elsewhere = build_definitions(str(write_settings({"data": {"path": str(other)}}, "other.yaml")))
    result = elsewhere.resolve_job_def("ingest_job").execute_in_process(
        instance=instance, raise_on_error=False
    )
    assert not result.success
    error = root_cause(result)
    assert error.cls_name == ConfigurationError.__name__
    assert str(tmp_path / "output" / "history") in error.message


def test_stale_partition_key_is_refused_with_a_clear_error(write_settings, instance) -> None:
    defs = build_definitions(str(write_settings({"clustering": {"k_min": 2, "k_max": 2}})))
    assert defs.resolve_job_def("ingest_job").execute_in_process(instance=instance).success
    instance.add_dynamic_partitions(CLUSTER_PARTITIONS_NAME, ["cluster_9"])
    result = defs.resolve_job_def("train_job").execute_in_process(
        instance=instance, partition_key="cluster_9", raise_on_error=False
    )
    assert not result.success
    error = root_cause(result)
    assert error.cls_name == DataValidationError.__name__
    assert "cluster_9" in error.message


def root_cause(result: dg.ExecuteInProcessResult):
    """The innermost error of the first failed step (Dagster wraps the asset's exception)."""
    error = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error
    while error.cause is not None:
        error = error.cause
    return error


def test_training_settings_can_be_overridden_at_launch(write_settings, instance, tmp_path) -> None:
    defs = build_definitions(str(write_settings({"clustering": {"k_min": 2, "k_max": 2}})))
    assert defs.resolve_job_def("ingest_job").execute_in_process(instance=instance).success
    train = defs.resolve_job_def("train_job")
    launch = {"ops": {"cluster_model": {"config": {"epochs": 1, "model_type": "mixer"}}}}
    assert train.execute_in_process(
        instance=instance, partition_key="cluster_0", run_config=launch
    ).success
    event = instance.get_latest_materialization_event(dg.AssetKey("cluster_model"))
    metadata = event.asset_materialization.metadata
    assert metadata["epochs_run"].value == 1
    assert metadata["model_type"].text == "mixer"
    assert metadata["resumed_from_epoch"].value == 0
    # Checkpoints exist only while a model is in training.
    assert not list((tmp_path / "output" / "checkpoints").glob("*.pt"))

    bad = {"ops": {"cluster_model": {"config": {"learning_rate": -1.0}}}}
    result = train.execute_in_process(
        instance=instance, partition_key="cluster_0", run_config=bad, raise_on_error=False
    )
    assert not result.success
    error = root_cause(result)
    assert error.cls_name == "ConfigurationError"
    assert "run config" in error.message and "learning_rate" in error.message


def test_a_single_cluster_publishes_like_several(write_settings, instance, tmp_path: Path) -> None:
    # With one partition, Dagster hands the unpartitioned assets the bare value, not a dict.
    defs = build_definitions(str(write_settings({"clustering": {"k_min": 1, "k_max": 1}})))
    keys = run_graph(defs, instance)
    assert keys == ["cluster_0"]
    table = pd.read_parquet(tmp_path / "output" / "forecasts.parquet")
    panel = defs.load_asset_value("resampled_series", instance=instance)
    assert set(table["cluster"]) == {"cluster_0"} and set(table["sku"]) == set(panel.skus)
    summary = defs.load_asset_value("evaluation_summary", instance=instance)
    assert list(summary["cluster"]) == ["cluster_0"]


def test_every_sku_is_forecast_short_quiet_or_new_since_the_clustering(
    write_settings, instance, tmp_path: Path
) -> None:
    source = tmp_path / "sales"
    source.mkdir()
    sales = generate_sales(40, 330, "2024-01-01", seed=7)
    last = pd.to_datetime(sales["date"]).max()
    template = sales.iloc[0]
    # Three days of history (min_history is 60), and a SKU that never sold.
    short = [
        {**template, "sku": "newcomer", "date": last - pd.Timedelta(days=d), "quantity": 4}
        for d in range(3)
    ]
    quiet = [
        {**template, "sku": "quiet", "date": last - pd.Timedelta(days=d), "quantity": 0}
        for d in range(100)
    ]
    pd.concat([sales, pd.DataFrame(short + quiet)]).to_csv(source / "2024.csv", index=False)
    defs = build_definitions(str(write_settings({"data": {"path": str(source)}})))
    run_graph(defs, instance)
    clusters: ClusterResult = defs.load_asset_value("clusters", instance=instance)

    table = pd.read_parquet(tmp_path / "output" / "forecasts.parquet")
    for sku in ("newcomer", "quiet"):
        rows = table[table["sku"] == sku]
        assert len(rows) == 7 and np.isfinite(rows["forecast"]).all()
    assert (table.loc[table["sku"] == "quiet", "forecast"] == 0).all()
    # The short SKU is not trained on by the neural model, but it is backtested and served.
    key = clusters.assignments["newcomer"]
    encoded = defs.load_asset_value("encoded_features", partition_key=key, instance=instance)
    row = encoded.skus.get_loc("newcomer")
    assert row not in set(encoded.train.rows) and row not in set(encoded.validation.rows)

    # A delivery with a SKU nobody has seen, then the refresh: new sales, no retraining.
    rows = [
        {**template, "sku": "brand_new", "date": last - pd.Timedelta(days=d), "quantity": q}
        for d, q in zip(range(5), [3, 0, 5, 2, 4], strict=True)
    ]
    pd.DataFrame(rows).to_csv(source / "2025.csv", index=False)
    assert defs.resolve_job_def("sales_ingest_job").execute_in_process(instance=instance).success
    assert defs.resolve_job_def("forecasts_job").execute_in_process(instance=instance).success

    table = pd.read_parquet(tmp_path / "output" / "forecasts.parquet")
    new = table[table["sku"] == "brand_new"]
    assert len(new) == 7 and set(new["cluster"]) == {"unclustered"}
    assert new["model"].str.startswith("newcomer").all()
    assert np.allclose(new["forecast"], 14 / 5)  # the mean of what it sold
    assert (new["lower"] <= new["forecast"]).all() and (new["forecast"] <= new["upper"]).all()
    assert set(table["sku"]) == set(clusters.assignments.index) | {"brand_new"}
    record = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey("forecasts"), "forecasts_complete")]
    )[dg.AssetCheckKey(dg.AssetKey("forecasts"), "forecasts_complete")]
    assert record.event.dagster_event.event_specific_data.passed
