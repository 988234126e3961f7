"""Optuna tuning of a cluster's model: search spaces, pruning, studies that resume."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
import types
import typing
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import optuna
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from optuna.trial import FrozenTrial, TrialState

from forecast_assets.core.data.windows import EncodedPanel
from forecast_assets.core.errors import (
    ConfigurationError,
    InsufficientDataError,
    TrainingError,
)
from forecast_assets.core.models.registry import model_class, tunable_hyperparameters
from forecast_assets.core.plots import figure_png
from forecast_assets.core.training.cluster_model import train_cluster_model
from forecast_assets.core.training.trainer import TrainerCallback, TrainingConfig, seed_everything

logger = logging.getLogger(__name__)

SamplerName = Literal["tpe", "random", "cmaes"]
PrunerName = Literal["median", "hyperband", "none"]
Direction = Literal["minimize", "maximize"]

# The trial value: the best validation loss of the trial's training run (early stopping puts
# that epoch's weights back, so it is the loss of the model the trial would deliver).
METRICS = ("validation_loss",)
WINDOW = "window"
FAIL_REASON = "fail_reason"  # user attribute of a FAIL trial: why it failed
# TrainingConfig fields that describe the machine or the run, not the model's quality; the
# epochs of a trial come from TuningConfig.epochs and early stopping.
UNTUNABLE_TRAINING_FIELDS = frozenset({"device", "threads", "seed", "epochs", "loss_weights"})
# Finished trials: what counts towards TuningConfig.n_trials (FAIL and RUNNING do not).
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# A worker records a heartbeat this often; a RUNNING trial whose heartbeat is older than the
# grace period belonged to a process that died, and Optuna marks it FAIL.
HEARTBEAT_SECONDS = 60
GRACE_SECONDS = 180


@dataclass(frozen=True)
class TuningConfig:
    """How to tune. ``storage`` is an SQLAlchemy URL (``sqlite:////abs/path/optuna.db``,
    ``postgresql://user:password@host/db``) that keeps the study, so a stopped run resumes
    with its trials; ``None`` keeps it in memory. ``epochs`` per trial (``None``: the
    TrainingConfig's) is usually shorter than full training. ``timeout_seconds`` is checked
    between trials: a trial that has started runs to its end."""

    n_trials: int = 20
    timeout_seconds: float | None = None
    metric: str = "validation_loss"
    direction: Direction = "minimize"
    sampler: SamplerName = "tpe"
    pruner: PrunerName = "median"
    storage: str | None = None
    study_name: str = "forecast"
    seed: int = 42
    epochs: int | None = None
    # The median pruner compares with this many finished trials at least, and never prunes
    # in the first epochs (the learning-rate warm-up makes them noisy).
    pruner_startup_trials: int = 5
    pruner_warmup_epochs: int = 1

    def __post_init__(self) -> None:
        problems = []
        if self.n_trials < 1:
            problems.append(f"n_trials must be >= 1, got {self.n_trials}")
        if self.timeout_seconds is not None and self.timeout_seconds <= 0:
            problems.append(f"timeout_seconds must be > 0, got {self.timeout_seconds}")
        if self.metric not in METRICS:
            problems.append(f"unknown metric '{self.metric}'; available: {list(METRICS)}")
        elif self.direction == "maximize":
            problems.append(f"metric '{self.metric}' is a loss: direction must be 'minimize'")
        if self.direction not in typing.get_args(Direction):
            problems.append(f"direction must be 'minimize' or 'maximize', got {self.direction!r}")
        if self.sampler not in typing.get_args(SamplerName):
            problems.append(
                f"unknown sampler '{self.sampler}'; available: {list(typing.get_args(SamplerName))}"
            )
        if self.pruner not in typing.get_args(PrunerName):
            problems.append(
                f"unknown pruner '{self.pruner}'; available: {list(typing.get_args(PrunerName))}"
            )
        if self.epochs is not None and self.epochs < 1:
            problems.append(f"epochs must be >= 1, got {self.epochs}")
        if self.pruner_startup_trials < 0 or self.pruner_warmup_epochs < 0:
            problems.append("pruner_startup_trials and pruner_warmup_epochs must be >= 0")
        if not self.study_name:
            problems.append("study_name must not be empty")
        if problems:
            raise ConfigurationError("tuning: " + "; ".join(problems))


# --- search space ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Categorical:
    """One of ``choices`` (None, bool, int, float or str: what Optuna can store)."""

    choices: tuple[Any, ...]

    def __post_init__(self) -> None:
        choices = tuple(self.choices)
        object.__setattr__(self, "choices", choices)
        if not choices:
            raise ConfigurationError("a categorical parameter needs at least one choice")
        odd = [c for c in choices if c is not None and not isinstance(c, bool | int | float | str)]
        if odd:
            raise ConfigurationError(
                f"categorical choices must be None, bool, int, float or str, got {odd}"
            )

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        return trial.suggest_categorical(name, self.choices)

    def candidates(self) -> list[Any] | None:
        return list(self.choices)

    def to_dict(self) -> dict[str, Any]:
        return {"choices": list(self.choices)}


@dataclass(frozen=True)
class IntRange:
    """An integer in [low, high] on a grid of ``step``; ``log`` samples on a log scale."""

    low: int
    high: int
    step: int = 1
    log: bool = False

    def __post_init__(self) -> None:
        if not all(_is_int(v) for v in (self.low, self.high, self.step)):
            raise ConfigurationError(
                f"an int range needs integer low, high and step, got {self.low}, {self.high}, "
                f"{self.step}"
            )
        if self.low > self.high:
            raise ConfigurationError(f"low ({self.low}) must not exceed high ({self.high})")
        if self.step < 1:
            raise ConfigurationError(f"step must be >= 1, got {self.step}")
        if self.log and (self.low < 1 or self.step != 1):
            raise ConfigurationError("a log int range needs low >= 1 and step 1")

    def suggest(self, trial: optuna.Trial, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, step=self.step, log=self.log)

    def candidates(self) -> list[int] | None:
        return list(range(self.low, self.high + 1, self.step))

    def to_dict(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "step": self.step, "log": self.log}


@dataclass(frozen=True)
class FloatRange:
    """A float in [low, high]; ``log`` samples on a log scale (for learning rates)."""

    low: float
    high: float
    log: bool = False
    step: float | None = None  # a grid of this spacing; not with log

    def __post_init__(self) -> None:
        if not all(_is_number(v) for v in (self.low, self.high)):
            raise ConfigurationError(
                f"a float range needs numeric low and high, got {self.low!r}, {self.high!r}"
            )
        object.__setattr__(self, "low", float(self.low))
        object.__setattr__(self, "high", float(self.high))
        if self.low > self.high:
            raise ConfigurationError(f"low ({self.low}) must not exceed high ({self.high})")
        if self.log and self.low <= 0:
            raise ConfigurationError(f"a log float range needs low > 0, got {self.low}")
        if self.step is not None and (self.log or not _is_number(self.step) or self.step <= 0):
            raise ConfigurationError("a float range's step must be > 0 and not used with log")

    def suggest(self, trial: optuna.Trial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=self.log, step=self.step)

    def candidates(self) -> None:
        return None  # not enumerable

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"low": self.low, "high": self.high, "log": self.log}
        if self.step is not None:
            out["step"] = self.step
        return out


Parameter = Categorical | IntRange | FloatRange


@dataclass(frozen=True)
class SearchSpace:
    """Named parameters to tune. A name is routed by what it is: a hyperparameter of the model
    family goes to the model options (these win over a TrainingConfig field of the same
    name), a TrainingConfig field (``learning_rate``, ``batch_size``, ``weight_decay``...) to
    the training settings, and ``window`` to the data."""

    parameters: Mapping[str, Parameter] = field(default_factory=dict)

    def __post_init__(self) -> None:
        parameters = dict(self.parameters)
        for name, parameter in parameters.items():
            if not isinstance(parameter, Categorical | IntRange | FloatRange):
                raise ConfigurationError(
                    f"search space parameter '{name}' must be a Categorical, IntRange or "
                    f"FloatRange, got {type(parameter).__name__}"
                )
        object.__setattr__(self, "parameters", parameters)

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any]) -> SearchSpace:
        """From plain data, as settings hold it: ``{"choices": [...]}`` is categorical,
        ``{"low": ..., "high": ..., "step": ..., "log": ...}`` is an int range when low, high
        (and step) are integers, else a float range."""
        if not isinstance(mapping, Mapping):
            raise ConfigurationError(
                f"a search space must be a mapping of name -> entry, got {type(mapping).__name__}"
            )
        return cls({str(name): _parse_entry(str(name), entry) for name, entry in mapping.items()})

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: parameter.to_dict() for name, parameter in self.parameters.items()}

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        return {name: parameter.suggest(trial, name) for name, parameter in self.items()}

    def items(self) -> Iterator[tuple[str, Parameter]]:
        return iter(self.parameters.items())

    def __contains__(self, name: object) -> bool:
        return name in self.parameters

    def __len__(self) -> int:
        return len(self.parameters)

    def resolved(
        self, model_type: str, base_options: Mapping[str, object] | None = None
    ) -> SearchSpace:
        """The space checked against ``model_type``: every name must be a model option of the
        family, a tunable TrainingConfig field or ``window``, and a value must fit its type
        (an int range for a float parameter becomes a float range: ``{low: 0, high: 1}`` for
        dropout means any float in between). Transformer families must only be able to
        propose a ``d_model`` divisible by ``n_heads``. Any problem is a ConfigurationError."""
        model_types = _model_types(model_type)
        training_types = _training_types()
        resolved: dict[str, Parameter] = {}
        for name, parameter in self.items():
            if name == WINDOW:
                expected: Any = int
            elif name in model_types:
                expected = model_types[name]
            elif name in training_types:
                expected = training_types[name]
            else:
                raise ConfigurationError(_unknown_message(name, model_type))
            resolved[name] = _fit_type(name, parameter, expected)
        if WINDOW in resolved and min(resolved[WINDOW].candidates() or [1]) < 1:
            raise ConfigurationError("search space: window must be >= 1")
        space = SearchSpace(resolved)
        _check_heads(space, model_type, base_options or {})
        return space


def _parse_entry(name: str, entry: Any) -> Parameter:
    if not isinstance(entry, Mapping):
        raise ConfigurationError(
            f"search space entry '{name}' must be a mapping such as {{choices: [...]}} or "
            f"{{low: ..., high: ...}}, got {entry!r}"
        )
    keys = set(entry)
    if "choices" in keys:
        if keys != {"choices"}:
            raise ConfigurationError(
                f"search space entry '{name}': 'choices' cannot be combined with "
                f"{sorted(keys - {'choices'})}"
            )
        choices = entry["choices"]
        if isinstance(choices, str | bytes) or not isinstance(choices, Sequence):
            raise ConfigurationError(
                f"search space entry '{name}': choices must be a list, got {choices!r}"
            )
        return _named(name, Categorical, tuple(choices))
    unknown = keys - {"low", "high", "step", "log"}
    if unknown or not {"low", "high"} <= keys:
        raise ConfigurationError(
            f"search space entry '{name}' needs 'choices' or 'low' and 'high' (optional "
            f"'step', 'log'); got keys {sorted(keys)}"
        )
    low, high, step, log = entry["low"], entry["high"], entry.get("step"), entry.get("log", False)
    for key, value in (("low", low), ("high", high), ("step", step)):
        if value is not None and not _is_number(value):
            hint = " (YAML reads 1e-4 as text: write 1.0e-4)" if isinstance(value, str) else ""
            raise ConfigurationError(
                f"search space entry '{name}': {key} must be a number, got {value!r}{hint}"
            )
    if not isinstance(log, bool):
        raise ConfigurationError(f"search space entry '{name}': log must be true or false")
    if _is_int(low) and _is_int(high) and (step is None or _is_int(step)):
        return _named(name, IntRange, low, high, 1 if step is None else step, log)
    return _named(name, FloatRange, low, high, log, step)


def _named(name: str, kind: type, *args: Any) -> Parameter:
    try:
        return kind(*args)
    except ConfigurationError as error:
        raise ConfigurationError(f"search space entry '{name}': {error}") from None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _model_types(model_type: str) -> dict[str, Any]:
    return {name: hint for name, (hint, _) in tunable_hyperparameters(model_type).items()}


def _training_types() -> dict[str, Any]:
    hints = typing.get_type_hints(TrainingConfig)
    return {
        f.name: hints[f.name]
        for f in dataclasses.fields(TrainingConfig)
        if f.name not in UNTUNABLE_TRAINING_FIELDS
    }


def _unknown_message(name: str, model_type: str) -> str:
    if name in UNTUNABLE_TRAINING_FIELDS:
        return f"search space: '{name}' cannot be tuned (it is set by the run, not searched)"
    return (
        f"search space: unknown parameter '{name}' for model type '{model_type}'; tunable: "
        f"model options {sorted(_model_types(model_type))}, training "
        f"{sorted(_training_types())} and '{WINDOW}'"
    )


def _fit_type(name: str, parameter: Parameter, expected: Any) -> Parameter:
    """``parameter`` checked against the type the model or the TrainingConfig declares."""
    kind = _numeric_kind(expected)
    if kind == "int":
        values = parameter.candidates()
        if values is None or not all(_is_int(v) for v in values):
            raise ConfigurationError(
                f"search space: '{name}' takes integers; give an int range or integer choices"
            )
    elif kind == "float":
        if isinstance(parameter, IntRange):
            step = None if parameter.step == 1 else float(parameter.step)
            return FloatRange(float(parameter.low), float(parameter.high), parameter.log, step)
        if isinstance(parameter, Categorical) and not all(map(_is_number, parameter.choices)):
            raise ConfigurationError(f"search space: '{name}' takes numbers, got {parameter}")
    elif not isinstance(parameter, Categorical):
        raise ConfigurationError(f"search space: '{name}' is not numeric; give it choices")
    elif typing.get_origin(expected) is Literal:
        allowed = typing.get_args(expected)
        wrong = [c for c in parameter.choices if c not in allowed]
        if wrong:
            raise ConfigurationError(
                f"search space: '{name}' choices {wrong} are not among {list(allowed)}"
            )
    elif expected in (bool, str):
        if not all(isinstance(c, expected) for c in parameter.choices):
            raise ConfigurationError(
                f"search space: '{name}' takes {expected.__name__} choices, got {parameter}"
            )
    else:
        raise ConfigurationError(f"search space: '{name}' ({expected}) cannot be tuned")
    return parameter


def _numeric_kind(expected: Any) -> str | None:
    members = set(typing.get_args(expected)) if _is_union(expected) else {expected}
    members.discard(type(None))
    if members == {int}:
        return "int"
    if float in members and members <= {int, float}:
        return "float"
    return None


def _is_union(expected: Any) -> bool:
    return typing.get_origin(expected) in (typing.Union, types.UnionType)


def _check_heads(space: SearchSpace, model_type: str, base_options: Mapping[str, object]) -> None:
    """Reject a space that could propose a ``d_model`` not divisible by ``n_heads``: cheaper
    and clearer than trials that fail, and TPE learns nothing from failed trials."""
    defaults = tunable_hyperparameters(model_type)
    if "n_heads" not in defaults or "d_model" not in defaults:
        return

    def values(name: str) -> list[Any] | None:
        if name in space:
            return space.parameters[name].candidates()
        return [base_options.get(name, defaults[name][1])]

    d_models, heads = values("d_model"), values("n_heads")
    if d_models is None or heads is None:
        return  # not enumerable: _fit_type has already rejected float ranges for these
    bad = sorted({(d, h) for d in d_models for h in heads if h < 1 or d % h})
    if bad:
        shown = ", ".join(f"d_model {d} / n_heads {h}" for d, h in bad[:5])
        raise ConfigurationError(
            f"search space for '{model_type}' can propose d_model not divisible by n_heads "
            f"({shown}{'...' if len(bad) > 5 else ''}); choose d_model among multiples of "
            f"every n_heads choice, e.g. {{choices: [32, 64, 128]}} with n_heads [2, 4]"
        )


def split_params(
    model_type: str, params: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], int | None]:
    """``params`` split into (model options, TrainingConfig overrides, window). A name that is
    none of these (a trial of an older search space) is left out."""
    model_names, training_names = set(_model_types(model_type)), set(_training_types())
    model = {k: v for k, v in params.items() if k in model_names}
    training = {k: v for k, v in params.items() if k in training_names and k not in model_names}
    window = params.get(WINDOW)
    return model, training, None if window is None else int(window)


def default_search_space(model_type: str, windows: Sequence[int] = ()) -> SearchSpace:
    """A modest space per family: width, depth, heads (where the family has attention),
    dropout, a log-scale learning rate and the batch size. ``windows`` adds the window length
    as a choice: pass candidates only when the data can be rebuilt for each of them.

    Every d_model choice is a multiple of every n_heads choice, so transformers never see an
    invalid pair."""
    model_class(model_type)  # an unknown family is a ModelNotFoundError here
    family: dict[str, Parameter] = {
        "standard": {
            "d_model": Categorical((32, 64, 128)),
            "n_heads": Categorical((2, 4)),
            "encoder_layers": IntRange(1, 3),
        },
        "advanced": {
            "d_model": Categorical((16, 32, 64)),
            "n_heads": Categorical((1, 2, 4)),
        },
        "lightweight": {
            "channels": Categorical((16, 32, 64)),
            "levels": IntRange(2, 5),
        },
        "mixer": {
            "d_model": Categorical((32, 48, 64)),
            "blocks": IntRange(1, 4),
        },
    }.get(model_type, {})
    parameters: dict[str, Parameter] = {
        **family,
        "dropout": FloatRange(0.0, 0.3),
        "learning_rate": FloatRange(1e-4, 3e-3, log=True),
        "batch_size": Categorical((128, 256, 512)),
    }
    if "dropout" not in tunable_hyperparameters(model_type):  # e.g. the ensemble
        del parameters["dropout"]
    if windows:
        parameters[WINDOW] = Categorical(tuple(int(w) for w in windows))
    return SearchSpace(parameters)


# --- tuning ----------------------------------------------------------------------------------


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
        return dataclasses.replace(base, **self.training_overrides())

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
    """A trial whose settings cannot train (model constructor refused them, loss became NaN,
    too little data for its window): the trial is FAIL and the study goes on."""


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
        trial_training = dataclasses.replace(training, epochs=tuning.epochs)
    datasets: dict[int | None, EncodedPanel] = {}

    def data(window: int | None) -> EncodedPanel:
        if window not in datasets:
            datasets[window] = encoded_for(window)
        return datasets[window]

    def objective(trial: optuna.Trial) -> float:
        model_params, training_params, window = split_params(model_type, space.suggest(trial))
        config = dataclasses.replace(trial_training, **training_params)
        # The model's initial weights come from the global generators: seeded, a trial's
        # value depends on its parameters only, not on which trials ran before it.
        seed_everything(config.seed)
        try:
            model = train_cluster_model(
                data(window),
                model_type,
                {**dict(base_options), **model_params},
                config,
                callbacks=[_Pruning(trial)],
            )
        except (ValueError, TrainingError, InsufficientDataError) as error:
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


# --- plot ------------------------------------------------------------------------------------


def optimization_history_plot(result: TuningResult) -> bytes:
    """Each trial's value (pruned ones at their last reported loss) and the running best of
    the completed trials, as a PNG."""
    figure = Figure(figsize=(6, 3.5), layout="constrained")
    axis = figure.subplots()
    history = result.history
    for state, style in (
        ("COMPLETE", {"color": "tab:blue", "marker": "o"}),
        ("PRUNED", {"color": "tab:grey", "marker": "x"}),
    ):
        rows = history[history["state"] == state] if len(history) else history
        if len(rows):
            axis.scatter(rows["number"], rows["value"], label=state.lower(), **style)
    complete = history[history["state"] == "COMPLETE"] if len(history) else history
    if len(complete):
        values = pd.Series(complete["value"].to_numpy())
        running = values.cummin() if result.direction == "minimize" else values.cummax()
        axis.step(complete["number"], running, where="post", color="tab:red", label="best so far")
        axis.legend(fontsize=8)
    else:
        axis.text(0.5, 0.5, "no completed trial", ha="center", va="center")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set(
        title=f"Tuning '{result.study_name}': best {result.best_value:.4g}",
        xlabel="trial",
        ylabel="validation loss",
    )
    return figure_png(figure)
