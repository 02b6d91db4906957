"""Notification channels: one adapter per type behind one call, `send(kind, channel, address, message)`.

Messages are rendered from templates (sandboxed Jinja2) a channel may override: `title`, `text`, `html`.
Labels are escaped for where they are shown: HTML in email, Slack's mrkdwn (`<`, `>`, `&`, so `<!channel>`
stays text), and line breaks never reach a header or an email subject. Each adapter raises NotifyError,
retryable for 5xx, 408, 429 (with its Retry-After), timeouts and connection failures; not for other 4xx.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import smtplib
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from actions.notify import NotifyError, secret_value
from actions.outbound import HttpResult, OutboundHttp
from actions.templates import RenderError, render
from adapters.secrets import Secrets
from schemas.notification import (
    Channel,
    EmailChannel,
    OpsgenieChannel,
    PagerDutyChannel,
    SlackChannel,
    WebhookChannel,
)
from schemas.runbook import SecretRef

TITLE = (
    "{% if kind == 'page' %}[{{ (incident.severity or 'incident') | upper }}] {{ incident.title }}"
    "{% elif kind == 'update' %}Update: {{ incident.title }}"
    "{% elif kind == 'acknowledge' %}Acknowledged by {{ actor }}: {{ incident.title }}"
    "{% elif kind == 'resolve' %}{% if incident.get('merged_into') %}Merged into {{ incident.merged_into }}"
    "{% else %}Resolved{% endif %}: {{ incident.title }}"
    "{% else %}{{ incident.title }}{% endif %}"
)
TEXT = """{% if message %}{{ message }}

