"""The `firebreak` command."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from adapters.logs import configure as configure_logs
from adapters.readmodel import STATUS_FILTERS
from adapters.redis_client import connect
from firebreak.cli_params import DURATION
from firebreak.settings import ConfigError, Settings, load_settings
from firebreak.terminal import echo, echo_json, escape
from schemas import CommandAction, Incident


def _settings(ctx: click.Context) -> Settings:
    settings = ctx.obj
    if settings is None:
        try:
            settings = ctx.obj = load_settings()
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from exc
        configure_logs(settings.log_level)
    return settings


class _Commands(click.Group):
    """Firebreak's commands; an error message may quote what a sender or user wrote (a file's content, a
    label), so each of its lines is escaped for the terminal like any other output."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            exc.message = "\n".join(escape(line) for line in exc.message.split("\n"))
            raise


@click.group(cls=_Commands)
@click.version_option(package_name="firebreak")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Firebreak: alerts in, incidents out."""
    ctx.obj = None


@main.command()
@click.pass_context
def ingest(ctx: click.Context) -> None:
    """Serve the ingest and read API over HTTP."""
    from firebreak.serve import run

    try:
        run(_settings(ctx))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.pass_context
def worker(ctx: click.Context) -> None:
    """Run a stream worker (dedup, grouping, read model)."""
    from firebreak.worker import run

    settings = _settings(ctx)
    sys.argv = [sys.argv[0]]  # Faust's worker parses argv; ours are already handled
    run(settings)


@main.group()
def topics() -> None:
    """Kafka topics."""


@topics.command("create")
@click.pass_context
def topics_create(ctx: click.Context) -> None:
    """Create Firebreak's topics and the workers' table changelogs (idempotent; waits for partition leaders)."""
    from kafka.errors import KafkaError

    from firebreak.topics import create_topics

    settings = _settings(ctx)
    try:
        reports = create_topics(settings)
    except KafkaError as exc:
        raise click.ClickException(
            f"Kafka at {settings.kafka_bootstrap} did not answer ({exc}); is it running? (make up)"
        ) from exc
    for report in reports:
        state = "created" if report.created else "exists"
        echo(f"{report.name:<16} {state:<8} partitions={report.partitions}")
        if report.problem:
            echo(f"  warning: {report.name} {report.problem}", err=True)
    if any(r.problem for r in reports):
        sys.exit(1)


@main.group()
def schemas() -> None:
    """Published JSON Schemas."""


@schemas.command("export")
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), default=Path("schemas/json"), show_default=True
)
@click.option("--check", is_flag=True, help="Exit 1 if the files on disk differ from the models, write nothing.")
def schemas_export(out: Path, check: bool) -> None:
    """Write the JSON Schema of every published model."""
    from schemas.export import render_all

    rendered = render_all()
    stale = [name for name, text in rendered.items() if not (out / name).is_file() or (out / name).read_text() != text]
    if check:
        if stale:
            raise click.ClickException(
                f"stale JSON Schemas in {out}: {', '.join(stale)}; run `firebreak schemas export`"
            )
        echo(f"{len(rendered)} JSON Schemas in {out} are current")
        return
    out.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.items():
        (out / name).write_text(text)
    echo(f"wrote {len(rendered)} JSON Schemas to {out} ({len(stale)} changed)")


@main.group()
def config() -> None:
    """Configuration."""


@config.command("docs")
def config_docs() -> None:
    """Print the table of every option (docs/reference/settings.md)."""
    from firebreak.reference import settings_table

    click.echo(settings_table())


@config.command("metrics")
def config_metrics() -> None:
    """Print the table of every Prometheus metric (docs/reference/metrics.md)."""
    from firebreak.reference import metrics_table

    click.echo(metrics_table())


@config.command("show")
@click.pass_context
def config_show(ctx: click.Context) -> None:
    """Print the effective settings, secrets masked."""
    click.echo(_settings(ctx).model_dump_json(indent=2))


@main.group()
def docs() -> None:
    """The documentation site's reference pages, generated from the code."""


