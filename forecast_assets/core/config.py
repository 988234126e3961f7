"""The base of the core's configurations: frozen pydantic models that own their fields,
defaults, descriptions and checks. The settings (``forecast_assets.settings``) compose these
classes instead of repeating them, so a field is declared, defaulted and checked once."""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from forecast_assets.core.errors import ConfigurationError


class CoreConfig(BaseModel):
    """A configuration of a core component. Built directly, a wrong value is a
    ConfigurationError (the core's error); inside the settings the same checks run as part of
    the settings' own validation, which names the whole path of the field."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    # The settings section the config is known as, so that errors name a field the way a
    # settings file spells it (``data.encoding``).
    section_name: ClassVar[str] = ""

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            name = self.section_name or type(self).__name__
            raise ConfigurationError(
                f"invalid {name} settings: {describe_errors(error, self.section_name)}"
            ) from None

    # This __init__ only translates the error: marked like pydantic's own, it is not called
    # when a config is validated as a part of another (the settings), whose errors must stay
    # ValidationErrors that carry the whole path of the field.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "__dict__" not in state:
            # Pickled while these configs were dataclasses (a stored cluster_model asset holds
            # its TrainingConfig): the state is the fields alone.
            fields = {k: v for k, v in state.items() if k in type(self).model_fields}
            state = type(self).model_validate(fields).__getstate__()
        super().__setstate__(state)

    def updated(self, **changes: Any) -> Self:
        """A copy with ``changes``, checked like a new config (``model_copy(update=...)``
        checks nothing, and overrides often come from users: launch config, tuned values)."""
        if not changes:
            return self
        return type(self)(**{**self.model_dump(), **changes})


def describe_errors(error: ValidationError, prefix: str = "") -> str:
    """One part per invalid field: its dotted location, the reason and the value given."""
    parts = []
    for problem in error.errors():
        location = ".".join(str(part) for part in (prefix, *problem["loc"]) if part != "")
        given = problem["input"]
        parts.append(
            f"{location or '(top level)'}: {problem['msg']}"
            + (f" (got {given!r})" if not isinstance(given, dict) else "")
        )
    return "; ".join(parts)
