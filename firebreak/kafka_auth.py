"""How every Kafka client of Firebreak authenticates: one place, three client libraries.

`kafka_security_protocol` PLAINTEXT (the local stack), SSL, SASL_PLAINTEXT or SASL_SSL; with SASL, the
mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), the user, and the *name* of the secret holding the
password (env FIREBREAK_SECRET_<NAME> or the secrets folder); with SSL, an optional CA file.
"""

from __future__ import annotations

import ssl
from typing import Any

from adapters.secrets import Secrets
from firebreak.settings import Settings


def _password(settings: Settings) -> str | None:
    if settings.kafka_sasl_password_secret is None:
        return None
    return Secrets(settings.secrets_dir).get(settings.kafka_sasl_password_secret)


def _ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if "SSL" not in settings.kafka_security_protocol:
        return None
    return ssl.create_default_context(cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None)


def kafka_python_kwargs(settings: Settings) -> dict[str, Any]:
    """For kafka-python's admin client and consumers (topics, rebuild, tooling)."""
    kwargs: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    if settings.kafka_security_protocol.startswith("SASL"):
        kwargs.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=_password(settings),
        )
    if "SSL" in settings.kafka_security_protocol and settings.kafka_ssl_cafile:
        kwargs["ssl_cafile"] = str(settings.kafka_ssl_cafile)
    return kwargs


def aiokafka_kwargs(settings: Settings) -> dict[str, Any]:
    """For aiokafka's producer (ingest) and consumer (the worker's gap repair)."""
    kwargs: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    if settings.kafka_security_protocol.startswith("SASL"):
        kwargs.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=_password(settings),
        )
    context = _ssl_context(settings)
    if context is not None:
        kwargs["ssl_context"] = context
    return kwargs


def faust_credentials(settings: Settings) -> Any:
    """For the Faust app (`broker_credentials`), or None for PLAINTEXT."""
    import faust  # only the worker needs it; importing Faust costs the CLI a second

    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(_ssl_context(settings))
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=_password(settings),
        mechanism=settings.kafka_sasl_mechanism,
        ssl_context=_ssl_context(settings),
    )
