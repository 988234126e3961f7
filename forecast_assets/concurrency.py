"""Names that keep runs and steps from fighting over a GPU or over the sales history: run
tags that the run queue limits (dagster.yaml) and the concurrency pools of steps. Assets,
jobs and the deployment read them from here.

The run tags only reach runs of the project's jobs (and of the sensors' backfills, which
copy the jobs' tags); a run that the UI's "Materialize" launches has no tags. The pools are
on the steps themselves, so they hold on every launch path; their limit is
``concurrency.pools.default_limit`` in dagster.yaml (1, like the tag limits).
"""

# Runs carrying this tag are limited by the run queue (dagster.yaml) so that GPU jobs never
# share a card.
GPU_TAG_KEY = "forecast_assets/gpu"
GPU_RUN_TAGS = {GPU_TAG_KEY: "true"}
# The pool of every step that puts a model on the device: training (cluster_model), tuning
# (tuned_hyperparameters), and the inference of the backtest (evaluation_report) and of the
# forecast (forecast_table). One such step runs at a time, whichever run it is in.
TRAINING_POOL = "forecast_assets_training"
# Runs that write the sales history carry this tag; the run queue (dagster.yaml) lets one run
# at a time write it (the store also locks, so this only saves waiting on the lock).
HISTORY_TAG_KEY = "forecast_assets/history"
HISTORY_RUN_TAGS = {HISTORY_TAG_KEY: "write"}
# The pool of the step that writes the history (raw_sales): one writer at a time, tagged
# run or not.
HISTORY_POOL = "forecast_assets_history"
# Assets by the pool their step must be in; test_definitions checks the definitions agree.
POOLED_ASSETS = {
    "cluster_model": TRAINING_POOL,
    "tuned_hyperparameters": TRAINING_POOL,
    "evaluation_report": TRAINING_POOL,
    "forecast_table": TRAINING_POOL,
    "raw_sales": HISTORY_POOL,
}
