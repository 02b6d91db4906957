"""`firebreak runbook ...` (authoring, the kill switch) and `firebreak runs ...` (what ran, approvals)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from adapters.yamlfile import ConfigFileError
from firebreak.cli import API_URL, _api, _print_list, _settings, main
from firebreak.settings import Settings
from firebreak.terminal import echo, echo_json
from schemas import Alert, Incident, IncidentEventKind
from schemas.runbook import ResultKind, RunStatus


@main.group()
def runbook() -> None:
    """Runbooks: lint and try them; pause and resume every run (the kill switch)."""


main.add_command(runbook, name="runbooks")


def _lint_env(settings: Settings) -> Any:
    from actions.command import CommandPolicy
    from actions.lint import LintEnv
    from actions.loader import load_notifications
    from actions.outbound import AllowList
    from adapters.secrets import Secrets

    try:
        channels = frozenset(load_notifications(settings.notifications_file).channels)
    except ConfigFileError as exc:
        raise click.ClickException(str(exc)) from exc
    return LintEnv(
        AllowList.parse(settings.actions_allowed_hosts, settings.actions_allow_private_addresses),
        CommandPolicy.parse(settings.actions_allowed_commands),
        Secrets(settings.secrets_dir),
        channels,
    )


def _channel_problems(settings: Settings) -> list[str]:
    """What each channel of the notifications file would fail on without sending anything (each channel kind's
    `lint`: hosts off the allow-list, secrets not set, email without SMTP), as `file: channels.<name>: problem`."""
    from actions.channels.base import ChannelLintEnv
    from actions.channels.registry import kind_of
    from actions.loader import load_notifications
    from actions.outbound import AllowList
    from adapters.secrets import Secrets

    if settings.notifications_file is None:
        return []
    try:
        config = load_notifications(settings.notifications_file)
    except ConfigFileError as exc:
        raise click.ClickException(str(exc)) from exc
    env = ChannelLintEnv(
        AllowList.parse(settings.actions_allowed_hosts, settings.actions_allow_private_addresses),
        Secrets(settings.secrets_dir),
        settings.smtp_host is not None,
    )
    return [
        f"{settings.notifications_file}: channels.{name}: error: {problem}"
        for name, spec in config.channels.items()
        for problem in kind_of(spec).lint(spec, env)
    ]


@runbook.command("lint")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.pass_context
def runbook_lint(ctx: click.Context, paths: tuple[Path, ...]) -> None:
    """Check runbooks (default: the runbooks_dir setting): schema, templates, secrets, allow-lists, dead steps;
    and the channels of the notifications file (notifications_file setting): hosts off the allow-list, secrets
    not set, email without an SMTP server."""
    from actions.lint import lint

    settings = _settings(ctx)
    targets = list(paths) or ([settings.runbooks_dir] if settings.runbooks_dir else [])
    if not targets:
        raise click.ClickException("no runbooks given; pass a folder or file, or set FIREBREAK_RUNBOOKS_DIR")
    findings = lint(targets, _lint_env(settings))
    for finding in findings:
        echo(str(finding), err=True)
    channel_problems = _channel_problems(settings)
    for problem in channel_problems:
        echo(problem, err=True)
    errors = sum(1 for f in findings if f.level == "error") + len(channel_problems)
    warnings = len(findings) - errors + len(channel_problems)
    echo(f"{errors} error(s), {warnings} warning(s)")
    if errors:
        ctx.exit(1)


def _incident_from_alerts(alerts: list[Alert], settings: Settings) -> Incident:
    """The incident the live pipeline would open for these alerts, by the configured policies."""
    from correlation.engine import Engine, State
    from correlation.projection import project

    engine = Engine(settings.load_rules())
    state = State()
    events = []
    now = max(a.received_at for a in alerts)
    for alert in alerts:
        state, out = engine.apply(state, alert, alert.received_at)
        events += out
    state, out = engine.tick(state, now + timedelta(hours=1))
    events += out
    incident: Incident | None = None
    for event in events:
        if incident is None and event.kind is IncidentEventKind.opened:
            incident = project(None, event)
        elif incident is not None and event.incident_id == incident.id:
            incident = project(incident, event) or incident
    if incident is None:
        raise click.ClickException("these alerts open no incident (all resolved, silenced or inhibited?)")
    return incident


def _read_alerts(path: Path, settings: Settings) -> list[Alert]:
    from ingest.adapters import parse_alertmanager, parse_generic
    from ingest.errors import IngestError

    body = path.read_bytes()
    now = datetime.now(UTC)
    ignore = frozenset(settings.fingerprint_ignore_labels)
    try:
        looks_am = isinstance(json.loads(body), dict) and "alerts" in json.loads(body)
        parse = parse_alertmanager if looks_am else parse_generic
        return parse(body, now, settings.max_alerts_per_request, ignore, bounds=None).alerts  # a sample: any time
    except (IngestError, ValueError) as exc:
        message = exc.message if isinstance(exc, IngestError) else str(exc)
        raise click.ClickException(f"{path}: {message}") from exc


@runbook.command("test")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--alert",
    "alert_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Alerts (Alertmanager webhook or generic JSON) that open the incident.",
)
@click.option(
    "--trigger",
    type=click.Choice(["opened", "escalated", "severity_changed", "resolved"]),
    default="opened",
    show_default=True,
)
@click.option("--dry-run", is_flag=True, help="Show each step as it would run; execute nothing.")
@click.pass_context
def runbook_test(ctx: click.Context, path: Path, alert_file: Path, trigger: str, dry_run: bool) -> None:
    """Which runbooks these alerts' incident triggers, their params, and each step (run for real unless --dry-run)."""
    from actions.loader import load_runbooks
    from actions.matching import context, render_params, triggered
    from actions.templates import RenderError
    from schemas import IncidentEvent
    from schemas.runbook import Run, Trigger

    settings = _settings(ctx)
    try:
        runbooks = load_runbooks(path)
    except ConfigFileError as exc:
        raise click.ClickException(str(exc)) from exc
    incident = _incident_from_alerts(_read_alerts(alert_file, settings), settings)
    rules = settings.load_rules()
    event = IncidentEvent(
        event_id="test",
        kind=IncidentEventKind.opened,
        incident_id=incident.id,
        correlation_key=incident.correlation_key,
        group_labels=incident.group_labels,
        seq=1,
        at=incident.opened_at,
        severity=incident.severity,
    )
    matched = triggered(runbooks, event, incident, rules.topology, rules.service_label, Trigger(trigger))
    echo(
        f"incident {incident.id}: {incident.title} (severity {incident.severity or '-'}, "
        f"{incident.alert_count} alert(s))"
    )
    skipped = [r.name for r in runbooks if r not in matched]
    if skipped:
        echo(f"not matching: {', '.join(skipped)}")
    if not matched:
        echo("no runbook matches")
        return
    failed = False
    for rb in matched:
        now = datetime.now(UTC)
        run = Run(
            id=f"test-{rb.name}",
            runbook=rb.name,
            incident_id=incident.id,
            trigger=Trigger(trigger),
            trigger_event_id="test",
            created_at=now,
            updated_at=now,
        )
        echo()
        echo(f"== {rb.name} (owner {rb.owner}){' [dry run]' if dry_run else ''}")
        try:
            run = run.model_copy(
                update={"params": render_params(rb, context(incident, rules.topology, rules.service_label, run))}
            )
        except RenderError as exc:
            echo(f"  params: FAILED: {exc}")
            failed = True
            continue
        for name, value in run.params.items():
            echo(f"  params.{name} = {value!r}")
        failed |= asyncio.run(_try_steps(settings, rb, run, incident, rules, dry_run))
    if failed:
        ctx.exit(1)


