"""Secrets for runbook actions: named, resolved at run time, never written into results.

A secret `NAME` is read from the environment variable `FIREBREAK_SECRET_NAME`, else from the file
`<secrets_dir>/NAME` (trailing newline stripped). The prefix keeps runbooks from reading the worker's other
environment. Values that were used are scrubbed from anything a step records.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from schemas.errors import ActionError, Reason

ENV_PREFIX = "FIREBREAK_SECRET_"
REDACTED = "***"


class SecretMissing(ActionError, LookupError):
    """A secret an action names that is neither in the environment nor in the secrets folder; the message
    says where to put it. Reason: secret_missing (not retried)."""

    reason = Reason.secret_missing

    def __init__(self, name: str, secrets_dir: Path | None) -> None:
        where = f" or the file {secrets_dir / name}" if secrets_dir else ""
        super().__init__(f"secret {name} is not set; set {ENV_PREFIX}{name}{where}")
        self.name = name


class Secrets:
    def __init__(self, secrets_dir: Path | None, environ: dict[str, str] | None = None) -> None:
        self.secrets_dir = secrets_dir
        self._environ = os.environ if environ is None else environ
        self.used: set[str] = set()

    def known(self, name: str) -> bool:
        return self._lookup(name) is not None

    def _lookup(self, name: str) -> str | None:
        value = self._environ.get(ENV_PREFIX + name)
        if value is None and self.secrets_dir is not None:
            path = self.secrets_dir / name
            try:
                value = path.read_text().rstrip("\r\n")
            except OSError:
                value = None
        return value

    def get(self, name: str) -> str:
        value = self._lookup(name)
        if value is None:
            raise SecretMissing(name, self.secrets_dir)
        if value:
            self.used.add(value)
        return value

    def scrub(self, value: Any) -> Any:
        """`value` with every secret used so far replaced by ***."""
        if isinstance(value, str):
            for secret in self.used:
                if len(secret) >= 4:
                    value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, list):
            return [self.scrub(v) for v in value]
        if isinstance(value, dict):
            return {k: self.scrub(v) for k, v in value.items()}
        return value
