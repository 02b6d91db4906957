"""One error tree: every exception Firebreak defines is a `FirebreakError`, and why a delivery or a runbook
step failed is a `Reason`, which decides whether another attempt may succeed.

```
FirebreakError
├── ActionError                  a delivery or step that failed; .reason (Reason), .retryable
│   ├── NotifyError              a channel's answer (actions/notify.py)            RuntimeError
│   ├── StepFailed               a step's action ran and failed (actions/steps)
│   ├── Refused                  an outbound request off the allow-list             ValueError
│   ├── CommandRefused           a program off the allow-list                       ValueError
│   ├── RenderError              a template that does not render                    ValueError
│   └── SecretMissing            a secret that is not set                           LookupError
└── the rest: ConfigFileError, ConfigError, MatcherError, RegexError, TemplateProblem, SilenceAlreadyExpired
    (ValueError), Fenced (RuntimeError), IngestError, KafkaUnavailable, FixtureFailed, ...
```

Each class keeps the built-in base its callers catch (right column), so `except ValueError` still catches a
Refused. docs/architecture.md ("Errors") has the table.
"""

from __future__ import annotations

from enum import StrEnum


class FirebreakError(Exception):
    """Root of every exception Firebreak defines: `except FirebreakError` catches any of them, and nothing
    from a library or Python itself."""


class Reason(StrEnum):
    """Why a delivery or a runbook step failed: a small, bounded vocabulary (it labels metrics).
    `retryable` says whether another attempt may succeed; the others need the runbook, the configuration or
    the receiver to change."""

    timeout = "timeout"  # the attempt ran out of time (a step's timeout, a request's, a command killed)
    connection = "connection"  # no answer: refused, reset, DNS, TLS (aiohttp errors, OSError, SMTP disconnects)
    unavailable = "unavailable"  # the receiver answered "not now": HTTP 5xx, 408, 429; SMTP 4xx
    command_failed = "command_failed"  # a command ran and exited non-zero
    rejected = "rejected"  # the receiver said no: any other HTTP status, SMTP 5xx; an approval rejected
    refused_by_policy = "refused_by_policy"  # Firebreak's allow-lists: a host, an address, a program
    render = "render"  # a template does not render (a missing label, a sandbox refusal)
    secret_missing = "secret_missing"  # a secret the action names is not set
    config = "config"  # the configuration cannot work: an unknown channel, no SMTP server, no recipient

    @property
    def retryable(self) -> bool:
        """Whether another attempt may succeed (timeout, connection, unavailable, command_failed)."""
        return self in _RETRYABLE


_RETRYABLE = frozenset({Reason.timeout, Reason.connection, Reason.unavailable, Reason.command_failed})


def http_status_reason(status: int) -> Reason:
    """Why an HTTP answer counts as a failure, for a status the caller did not accept (RFC 9110 classes):
    `unavailable` (retryable) for 5xx, 408 Request Timeout and 429 Too Many Requests; `rejected` for any
    other status (4xx, and a 1xx-3xx the caller did not expect)."""
    return Reason.unavailable if status >= 500 or status in (408, 429) else Reason.rejected


class ActionError(FirebreakError):
    """A delivery or a runbook step that failed, and why. Subclasses name their usual `reason`; an instance
    may give its own (`reason=` keyword). `retryable` follows the reason."""

    reason: Reason = Reason.config

    def __init__(self, *args: object, reason: Reason | None = None) -> None:
        super().__init__(*args)
        if reason is not None:
            self.reason = reason

    @property
    def retryable(self) -> bool:
        """Whether another attempt may succeed: `reason.retryable`."""
        return self.reason.retryable
