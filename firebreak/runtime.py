"""Building the executor and the pager from the settings: one place that wires clients, allow-lists and files."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from actions.channels import Channels, SmtpSettings
from actions.command import CommandPolicy
from actions.delivery import Deliverer
from actions.executor import Executor, Publish
from actions.guardrails import Guard
from actions.loader import load_notifications, load_runbooks
from actions.notify import Notifier
from actions.outbound import AllowList, OutboundHttp
from actions.pager import Pager
from actions.runner import Runner, Services
from adapters.links import Links
from adapters.readmodel import IncidentStore
from adapters.run_store import RunStore
from adapters.secrets import Secrets
from correlation.topology import Topology
from firebreak.settings import Settings
from ingest.audit import AuditLog
from schemas import Incident, IncidentEvent
from schemas.decision import Decision
from schemas.notification import Delivery, NotificationsFile

LINK_KEY = "LINK_SIGNING_KEY"


def links(settings: Settings, secrets: Secrets) -> Links:
    keys = (
        [k.strip().encode() for k in secrets.get(LINK_KEY).splitlines() if k.strip()] if secrets.known(LINK_KEY) else []
    )
    return Links(settings.public_url, keys, settings.link_ttl_seconds)


@dataclass
class Outbound:
    """The clients every action and notification goes through."""

    config: NotificationsFile
    http: OutboundHttp
    secrets: Secrets
    channels: Channels
    links: Links

    @classmethod
    def from_settings(cls, settings: Settings) -> Outbound:
        config = load_notifications(settings.notifications_file)
        http = OutboundHttp(
            AllowList.parse(settings.actions_allowed_hosts, settings.actions_allow_private_addresses),
            settings.actions_max_output_bytes,
        )
        secrets = Secrets(settings.secrets_dir)
        smtp = (
            SmtpSettings(
                settings.smtp_host,
                settings.smtp_port,
                settings.smtp_starttls,
                settings.smtp_username,
                settings.smtp_password_secret,
                settings.notify_timeout_seconds,
            )
            if settings.smtp_host
            else None
        )
        return cls(
            config, http, secrets, Channels(dict(config.channels), http, secrets, smtp), links(settings, secrets)
        )


def services(
    settings: Settings,
    outbound: Outbound,
    *,
    resolve_incident: Callable[[str, str, str], Awaitable[None]] | None = None,
    incidents: IncidentStore | None = None,
    runs: RunStore | None = None,
) -> Services:
    async def status(incident_id: str) -> str | None:
        incident = await incidents.get(incident_id) if incidents else None
        return incident.status.value if incident else None

    return Services(
        http=outbound.http,
        commands=CommandPolicy.parse(settings.actions_allowed_commands),
        secrets=outbound.secrets,
        notifier=Notifier(outbound.channels, outbound.links.for_incident),
        max_output_bytes=settings.actions_max_output_bytes,
        resolve_incident=resolve_incident,
        incident_status=status if incidents else None,
        approval=runs.decision if runs else None,
    )


def build_executor(
    settings: Settings,
    outbound: Outbound,
    client: aioredis.Redis,
    incidents: IncidentStore,
    topology: Topology,
    publish: Publish,
    resolve_incident: Callable[[str, str, str], Awaitable[None]],
) -> Executor | None:
    """The executor for the configured runbooks, or None when there are none."""
    runbooks = load_runbooks(settings.runbooks_dir)
    if not runbooks:
        return None
    store = RunStore(client, settings.redis_prefix)
    runner = Runner(services(settings, outbound, resolve_incident=resolve_incident, incidents=incidents, runs=store))
    return Executor(
        runbooks,
        store,
        incidents,
        runner,
        publish,
        topology=topology,
        service_label=settings.service_label,
        page_channel=settings.page_channel,
        lease_seconds=settings.executor_lease_seconds,
        concurrency=settings.executor_concurrency,
        poll_seconds=settings.executor_poll_seconds,
        guard=Guard(client, settings.redis_prefix),
        audit=engine_audit(client, settings.redis_prefix),
    )


def engine_audit(
    client: aioredis.Redis, prefix: str
) -> Callable[[str, dict[str, str], str | None, str], Awaitable[None]]:
    """Decisions Firebreak itself takes on people's behalf (risk gates) go to the same audit log as theirs."""
    log = AuditLog(client, prefix)

    async def record(action: str, target: dict[str, str], actor: str | None, detail: str) -> None:
        await log.record(principal="firebreak", action=action, target=target, actor=actor, status=0, detail=detail)

    return record


def build_pager(
    settings: Settings,
    outbound: Outbound,
    client: aioredis.Redis,
    incidents: IncidentStore,
    topology: Topology,
    publish: Callable[[Delivery], Awaitable[None]],
    dead_letter: Callable[[Delivery], Awaitable[None]],
    on_escalated: Callable[[IncidentEvent, Incident], Awaitable[Any]] | None,
    on_decision: Callable[[list[Decision], str], Awaitable[None]] | None = None,
    muted: Callable[[Incident], Awaitable[str | None]] | None = None,
) -> Pager | None:
    """The pager for the configured escalation policies, or None when there are none."""
    if not outbound.config.escalation_policies:
        return None
    deliverer = Deliverer(
        outbound.channels,
        client,
        settings.redis_prefix,
        publish,
        dead_letter,
        attempts=settings.notify_attempts,
        backoff=settings.notify_backoff_seconds,
        max_backoff=settings.notify_max_backoff_seconds,
        timeout=settings.notify_timeout_seconds,
    )
    return Pager(
        outbound.config,
        client,
        settings.redis_prefix,
        incidents,
        deliverer,
        outbound.links,
        topology=topology,
        service_label=settings.service_label,
        update_interval=settings.notify_update_interval_seconds,
        lease_seconds=settings.pager_lease_seconds,
        poll_seconds=settings.pager_poll_seconds,
        on_escalated=on_escalated,
        on_decision=on_decision,
        muted=muted,
    )
