"""The serving step of one cluster, from encoded features to the model that serves.

A candidate is trained (resuming its checkpoint), judged by the accuracy gate on the
rolling-origin backtest against the model that served before and seasonal naive, refit and
exported when it passes, and stored. The graph's ``cluster_model`` asset and the benchmarks
call ``serve_cluster`` alike; a pool of forecasters per cluster plugs in here.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from forecast_assets.core.data.scaling import ScalerManager
from forecast_assets.core.data.windows import EncodedPanel
from forecast_assets.core.errors import ModelNotFoundError
from forecast_assets.core.evaluation import (
    Backtest,
    GateDecision,
    accuracy_gate,
    judging_engine,
    run_backtest,
)
from forecast_assets.core.inference.serving import ServingFiles, export_for_serving, publish
from forecast_assets.core.models.artifact import (
    ClusterModel,
    ServingPaths,
    TrainingResult,
    load_cluster_model,
    save_cluster_model,
    utc_now,
)
from forecast_assets.core.pool.neural import backtest_forecasts, panel_of
from forecast_assets.core.pool.pool import PoolResult, PoolRun, judge_pool
from forecast_assets.core.pool.selection import SkuChoice
from forecast_assets.core.pool.stored import load_choice, save_choice
from forecast_assets.core.training.cluster_model import (
    checkpoint_path,
    refit_cluster_model,
    remove_checkpoints,
    train_cluster_model,
)
from forecast_assets.core.training.trainer import TrainerCallback, TrainingConfig

logger = logging.getLogger(__name__)


class TunedParameters(Protocol):
    """What the serving step needs of a tuning result (``tuning.TuningResult``)."""

    model_type: str
    best_params: dict[str, Any]

    def model_options(self, base_options: Mapping[str, object]) -> dict[str, object]: ...

    def training_config(self, base: TrainingConfig) -> TrainingConfig: ...


@dataclass(frozen=True)
class ModelSpec:
    """What to train for one cluster: the family, its hyperparameters (all but the sizes
    the data fixes), the training run, and what happens to a model that passes."""

    model_type: str
    options: Mapping[str, object]
    training: TrainingConfig
    refit: bool = False  # train the passing family again on all the data and serve that
    export_onnx: bool = True  # serve through onnxruntime
    tuned: Mapping[str, object] | None = None  # the tuned parameters applied, if any


def resolve_model_spec(
    base: ModelSpec,
    tuned: TunedParameters | None = None,
    launch: Mapping[str, object] | None = None,
) -> ModelSpec:
    """``base`` (from the settings) with the tuned hyperparameters over it when they were
    tuned for the same family, and the launch-time training overrides over both:
    settings < tuned < launch."""
    spec = base
    if tuned is not None and tuned.model_type == base.model_type:
        spec = dataclasses.replace(
            spec,
            options=tuned.model_options(spec.options),
            training=tuned.training_config(spec.training),
            tuned=dict(tuned.best_params),
        )
    if launch:
        spec = dataclasses.replace(spec, training=spec.training.updated(**launch))
    return spec


@dataclass(frozen=True)
class GateConfig:
    """How candidates are judged: seasonal naive's season, the gate's relative MASE, and
    how forecasts are computed (floored at zero, device, engine)."""

    season: int
    threshold: float
    nonnegative: bool = True
    device: str = "auto"
    engine: str = "auto"


@dataclass
class ServedCluster:
    """The outcome of the serving step of one cluster."""

    cluster: str
    model: ClusterModel  # what serves: the candidate (or its refit), the previous model, naive
    candidate: ClusterModel  # the newly trained model, served or not
    gate: GateDecision
    backtest: Backtest  # of ``model.evaluated``: the figures that judged it
    spec: ModelSpec
    exports: ServingFiles = field(default_factory=ServingFiles)
    seconds: dict[str, float] = field(default_factory=dict)  # per phase: train, gate, ...
    # The pool judged on the same folds and the choice per SKU; None: ``model`` serves all.
    pool: PoolResult | None = None

    @property
    def promoted(self) -> bool:
        return self.gate.promoted

    @property
    def pool_member(self) -> ClusterModel:
        """The neural member of the pool: the new model (its refit, when that serves),
        whether or not the gate let it serve the whole cluster."""
        return self.model if self.promoted else self.candidate

    @property
    def training(self) -> TrainingResult:
        """The candidate's training run (the served model's only when it was promoted)."""
        return self.candidate.training


def serve_cluster(
    cluster: str,
    encoded: EncodedPanel,
    scalers: ScalerManager,
    spec: ModelSpec,
    previous: ClusterModel | None,
    gate: GateConfig,
    paths: ServingPaths,
    callbacks: Sequence[TrainerCallback] = (),
    resume: bool = True,
    log: logging.Logger = logger,
    pool: PoolRun | None = None,
) -> ServedCluster:
    """Train ``spec`` for ``cluster``, judge it, and store what passes.

    The candidate serves when the gate passes it (its family refit on all the data when
    ``spec.refit``); otherwise ``previous`` keeps serving if it still passes, else seasonal
    naive does. Only a promoted model is stored and exported, so a rejected candidate leaves
    the files of the model that serves untouched. The backtest that judged the served model
    is returned for the evaluation report, which reuses it rather than running it again.

    With ``pool``, the served model joins a pool of statistical and boosted forecasters on
    the same fold origins, and the choice per SKU is made (``core/pool``).
    """
    seconds: dict[str, float] = {}
    checkpoint = checkpoint_path(
        paths.checkpoint_dir, cluster, encoded, spec.model_type, spec.options, spec.training
    )
    if not resume:
        remove_checkpoints(paths.checkpoint_dir, cluster)
    with _timed(seconds, "train"):
        candidate = train_cluster_model(
            encoded, spec.model_type, spec.options, spec.training, callbacks, checkpoint
        )
    with tempfile.TemporaryDirectory(prefix="forecast-export-") as staging:
        staged = ServingFiles()
        if spec.export_onnx and not spec.refit:
            # This very candidate serves if it passes: export it first, so that the gate
            # judges it through the engine that will serve it.
            with _timed(seconds, "export"):
                staged = export_for_serving(candidate, Path(staging), cluster)
        with _timed(seconds, "gate"):
            judged = run_backtest(
                candidate,
                encoded,
                scalers,
                gate.season,
                gate.nonnegative,
                gate.device,
                judging_engine(gate.engine),
            )
            served, decision, tested = accuracy_gate(
                candidate,
                previous,
                encoded,
                scalers,
                season=gate.season,
                threshold=gate.threshold,
                nonnegative=gate.nonnegative,
                device=gate.device,
                engine=gate.engine,
                candidate_backtest=judged,
            )
        exports = ServingFiles()
        if decision.promoted:
            log.info(f"accuracy gate {decision.reason}")
            if spec.refit:
                log.info("refitting on all the data, validation and backtest included")
                with _timed(seconds, "refit"):
                    served = refit_cluster_model(
                        candidate, encoded, spec.options, spec.training, callbacks
                    )
                if spec.export_onnx:
                    with _timed(seconds, "export"):
                        exports = export_for_serving(served, paths.model_dir, cluster)
            elif spec.export_onnx:
                exports = publish(staged, paths.model_dir, cluster, served.model_type)
            for problem in exports.problems:
                log.warning(problem)
            save_cluster_model(paths.served_model(cluster), served)
        else:
            log.warning(f"accuracy gate {decision.reason}")
    # Only now that the served model is stored may the checkpoint go.
    remove_checkpoints(paths.checkpoint_dir, cluster)
    chosen = None
    if pool is not None and pool.options.enabled:
        with _timed(seconds, "pool"):
            before = previous_choice(paths, cluster, encoded, log)
            chosen = judge_cluster_pool(pool, encoded, judged, before)
            save_choice(paths.served_choice(cluster), chosen.served, encoded.skus, chosen.judged_at)
        log.info(
            f"pool of {', '.join(chosen.backtest.names)}: {chosen.served.describe()}; "
            f"SKUs served: {chosen.served.mix()}; {chosen.kept_previous} kept what served "
            "them before"
        )
    return ServedCluster(
        cluster=cluster,
        model=served,
        candidate=candidate,
        gate=decision,
        backtest=tested,
        spec=spec,
        exports=exports,
        seconds=seconds,
        pool=chosen,
    )


def judge_cluster_pool(
    pool: PoolRun,
    encoded: EncodedPanel,
    candidate: Backtest,
    previous: SkuChoice | None = None,
) -> PoolResult:
    """The cluster's pool on the backtest's fold origins. The newly trained model is a
    member whether or not the gate let it serve the whole cluster (the choice per SKU is
    the finer gate); its forecasts there are the gate's backtest of it."""
    origins = pool.origins(encoded.split.n_periods, encoded.horizon)
    neural = None
    if pool.options.neural:
        neural = backtest_forecasts(candidate, encoded, origins)
    panel = panel_of(encoded)
    return judge_pool(
        panel,
        origins,
        encoded.horizon,
        pool.season,
        pool.groups(panel),
        pool.options,
        pool.confidence,
        neural=neural,
        nonnegative=pool.nonnegative,
        judged_at=utc_now(),
        previous=previous,
    )


def previous_choice(
    paths: ServingPaths, cluster: str, encoded: EncodedPanel, log: logging.Logger = logger
) -> SkuChoice | None:
    """The pool's choice that served ``cluster`` so far, for its SKUs; an unreadable one
    counts as none."""
    try:
        return load_choice(paths.served_choice(cluster), encoded.skus)
    except ModelNotFoundError as error:
        log.warning(f"{error}; every SKU takes the new choice")
        return None


def previous_served_model(
    paths: ServingPaths, cluster: str, log: logging.Logger = logger
) -> ClusterModel | None:
    """The model that served ``cluster`` so far, if any; an unreadable one counts as none."""
    try:
        return load_cluster_model(paths.served_model(cluster))
    except ModelNotFoundError as error:
        log.warning(f"{error}; the gate falls back to seasonal naive")
        return None


@contextmanager
def _timed(seconds: dict[str, float], phase: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        seconds[phase] = seconds.get(phase, 0.0) + time.perf_counter() - started