async def _try_steps(settings: Settings, rb: Any, run: Any, incident: Incident, rules: Any, dry_run: bool) -> bool:
    """The run on the executor's core, on a virtual clock (correlation/run_simulation.py): each step rendered and
    shown, and run for real unless `dry_run`. Approval, wait and resolve are not run outside a worker (counted as
    succeeded); a risk gate counts as approved. Returns whether the run failed."""
    from actions.matching import context
    from actions.runner import Placeholder, Runner, describe
    from actions.steps.registry import kind_of
    from actions.templates import RenderError, evaluate
    from correlation import runs
    from correlation.run_simulation import RunSimulation
    from firebreak.runtime import Outbound, services
    from schemas.runbook import StepStatus

    runner = Runner(services(settings, Outbound.from_settings(settings)))
    simulation = RunSimulation(rb, run, datetime.now(UTC))
    failed = False
    try:
        while (need := simulation.need) is not None:
            if isinstance(need, runs.RenderParams):  # rendered and shown by the caller
                simulation.answer(runs.ParamsRendered(run.params))
                continue
            step = simulation.step(need.step_id)
            ctx = context(incident, rules.topology, rules.service_label, simulation.seen_by(step.id))
            try:
                if isinstance(need, runs.AskWhen):
                    assert step.when is not None
                    said = simulation.answer(runs.WhenAnswered(step.id, evaluate(step.when, ctx)))
                    if any(isinstance(o, runs.Record) and o.kind is ResultKind.step_skipped for o in said):
                        echo(f"  [{step.id}] skipped (when: {step.when})")
                    continue
                shown = describe(step, ctx)
            except RenderError as exc:
                echo(f"  [{step.id}] FAILED to render: {exc}")
                failed = True
                break
            echo(f"  [{step.id}] {json.dumps(shown, ensure_ascii=False)}")
            if dry_run:
                ran = runs.StepRan(step.id, StepStatus.succeeded, Placeholder(f"steps.{step.id}.output"))
            elif not kind_of(step).runs_in_test:
                echo(f"      not run outside a worker ({step.action}); counted as succeeded")
                ran = runs.StepRan(step.id, StepStatus.succeeded, {"decision": "approve", "by": "runbook test"})
            else:
                now = datetime.now(UTC)
                outcome = await runner.run(
                    step,
                    ctx,
                    run_id=run.id,
                    incident_id=incident.id,
                    actor=f"runbook:{rb.name}",
                    started_at=now,
                    now=now,
                )
                echo(
                    f"      {outcome.status.value} after {outcome.attempts} attempt(s)"
                    f"{': ' + outcome.error if outcome.error else ''}"
                )
                if outcome.output is not None:
                    echo(f"      output: {json.dumps(outcome.output, ensure_ascii=False)[:2000]}")
                ran = runs.StepRan(
                    step.id, outcome.status, outcome.output, outcome.error, outcome.attempts, outcome.wake_at
                )
            simulation.answer(ran, datetime.now(UTC))
            end = simulation.end
            if isinstance(end, runs.Finish) and end.step_id == step.id and end.run.status is not RunStatus.succeeded:
                failed = True
                echo(f"      on_failure: {step.on_failure.value}; the run stops here")
    finally:
        await runner.s.http.close()
    return failed


