"""`Channels`: sends a message on a named channel of the notifications file through its kind (registry.py)."""

from __future__ import annotations

from typing import Any

from actions.channels.base import ChannelLintEnv, Message, Outgoing, Transport, render_message
from actions.channels.email import SmtpSettings
from actions.channels.registry import kind_of
from actions.notify import NotifyError
from actions.outbound import OutboundHttp
from adapters.secrets import Secrets
from schemas.channels import Channel
from schemas.errors import Reason


class Channels:
    """Sends a message on a named channel; one instance per process."""

    def __init__(
        self, channels: dict[str, Channel], http: OutboundHttp, secrets: Secrets, smtp: SmtpSettings | None
    ) -> None:
        self.channels = channels
        self.http = http
        self.secrets = secrets
        self.smtp = smtp
        self.transport = Transport(http, secrets, smtp)

    def spec(self, name: str) -> Channel:
        """The channel's settings; raises NotifyError (reason `config`) for a name the notifications file lacks."""
        try:
            return self.channels[name]
        except KeyError:
            raise NotifyError(
                f"channel {name!r} is not in the notifications file (the notifications_file setting, "
                "FIREBREAK_NOTIFICATIONS_FILE); add it there or fix the name",
                Reason.config,
            ) from None

    async def send(self, name: str, message: Message, address: str = "", timeout: float = 10.0) -> dict[str, Any]:
        """Render the message with the channel's templates and send it once (`timeout` in seconds); returns what
        the kind reports. Raises what `ChannelKind.send` raises, and RenderError for a template that fails."""
        spec = self.spec(name)
        rendered = render_message(spec, message)
        return await kind_of(spec).send(self.transport, spec, Outgoing(name, message, rendered, address, timeout))

    def describe(self, name: str) -> str:
        """One line saying where the channel's messages go (secrets by name)."""
        spec = self.spec(name)
        return kind_of(spec).describe(spec)

    def lint(self, env: ChannelLintEnv) -> dict[str, list[str]]:
        """Problems of each channel found without sending (unset secrets, hosts off the allow-list, no SMTP),
        by channel name; channels without problems are left out."""
        found = {name: kind_of(spec).lint(spec, env) for name, spec in self.channels.items()}
        return {name: problems for name, problems in found.items() if problems}
