"""All of Firebreak's configuration, in one typed object.

Sources, highest first: `FIREBREAK_*` environment variables, the YAML file named by `FIREBREAK_CONFIG`,
the defaults below. Secrets (ingest tokens) come from the environment or from a file, never from the YAML.
`firebreak config docs` prints the table in docs/reference/settings.md from the descriptions here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from adapters.yamlfile import ConfigFileError, load_yaml_model, located, read_yaml
from correlation.policy import PolicySet
from correlation.rules import Rules
from correlation.topology import Topology
from schemas.errors import FirebreakError

CONFIG_ENV = "FIREBREAK_CONFIG"

TOPICS = (
    "alerts",
    "changes",
    "alert-events",
    "incident-events",
    "action-results",
    "notifications",
    "decisions",
    "dead-letter",
)


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class ConfigError(FirebreakError, ValueError):
    """The configuration is invalid; the message names the option and the fix."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FIREBREAK_", extra="forbid", validate_default=True)

    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, `host:port[,host:port]`.")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT",
        description="How every Kafka client connects. SASL needs `kafka_sasl_username` and `kafka_sasl_password_secret`.",
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN", description="SASL mechanism."
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name.")
    kafka_sasl_password_secret: str | None = Field(
        None,
        description="Name of the secret holding the SASL password (env FIREBREAK_SECRET_<NAME> or the secrets folder).",
    )
    kafka_ssl_cafile: Path | None = Field(
        None, description="CA bundle that signed the brokers' certificates (SSL, SASL_SSL); default: the system's."
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis for the read model and coordination.")
    redis_prefix: str = Field("fb:", description="Prefix of every Redis key Firebreak writes.")
    topic_partitions: int = Field(
        4,
        ge=1,
        le=1024,
        description="Partitions of every Firebreak topic and table changelog. Changing it needs new topics.",
    )
    topic_replication_factor: int = Field(
        1, ge=1, le=16, description="Replication factor of the topics `topics create` makes (3 in production)."
    )
    group_by: Annotated[list[str], NoDecode] = Field(
        ["alertname", "service"], description="Labels the `default` policy groups by (comma-separated in env)."
    )
    fingerprint_ignore_labels: Annotated[list[str], NoDecode] = Field(
        [], description="Labels left out of the fingerprint, e.g. pod,replica: a restarted pod stays the same alert."
    )
    policies_file: Path | None = Field(
        None,
        description="Correlation policies (YAML, docs/concepts/correlation.md). Unset: one `default` policy grouping by `group_by`.",
    )
    services_file: Path | None = Field(
        None, description="Service catalog (YAML, docs/concepts/correlation.md) for topology-aware policies."
    )
    service_label: str = Field(
        "service", description="The label that names an alert's service (catalog, probable root)."
    )
    tick_interval_seconds: float = Field(
        1.0, gt=0, le=60, description="How often workers let time pass (group_wait, resolve_timeout)."
    )
    app_id: str = Field(
        "firebreak",
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Faust app id: the consumer group and the prefix of table changelog topics.",
    )
    ingest_host: str = Field("127.0.0.1", description="Address the ingest/API server listens on.")
    ingest_port: int = Field(8080, ge=0, le=65535, description="Port of the ingest/API server.")
    ingest_tokens: Annotated[list[SecretStr], NoDecode] = Field(
        [],
        description="Bearer tokens accepted by ingest and API (comma-separated, env only): `<scope>:<name>:<token>` with scope ingest, operator or admin, or a bare token (admin). Several allow rotation.",
    )
    ingest_tokens_file: Path | None = Field(
        None, description="File with one token entry per line (as in `ingest_tokens`); added to them."
    )
    auth_disabled: bool = Field(
        False, description="Serve without authentication. For local experiments only; logged loudly."
    )
    max_request_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="Largest request body ingest reads; larger gets 413."
    )
    max_alerts_per_request: int = Field(10_000, ge=1, description="Most alerts in one request; more gets 413.")
    ingest_hmac_secrets: Annotated[list[str], NoDecode] = Field(
        [],
        description="Names of secrets whose values are HMAC keys of signed webhook sources (docs/guides/sending-alerts.md); such a sender needs no token.",
    )
    http_read_timeout_seconds: float = Field(
        30.0,
        gt=0,
        le=600,
        description="How long ingest waits for a client to send a request's headers, then its body (408), and how long an idle keep-alive connection stays open. A client sending half a request is cut off after at most twice this.",
    )
    ingest_rate_per_token: float = Field(
        0,
        ge=0,
        description="Requests a second each token may make (bursts to twice that), per ingest process; more get 429. 0: no limit.",
    )
    ingest_max_inflight: int = Field(
        256,
        ge=1,
        le=100_000,
        description="Ingest requests that may wait for Kafka at once; more get 429 with Retry-After (load shedding, nothing accepted is lost).",
    )
    produce_timeout_seconds: float = Field(
        10.0, gt=0, description="How long ingest waits for Kafka to acknowledge before answering 503."
    )
    produce_linger_ms: int = Field(
        2, ge=0, le=1000, description="Producer linger: how long records wait to be batched."
    )
    ingest_batch_linger_ms: int = Field(
        5,
        ge=0,
        le=1000,
        description="Group commit: the longest ingest holds new alerts while Kafka still has earlier ones to acknowledge, so the alerts of concurrent requests share records (one `AlertBatch` per partition of `alerts`). With nothing in flight, alerts go at once. A request waits at most this much longer for its 202; 0: never hold.",
    )
    worker_metrics_host: str = Field(
        "127.0.0.1", description="Address of the worker's `/metrics` (0.0.0.0 in a container, for Prometheus)."
    )
    worker_metrics_port: int = Field(
        9465, ge=0, le=65535, description="Port of the worker's `/metrics` (0 turns it off)."
    )
    worker_session_timeout_seconds: float = Field(
        10.0, ge=6, description="Kafka session timeout of workers: how soon a dead worker's partitions move."
    )
    worker_standby_replicas: int = Field(
        1,
        ge=0,
        le=3,
        description="Standby copies of each table partition kept by other workers (fast takeover after a failure; each copy costs its worker the changelog reading, see BENCHMARKS.md scenario 7). 0: a takeover restores from the changelog.",
    )
    decisions_enabled: bool = Field(
        True,
        description="Write the decision log (`decisions` topic, `firebreak explain`). Off: one Kafka record less per alert change, and nothing to explain.",
    )
    decision_retention_hours: float = Field(
        168,
        ge=1,
        le=24 * 366,
        description="How long `explain` can answer for an alert: retention of the `decisions` topic and of its Redis copy.",
    )
    decision_max_per_key: int = Field(
        500, ge=10, le=100_000, description="Most decisions kept per alert and per incident (the oldest go first)."
    )
    runbooks_dir: Path | None = Field(
        None, description="Folder (or file) of runbooks the worker runs. Unset: no runbooks."
    )
    notifications_file: Path | None = Field(
        None, description="Notification channels (YAML, docs/guides/paging.md) for `notify` steps and pages."
    )
    page_channel: str | None = Field(
        None, description="Channel paged when a runbook step fails with `on_failure: page` and the runbook names none."
    )
    secrets_dir: Path | None = Field(
        None, description="Folder of secret files (`<dir>/<NAME>`); env `FIREBREAK_SECRET_<NAME>` wins."
    )
    actions_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        [], description="Hosts (`host` or `host:port`) that `http` steps and channels may reach. Empty: none."
    )
    actions_allow_private_addresses: bool = Field(
        False, description="Let allowed host names resolve to loopback/private/link-local addresses (off: refused)."
    )
    actions_allowed_commands: Annotated[list[str], NoDecode] = Field(
        [], description="Programs (names on /usr/local/bin:/usr/bin:/bin, or absolute paths) `command` steps may run."
    )
    actions_max_output_bytes: int = Field(
        64 * 1024, ge=1024, le=16 * 1024 * 1024, description="Cap on a step's captured HTTP body, stdout and stderr."
    )
    executor_concurrency: int = Field(8, ge=1, le=256, description="Runs one worker drives at once.")
    executor_lease_seconds: float = Field(
        30.0,
        ge=1,
        le=3600,
        description="How long a run stays with a worker that stopped renewing before another takes it.",
    )
    executor_shutdown_grace_seconds: float = Field(
        20.0, ge=0, le=600, description="On SIGTERM, how long a worker lets running steps finish before it exits."
    )
    executor_poll_seconds: float = Field(0.5, gt=0, le=60, description="How often the executor looks for due runs.")
    public_url: str = Field(
        "http://127.0.0.1:8080",
        description="How people reach the API: the base of the signed ack/resolve links in pages.",
    )
    link_ttl_seconds: float = Field(
        86400,
        ge=60,
        description="How long a signed ack/resolve link stays valid. Links need the secret LINK_SIGNING_KEY.",
    )
    notify_attempts: int = Field(6, ge=1, le=20, description="Attempts per notification before it is dead-lettered.")
    notify_backoff_seconds: float = Field(
        1.0, gt=0, le=300, description="Wait before the first retry of a notification; doubles each time, with jitter."
    )
    notify_max_backoff_seconds: float = Field(
        60.0, gt=0, le=3600, description="Longest wait between notification attempts (also caps Retry-After)."
    )
    notify_timeout_seconds: float = Field(10.0, gt=0, le=120, description="Timeout of one notification attempt.")
    notify_update_interval_seconds: float = Field(
        30.0, ge=0, le=3600, description="Changes to a paged incident are sent as one update at most this often."
    )
    pager_poll_seconds: float = Field(
        0.5, gt=0, le=60, description="How often a worker looks for due escalation levels, updates and notices."
    )
    pager_lease_seconds: float = Field(
        30.0,
        ge=1,
        le=3600,
        description="How long a claimed escalation step stays with a worker that stopped before another takes it.",
    )
    smtp_host: str | None = Field(
        None, description="SMTP server for email channels. Unset: email channels fail (and say so)."
    )
    smtp_port: int = Field(25, ge=1, le=65535, description="SMTP port.")
    smtp_starttls: bool = Field(False, description="Upgrade the SMTP connection with STARTTLS.")
    smtp_username: str | None = Field(
        None, description="SMTP user; the password is the secret named by `smtp_password_secret`."
    )
    smtp_password_secret: str | None = Field(None, description="Name of the secret holding the SMTP password.")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level of every process.")

    @field_validator(
        "group_by",
        "ingest_tokens",
        "fingerprint_ignore_labels",
        "actions_allowed_hosts",
        "actions_allowed_commands",
        "ingest_hmac_secrets",
        mode="before",
    )
    @classmethod
    def _split(cls, value: Any) -> Any:
        return _comma_list(value)

    @field_validator("group_by")
    @classmethod
    def _group_by_names(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("group_by needs at least one label name, e.g. alertname,service")
        if len(set(value)) != len(value):
            raise ValueError("group_by lists a label twice; list each once")
        return value

    def load_rules(self) -> Rules:
        """The policies and service catalog files (if set), validated; raises ConfigFileError naming file:line."""
        policies = load_yaml_model(self.policies_file, PolicySet) if self.policies_file else PolicySet()
        topology = load_yaml_model(self.services_file, Topology) if self.services_file else Topology()
        return Rules(
            policies=policies.with_default(tuple(self.group_by)), topology=topology, service_label=self.service_label
        )

    @model_validator(mode="after")
    def _sasl_complete(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL") and not (
            self.kafka_sasl_username and self.kafka_sasl_password_secret
        ):
            raise ValueError(
                f"kafka_security_protocol {self.kafka_security_protocol} needs kafka_sasl_username and "
                "kafka_sasl_password_secret (the name of the secret with the password)"
            )
        return self

    @model_validator(mode="after")
    def _tokens_from_file(self) -> Settings:
        if self.ingest_tokens_file is not None:
            try:
                lines = self.ingest_tokens_file.read_text().splitlines()
            except OSError as exc:
                raise ValueError(
                    f"ingest_tokens_file {self.ingest_tokens_file}: {exc.strerror}; point it at a readable file"
                ) from exc
            self.ingest_tokens = [*self.ingest_tokens, *(SecretStr(t.strip()) for t in lines if t.strip())]
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file()
        if config_file is not None:
            sources.append(_SecretFreeYaml(settings_cls, config_file))
        return tuple(sources)


def _config_file() -> Path | None:
    """The YAML file `FIREBREAK_CONFIG` names, if it names one."""

    value = os.environ.get(CONFIG_ENV)
    return Path(value) if value else None


class _SecretFreeYaml(YamlConfigSettingsSource):
    """The YAML file, minus secrets: a token in a file that lives in git is refused."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        if path.is_dir():
            raise ConfigError(
                f"{CONFIG_ENV}={path}: is a directory, not a file; name the YAML file (e.g. "
                f"{path / 'firebreak.yaml'}) or unset {CONFIG_ENV}"
            )
        if not path.is_file():
            raise ConfigError(f"{CONFIG_ENV}={path}: no such file; fix the path or unset {CONFIG_ENV}")
        super().__init__(settings_cls, yaml_file=path)
        if "ingest_tokens" in self.yaml_data:
            raise ConfigError(
                f"{path}: ingest_tokens must not be in the YAML file; set FIREBREAK_INGEST_TOKENS or ingest_tokens_file"
            )

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        """The file through the loader policy files use: a syntax error is `file:line: problem; fix`, not a traceback."""

        try:
            data, _ = read_yaml(Path(file_path))
        except ConfigFileError as exc:
            raise ConfigError(str(exc)) from exc
        if data is not None and not isinstance(data, dict):
            raise ConfigError(
                f"{file_path}:1: the file must map options to values (`redis_url: redis://...`), not be a "
                f"{type(data).__name__}; `firebreak config docs` lists the options"
            )
        return data or {}


def load_settings(**overrides: Any) -> Settings:
    """Build the settings once at process start; a bad value raises ConfigError naming the option."""

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_explained(exc.errors(include_url=False), set(overrides))) from exc


def _explained(errors: list[Any], overrides: set[str]) -> str:
    """The problems of a ValidationError: those of options the FIREBREAK_CONFIG file sets as one
    `file:line: option: problem; fix` line each, the others (environment, defaults) on one line after them."""

    path = _config_file()
    data, root = read_yaml(path) if path is not None else ({}, None)
    from_env = {name.upper() for name in os.environ}
    lines, others = [], []
    for err in errors:
        key = err["loc"][0] if err["loc"] else None
        if (
            isinstance(data, dict)
            and key in data
            and key not in overrides
            and f"FIREBREAK_{key}".upper() not in from_env
        ):
            fix = "remove it or fix its spelling" if err["type"] == "extra_forbidden" else "fix the value in the file"
            lines.append(
                f"{located(path, root, tuple(err['loc']), err['msg'])}; {fix} (`firebreak config docs` lists every option)"
            )
        else:
            others.append(f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}")
    if others:
        lines.append(f"invalid configuration: {'; '.join(others)}")
    return "\n".join(lines)