@docs.command("generate")
@click.option("--check", is_flag=True, help="Exit 1 naming each page that differs from the code; write nothing.")
@click.option(
    "--root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="The repository checkout: where mkdocs.yml, docs/ and deploy/ are.",
)
def docs_generate(check: bool, root: Path) -> None:
    """Write the generated pages of docs/ (commands, HTTP API, JSON Schemas, settings, metrics, one page per
    alerting rule of deploy/prometheus/firebreak-rules.yml, one per channel kind and per step kind); exit 1 if a
    rule's runbook_url or mkdocs.yml's nav does not match them."""
    from firebreak.reference import DocsError, page_functions, problems, write

    if not (root / "mkdocs.yml").is_file():
        raise click.ClickException(f"no mkdocs.yml in {root}: run this in the repository's root or pass --root")
    try:
        stale = write(root, check=check)
        found = problems(root)
    except DocsError as exc:
        raise click.ClickException(str(exc)) from exc
    for problem in found:
        echo(f"problem: {problem}", err=True)
    if check and stale:
        raise click.ClickException(
            "pages that differ from the code: " + ", ".join(stale) + "; run `firebreak docs generate`"
        )
    if not check:
        echo(
            f"wrote {len(stale)} of {len(page_functions(root))} generated pages"
            + (f": {', '.join(stale)}" if stale else "")
        )
    else:
        echo(f"{len(page_functions(root))} generated pages are current")
    if found:
        ctx = click.get_current_context()
        ctx.exit(1)


@main.group()
def incidents() -> None:
    """Incidents in the read model."""


async def _with_store(settings: Settings, action):  # type: ignore[no-untyped-def]
    from adapters.readmodel import IncidentStore

    client = connect(settings.redis_url, "firebreak-cli")
    try:
        return await action(IncidentStore(client, settings.redis_prefix))
    finally:
        await client.aclose()


def _read(ctx: click.Context, action):  # type: ignore[no-untyped-def]
    from redis.exceptions import RedisError

    settings = _settings(ctx)
    try:
        return asyncio.run(_with_store(settings, action))
    except RedisError as exc:
        raise click.ClickException(
            f"Redis at {settings.redis_url} did not answer ({exc}); is it running? (make up)"
        ) from exc


def _print_list(items: list[Any], as_json: bool, empty: str, line: Any) -> None:
    """A listing command's output: JSON for scripts, else the line (or list of lines) `line` makes of each
    item (or `empty`); every line escaped for the terminal."""
    if as_json:
        echo_json(items)
    elif not items:
        echo(empty)
    else:
        for item in items:
            shown = line(item)
            for text in [shown] if isinstance(shown, str) else shown:
                echo(text)


def _when(incident: Incident) -> str:
    return incident.opened_at.strftime("%Y-%m-%d %H:%M:%S")


@incidents.command("list")
@click.option(
    "--status",
    type=click.Choice(STATUS_FILTERS),
    default="all",
    show_default=True,
    help="open = triggered or acknowledged.",
)
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON document, for scripts.")
@click.pass_context
def incidents_list(ctx: click.Context, status: str, limit: int, as_json: bool) -> None:
    """List incidents, newest first."""
    found: list[Incident] = _read(ctx, lambda store: store.list(status=status, limit=limit))
    if as_json:
        echo_json([i.model_dump(mode="json") for i in found])
        return
    if not found:
        echo("no incidents")
        return
    rows = [("ID", "STATUS", "SEVERITY", "OPENED (UTC)", "FIRING", "ALERTS", "TITLE")]
    rows += [
        (i.id, i.status.value, i.severity or "-", _when(i), str(i.firing_count), str(i.alert_count), i.title)
        for i in found
    ]
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]) - 1)]
    for row in rows:
        echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])


