"""What every channel kind shares: the message, its rendering, the JSON POST with the HTTP status rule, and
`ChannelKind`, the interface each kind implements (actions/channels/<kind>.py).

Messages are rendered from templates (sandboxed Jinja2) a channel may override: `title`, `text`, `html`.
Labels are escaped for where they are shown: HTML in email, Slack's mrkdwn (`<`, `>`, `&`, so `<!channel>`
stays text), and line breaks never reach a header or an email subject. A kind raises NotifyError with a
Reason (schemas/errors.py): for an HTTP answer `http_status_reason`, so 5xx, 408 and 429 (with its
Retry-After) are retried and other statuses are not; timeouts and connection failures are retried.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from actions.notify import NotifyError, secret_value
from actions.outbound import AllowList, HttpResult, OutboundHttp, Refused
from actions.templates import RenderError, render
from adapters.secrets import Secrets
from schemas.channels import ChannelParams
from schemas.errors import http_status_reason
from schemas.fields import SecretRef

if TYPE_CHECKING:
    from actions.channels.email import SmtpSettings

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
    """What is sent, before any channel shapes it: the kind of notice, the receiver's dedup key and the
    incident as the read model holds it (a dict with `id`, `title`, `status`, `severity`, `services`, ...)."""

    kind: str  # page | update | acknowledge | resolve | message
    dedup_key: str
    incident: dict[str, Any]
    level: int | None = None
    recipient: str | None = None
    actor: str | None = None
    message: str | None = None  # a runbook's text, or nothing
    links: dict[str, str] = field(default_factory=dict)

    def context(self) -> dict[str, Any]:
        """What a channel's templates see (docs/guides/paging.md, "What templates see")."""
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
    """A message rendered by a channel's templates: `title` (one line, at most MAX_SUBJECT characters), `text`
    (plain) and `html` (autoescaped)."""

    title: str
    text: str
    html: str


def render_message(spec: ChannelParams, message: Message) -> Rendered:
    """The message through the channel's templates (its overrides, else TITLE, TEXT and HTML above); raises
    RenderError naming the problem when a template does not render."""
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


def _classify(result: HttpResult, what: str) -> None:
    if 200 <= result.status < 300:
        return
    retry_after = None
    if result.retry_after:
        try:
            retry_after = max(0.0, float(result.retry_after))
        except ValueError:
            retry_after = None
    raise NotifyError(
        f"{what} answered HTTP {result.status}: {result.body[:200]}", http_status_reason(result.status), retry_after
    )


@dataclass
class Transport:
    """The clients a channel kind sends with, one per process: outbound HTTP (allow-listed), the secrets, and
    the SMTP settings (None when no SMTP server is configured)."""

    http: OutboundHttp
    secrets: Secrets
    smtp: SmtpSettings | None

    def secret(self, value: str | SecretRef) -> str:
        """A literal value as is; a secret reference resolved (raises SecretMissing when it is not set)."""
        return secret_value(value, self.secrets)

    async def post(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        timeout: float,
        what: str,
        secret_headers: frozenset[str] = frozenset(),
    ) -> HttpResult:
        """POST `body` as `application/json` to `url` (checked against the allow-list at every hop; `timeout` in
        seconds for the whole exchange). Returns the 2xx answer; raises NotifyError naming `what` for any other
        status (its reason from `http_status_reason`; Retry-After in seconds), Refused, or the client's
        TimeoutError / aiohttp errors."""
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


@dataclass(frozen=True)
class Outgoing:
    """One message on its way out: the channel's name, the message, its rendering, the recipient's address on
    the channel ("" for none: the channel's own target), and the timeout in seconds."""

    channel: str
    message: Message
    rendered: Rendered
    address: str
    timeout: float


@dataclass(frozen=True)
class ChannelLintEnv:
    """What `lint` checks a channel against: the outbound allow-list, the secrets, and whether SMTP is set up."""

    allow: AllowList
    secrets: Secrets
    smtp: bool

    def secret_problems(self, *values: str | SecretRef | None, names: tuple[str, ...] = ()) -> list[str]:
        """One problem per secret that is not set: the references among `values` (literals are skipped) and the
        secrets given by name in `names` (e.g. a webhook's `hmac_secret`)."""
        wanted = [v.secret for v in values if isinstance(v, SecretRef)] + list(names)
        return [
            f"secret {name} is not set; set FIREBREAK_SECRET_{name} or add the file to the secrets folder"
            for name in wanted
            if not self.secrets.known(name)
        ]

    def host_problems(self, url: str | SecretRef) -> list[str]:
        """The allow-list's refusal of a literal URL, if any (a URL from a secret is only known at run time)."""
        if isinstance(url, SecretRef):
            return []
        try:
            self.allow.check(url)
        except Refused as exc:
            return [str(exc)]
        return []


def shown(value: str | SecretRef) -> str:
    """A value as `describe` shows it: literal, or `<secret NAME>` (a secret's value is never shown)."""
    return f"<secret {value.secret}>" if isinstance(value, SecretRef) else value


P = TypeVar("P", bound=ChannelParams)


class ChannelKind(ABC, Generic[P]):
    """One `type` of channel: how a message is sent on it, described and checked. One instance serves every
    channel of that type; its settings (`P`, a model in schemas/channels/) come with each call."""

    params: ClassVar[type[ChannelParams]]
    """The settings model of this kind (schemas/channels/<kind>.py)."""

    @abstractmethod
    async def send(self, out: Transport, spec: P, outgoing: Outgoing) -> dict[str, Any]:
        """Send one message; returns what the Delivery's caller records (e.g. `{"status": 202}`). Raises
        NotifyError (with its Reason), Refused, SecretMissing, or the client's TimeoutError / OSError /
        aiohttp errors; the caller retries what is retryable."""

    @abstractmethod
    def describe(self, spec: P) -> str:
        """One line saying where messages go, secrets shown by name, e.g. `Slack incoming webhook <secret URL>`."""

    @abstractmethod
    def lint(self, spec: P, env: ChannelLintEnv) -> list[str]:
        """Problems found without sending anything: unset secrets, hosts off the allow-list, missing SMTP."""