{% endif %}Incident {{ incident.id }} is {{ incident.status }}: {{ incident.firing_count }} of {{ incident.alert_count }} alert(s) firing.
Services: {{ incident.services | join(', ') or '-' }}; probable root: {{ incident.probable_root or '-' }}.
{% if incident.suspect_changes %}Suspect changes: {{ incident.suspect_changes | join(', ') }}.
{% endif %}{% if level %}Escalation level {{ level }}{% if recipient %}, paging {{ recipient }}{% endif %}.
{% endif %}{% if links.get('ack') %}Acknowledge: {{ links.ack }}
Resolve: {{ links.resolve }}
{% endif %}"""
HTML = """<h2>{{ title }}</h2>
{% if message %}<p>{{ message }}</p>{% endif %}
<p>Incident <code>{{ incident.id }}</code> is <b>{{ incident.status }}</b>: {{ incident.firing_count }} of {{ incident.alert_count }} alert(s) firing.</p>
<ul>
<li>Services: {{ incident.services | join(', ') or '-' }}</li>
<li>Probable root: {{ incident.probable_root or '-' }}</li>
{% if incident.suspect_changes %}<li>Suspect changes: {{ incident.suspect_changes | join(', ') }}</li>{% endif %}
{% if level %}<li>Escalation level {{ level }}</li>{% endif %}
</ul>
{% if links.get('ack') %}<p><a href="{{ links.ack }}">Acknowledge</a> · <a href="{{ links.resolve }}">Resolve</a></p>{% endif %}
"""

_HTML_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=True)
MAX_SUBJECT = 200


@dataclass(frozen=True)
class Message:
    kind: str  # page | update | acknowledge | resolve | message
    dedup_key: str
    incident: dict[str, Any]
    level: int | None = None
    recipient: str | None = None
    actor: str | None = None
    message: str | None = None  # a runbook's text, or nothing
    links: dict[str, str] = field(default_factory=dict)

    def context(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "incident": self.incident,
            "labels": self.incident.get("labels", {}),
            "level": self.level,
            "recipient": self.recipient,
            "actor": self.actor or "",
            "message": self.message,
            "links": self.links,
        }


@dataclass(frozen=True)
class Rendered:
    title: str
    text: str
    html: str


def render_message(spec: Channel, message: Message) -> Rendered:
    ctx = message.context()
    templates = spec.templates
    try:
        title = " ".join(render(templates.title or TITLE, ctx).split())[:MAX_SUBJECT]
        text = render(templates.text or TEXT, ctx).strip()
        html = _HTML_ENV.from_string(templates.html or HTML).render(**ctx, title=title)
    except RenderError:
        raise
    except Exception as exc:
        raise RenderError(f"the channel's template does not render: {exc}") from exc
    return Rendered(title, text, html)


def slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _classify(result: HttpResult, what: str) -> None:
    if 200 <= result.status < 300:
        return
    retry_after = None
    if result.retry_after:
        try:
            retry_after = max(0.0, float(result.retry_after))
        except ValueError:
            retry_after = None
    retryable = result.status >= 500 or result.status in (408, 429)
    raise NotifyError(f"{what} answered HTTP {result.status}: {result.body[:200]}", retryable, retry_after)


@dataclass
class SmtpSettings:
    host: str
    port: int
    starttls: bool
    username: str | None
    password_secret: str | None
    timeout: float = 15.0


class Channels:
    """Sends a message on a named channel; one instance per process."""

    def __init__(
        self, channels: dict[str, Channel], http: OutboundHttp, secrets: Secrets, smtp: SmtpSettings | None
    ) -> None:
        self.channels = channels
        self.http = http
        self.secrets = secrets
        self.smtp = smtp

    def spec(self, name: str) -> Channel:
        try:
            return self.channels[name]
        except KeyError:
            raise NotifyError(
                f"channel {name!r} is not in the notifications file; add it or fix the name", False
            ) from None

    async def send(self, name: str, message: Message, address: str = "", timeout: float = 10.0) -> dict[str, Any]:
        spec = self.spec(name)
        rendered = render_message(spec, message)
        if isinstance(spec, WebhookChannel):
            return await self._webhook(name, spec, message, rendered, address, timeout)
        if isinstance(spec, SlackChannel):
            return await self._slack(spec, message, rendered, timeout)
        if isinstance(spec, EmailChannel):
            return await self._email(spec, message, rendered, address)
        if isinstance(spec, PagerDutyChannel):
            return await self._pagerduty(spec, message, rendered, timeout)
        return await self._opsgenie(spec, message, rendered, timeout)

    async def _post(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        timeout: float,
        what: str,
        secret_headers: frozenset[str] = frozenset(),
    ) -> HttpResult:
        result = await self.http.request(
            "POST",
            url,
            headers={"Content-Type": "application/json", **headers},
            data=body,
            timeout=timeout,
            secret_headers=secret_headers,
        )
        _classify(result, what)
        return result

    async def _webhook(
        self, name: str, spec: WebhookChannel, message: Message, rendered: Rendered, address: str, timeout: float
    ) -> dict[str, Any]:
        payload = {
            "dedup_key": message.dedup_key,
            "kind": message.kind,
            "channel": name,
            "address": address,
            "title": rendered.title,
            "text": rendered.text,
            "level": message.level,
            "recipient": message.recipient,
            "links": message.links,
            "incident": message.incident,
        }
        body = json.dumps(payload, sort_keys=True).encode()
        headers = {k: secret_value(v, self.secrets) for k, v in spec.headers.items()}
        headers["Idempotency-Key"] = message.dedup_key
        if spec.hmac_secret:
            key = self.secrets.get(spec.hmac_secret).encode()
            headers["X-Firebreak-Signature"] = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
        secret = frozenset(k for k, v in spec.headers.items() if isinstance(v, SecretRef))
        result = await self._post(secret_value(spec.url, self.secrets), body, headers, timeout, "the webhook", secret)
        return {"status": result.status}

    async def _slack(self, spec: SlackChannel, message: Message, rendered: Rendered, timeout: float) -> dict[str, Any]:
        incident = message.incident
        fields = [
            f"*Severity*\n{slack_escape(str(incident.get('severity') or '-'))}",
            f"*Services*\n{slack_escape(', '.join(incident.get('services', [])) or '-')}",
            f"*Probable root*\n{slack_escape(str(incident.get('probable_root') or '-'))}",
            f"*Suspect change*\n{slack_escape(', '.join(incident.get('suspect_changes', [])) or '-')}",
        ]
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": rendered.title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": slack_escape(rendered.text)[:2900]}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
        ]
        if message.links.get("ack"):
            blocks.append(
                {
                    "type": "actions",
                    "elements": [
                        {
                            "type": "button",
                            "text": {"type": "plain_text", "text": "Acknowledge"},
                            "url": message.links["ack"],
                            "style": "primary",
                        },
                        {
                            "type": "button",
                            "text": {"type": "plain_text", "text": "Resolve"},
                            "url": message.links["resolve"],
                        },
                    ],
                }
            )
        body = json.dumps({"text": slack_escape(rendered.title), "blocks": blocks}).encode()
        result = await self._post(secret_value(spec.url, self.secrets), body, {}, timeout, "Slack")
        return {"status": result.status}

    async def _email(self, spec: EmailChannel, message: Message, rendered: Rendered, address: str) -> dict[str, Any]:
        if self.smtp is None:
            raise NotifyError("email needs an SMTP server; set FIREBREAK_SMTP_HOST", False)
        recipients = [address] if address else list(spec.to)
        if not recipients:
            raise NotifyError("no recipient: give the contact an address or the channel a `to` list", False)
        mail = EmailMessage()
        mail["Subject"] = rendered.title.replace("\r", " ").replace("\n", " ")
        mail["From"] = spec.sender
        mail["To"] = ", ".join(recipients)
        # One thread per incident: every message refers to the incident's first one.
        thread = f"<{message.incident['id']}@firebreak>"
        mail["Message-ID"] = (
            thread if message.kind == "page" and message.level in (None, 1) else make_msgid(domain="firebreak")
        )
        mail["References"] = thread
        mail["In-Reply-To"] = thread
        mail["X-Firebreak-Dedup-Key"] = message.dedup_key
        mail.set_content(rendered.text)
        mail.add_alternative(rendered.html, subtype="html")
        smtp = self.smtp
        password = self.secrets.get(smtp.password_secret) if smtp.password_secret else None

        def deliver() -> None:
            with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout) as client:
                if smtp.starttls:
                    client.starttls()
                if smtp.username and password is not None:
                    client.login(smtp.username, password)
                client.send_message(mail)

        try:
            await asyncio.to_thread(deliver)
        except smtplib.SMTPResponseException as exc:
            raise NotifyError(
                f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", exc.smtp_code >= 400 and exc.smtp_code < 500
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise NotifyError(f"SMTP: {exc}", True) from exc
        return {"to": recipients}

    async def _pagerduty(
        self, spec: PagerDutyChannel, message: Message, rendered: Rendered, timeout: float
    ) -> dict[str, Any]:
        incident = message.incident
        action = {"acknowledge": "acknowledge", "resolve": "resolve"}.get(message.kind, "trigger")
        event: dict[str, Any] = {
            "routing_key": secret_value(spec.routing_key, self.secrets),
            "event_action": action,
            "dedup_key": incident["id"],
        }
        if action == "trigger":
            severity = (
                incident.get("severity")
                if incident.get("severity") in ("critical", "error", "warning", "info")
                else "error"
            )
            event["payload"] = {
                "summary": rendered.title[:1024],
                "severity": severity,
                "source": incident.get("probable_root") or next(iter(incident.get("services", [])), "firebreak"),
                "custom_details": {
                    "text": rendered.text,
                    "incident": incident["id"],
                    "services": incident.get("services", []),
                    "level": message.level,
                },
            }
            event["links"] = [
                {"href": url, "text": f"{name.title()} in Firebreak"} for name, url in message.links.items()
            ]
        result = await self._post(spec.url, json.dumps(event).encode(), {}, timeout, "PagerDuty")
        return {"status": result.status, "event_action": action}

    async def _opsgenie(
        self, spec: OpsgenieChannel, message: Message, rendered: Rendered, timeout: float
    ) -> dict[str, Any]:
        incident = message.incident
        headers = {"Authorization": f"GenieKey {secret_value(spec.api_key, self.secrets)}"}
        alias = incident["id"]
        base = spec.url.rstrip("/")
        if message.kind in ("page", "message"):  # a repeat create with the same alias only counts up on Opsgenie
            priority = {"critical": "P1", "error": "P2", "warning": "P3"}.get(str(incident.get("severity")), "P4")
            body: dict[str, Any] = {
                "message": rendered.title[:130],
                "alias": alias,
                "description": rendered.text[:15000],
                "priority": priority,
                "source": "firebreak",
                "details": {"services": ", ".join(incident.get("services", []))},
            }
            url = base
        elif message.kind == "acknowledge":
            body, url = (
                {"user": message.actor or "firebreak", "note": rendered.title},
                f"{base}/{alias}/acknowledge?identifierType=alias",
            )
        elif message.kind == "resolve":
            body, url = (
                {"user": message.actor or "firebreak", "note": rendered.title},
                f"{base}/{alias}/close?identifierType=alias",
            )
        else:
            body, url = {"note": rendered.text[:25000]}, f"{base}/{alias}/notes?identifierType=alias"
        result = await self._post(url, json.dumps(body).encode(), headers, timeout, "Opsgenie")
        return {"status": result.status}
