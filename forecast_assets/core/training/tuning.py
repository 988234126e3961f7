"""The Optuna study runner: tunes a cluster's model over a search space, prunes, resumes.

The search space itself is described in ``search_space``; this module runs the studies.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from forecast_assets.core.data.windows import EncodedPanel
from forecast_assets.core.errors import (
    ConfigurationError,
    InsufficientDataError,
    TrainingError,
)
from forecast_assets.core.training.cluster_model import train_cluster_model
from forecast_assets.core.training.search_space import (
    SearchSpace,
    default_search_space,
    split_params,
)
from forecast_assets.core.training.trainer import TrainerCallback, TrainingConfig, seed_everything
from forecast_assets.core.training.tuning_config import TuningConfig

logger = logging.getLogger(__name__)

FAIL_REASON = "fail_reason"  # user attribute of a FAIL trial: why it failed
# Finished trials: what counts towards TuningConfig.n_trials (FAIL and RUNNING do not).
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# A worker records a heartbeat this often; a RUNNING trial whose heartbeat is older than the
# grace period belonged to a process that died, and Optuna marks it FAIL.
HEARTBEAT_SECONDS = 60
GRACE_SECONDS = 180


@dataclass
class TuningResult:
    """The outcome of a study. ``n_trials`` counts the study's finished trials (COMPLETE and
    PRUNED, including earlier runs'), ``n_new`` the trials this call ran (failed ones too).
    ``history`` has one row per trial: number, state, value, epochs, seconds, params_<name>."""

    model_type: str
    best_params: dict[str, Any]
    best_value: float
    n_trials: int
    n_complete: int
    n_pruned: int
    n_failed: int
    n_new: int
    seconds: float
    study_name: str
    storage: str | None  # the URL with any password masked
    direction: str = "minimize"
    history: pd.DataFrame = field(default_factory=pd.DataFrame)

    def model_options(self, base_options: Mapping[str, object] | None = None) -> dict[str, object]:
        """``base_options`` with the best trial's model hyperparameters put over them."""
        return {**dict(base_options or {}), **split_params(self.model_type, self.best_params)[0]}

    def training_overrides(self) -> dict[str, Any]:
        return split_params(self.model_type, self.best_params)[1]

    def training_config(self, base: TrainingConfig) -> TrainingConfig:
        return base.updated(**self.training_overrides())

    @property
    def window(self) -> int | None:
        """The best window length, or None when the window was not tuned."""
        return split_params(self.model_type, self.best_params)[2]


TrialHook = Callable[[int, float | None, dict[str, Any], str], None]


