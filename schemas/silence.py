"""Silences and change events: what people tell Firebreak besides acknowledging."""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.matchers import MatchOp, normalize_matchers, parse_matcher_list


class Silence(BaseModel):
    """Alerts whose labels match every matcher are recorded but kept out of incidents from starts_at to ends_at."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str = Field(min_length=1, max_length=64)
    matchers: list[str] = Field(min_length=1, max_length=32)
    starts_at: AwareDatetime = Field(alias="startsAt")
    ends_at: AwareDatetime = Field(alias="endsAt")
    created_by: str = Field(min_length=1, max_length=128, alias="createdBy")
    comment: str = Field(min_length=1, max_length=2000)

    @field_validator("matchers")
    @classmethod
    def _parse(cls, value: list[str]) -> list[str]:
        return normalize_matchers(value)

    @model_validator(mode="after")
    def _ends_after_start(self) -> Silence:
        # Equal times are an expired silence: expiring one that has not started sets both to now, as Alertmanager does.
        if self.ends_at < self.starts_at:
            raise ValueError("endsAt must not be before startsAt")
        return self


def refuse_silencing_everything(matchers: list[str]) -> list[str]:
    """Alertmanager's rule for a new silence (silence/silence.go validateSilence): at least one matcher must not match
    the empty string, else the silence would hide every alert. Only `=` and `=~` can match it, as there.

    Takes and returns matcher texts (entries may be sets); raises ValueError giving the reason and the fix.
    """
    found = parse_matcher_list(matchers)
    if all(m.op in (MatchOp.eq, MatchOp.re) and m.matches_value("") for m in found):
        shown = ", ".join(str(m) for m in found) or "none"
        raise ValueError(
            f"at least one matcher must not match the empty string (matchers: {shown}); each of these "
            "also matches alerts without the label, so the silence would hide every alert: add a matcher "
            'that names what to silence, e.g. service="checkout"'
        )
    return matchers


class SilenceFile(BaseModel):
    """A file of silences (`silences:` list), as `firebreak replay --silences` reads it."""

    model_config = ConfigDict(extra="forbid")

    silences: list[Silence] = []

    @field_validator("silences")
    @classmethod
    def _each_names_what_it_silences(cls, value: list[Silence]) -> list[Silence]:
        for silence in value:
            refuse_silencing_everything(silence.matchers)
        return value


class ChangeKind(StrEnum):
    deploy = "deploy"
    config = "config"
    feature_flag = "feature_flag"
    infrastructure = "infrastructure"
    other = "other"


class ChangeEvent(BaseModel):
    """A change to a service (deploy, config, feature flag): a suspect for incidents that open soon after."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str = Field(min_length=1, max_length=64)
    service: str = Field(min_length=1, max_length=128)
    kind: ChangeKind = ChangeKind.deploy
    summary: str = Field(min_length=1, max_length=500)
    author: str = Field("", max_length=128)
    url: str = Field("", max_length=2048)
    at: AwareDatetime