@runbook.command("pause")
@click.option("--actor", required=True, help="Who pulls the switch (recorded).")
@API_URL
@click.pass_context
def runbook_pause(ctx: click.Context, actor: str, url: str | None) -> None:
    """Kill switch: no runbook step starts until `resume` (a step already running finishes)."""
    answer = _api(ctx, "POST", "/api/v1/runbooks/pause", url, {"actor": actor})
    echo(f"runbooks paused by {answer['paused']['by']} at {answer['paused']['at']}")


@runbook.command("resume")
@API_URL
@click.pass_context
def runbook_resume(ctx: click.Context, url: str | None) -> None:
    """Let runbooks run again; paused runs continue where they stopped."""
    _api(ctx, "POST", "/api/v1/runbooks/resume", url, {})
    echo("runbooks resumed")


@main.group()
def runs() -> None:
    """Runbook runs: what ran for which incident, and the approvals they wait for."""


@runs.command("list")
@click.option("--incident", default=None, help="Only this incident's runs.")
@click.option(
    "--status", default=None, type=click.Choice(["pending", "running", "waiting", "succeeded", "failed", "unknown"])
)
@click.option("--json", "as_json", is_flag=True)
@API_URL
@click.pass_context
def runs_list(ctx: click.Context, incident: str | None, status: str | None, as_json: bool, url: str | None) -> None:
    """Runs, newest first."""
    query = "&".join(f"{k}={v}" for k, v in (("incident", incident), ("status", status)) if v)
    found = _api(ctx, "GET", "/api/v1/runs" + (f"?{query}" if query else ""), url)["runs"]

    def line(r: dict[str, Any]) -> str:
        done = sum(1 for s in r["steps"].values() if s["status"] in ("succeeded", "skipped"))
        return (
            f"{r['id']}  {r['status']:<9} {r['runbook']:<24} {r['incident_id']}  {r['trigger']:<8} "
            f"steps done {done}  {r['created_at']}{'  ' + r['error'] if r.get('error') else ''}"
        )

    _print_list(found, as_json, "no runs", line)


@runs.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True)
@API_URL
@click.pass_context
def runs_show(ctx: click.Context, run_id: str, as_json: bool, url: str | None) -> None:
    """One run: params and every step's status, attempts, output and error."""
    r = _api(ctx, "GET", f"/api/v1/runs/{run_id}", url)
    if as_json:
        echo_json(r)
        return
    echo(
        f"{r['id']}  {r['status'].upper()}  runbook {r['runbook']}  incident {r['incident_id']}  trigger {r['trigger']}"
    )
    if r.get("error"):
        echo(f"error: {r['error']}")
    for name, value in r["params"].items():
        echo(f"  params.{name} = {value!r}")
    for step_id, s in r["steps"].items():
        echo(
            f"  [{step_id}] {s['status']:<9} {s['action']:<16} attempts {s['attempts']}"
            f"{'  error: ' + s['error'] if s.get('error') else ''}"
        )
        if s.get("output") is not None:
            echo(f"      output: {json.dumps(s['output'], ensure_ascii=False)[:1000]}")


def _decision(decision: str):  # type: ignore[no-untyped-def]
    @click.argument("run_id")
    @click.option("--actor", required=True, help="Who decides (recorded).")
    @click.option("--comment", default="")
    @API_URL
    @click.pass_context
    def decide(ctx: click.Context, run_id: str, actor: str, comment: str, url: str | None) -> None:
        answer = _api(ctx, "POST", f"/api/v1/runs/{run_id}/{decision}", url, {"actor": actor, "comment": comment})
        echo(f"{run_id}: step {answer['step']} {decision}d by {actor}")

    return decide


runs.command("approve", help="Approve the step a run waits at.")(_decision("approve"))
runs.command("reject", help="Reject the step a run waits at (its on_failure applies).")(_decision("reject"))
