"""The ingest process: the HTTP API of ingest/server.py wired to Kafka, Redis, the secrets and the signed links."""

from __future__ import annotations

import logging

from aiohttp import web

from adapters.readmodel import IncidentStore
from adapters.redis_client import connect
from adapters.secrets import Secrets
from adapters.silence_store import SilenceStore
from firebreak.kafka_auth import aiokafka_kwargs
from firebreak.runtime import links
from firebreak.settings import Settings
from ingest.producer import DurableProducer
from ingest.server import create_app

log = logging.getLogger("firebreak.ingest")


def run(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM; in-flight produces are flushed on the way out."""
    if settings.auth_disabled:
        log.warning(
            "AUTHENTICATION IS DISABLED (FIREBREAK_AUTH_DISABLED=true): anyone reaching %s:%s can post alerts",
            settings.ingest_host,
            settings.ingest_port,
        )
    producer = DurableProducer(
        settings.kafka_bootstrap,
        settings.produce_timeout_seconds,
        settings.produce_linger_ms,
        settings.ingest_batch_linger_ms,
        client_kwargs=aiokafka_kwargs(settings),
    )
    client = connect(settings.redis_url, "firebreak-ingest")
    app = create_app(
        settings,
        producer,
        IncidentStore(client, settings.redis_prefix),
        SilenceStore(client, settings.redis_prefix),
        links(settings, Secrets(settings.secrets_dir)),
    )
    log.info("ingest listening on http://%s:%s", settings.ingest_host, settings.ingest_port)
    # Half a request head is cut off when keepalive_timeout passes (aiohttp >= 3.14.4 arms it on connect), half
    # a body by _read_body's deadline; lingering_time bounds the unread rest of a refused body the same way.
    timeout = settings.http_read_timeout_seconds
    web.run_app(
        app,
        host=settings.ingest_host,
        port=settings.ingest_port,
        print=None,
        access_log=None,
        keepalive_timeout=timeout,
        lingering_time=timeout,
    )
