"""Field types the YAML files share: the strict base model, durations as written, and secret references.

They sit below `schemas/runbook.py`, `schemas/steps/` and `schemas/channels/`, which all use them, so those
modules can import them without importing each other.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
)

from schemas.durations import parse_duration

SECRET_NAME = r"^[A-Z][A-Z0-9_]{0,62}$"


class Spec(BaseModel):
    """Base of what an author writes: unknown keys are errors (a typo is not ignored), values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _duration(value: object) -> timedelta:
    return parse_duration(value)


Duration = Annotated[timedelta, BeforeValidator(_duration), PlainSerializer(lambda d: f"{d.total_seconds():g}s")]
"""A duration written as Prometheus does (`30s`, `5m`, `1h30m`; schemas/durations.py), serialised as `<seconds>s`."""


class SecretRef(Spec):
    """A value taken from a secret at run time; it never appears in results, logs or dry runs."""

    secret: str = Field(
        pattern=SECRET_NAME, description="Name of the secret: env FIREBREAK_SECRET_<NAME> or file <secrets_dir>/<NAME>."
    )
    format: str = Field("{}", description='How the secret is written into the value, e.g. "Bearer {}".')

    @field_validator("format")
    @classmethod
    def _one_slot(cls, value: str) -> str:
        if value.count("{}") != 1:
            raise ValueError('format must contain exactly one "{}" where the secret goes, e.g. "Bearer {}"')
        return value
