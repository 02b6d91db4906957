"""`type: email`: mail over SMTP (RFC 5322), plain text with an HTML alternative.

Recipients: the contact's address, else the channel's `to`. Every message of an incident is one thread:
the first page's `Message-ID` is `<incident id@firebreak>` and later ones refer to it (`References`,
`In-Reply-To`). `X-Firebreak-Dedup-Key` carries the dedup key. SMTP 4xx replies are retried, 5xx are not.
"""

from __future__ import annotations

import asyncio
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from actions.channels.base import ChannelKind, ChannelLintEnv, Outgoing, Transport
from actions.notify import NotifyError
from schemas.channels import EmailChannel
from schemas.errors import Reason


@dataclass
class SmtpSettings:
    """The SMTP server (the `smtp_*` settings): host, port, STARTTLS, login (the password is a secret's name),
    and the timeout in seconds of one session."""

    host: str
    port: int
    starttls: bool
    username: str | None
    password_secret: str | None
    timeout: float = 15.0


class Email(ChannelKind[EmailChannel]):
    """Sends `email` channels; returns `{"to": [recipients]}`."""

    params = EmailChannel

    async def send(self, out: Transport, spec: EmailChannel, outgoing: Outgoing) -> dict[str, Any]:
        message, rendered, address = outgoing.message, outgoing.rendered, outgoing.address
        if out.smtp is None:
            raise NotifyError("email needs an SMTP server; set FIREBREAK_SMTP_HOST", Reason.config)
        recipients = [address] if address else list(spec.to)
        if not recipients:
            raise NotifyError("no recipient: give the contact an address or the channel a `to` list", Reason.config)
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
        smtp = out.smtp
        password = out.secrets.get(smtp.password_secret) if smtp.password_secret else None

        def deliver() -> None:
            with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout) as client:
                if smtp.starttls:
                    client.starttls()
                if smtp.username and password is not None:
                    client.login(smtp.username, password)
                client.send_message(mail)

        try:
            await asyncio.to_thread(deliver)
        except smtplib.SMTPResponseException as exc:  # RFC 5321: 4yz is transient, 5yz permanent
            reason = Reason.unavailable if 400 <= exc.smtp_code < 500 else Reason.rejected
            raise NotifyError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", reason) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise NotifyError(f"SMTP: {exc}", Reason.connection) from exc
        return {"to": recipients}

    def describe(self, spec: EmailChannel) -> str:
        to = ", ".join(spec.to) or "the contact's address"
        return f"email: from {spec.sender} to {to}, over SMTP"

    def lint(self, spec: EmailChannel, env: ChannelLintEnv) -> list[str]:
        return [] if env.smtp else ["email needs an SMTP server; set FIREBREAK_SMTP_HOST"]
