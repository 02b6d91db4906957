"""The `command` step: one allow-listed program with an argv list, never a shell (actions/steps/command.py)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator

from schemas.fields import Spec
from schemas.steps.base import Step


class CommandSpec(Spec):
    argv: list[str] = Field(
        min_length=1, max_length=128, description="Program and arguments; each item is one argument."
    )
    cwd: str | None = Field(None, description="Working directory (a template); default: the worker's.")
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Environment variables (values are templates), added to PATH and LANG; the worker's own "
        "environment is not passed on.",
    )

    @field_validator("argv")
    @classmethod
    def _program_literal(cls, value: list[str]) -> list[str]:
        if "{{" in value[0] or "{%" in value[0]:
            raise ValueError("argv[0], the program, must be written literally, not templated")
        return value


class CommandStep(Step):
    """A step that runs one allow-listed program with an argv list, never a shell: `command: {argv, cwd, env}`."""

    action: ClassVar[str] = "command"
    command: CommandSpec
