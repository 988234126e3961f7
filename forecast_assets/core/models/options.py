"""The hyperparameters of each model family as a frozen config: the ``model.<family>``
sections of the settings, checked when the settings load, without building a model.

One class per family, with the fields of its constructor (all arguments but the sizes the
data fixes and the keyword-only wiring) and the same defaults; a test holds the two to each
other (``forecast_assets_tests/core/test_model_options.py``). The constructors stay what the
core builds from, and they keep their own checks for callers that build models directly.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Self

from pydantic import Field, ValidationError, field_validator, model_validator

from forecast_assets.core.config import CoreConfig, describe_errors
from forecast_assets.core.models.advanced import validate_quantiles
from forecast_assets.core.models.ensemble import ENSEMBLE
from forecast_assets.core.models.standard import POSITIONAL_ENCODINGS

# What a hyperparameter means and which values make sense, once for every family that has
# it; the defaults differ per family and stay with each class.
DModel = Annotated[int, Field(ge=1, description="width of the hidden representation")]
Heads = Annotated[int, Field(ge=1, description="attention heads (d_model must divide by it)")]
Dropout = Annotated[float, Field(ge=0, le=1, description="dropout rate while training")]
StochasticDepth = Annotated[
    float, Field(ge=0, le=1, description="chance of skipping a residual block while training")
]
EmbeddingDim = Annotated[int, Field(ge=0, description="size of the learned SKU embedding")]
SkipSeasons = Annotated[
    int,
    Field(
        ge=1,
        description="seasons averaged by the linear path the network corrects (1 = seasonal naive)",
    ),
]
PatchLength = Annotated[int, Field(ge=1, description="periods per patch of the window")]
PatchStride = Annotated[int, Field(ge=1, description="periods between the starts of two patches")]


class ModelOptions(CoreConfig):
    """Hyperparameters of one model family."""


def _check_heads(d_model: int, n_heads: int) -> None:
    if d_model % n_heads:
        raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")


class StandardOptions(ModelOptions):
    """``StandardForecaster``."""

    section_name: ClassVar[str] = "model.standard"

    d_model: DModel = 64
    n_heads: Heads = 4
    encoder_layers: int = Field(
        2, ge=0, description="transformer encoder layers over the past window"
    )
    decoder_layers: int = Field(
        1, ge=0, description="decoder layers, one query per forecast period"
    )
    dim_feedforward: int = Field(
        128, ge=1, description="width of each transformer block's feed-forward layer"
    )
    dropout: Dropout = 0.1
    embedding_dim: EmbeddingDim = 16
    positional: str = Field(
        "sinusoidal",
        description="position encoding: sinusoidal | rope (rotary, on queries and keys)",
    )
    pre_norm: bool = Field(
        True, description="layer norm before attention and feed-forward (steadier training)"
    )
    film: bool = Field(
        True,
        description="condition on the SKU and its attributes by scale and shift (FiLM); "
        "off: add them",
    )
    stochastic_depth: StochasticDepth = 0.0
    improved_head: bool = Field(
        True, description="a hidden layer in the output head instead of one linear layer"
    )
    skip_seasons: SkipSeasons = 1

    @field_validator("positional")
    @classmethod
    def _known_positional(cls, value: str) -> str:
        if value not in POSITIONAL_ENCODINGS:
            raise ValueError(
                f"unknown positional encoding '{value}'; available: {POSITIONAL_ENCODINGS}"
            )
        return value

    @model_validator(mode="after")
    def _heads_fit(self) -> Self:
        _check_heads(self.d_model, self.n_heads)
        head_dim = self.d_model // self.n_heads
        if self.positional == "rope" and head_dim % 2:
            raise ValueError(
                f"rope needs an even head dimension, got d_model / n_heads = {head_dim}"
            )
        return self


class AdvancedOptions(ModelOptions):
    """``AdvancedForecaster``."""

    section_name: ClassVar[str] = "model.advanced"

    d_model: DModel = 32
    n_heads: Heads = 4
    patch_length: PatchLength = 8
    patch_stride: PatchStride = 4
    moving_average: int = Field(
        7, ge=1, description="window of the moving average that splits trend from the rest"
    )
    dropout: Dropout = 0.1
    stochastic_depth: StochasticDepth = 0.0
    embedding_dim: EmbeddingDim = 8
    quantiles: tuple[float, ...] = Field(
        (0.1, 0.5, 0.9),
        description="quantile heads trained with the pinball loss; their outer pair gives the "
        "interval",
    )
    skip_seasons: SkipSeasons = 1

    @field_validator("quantiles")
    @classmethod
    def _valid_quantiles(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        return validate_quantiles(value)  # the model's own rule

    @model_validator(mode="after")
    def _heads_fit(self) -> Self:
        _check_heads(self.d_model, self.n_heads)
        return self


class LightweightOptions(ModelOptions):
    """``LightweightForecaster``."""

    section_name: ClassVar[str] = "model.lightweight"

    channels: int = Field(32, ge=1, description="channels of each temporal convolution")
    levels: int = Field(
        4, ge=0, description="dilated convolution levels (the receptive field doubles per level)"
    )
    kernel_size: int = Field(3, ge=1, description="width of each convolution kernel")
    dropout: Dropout = 0.1
    embedding_dim: EmbeddingDim = 8
    skip_seasons: SkipSeasons = 1


class MixerOptions(ModelOptions):
    """``MixerForecaster``."""

    section_name: ClassVar[str] = "model.mixer"

    d_model: DModel = 48
    blocks: int = Field(
        3, ge=0, description="mixer blocks, each mixing across patches and then across channels"
    )
    patch_length: PatchLength = 7
    patch_stride: PatchStride = 7
    expansion: int = Field(
        2, ge=1, description="widening factor of the mixer's feed-forward layers"
    )
    dropout: Dropout = 0.1
    stochastic_depth: StochasticDepth = 0.05
    embedding_dim: EmbeddingDim = 16
    skip_seasons: SkipSeasons = 1


# The families an ensemble can average.
TRAINABLE_OPTIONS: dict[str, type[ModelOptions]] = {
    "standard": StandardOptions,
    "advanced": AdvancedOptions,
    "lightweight": LightweightOptions,
    "mixer": MixerOptions,
}


class EnsembleOptions(ModelOptions):
    """``EnsembleForecaster``."""

    section_name: ClassVar[str] = "model.ensemble"

    members: tuple[str, ...] = Field(
        ("lightweight", "mixer"), description="model families averaged by the ensemble"
    )
    member_options: dict[str, dict[str, Any]] | None = Field(
        None, description="hyperparameters per member; empty = each family's own section"
    )

    @model_validator(mode="after")
    def _members_fit(self) -> Self:
        unknown = [name for name in self.members if name not in TRAINABLE_OPTIONS]
        if unknown:
            raise ValueError(
                f"ensemble members {unknown} are not trainable model families: "
                f"{list(TRAINABLE_OPTIONS)}"
            )
        if len(self.members) < 2 or len(set(self.members)) != len(self.members):
            raise ValueError(
                f"an ensemble needs two or more different families, got {self.members}"
            )
        # Options of a family that is not a member go unused, as in the model itself.
        for name, options in (self.member_options or {}).items():
            if name not in self.members:
                continue
            try:
                TRAINABLE_OPTIONS[name].model_validate(options)
            except ValidationError as error:
                raise ValueError(f"member_options.{name}: {describe_errors(error)}") from None
        return self


MODEL_OPTIONS: dict[str, type[ModelOptions]] = {**TRAINABLE_OPTIONS, ENSEMBLE: EnsembleOptions}