@incidents.command("show")
@click.argument("incident_id")
@click.option("--json", "as_json", is_flag=True, help="The incident as JSON, for scripts.")
@click.pass_context
def incidents_show(ctx: click.Context, incident_id: str, as_json: bool) -> None:
    """Show one incident: its alerts and timeline."""
    incident: Incident | None = _read(ctx, lambda store: store.get(incident_id))
    if incident is None:
        raise click.ClickException(f"no incident {incident_id}; `firebreak incidents list` shows the ids")
    if as_json:
        echo_json(incident.model_dump(mode="json"))
        return
    echo(f"{incident.id}  {incident.status.value.upper()}  {incident.severity or 'no severity'}  {incident.title}")
    echo(f"policy {incident.policy}, correlation key {incident.correlation_key}")
    echo(f"opened {incident.opened_at.isoformat()}")
    if incident.acknowledged_at:
        echo(f"acknowledged {incident.acknowledged_at.isoformat()} by {incident.acknowledged_by}")
    if incident.resolved_at:
        echo(f"resolved {incident.resolved_at.isoformat()} by {incident.resolved_by}")
    if incident.merged_into:
        echo(f"merged into {incident.merged_into}: its alerts are there now")
    if incident.merged_from:
        echo(f"merged in: {', '.join(incident.merged_from)}")
    if incident.split_from:
        echo(f"split from {incident.split_from}")
    if incident.split_into:
        echo(f"split off: {', '.join(incident.split_into)}")
    echo(f"alerts ({incident.firing_count} firing of {incident.alert_count}):")
    for alert in sorted(incident.alerts.values(), key=lambda a: a.starts_at):
        labels = ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
        echo(f"  {alert.fingerprint}  {alert.status.value:<8}  {labels}")
        for name, value in sorted(alert.annotations.items()):  # the latest the sender gave (GRP-27)
            echo(f"      {name}: {value}")
        if alert.generator_url:
            echo(f"      generatorURL: {alert.generator_url}")
    from adapters.action_log import ActionLog, NotificationLog

    settings = _settings(ctx)
    results = _read(ctx, lambda store: ActionLog(store.redis, settings.redis_prefix).list(incident.id))
    sent = _read(ctx, lambda store: NotificationLog(store.redis, settings.redis_prefix).list(incident.id))
    lines = []
    for entry in incident.timeline:
        who = f"by {entry.actor}" if entry.actor != "firebreak" else ""
        lines.append(
            (
                entry.at,
                f"  {entry.at.strftime('%H:%M:%S')}  #{entry.seq:<4} {entry.kind.value:<16} {entry.rule:<7} "
                f"{entry.fingerprint or ''} {who} {entry.detail}".rstrip(),
            )
        )
    for result in results:
        what = f"{result.runbook}{'/' + result.step_id if result.step_id else ''}"
        detail = result.error or (result.output.get("text", "") if isinstance(result.output, dict) else "")
        lines.append(
            (result.at, f"  {result.at.strftime('%H:%M:%S')}  runbook {result.kind.value:<16} {what} {detail}".rstrip())
        )
    for d in sent:
        level = f" level {d.level}" if d.level else ""
        who = f" {d.user}" if d.user else ""
        lines.append(
            (
                d.at,
                f"  {d.at.strftime('%H:%M:%S')}  notify  {d.kind.value:<16} {d.status.value}{level}{who} via "
                f"{d.channel} ({d.channel_type}){' after ' + str(d.attempts) + ' attempts' if d.attempts > 1 else ''}"
                f"{': ' + d.error if d.error else ''}",
            )
        )
    echo("timeline:")
    for _, line in sorted(lines, key=lambda pair: pair[0]):
        echo(line)


API_URL = click.option("--url", default=None, help="The Firebreak API (default: http://<ingest_host>:<ingest_port>).")


