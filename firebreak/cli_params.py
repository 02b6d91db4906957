"""Option types of the `firebreak` command that parse what a user types with the same rules as files and the API."""

from __future__ import annotations

from datetime import timedelta

import click

from schemas.durations import parse_duration


class DurationParam(click.ParamType):
    """A duration option (`90s`, `5m`, `1h30m`, `2d`) as a timedelta, parsed and bounded by
    schemas.durations.parse_duration (at most 366 days); a bad value is a usage error (exit 2) that names
    the option and repeats the parser's reason and fix."""

    name = "duration"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> timedelta:
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DURATION = DurationParam()
