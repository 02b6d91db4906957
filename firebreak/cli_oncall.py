"""`firebreak oncall who`: who is on call now (or at a time), per schedule, team or escalation policy."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import click

from adapters.yamlfile import ConfigFileError
from firebreak.cli import _settings, main
from firebreak.terminal import echo
from schemas.alert import EARLIEST, LATEST


@main.group()
def oncall() -> None:
    """On-call schedules from the notifications file."""


def _at(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(text)
    except ValueError as exc:
        raise click.BadParameter(f"{text!r} is not a time; write RFC 3339, e.g. 2026-03-30T09:30:00+02:00") from exc
    if at.tzinfo is None:
        raise click.BadParameter(f"{text!r} has no time zone; add Z or an offset such as +02:00")
    if not EARLIEST <= at < LATEST:
        raise click.BadParameter(f"{text!r} is outside the years 1970 to 8999 that schedules are computed for")
    return at


@oncall.command("who")
@click.option("--team", default=None, help="A team: its escalation policy (named like the team) level by level.")
@click.option("--schedule", "schedule_name", default=None, help="One schedule.")
@click.option("--at", "at_text", default=None, help="When (RFC 3339 with a time zone; default now).")
@click.pass_context
def oncall_who(ctx: click.Context, team: str | None, schedule_name: str | None, at_text: str | None) -> None:
    """Who is on call: each schedule's person and until when; with --team, who each level pages."""
    from actions.loader import load_notifications
    from correlation.oncall import on_call

    settings = _settings(ctx)
    if settings.notifications_file is None:
        raise click.ClickException(
            "no notifications file is set: set FIREBREAK_NOTIFICATIONS_FILE to the file with the schedules and "
            "escalation policies (docs/guides/paging.md)"
        )
    try:
        config = load_notifications(settings.notifications_file)
    except ConfigFileError as exc:
        raise click.ClickException(str(exc)) from exc
    at = _at(at_text)
    if team is not None:
        policy = config.escalation_policies.get(team)
        if policy is None:
            known = ", ".join(sorted(config.escalation_policies)) or "none"
            raise click.ClickException(f"no escalation policy named {team!r} (policies: {known})")
        for number, level in enumerate(policy.levels, start=1):
            people = []
            for target in level.targets:
                if target.schedule:
                    shift = on_call(config.schedules[target.schedule], at)
                    people.append(f"{shift.user} (schedule {target.schedule} until {shift.end.isoformat()})")
                elif target.user:
                    people.append(target.user)
                else:
                    people.append(f"channel {target.channel}")
            after = (
                "the last level"
                if number == len(policy.levels)
                else f"the next level {level.delay.total_seconds():g}s later"
            )
            echo(f"level {number} ({after}): {', '.join(people)}")
        return
    names = [schedule_name] if schedule_name else sorted(config.schedules)
    if not names:
        raise click.ClickException("the notifications file has no schedules; see docs/guides/paging.md")
    for name in names:
        schedule = config.schedules.get(name)
        if schedule is None:
            raise click.ClickException(f"no schedule named {name!r} (schedules: {', '.join(sorted(config.schedules))})")
        shift = on_call(schedule, at)
        local = shift.end.astimezone(ZoneInfo(schedule.time_zone))
        echo(
            f"{name}: {shift.user}{' (override)' if shift.override else ''} until {local.isoformat()} ({schedule.time_zone})"
        )