def _api(ctx: click.Context, method: str, path: str, url: str | None, body: object = None) -> Any:
    """Call the Firebreak API with the first configured token; a non-2xx answer becomes the CLI's error."""
    import requests

    settings = _settings(ctx)
    base = url or f"http://{settings.ingest_host}:{settings.ingest_port}"
    from ingest.auth import parse_entries

    # The most capable token configured here (entries may be `<scope>:<name>:<token>`).
    tokens = sorted(parse_entries([t.get_secret_value() for t in settings.ingest_tokens]), key=lambda t: -t[1].scope)
    headers = {"Authorization": f"Bearer {tokens[0][0].decode()}"} if tokens else {}
    try:
        response = requests.request(method, base + path, json=body, headers=headers, timeout=15)
    except requests.RequestException as exc:
        raise click.ClickException(f"the API at {base} did not answer ({exc}); is `firebreak ingest` running?") from exc
    is_json = response.headers.get("Content-Type", "").startswith("application/json")
    if response.status_code >= 300:
        if not is_json:
            raise click.ClickException(
                f"{response.status_code}: {escape(response.text)}"
            )  # its line breaks are data too
        answer = response.json()
        problems = answer.get("problems") or []
        lines = [f"{response.status_code}: {escape(str(answer.get('message')))}"]
        lines += [
            f"  {escape(str(p.get('field')))}: {escape(str(p.get('problem')))}"
            for p in problems[:20]
            if isinstance(p, dict)
        ]
        if len(problems) > 20:
            lines.append(f"  ... and {len(problems) - 20} more")
        if response.status_code == 401 and not tokens:
            lines.append("  no token is configured here: set FIREBREAK_INGEST_TOKENS (or FIREBREAK_INGEST_TOKENS_FILE)")
        raise click.ClickException("\n".join(lines))
    return response.json() if is_json else None


def _command(action: CommandAction):  # type: ignore[no-untyped-def]
    @click.argument("incident_id")
    @click.option("--actor", required=True, help="Who acts (recorded on the timeline).")
    @click.option("--comment", default="", help="Why; recorded on the timeline.")
    @API_URL
    @click.pass_context
    def command(ctx: click.Context, incident_id: str, actor: str, comment: str, url: str | None) -> None:
        verb = "ack" if action is CommandAction.acknowledge else "resolve"
        _api(ctx, "POST", f"/api/v1/incidents/{incident_id}/{verb}", url, {"actor": actor, "comment": comment})
        echo(f"{incident_id}: {action.value} accepted")

    return command


incidents.command("ack", help="Acknowledge an incident (through the API).")(_command(CommandAction.acknowledge))
incidents.command("resolve", help="Resolve an incident by hand (through the API).")(_command(CommandAction.resolve))


@incidents.command("merge")
@click.argument("incident_id")
@click.option("--into", required=True, help="The open incident of the same correlation key that takes its alerts.")
@click.option("--actor", required=True, help="Who acts (recorded on both timelines).")
@click.option("--comment", default="", help="Why; recorded on both timelines.")
@API_URL
@click.pass_context
def incidents_merge(ctx: click.Context, incident_id: str, into: str, actor: str, comment: str, url: str | None) -> None:
    """Merge an incident into another (through the API): it ends, its alerts join the other, paging stops for it."""
    _api(ctx, "POST", f"/api/v1/incidents/{incident_id}/merge", url, {"into": into, "actor": actor, "comment": comment})
    echo(f"{incident_id}: merge into {into} accepted")


@incidents.command("split")
@click.argument("incident_id")
@click.option(
    "--alert",
    "alerts",
    multiple=True,
    required=True,
    help="Fingerprint of an alert to move (`incidents show` lists them); repeat for more.",
)
@click.option("--actor", required=True, help="Who acts (recorded on both timelines).")
@click.option("--comment", default="", help="Why; recorded on both timelines.")
@API_URL
@click.pass_context
def incidents_split(
    ctx: click.Context, incident_id: str, alerts: tuple[str, ...], actor: str, comment: str, url: str | None
) -> None:
    """Split alerts off an incident into a new one (through the API), which pages on its own."""
    _api(
        ctx,
        "POST",
        f"/api/v1/incidents/{incident_id}/split",
        url,
        {"alerts": list(alerts), "actor": actor, "comment": comment},
    )
    echo(
        f"{incident_id}: split of {len(alerts)} alerts accepted; `firebreak incidents show {incident_id}` names the "
        "new incident once the worker applied it"
    )


