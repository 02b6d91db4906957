"""Building the executor from the settings: one place that wires clients, allow-lists and files."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from correlation.topology import Topology
from firebreak.readmodel import IncidentStore
from firebreak.settings import Settings

from actions.command import CommandPolicy
from actions.executor import Executor, Publish
from actions.loader import load_notifications, load_runbooks
from actions.notify import Notifier
from actions.outbound import AllowList, OutboundHttp
from actions.runner import Runner, Services
from actions.secrets import Secrets
from actions.store import RunStore


def services(settings: Settings, *, resolve_incident: Callable[[str, str, str], Awaitable[None]] | None = None,
             incidents: IncidentStore | None = None, runs: RunStore | None = None) -> Services:
    http = OutboundHttp(AllowList.parse(settings.actions_allowed_hosts, settings.actions_allow_private_addresses),
                        settings.actions_max_output_bytes)
    secrets = Secrets(settings.secrets_dir)
    notifier = Notifier(dict(load_notifications(settings.notifications_file).channels), http, secrets)

    async def status(incident_id: str) -> str | None:
        incident = await incidents.get(incident_id) if incidents else None
        return incident.status.value if incident else None

    return Services(http=http, commands=CommandPolicy.parse(settings.actions_allowed_commands), secrets=secrets,
                    notifier=notifier, max_output_bytes=settings.actions_max_output_bytes,
                    resolve_incident=resolve_incident, incident_status=status if incidents else None,
                    approval=runs.decision if runs else None)


def build_executor(settings: Settings, client: aioredis.Redis, incidents: IncidentStore, topology: Topology,
                   publish: Publish, resolve_incident: Callable[[str, str, str], Awaitable[None]]) -> Executor | None:
    """The executor for the configured runbooks, or None when there are none."""
    runbooks = load_runbooks(settings.runbooks_dir)
    if not runbooks:
        return None
    store = RunStore(client, settings.redis_prefix)
    runner = Runner(services(settings, resolve_incident=resolve_incident, incidents=incidents, runs=store))
    return Executor(runbooks, store, incidents, runner, publish, topology=topology, service_label=settings.service_label,
                    page_channel=settings.page_channel, lease_seconds=settings.executor_lease_seconds,
                    concurrency=settings.executor_concurrency, poll_seconds=settings.executor_poll_seconds)
