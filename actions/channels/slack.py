"""`type: slack`: a Slack incoming webhook, sent Block Kit (https://api.slack.com/messaging/webhooks).

The message is a header block (the title, at most 150 characters), a mrkdwn section (the text, at most 2900),
a fields section (severity, services, probable root, suspect change) and, with links, Acknowledge and Resolve
buttons; `text` is the title, for notifications. Everything a label reaches is escaped for mrkdwn.
"""

from __future__ import annotations

import json
from typing import Any

from actions.channels.base import ChannelKind, ChannelLintEnv, Outgoing, Transport, shown
from schemas.channels import SlackChannel


def slack_escape(text: str) -> str:
    """`text` with Slack's three control characters escaped (`&`, `<`, `>`), so `<!channel>` or `<@U123>` in
    a label stays text (https://api.slack.com/reference/surfaces/formatting#escaping)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Slack(ChannelKind[SlackChannel]):
    """Sends `slack` channels; returns `{"status": <HTTP status>}`."""

    params = SlackChannel

    async def send(self, out: Transport, spec: SlackChannel, outgoing: Outgoing) -> dict[str, Any]:
        message, rendered = outgoing.message, outgoing.rendered
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
        result = await out.post(out.secret(spec.url), body, {}, outgoing.timeout, "Slack")
        return {"status": result.status}

    def describe(self, spec: SlackChannel) -> str:
        return f"slack: Block Kit to the incoming webhook {shown(spec.url)}"

    def lint(self, spec: SlackChannel, env: ChannelLintEnv) -> list[str]:
        return [*env.secret_problems(spec.url), *env.host_problems(spec.url)]
