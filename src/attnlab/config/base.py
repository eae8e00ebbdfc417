"""The base of every config section, and the helpers the section modules share."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

PositiveInt = Annotated[int, Field(gt=0)]


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, assignment is validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def require_tag(key: str, default: str | None = None):
    """Before-validator for a tagged union: fill a default tag or name the missing key."""

    def check(value):
        if isinstance(value, dict) and key not in value:
            if default is None:
                raise ValueError(f"missing '{key}' (which kind of section this is)")
            value = {key: default, **value}
        return value

    return BeforeValidator(check)