@main.command()
@click.argument("alerts_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--policies",
    "policies_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Correlation policies (default: the policies_file setting, else the built-in default policy).",
)
@click.option(
    "--services",
    "services_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Service catalog for topology-aware policies (default: the services_file setting).",
)
@click.option(
    "--silences",
    "silences_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Silences in force during the stream (YAML: `silences:` list, as the API returns them).",
)
@click.option(
    "--changes",
    "changes_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Changes during the stream (JSON lines, as POST /api/v1/changes records them).",
)
@click.option(
    "--notifications",
    "notifications_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Escalation config: also run the pager on the replay's clock (routes, levels, on-call "
    "schedules, mutes, transient pauses; nobody acknowledges) and count who would be paged.",
)
@click.option(
    "--ack-after",
    "acked",
    type=DURATION,
    default=None,
    help="With --notifications: assume each incident is acknowledged this long after its first page (5m; at "
    "most 366d).",
)
@click.option("--json", "as_json", is_flag=True, help="The report and every incident with its alerts, as JSON.")
@click.option("--explain", is_flag=True, help="Also print each alert's decisions, as `firebreak explain` does live.")
@click.pass_context
def replay(
    ctx: click.Context,
    alerts_file: Path,
    policies_file: Path | None,
    services_file: Path | None,
    silences_file: Path | None,
    changes_file: Path | None,
    notifications_file: Path | None,
    acked: timedelta | None,
    as_json: bool,
    explain: bool,
) -> None:
    """Run a recorded alert stream (JSON lines) through the engine offline and report what would happen."""
    from actions.loader import load_notifications
    from adapters.yamlfile import ConfigFileError, load_yaml_model
    from correlation.engine import Engine, State
    from correlation.explain import print_alert
    from correlation.replay import Report, read_lines, suppression_of
    from correlation.replay import replay as run_replay
    from correlation.virtual_pager import VirtualPager
    from schemas import ChangeEvent, SilenceFile

    settings = _settings(ctx)
    overrides = {"policies_file": policies_file, "services_file": services_file}
    settings = settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    try:
        rules = settings.load_rules()
        silence_list = load_yaml_model(silences_file, SilenceFile).silences if silences_file else []
        escalation = load_notifications(notifications_file) if notifications_file else None
    except ConfigFileError as exc:
        raise click.ClickException(str(exc)) from exc
    if acked is not None and escalation is None:
        raise click.UsageError(
            "--ack-after models the people being paged: give the escalation config with --notifications too"
        )
    change_list = []
    if changes_file is not None:
        for number, line in enumerate(changes_file.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                change_list.append(ChangeEvent.model_validate_json(line))
            except ValueError as exc:
                raise click.ClickException(f"{changes_file}:{number}: not a change event ({exc})") from exc
    report = Report(decisions=[] if explain else None)

    def pager(engine: Engine, state: State) -> VirtualPager:
        assert escalation is not None
        return VirtualPager(
            escalation,
            rules.topology,
            rules.service_label,
            suppression_of(engine, state),
            report.decisions,
            ack_after=acked,
        )

    with alerts_file.open(encoding="utf-8", errors="replace") as handle:
        items = read_lines(handle, report, frozenset(settings.fingerprint_ignore_labels))
    with click.progressbar(
        length=len(items), label="replaying", file=sys.stderr, show_pos=True, show_percent=True
    ) as bar:

        def step() -> None:
            bar.update(1)

        run_replay(
            items,
            rules,
            on_alert=step,
            report=report,
            silences=silence_list,
            changes=change_list,
            pager=pager if escalation is not None else None,
        )
    summary = report.summary()
    for bad in report.bad_lines[:5]:
        echo(f"{alerts_file}:{bad.line}: skipped: {bad.problem}", err=True)
    stories = _stories(report.decisions) if report.decisions is not None else []
    if as_json:
        summary["incidents"] = [i.as_dict() for i in report.incidents.values()]
        if explain:
            summary["explain"] = stories
        echo_json(summary)
        return
    for story in stories:
        for text in print_alert(story):
            echo(text)
        echo("")
    echo(f"lines:             {summary['lines']} ({summary['bad_lines']} skipped)")
    echo(f"alerts in:         {summary['alerts_in']}")
    echo(f"distinct alerts:   {summary['distinct_alerts']}")
    echo(f"incidents opened:  {summary['incidents_opened']}")
    echo(f"noise reduction:   {summary['noise_reduction']:.1%}  (1 - incidents / alerts in)")
    echo(
        f"pages:             {summary['pages']}  (incidents paged: the first page of each escalation the simulated "
        "pager started; a reopened incident pages again"
        + ("" if escalation is not None else "; no --notifications: every incident pages once, nothing is routed away")
        + ")"
    )
    if "paging" in summary:
        paging = summary["paging"]
        who = (
            f"each incident acknowledged {acked.total_seconds():g}s after its first page"
            if acked is not None
            else "nobody acknowledging"
        )
        echo(
            f"levels paged, by the escalation config ({who}): {paging['pages']} (each level that went out, "
            "whatever number of recipients it reached); by level: "
            + ", ".join(f"{level} → {n}" for level, n in paging["by_level"].items())
        )
        echo(
            "  by recipient:     "
            + (", ".join(f"{who} {n}" for who, n in paging["by_recipient"].items()) or "none")
            + "  (people, and channels paged as such)"
        )
        echo(
            "  by escalation policy: "
            + (", ".join(f"{name} {n}" for name, n in paging["by_escalation_policy"].items()) or "none")
        )
    echo(f"notifications:     {summary['notifications']}  (first pages + severity changes + resolves)")
    echo("dedup:             " + ", ".join(f"{k} {v}" for k, v in sorted(summary["dedup"].items())))
    echo("per correlation policy:")
    for name, counts in summary["per_policy"].items():
        echo(
            f"  {name:<20} incidents {counts.get('incidents', 0):<6} pages {counts.get('pages', 0):<6} "
            f"notifications {counts.get('notifications', 0)}"
        )


def _stories(decisions: list[Any]) -> list[dict[str, Any]]:
    """Every alert's story from a whole decision log, in the order the alerts first appear."""
    from correlation.explain import alert_report, story

    order = list(dict.fromkeys(d.fingerprint for d in decisions if d.fingerprint))
    return [alert_report(fp, story(fp, decisions)) for fp in order]


@main.command()
@click.argument("alert", required=False)
@click.argument("more_labels", nargs=-1)
@click.option(
    "--incident",
    "incident_id",
    default=None,
    help="Explain an incident: why each alert is in it, why each page went out.",
)
@click.option("--json", "as_json", is_flag=True, help="The decisions as JSON, as the API returns them.")
@click.pass_context
def explain(
    ctx: click.Context, alert: str | None, more_labels: tuple[str, ...], incident_id: str | None, as_json: bool
) -> None:
    """Why was (or wasn't) someone paged: an alert's decisions as a timeline.

    ALERT is a fingerprint, or the alert's labels as `name=value` pairs (separated by spaces or commas), from
    which the fingerprint is computed as ingest does."""
    from adapters.decision_log import DecisionLog
    from correlation.explain import alert_report, incident_report, print_alert
    from correlation.fingerprint import fingerprint

    settings = _settings(ctx)

    def log(store: Any) -> DecisionLog:
        return DecisionLog.from_settings(store.redis, settings)

    if incident_id is not None:
        if alert:
            raise click.UsageError("give an alert or --incident, not both")
        decisions = _read(ctx, lambda store: log(store).for_incident(incident_id))
        if not decisions:
            raise click.ClickException(
                f"no decisions recorded for incident {incident_id} in the last "
                f"{settings.decision_retention_hours:g} hours; `firebreak incidents list` shows the ids"
            )
        report = incident_report(incident_id, decisions)
        if as_json:
            echo_json(report)
        for line in [] if as_json else report["text"]:
            echo(line)
        return
    if not alert:
        raise click.UsageError("give an alert's fingerprint or labels (name=value ...), or --incident ID")
    words = [w for part in (alert, *more_labels) for w in part.split(",") if w.strip()]
    if any("=" in w for w in words):
        pairs = [w.split("=", 1) for w in words]
        bad = [w for w, pair in zip(words, pairs) if len(pair) != 2 or not pair[0].strip()]
        if bad:
            raise click.UsageError(f"labels must be name=value; not {bad[0]!r}")
        labels = {k.strip(): v.strip().strip('"') for k, v in pairs}
        fp = fingerprint(labels, frozenset(settings.fingerprint_ignore_labels))
    else:
        if more_labels:
            raise click.UsageError("one fingerprint at a time")
        fp = alert
    decisions = _read(ctx, lambda store: log(store).story(fp))
    if not decisions:
        raise click.ClickException(
            f"no decisions recorded for alert {fp} in the last {settings.decision_retention_hours:g} "
            "hours; check the labels (all of them, as the source sends them) or the fingerprint"
        )
    report = alert_report(fp, decisions)
    if as_json:
        echo_json(report)
    for line in [] if as_json else print_alert(report):
        echo(line)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--verbose", "-v", is_flag=True, help="Also print what happened in passing fixtures.")
@click.pass_context
def check(ctx: click.Context, paths: tuple[Path, ...], verbose: bool) -> None:
    """Run rules-as-code fixtures (files, or every *.firebreak.yaml under folders) on a virtual clock through
    their policies, escalation config and runbooks; exit 1 if any expectation is not met."""
    from firebreak.check import check as run_check
    from firebreak.check import fixtures

    found = fixtures(list(paths))
    if not found:
        raise click.ClickException("no fixtures found: give YAML files, or folders holding *.firebreak.yaml")
    failed = 0
    for path in found:
        result = run_check(path)
        echo(f"{'PASS' if result.passed else 'FAIL'}  {path}  {result.fixture.name}")
        for problem in result.problems:
            echo(f"      {problem}")
        if verbose or not result.passed:
            out = result.outcome
            for n, incident in enumerate(out.incidents, start=1):
                echo(
                    f"      incident {n}: {incident.title!r} {incident.status.value}, {incident.alert_count} alerts, "
                    f"policy {incident.policy}, severity {incident.severity}"
                )
            for page in out.pages:
                echo(
                    f"      page: incident {page.incident} level {page.level} via {page.policy} to {', '.join(page.to)} "
                    f"at {int(page.at.total_seconds())}s"
                )
            for run in out.runs:
                gated = f" (awaiting approval: {', '.join(run.gated)})" if run.gated else ""
                echo(
                    f"      runbook {run.runbook} on incident {run.incident} ({run.trigger}): {', '.join(run.steps)}{gated}"
                )
        failed += not result.passed
    echo(f"{len(found) - failed} passed, {failed} failed")
    if failed:
        ctx.exit(1)


@main.group()
def silences() -> None:
    """Silences: matching alerts are recorded but open no incident while the silence lasts."""


@silences.command("add")
@click.option(
    "--match",
    "matchers",
    multiple=True,
    required=True,
    help='A matcher or a set as Alertmanager writes them, e.g. service="db" or {service="db", env=~"prod.*"} (repeatable).',
)
@click.option(
    "--starts",
    "starts_at",
    default=None,
    help="When it starts (RFC 3339 with a time zone; default now): a maintenance window ahead.",
)
@click.option(
    "--for", "duration", type=DURATION, default=None, help="How long from its start: 30m, 2h, 1d (at most 366d)."
)
@click.option("--until", "ends_at", default=None, help="Or an end time (RFC 3339 with a time zone).")
@click.option("--author", required=True)
@click.option("--comment", required=True, help="Why (a ticket, a maintenance window).")
@API_URL
@click.pass_context
def silences_add(
    ctx: click.Context,
    matchers: tuple[str, ...],
    starts_at: str | None,
    duration: timedelta | None,
    ends_at: str | None,
    author: str,
    comment: str,
    url: str | None,
) -> None:
    """Create a silence (or, with --starts in the future, a maintenance window)."""
    text = (
        f"{duration // timedelta(milliseconds=1)}ms" if duration is not None else None
    )  # as the API reads it, exactly
    body = {
        "matchers": list(matchers),
        "createdBy": author,
        "comment": comment,
        "duration": text,
        "endsAt": ends_at,
        "startsAt": starts_at,
    }
    created = _api(ctx, "POST", "/api/v1/silences", url, {k: v for k, v in body.items() if v is not None})
    echo(f"{created['id']}  until {created['endsAt']}  {' '.join(created['matchers'])}")


@silences.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include expired silences.")
@API_URL
@click.pass_context
def silences_list(ctx: click.Context, show_all: bool, url: str | None) -> None:
    """List silences that have not ended."""
    found = _api(ctx, "GET", "/api/v1/silences" + ("?all=1" if show_all else ""), url)["silences"]
    if not found:
        echo("no silences")
    for s in found:
        echo(
            f"{s['id']}  {s['startsAt']} .. {s['endsAt']}  by {s['createdBy']}  {' '.join(s['matchers'])}  # {s['comment']}"
        )


@silences.command("expire")
@click.argument("silence_id")
@API_URL
@click.pass_context
def silences_expire(ctx: click.Context, silence_id: str, url: str | None) -> None:
    """End a silence now."""
    expired = _api(ctx, "DELETE", f"/api/v1/silences/{silence_id}", url)
    echo(f"{expired['id']}: ends {expired['endsAt']}")


@main.command()
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option(
    "--refused",
    is_flag=True,
    help="Show the refusals of requests without a valid credential instead (a list of their own, rate-limited).",
)
@click.option("--json", "as_json", is_flag=True)
@API_URL
@click.pass_context
def audit(ctx: click.Context, limit: int, refused: bool, as_json: bool, url: str | None) -> None:
    """The audit log: who acknowledged, resolved, silenced, approved or paused what, newest first (admin)."""
    answer = _api(ctx, "GET", f"/api/v1/audit?limit={limit}", url)
    entries = answer.get("unauthenticated", []) if refused else answer["entries"]

    def line(e: dict[str, Any]) -> str:
        target = " ".join(f"{k}={v}" for k, v in e["target"].items())
        return (
            f"{e['at']}  {e['status']}  {e['principal']:<16} {e['actor'] or '-':<12} {e['action']}  {target}"
            f"{'  ' + e['detail'] if e.get('detail') else ''}"
        )

    _print_list(entries, as_json, "no audit entries", line)


@main.group()
def readmodel() -> None:
    """The Redis read model (incidents), a view of the incident-events topic."""


@readmodel.command("rebuild")
@click.option(
    "--clear", is_flag=True, help="Delete the incidents in Redis first (otherwise missing ones are filled in)."
)
@click.pass_context
def readmodel_rebuild(ctx: click.Context, clear: bool) -> None:
    """Re-apply every incident event from Kafka, e.g. after Redis lost its data. Safe while workers run."""
    from kafka.errors import KafkaError
    from redis.exceptions import RedisError

    from firebreak.rebuild import count_events, rebuild

    settings = _settings(ctx)
    try:
        total = count_events(settings)
        with click.progressbar(length=total, label="incident events", file=sys.stderr, show_pos=True) as bar:
            results = rebuild(settings, clear, bar.update)
    except (KafkaError, RedisError) as exc:
        raise click.ClickException(
            f"rebuild failed ({exc}); check FIREBREAK_KAFKA_BOOTSTRAP and FIREBREAK_REDIS_URL"
        ) from exc
    echo(", ".join(f"{k} {v}" for k, v in sorted(results.items())) or "no incident events")


@main.group()
def problems() -> None:
    """Problem records: incidents of one kind that keep coming back."""


@problems.command("list")
@click.option("--json", "as_json", is_flag=True, help="As JSON, for scripts.")
@click.pass_context
def problems_list(ctx: click.Context, as_json: bool) -> None:
    """Each problem with the incidents it links, most recent first."""
    found = _read(ctx, lambda store: store.problems())
    _print_list(
        found,
        as_json,
        "no problems",
        lambda p: [
            f"{p['id']}  {len(p['incidents'])} incidents ({p['open']} open), last {p['last_opened_at']}  {p['title']}",
            f"    {' '.join(p['incidents'])}",
        ],
    )


from firebreak import (  # noqa: E402 - the command modules register on `main`, defined above
    cli_oncall,  # noqa: F401  (registers `oncall` on main)
    cli_runbooks,  # noqa: F401  (registers `runbook`, `runbooks` and `runs` on main)
)
