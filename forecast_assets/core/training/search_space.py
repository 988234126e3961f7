"""The search-space language of tuning: which hyperparameters to try and in which ranges.

Parameters (categorical choices, int and float ranges) are read from settings' plain data,
checked against a model family's hyperparameters and the TrainingConfig fields, and split back
into model options, training overrides and the window. Optuna itself is only needed by the
study runner (``tuning``); here it appears in annotations alone, so settings can import this
module without loading Optuna.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from forecast_assets.core.errors import ConfigurationError
from forecast_assets.core.models.registry import model_class, tunable_hyperparameters
from forecast_assets.core.training.trainer import TrainingConfig

if TYPE_CHECKING:
    import optuna

WINDOW = "window"
# TrainingConfig fields that describe the machine or the run, not the model's quality; the
# epochs of a trial come from TuningConfig.epochs and early stopping.
UNTUNABLE_TRAINING_FIELDS = frozenset({"device", "threads", "seed", "epochs", "loss_weights"})


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
    return {
        name: info.annotation
        for name, info in TrainingConfig.model_fields.items()
        if name not in UNTUNABLE_TRAINING_FIELDS
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
