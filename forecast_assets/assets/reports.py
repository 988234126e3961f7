"""The report over every cluster: how good the served forecasts are, in one place."""

from typing import Any

import dagster as dg
import pandas as pd

from forecast_assets.assets.inputs import per_cluster
from forecast_assets.core.clustering import ClusterResult
from forecast_assets.core.evaluation import (
    combined_markdown,
    combined_summary,
    overall_metrics,
)
from forecast_assets.core.plots import cluster_summary_plot, k_selection_plot, markdown_image
from forecast_assets.resources import OutputStore


@dg.asset(group_name="forecasts", kinds={"pandas"})
def evaluation_summary(
    context: dg.AssetExecutionContext,
    output_store: OutputStore,
    clusters: ClusterResult,
    evaluation_report: Any,  # {cluster: report}; the bare report when there is one cluster
) -> pd.DataFrame:
    """One row per cluster (served model, backtest MASE / RMSSE / sMAPE next to seasonal
    naive, interval coverage, the gate's verdict) and the figures over all SKUs, written to
    ``<output.dir>/reports/evaluation_summary.md`` with its plots."""
    every = per_cluster(context, "evaluation_report", evaluation_report)
    reports = {key: every[key] for key in clusters.keys if key in every}
    summary = combined_summary(reports)
    overall = overall_metrics(reports)
    plots = {
        "clusters_accuracy": cluster_summary_plot(summary, "Backtest per cluster"),
        "cluster_selection": k_selection_plot(clusters),
    }
    markdown = combined_markdown(reports)
    path = output_store.write_report(
        "evaluation_summary",
        markdown + "".join(f"\n{{{name}}}\n" for name in plots),
        plots,
    )
    context.add_output_metadata(
        {
            **{name: value for name, value in overall.items()},
            "served_fallbacks": int((summary["served"] != "candidate").sum()),
            "report": dg.MetadataValue.md(markdown),
            **{
                name: dg.MetadataValue.md(markdown_image(png, name.replace("_", " ")))
                for name, png in plots.items()
            },
            "report_path": dg.MetadataValue.path(str(path)),
        }
    )
    return summary