class _Pruning(TrainerCallback):
    """Reports each epoch's validation loss to the trial and stops unpromising ones."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial

    def on_validation_end(self, epoch: int, validation_loss: float) -> None:
        self.trial.report(validation_loss, epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"validation loss {validation_loss:.4f} at epoch {epoch}")


class _TrialFailed(Exception):
    """A trial whose settings cannot train (model constructor or TrainingConfig refused them,
    loss became NaN, too little data for its window): the trial is FAIL and the study goes
    on."""


def tune_cluster(
    encoded_for: Callable[[int | None], EncodedPanel],
    model_type: str,
    base_options: Mapping[str, object],
    training: TrainingConfig,
    tuning: TuningConfig,
    space: SearchSpace | None = None,
    on_trial_end: TrialHook | None = None,
) -> TuningResult:
    """Search ``space`` (default: ``default_search_space(model_type)``) for the settings with
    the best validation loss of a ``model_type`` model, each trial training for
    ``tuning.epochs`` with early stopping and pruning.

    ``encoded_for(window)`` gives the data for a window length (None: the default one); each
    window is built once. With ``tuning.storage`` the study persists and a later call with
    the same ``study_name`` resumes it: only ``n_trials`` minus its finished trials (COMPLETE
    and PRUNED) run. FAIL trials do not count, nor do RUNNING trials (another worker's, or a
    crashed process's: Optuna marks those FAIL once their heartbeat is GRACE_SECONDS old).
    The sampler is seeded with ``seed`` plus the study's trial count, so a run is
    reproducible and a resumed run does not replay the first proposals.

    ``on_trial_end(number, value, params, state)`` is called after each trial of this call.
    """
    started = time.perf_counter()
    if space is None:
        space = default_search_space(model_type)
    if not len(space):
        raise ConfigurationError("the search space is empty: there is nothing to tune")
    space = space.resolved(model_type, base_options)
    trial_training = training
    if tuning.epochs is not None:
        trial_training = training.updated(epochs=tuning.epochs)
    datasets: dict[int | None, EncodedPanel] = {}

    def data(window: int | None) -> EncodedPanel:
        if window not in datasets:
            datasets[window] = encoded_for(window)
        return datasets[window]

    def objective(trial: optuna.Trial) -> float:
        model_params, training_params, window = split_params(model_type, space.suggest(trial))
        try:
            config = trial_training.updated(**training_params)
            # The model's initial weights come from the global generators: seeded, a trial's
            # value depends on its parameters only, not on which trials ran before it.
            seed_everything(config.seed)
            model = train_cluster_model(
                data(window),
                model_type,
                {**dict(base_options), **model_params},
                config,
                callbacks=[_Pruning(trial)],
            )
        except (ValueError, ConfigurationError, TrainingError, InsufficientDataError) as error:
            reason = f"{type(error).__name__}: {error}"
            trial.set_user_attr(FAIL_REASON, reason)  # kept in the storage with the trial
            raise _TrialFailed(reason) from error
        return model.training.best_validation_loss

    storage = _storage(tuning.storage)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial comes from here
    try:
        study = _study(storage, tuning, model_type)
        finished = len(study.get_trials(deepcopy=False, states=FINISHED))
        remaining = tuning.n_trials - finished
        new: list[int] = []

        def after_trial(study: optuna.Study, trial: FrozenTrial) -> None:
            new.append(trial.number)
            _log_trial(study, trial, tuning.n_trials)
            if on_trial_end is not None:
                on_trial_end(trial.number, trial.value, dict(trial.params), trial.state.name)

        if remaining > 0:
            logger.info(
                "tuning %s in study '%s': %d trials to run (%d finished before)",
                model_type,
                tuning.study_name,
                remaining,
                finished,
            )
            study.optimize(
                objective,
                n_trials=remaining,
                timeout=tuning.timeout_seconds,
                catch=(_TrialFailed,),
                # Stops when the study holds n_trials finished ones, also when other workers
                # share the storage.
                callbacks=[optuna.study.MaxTrialsCallback(tuning.n_trials, FINISHED), after_trial],
            )
        else:
            logger.info(
                "study '%s' already has %d finished trials: nothing to run",
                tuning.study_name,
                finished,
            )
        return _result(study, model_type, tuning, len(new), time.perf_counter() - started)
    finally:
        optuna.logging.set_verbosity(verbosity)
        if isinstance(storage, optuna.storages.RDBStorage):
            storage.remove_session()
            storage.engine.dispose()


def stored_tuning(tuning: TuningConfig, model_type: str) -> TuningResult | None:
    """What the persisted study found so far, without running a trial: None when there is
    no storage, no such study or no completed trial yet."""
    storage = _storage(tuning.storage)
    if storage is None:
        return None
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        try:
            study = optuna.load_study(study_name=tuning.study_name, storage=storage)
        except KeyError:
            return None
        if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            return None
        stored = study.user_attrs.get("model_type")
        if stored is not None and stored != model_type:
            return None  # tuned for another family: its parameters do not apply
        return _result(study, model_type, tuning, 0, 0.0)
    finally:
        optuna.logging.set_verbosity(verbosity)
        if isinstance(storage, optuna.storages.RDBStorage):
            storage.remove_session()
            storage.engine.dispose()


def _storage(url: str | None) -> optuna.storages.BaseStorage | None:
    if url is None:
        return None
    import sqlalchemy  # an Optuna dependency; parses the URL the way the storage will

    try:
        parsed = sqlalchemy.engine.make_url(url)
    except Exception as error:
        raise ConfigurationError(f"tuning storage {url!r} is not a database URL: {error}") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS
            )
    except Exception as error:
        raise ConfigurationError(
            f"tuning storage {mask_url(url)} cannot be opened: {error}"
        ) from error


def _study(
    storage: optuna.storages.BaseStorage | None, tuning: TuningConfig, model_type: str
) -> optuna.Study:
    study = optuna.create_study(
        storage=storage,
        study_name=tuning.study_name,
        load_if_exists=True,
        direction=tuning.direction,
        sampler=_sampler(tuning, offset=0),
        pruner=_pruner(tuning),
    )
    if study.direction.name.lower() != tuning.direction:
        raise ConfigurationError(
            f"study '{tuning.study_name}' exists with direction {study.direction.name.lower()}; "
            f"use another study_name to {tuning.direction}"
        )
    for key, value in (("model_type", model_type), ("metric", tuning.metric)):
        stored = study.user_attrs.get(key)
        if stored is None:
            study.set_user_attr(key, value)
        elif stored != value:
            raise ConfigurationError(
                f"study '{tuning.study_name}' was tuned with {key} '{stored}', not '{value}'; "
                "use another study_name"
            )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # A crashed process's RUNNING trials whose heartbeat is stale become FAIL now.
        optuna.storages.fail_stale_trials(study)
    if study.trials:
        study.sampler = _sampler(tuning, offset=len(study.trials))
    return study


def _sampler(tuning: TuningConfig, offset: int) -> optuna.samplers.BaseSampler:
    seed = tuning.seed + offset
    if tuning.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if tuning.sampler == "cmaes":
        try:
            import cmaes  # noqa: F401  (Optuna's CMA-ES sampler needs it)
        except ImportError:
            raise ConfigurationError(
                "sampler 'cmaes' needs the 'cmaes' package; install it or use 'tpe'"
            ) from None
        # CMA-ES handles numeric ranges; categorical choices fall back to a seeded TPE.
        return optuna.samplers.CmaEsSampler(
            seed=seed,
            independent_sampler=optuna.samplers.TPESampler(seed=seed),
            warn_independent_sampling=False,
        )
    return optuna.samplers.TPESampler(seed=seed)


def _pruner(tuning: TuningConfig) -> optuna.pruners.BasePruner:
    if tuning.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=tuning.pruner_startup_trials,
            n_warmup_steps=tuning.pruner_warmup_epochs,
        )
    if tuning.pruner == "hyperband":
        max_resource = tuning.epochs if tuning.epochs is not None else "auto"
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_resource)
    return optuna.pruners.NopPruner()


def _log_trial(study: optuna.Study, trial: FrozenTrial, n_trials: int) -> None:
    value = "-" if trial.value is None else f"{trial.value:.5g}"
    try:
        best = f"{study.best_value:.5g} (#{study.best_trial.number})"
    except ValueError:
        best = "-"  # no COMPLETE trial yet
    finished = len(study.get_trials(deepcopy=False, states=FINISHED))
    seconds = trial.duration.total_seconds() if trial.duration else 0.0
    reason = trial.user_attrs.get(FAIL_REASON, "") if trial.state == TrialState.FAIL else ""
    log = logger.warning if trial.state == TrialState.FAIL else logger.info
    log(
        "trial #%d %s value %s after %d epochs in %.1fs (%d/%d finished, best %s): %s%s",
        trial.number,
        trial.state.name,
        value,
        len(trial.intermediate_values),
        seconds,
        finished,
        n_trials,
        best,
        trial.params,
        f" ({reason})" if reason else "",
    )


def _result(
    study: optuna.Study, model_type: str, tuning: TuningConfig, n_new: int, seconds: float
) -> TuningResult:
    trials = study.get_trials(deepcopy=False)
    counts = {state: sum(t.state == state for t in trials) for state in TrialState}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        failures = [t.user_attrs.get(FAIL_REASON, "") for t in trials if t.state == TrialState.FAIL]
        raise TrainingError(
            f"tuning study '{tuning.study_name}' has no completed trial "
            f"({counts[TrialState.PRUNED]} pruned, {counts[TrialState.FAIL]} failed)"
            + (f"; first failure: {failures[0]}" if failures else "")
        )
    best = study.best_trial
    return TuningResult(
        model_type=model_type,
        best_params=dict(best.params),
        best_value=float(best.value),
        n_trials=counts[TrialState.COMPLETE] + counts[TrialState.PRUNED],
        n_complete=counts[TrialState.COMPLETE],
        n_pruned=counts[TrialState.PRUNED],
        n_failed=counts[TrialState.FAIL],
        n_new=n_new,
        seconds=seconds,
        study_name=study.study_name,
        storage=mask_url(tuning.storage),
        direction=tuning.direction,
        history=_history(trials),
    )


def _history(trials: Sequence[FrozenTrial]) -> pd.DataFrame:
    names = list(dict.fromkeys(name for t in trials for name in t.params))
    rows = [
        {
            "number": t.number,
            "state": t.state.name,
            "value": math.nan if t.value is None else t.value,
            "epochs": len(t.intermediate_values),
            "seconds": t.duration.total_seconds() if t.duration else math.nan,
            **{f"params_{name}": t.params.get(name) for name in names},
        }
        for t in trials
    ]
    columns = ["number", "state", "value", "epochs", "seconds"] + [f"params_{n}" for n in names]
    return pd.DataFrame(rows, columns=columns)


def mask_url(url: str | None) -> str | None:
    """``url`` with its password replaced by ``***``, for logs and metadata."""
    if url is None:
        return None
    import sqlalchemy

    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable storage URL>"  # it may hold a password: show none of it
