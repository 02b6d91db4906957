"""The `http` step: one HTTP request to an allow-listed host (actions/steps/http.py sends it)."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from schemas.fields import SecretRef, Spec
from schemas.steps.base import Step


class HttpAction(Spec):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: str | SecretRef = Field(description="Template for path and query only; scheme, host and port are literal.")
    headers: dict[str, str | SecretRef] = Field(
        default_factory=dict, description="Request headers; a value may be a secret, `{secret: NAME}`."
    )
    json_body: Any = Field(None, alias="json", description="Body sent as JSON; strings in it are templates.")
    expect_status: list[int] = Field(
        default_factory=list, description="Statuses that count as success (empty: any 2xx)."
    )

    @field_validator("url")
    @classmethod
    def _fixed_host(cls, value: str | SecretRef) -> str | SecretRef:
        if isinstance(value, SecretRef):
            return value
        scheme, _, rest = value.partition("://")
        head = scheme + re.split(r"[/?#]", rest, maxsplit=1)[0]
        if "{{" in head or "{%" in head or "{#" in head:
            raise ValueError(
                "the scheme, host and port of a URL must be written literally, not templated; "
                "put labels in the path or query only"
            )
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL with a host")
        if parts.username or parts.password:
            raise ValueError("credentials in the URL are not allowed; use a header with a secret")
        return value


class HttpStep(Step):
    """A step that sends one HTTP request to an allow-listed host: `http: {url, method, headers, json, expect_status}`."""

    action: ClassVar[str] = "http"
    http: HttpAction
