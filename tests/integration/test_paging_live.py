"""Paging through the live pipeline with real receivers: the stand-in HTTP server (webhook, Slack-,
PagerDuty- and Opsgenie-style endpoints) and a real SMTP server (aiosmtpd) capturing mail.

One incident of 50 alerts pages once per recipient and sends updates, escalation moves 1 -> 2 -> 3 on
schedule and stops at an acknowledgement (a signed link from the page), a worker killed between levels
neither skips nor doubles a level, a receiver failing three times gets exactly one message, and one that
never recovers yields a dead-letter record."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import Message as Mail
from typing import Any

import pytest
import requests
from aiosmtpd.controller import Controller

from tests.conftest import (
    TOKEN,
    Ingest,
    Process,
    Stack,
    Standin,
    free_port,
    start_ingest,
    start_ready_worker,
    wait_until,
)

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:8]
DELAY = 4  # seconds between escalation levels in this module's policy
LINK_KEY = "link-signing-key"
BLIP_PAUSE = 12  # seconds: the transient pause of this module's `blips` policy


class Mailbox:
    def __init__(self, port: int) -> None:
        self.port = port
        self.mails: list[Mail] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        mail = message_from_bytes(envelope.content)
        mail["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.mails.append(mail)
        return "250 OK"


@pytest.fixture(scope="module")
def receiver(stack: Stack) -> Iterator[Standin]:
    server = Standin(stack, "receiver.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox(free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    yield box
    controller.stop()


@pytest.fixture(scope="module")
def ingest(stack: Stack) -> Iterator[Ingest]:
    """This module's own ingest: it verifies signed links, so it holds the link key."""
    server = start_ingest(stack, stack.folder / "ingest-paging.log", FIREBREAK_SECRET_LINK_SIGNING_KEY=LINK_KEY)
    wait_until(lambda: server.get("/readyz").status_code == 200, 30, "ingest to reach Kafka (/readyz)")
    yield server
    server.process.stop()


@pytest.fixture(scope="module")
def paging_env(
    tmp_path_factory: pytest.TempPathFactory, receiver: Standin, mailbox: Mailbox, stack: Stack, ingest: Ingest
) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("paging")
    hooks = receiver.base + "/hooks"
    (folder / "notifications.yaml").write_text(f"""
channels:
  pager: {{type: webhook, url: "{hooks}/pager", hmac_secret: PAGER_KEY}}
  slack: {{type: slack, url: {{secret: SLACK_URL}}}}
  mail: {{type: email, from: firebreak@example.com}}
  pd: {{type: pagerduty, url: "{hooks}/pagerduty", routing_key: {{secret: PD_KEY}}}}
  og: {{type: opsgenie, url: "{hooks}/opsgenie", api_key: {{secret: OG_KEY}}}}
  flaky: {{type: webhook, url: "{hooks}/flaky"}}
  dead: {{type: webhook, url: "{hooks}/dead"}}
  refusing: {{type: webhook, url: "{hooks}/refusing"}}
users:
  u1: {{contacts: [{{channel: pager, address: u1}}, {{channel: mail, address: u1@example.com}}]}}
  u2: {{contacts: [{{channel: pager, address: u2}}]}}
  u3: {{contacts: [{{channel: pager, address: u3}}]}}
schedules:
  primary: {{time_zone: Europe/Berlin, rotation: {{type: weekly, members: [u1], start: 2026-01-05}}}}
escalation_policies:
  esc:
    levels:
      - {{targets: [{{schedule: primary}}, {{channel: slack}}, {{channel: pd}}, {{channel: og}}], delay: {DELAY}s}}
      - {{targets: [{{user: u2}}], delay: {DELAY}s}}
      - {{targets: [{{user: u3}}], delay: {DELAY}s}}
  flaky: {{levels: [{{targets: [{{channel: flaky}}]}}]}}
  dead: {{levels: [{{targets: [{{channel: dead}}, {{channel: refusing}}]}}]}}
routes:
  - {{matchers: ['run="{RUN}"', 'alertname="Esc"'], policy: esc}}
  - {{matchers: ['run="{RUN}"', 'alertname="Flaky"'], policy: flaky}}
  - {{matchers: ['run="{RUN}"', 'alertname="Dead"'], policy: dead}}
  - {{matchers: ['run="{RUN}"', 'alertname="Blip"'], policy: esc}}
  - {{matchers: ['run="{RUN}"', 'alertname="Rises"'], severity: [critical], policy: esc}}
  - {{policy: null}}
""")
    (folder / "runbooks").mkdir()
    (folder / "runbooks" / "on-escalation.yaml").write_text(f"""name: on-escalation
description: Note each escalation on the incident.
owner: test
on: [escalated]
match: {{matchers: ['run="{RUN}"']}}
steps:
  - id: note
    annotate: {{text: "escalated past level 1"}}
""")
    (folder / "correlation.yaml").write_text(f"""
flapping: {{transitions: 20}}  # the blips below change state often, on purpose: this module is not about flapping
policies:
  - name: blips
    match: ['alertname="Blip"', 'run="{RUN}"']
    group_by: [alertname, service]
    transient_pause: {{within: {BLIP_PAUSE}s, share: 1.0, min_history: 2}}
""")
    return {
        "FIREBREAK_POLICIES_FILE": str(folder / "correlation.yaml"),
        "FIREBREAK_RUNBOOKS_DIR": str(folder / "runbooks"),
        "FIREBREAK_NOTIFICATIONS_FILE": str(folder / "notifications.yaml"),
        "FIREBREAK_ACTIONS_ALLOWED_HOSTS": receiver.base.removeprefix("http://"),
        "FIREBREAK_SMTP_HOST": "127.0.0.1",
        "FIREBREAK_SMTP_PORT": str(mailbox.port),
        "FIREBREAK_SECRET_PAGER_KEY": "pager-signing-key",
        "FIREBREAK_SECRET_SLACK_URL": f"{hooks}/slack",
        "FIREBREAK_SECRET_PD_KEY": "pd-routing-key",
        "FIREBREAK_SECRET_OG_KEY": "og-api-key",
        "FIREBREAK_SECRET_LINK_SIGNING_KEY": LINK_KEY,
        "FIREBREAK_PUBLIC_URL": ingest.url,
        "FIREBREAK_NOTIFY_ATTEMPTS": "4",
        "FIREBREAK_NOTIFY_BACKOFF_SECONDS": "0.2",
        "FIREBREAK_NOTIFY_MAX_BACKOFF_SECONDS": "1",
        "FIREBREAK_NOTIFY_UPDATE_INTERVAL_SECONDS": "2",
        "FIREBREAK_PAGER_POLL_SECONDS": "0.2",
        "FIREBREAK_PAGER_LEASE_SECONDS": "3",
    }


@pytest.fixture(scope="module")
def workers(stack: Stack, paging_env: dict[str, str]) -> Iterator[list[Process]]:
    workers = [start_ready_worker(stack, "worker-paging", **paging_env)[0]]
    yield workers
    for w in workers:
        w.stop()


def post(ingest: Ingest, alerts: list[dict]) -> None:
    response = ingest.post("/api/v1/alerts", json.dumps(alerts))
    assert response.status_code == 202, response.text


def alert(name: str, service: str, **extra: str) -> dict:
    return {
        "labels": {"alertname": name, "service": service, "severity": "critical", "run": RUN, **extra},
        "startsAt": datetime.now(UTC).isoformat(),
    }


def open_incident(ingest: Ingest, service: str) -> dict:
    def found() -> dict | None:
        incidents = ingest.get("/api/v1/incidents?status=open&limit=1000").json()["incidents"]
        return next(
            (i for i in incidents if any(a["labels"].get("service") == service for a in i["alerts"].values())), None
        )

    wait_until(lambda: found() is not None, 60, f"the incident of {service}")
    return found()  # type: ignore[return-value]


def pages(receiver: Standin, incident_id: str, address: str) -> list[dict]:
    return [
        r
        for r in receiver.requests("/hooks/pager", incident_id)
        if r["body"]["kind"] == "page" and r["body"]["address"] == address
    ]


def deliveries(ingest: Ingest, incident_id: str) -> list[dict]:
    timeline = ingest.get(f"/api/v1/incidents/{incident_id}/timeline").json()["timeline"]
    return [e for e in timeline if e["source"] == "notification"]


def test_fifty_alerts_page_once_per_recipient_then_update(
    ingest: Ingest, receiver: Standin, mailbox: Mailbox, workers: list[Process]
):
    service = f"fifty-{RUN}"
    post(ingest, [alert("Esc", service, instance=f"i-{n}") for n in range(50)])
    incident = open_incident(ingest, service)
    iid = incident["id"]
    wait_until(
        lambda: (
            len(receiver.requests("/hooks/opsgenie", iid)) >= 1
            and len(pages(receiver, iid, "u1")) == 1
            and any(iid in str(m) for m in mailbox.mails)
        ),
        30,
        "level 1 on every channel",
    )
    wait_until(
        lambda: ingest.get(f"/api/v1/incidents/{iid}").json()["alert_count"] == 50, 30, "all 50 alerts in the incident"
    )
    time.sleep(3)  # the coalesced update goes out at most every 2 s
    # Acknowledge before level 2 is due, so this test sees level 1 only.
    assert ingest.post(f"/api/v1/incidents/{iid}/ack", json.dumps({"actor": "ana"})).status_code == 202
    wait_until(
        lambda: any(r["body"].get("event_action") == "acknowledge" for r in receiver.requests("/hooks/pagerduty", iid)),
        30,
        "the acknowledge notice",
    )

    # u1's messages: level 1's person (level 2, u2, may come first on a loaded machine: the ack is not instant).
    pager_msgs = [r for r in receiver.requests("/hooks/pager", iid) if r["body"]["address"] == "u1"]
    kinds = [r["body"]["kind"] for r in pager_msgs]
    assert kinds.count("page") == 1, kinds  # 50 alerts, one page
    assert 1 <= kinds.count("update") <= 3 and kinds.count("acknowledge") == 1, kinds
    page = next(r for r in pager_msgs if r["body"]["kind"] == "page")
    assert (
        page["headers"]["X-Firebreak-Signature"].startswith("sha256=")
        and page["headers"]["Idempotency-Key"] == page["body"]["dedup_key"]
    )
    assert page["body"]["links"]["ack"].startswith(f"{ingest.url}/l/ack/{iid}?")

    slack = receiver.requests("/hooks/slack", iid)
    assert sum(1 for r in slack if r["body"]["text"].startswith("[CRITICAL]")) == 1
    blocks = slack[0]["body"]["blocks"]
    assert blocks[0]["type"] == "header" and blocks[-1]["type"] == "actions"
    assert {e["text"]["text"] for e in blocks[-1]["elements"]} == {"Acknowledge", "Resolve"}

    pd = receiver.requests("/hooks/pagerduty", iid)
    actions = [r["body"]["event_action"] for r in pd]
    assert actions.count("trigger") >= 1 and actions[-1] == "acknowledge"
    assert all(r["body"]["dedup_key"] == iid and r["body"]["routing_key"] == "pd-routing-key" for r in pd)
    og = receiver.requests("/hooks/opsgenie", iid)
    og_paths = [r["path"] for r in og]
    assert og_paths.count("/hooks/opsgenie") == 1 and f"/hooks/opsgenie/{iid}/acknowledge" in og_paths
    assert og[0]["headers"]["Authorization"] == "GenieKey og-api-key" and og[0]["body"]["alias"] == iid

    mails = [m for m in mailbox.mails if iid in m.get("X-Firebreak-Dedup-Key", "")]
    assert [m["X-Envelope-To"] for m in mails if m["Subject"].startswith("[CRITICAL]")] == ["u1@example.com"]
    assert mails[0].is_multipart() and {p.get_content_type() for p in mails[0].get_payload()} == {
        "text/plain",
        "text/html",
    }

    # Level 1's pages (level 2 may page u2 before the ack lands on a loaded machine: its delay is 4 s)
    sent = [d for d in deliveries(ingest, iid) if d["kind"] == "page" and "/l1/" in d["delivery_id"]]
    assert {d["status"] for d in sent} == {"delivered"} and len(sent) == 5  # u1 pager + mail, slack, pd, og

    # "Why was I paged?": the alert's story ends in the five level-1 pages, the incident's lists them by channel.
    def page_decisions() -> list[dict]:
        response = ingest.get(f"/api/v1/incidents/{iid}/explain")
        decided = response.json()["decisions"] if response.status_code == 200 else []
        return [
            d
            for d in decided
            if d["kind"] == "paged" and d["detail"]["delivery"] == "page" and d["detail"]["level"] == "1"
        ]  # level 2 may page u2 before the ack lands (see above)

    wait_until(lambda: len(page_decisions()) == 5, 30, "the five pages in the decision log")
    assert {(d["detail"]["channel"], d["detail"]["level"], d["detail"]["result"]) for d in page_decisions()} == {
        ("pager", "1", "delivered"),
        ("mail", "1", "delivered"),
        ("slack", "1", "delivered"),
        ("pd", "1", "delivered"),
        ("og", "1", "delivered"),
    }
    opener = incident["timeline"][0]["fingerprint"]
    story = ingest.get(f"/api/v1/alerts/{opener}/explain").json()
    assert "page level 1 via slack: delivered" in story["summary"], story["summary"]
    assert [d["kind"] for d in story["decisions"]][:3] == ["fired", "incident_opened", "joined"]


def test_an_incident_no_route_pages_is_explained(ingest: Ingest, workers: list[Process]):
    service = f"unrouted-{RUN}"
    post(ingest, [alert("Unrouted", service)])
    iid = open_incident(ingest, service)["id"]

    def why() -> list[str]:
        response = ingest.get(f"/api/v1/incidents/{iid}/explain")
        return response.json()["pages"] if response.status_code == 200 else []

    wait_until(lambda: len(why()) == 1, 30, "the decision not to page")
    assert "route #6 (matches everything) says it pages nobody" in why()[0], why()
    assert "not_paged" in why()[0]


def test_a_silence_holds_further_levels_but_never_the_resolve(
    ingest: Ingest, receiver: Standin, workers: list[Process]
):
    """Lifecycle-consistent suppression: a silence made after level 1 holds level 2 (recorded in the decision
    log), the level pages once the silence ends, and the alert's resolve, sent while a second silence covers it,
    still resolves the incident and reaches everyone paged."""
    service = f"muted-{RUN}"
    firing = alert("Esc", service)
    post(ingest, [firing])
    iid = open_incident(ingest, service)["id"]
    wait_until(lambda: len(pages(receiver, iid, "u1")) == 1, 30, "level 1")

    def silence() -> str:
        body = {
            "matchers": [f'service="{service}"'],
            "duration": "1h",
            "createdBy": "ana",
            "comment": "deploying a fix",
        }
        response = ingest.post("/api/v1/silences", json.dumps(body))
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def held(level: int) -> bool:
        response = ingest.get(f"/api/v1/incidents/{iid}/explain")
        return response.status_code == 200 and any(
            d["kind"] == "page_held" and d["detail"]["level"] == str(level) for d in response.json()["decisions"]
        )

    first = silence()
    wait_until(lambda: held(2), 30, "level 2 to be held by the silence")
    time.sleep(DELAY + 1)
    assert pages(receiver, iid, "u2") == []
    ended = requests.delete(
        f"{ingest.url}/api/v1/silences/{first}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    )
    assert ended.status_code == 200, ended.text
    wait_until(lambda: len(pages(receiver, iid, "u2")) == 1, 30, "level 2 once the silence ended")

    silence()
    wait_until(lambda: held(3), 30, "level 3 to be held by the second silence")
    post(ingest, [{**firing, "status": "resolved", "endsAt": datetime.now(UTC).isoformat()}])
    wait_until(
        lambda: ingest.get(f"/api/v1/incidents/{iid}").json()["status"] == "resolved", 30, "the incident to resolve"
    )
    wait_until(
        lambda: (
            {r["body"]["address"] for r in receiver.requests("/hooks/pager", iid) if r["body"]["kind"] == "resolve"}
            == {"u1", "u2"}
        ),
        30,
        "the resolve notice to both people paged",
    )
    assert pages(receiver, iid, "u3") == []


def test_an_alert_that_usually_resolves_by_itself_waits_for_its_pause_before_paging(
    ingest: Ingest, receiver: Standin, workers: list[Process]
):
    """transient_pause (within 12 s, 2 firings of history, all quick): two blips page at once; the third
    waits, resolves within the pause and pages nobody; the fourth waits, but a critical alert joining its
    incident ends the pause (GRP-24) and it pages at once; the fifth waits and pages because it still fires."""
    service = f"blip-{RUN}"
    blip = {"alertname": "Blip", "service": service, "severity": "warning", "run": RUN}

    def fire() -> dict:
        post(ingest, [{"labels": blip, "startsAt": datetime.now(UTC).isoformat()}])
        return open_incident(ingest, service)

    def resolve(labels: dict = blip) -> None:
        post(ingest, [{"labels": labels, "status": "resolved", "endsAt": datetime.now(UTC).isoformat()}])

    for _ in range(2):
        iid = fire()["id"]
        wait_until(lambda: len(pages(receiver, iid, "u1")) == 1, 30, "a blip without history to page at once")
        resolve()
        wait_until(
            lambda: ingest.get(f"/api/v1/incidents/{iid}").json()["status"] == "resolved", 30, "the blip to resolve"
        )

    quiet = fire()
    assert quiet["page_held_until"] is not None and "in 2 of its last 2 firings" in quiet["page_hold_reason"], quiet
    resolve()
    wait_until(
        lambda: ingest.get(f"/api/v1/incidents/{quiet['id']}").json()["status"] == "resolved",
        30,
        "the third blip to resolve",
    )

    cut_short = fire()
    assert cut_short["page_held_until"] is not None
    critical = {**blip, "severity": "critical", "instance": "disk-0"}  # same group, no history: no blip
    post(ingest, [{"labels": critical, "startsAt": datetime.now(UTC).isoformat()}])
    joined = time.monotonic()
    wait_until(
        lambda: len(pages(receiver, cut_short["id"], "u1")) == 1,
        BLIP_PAUSE + 20,
        "the page once the pause is cut short",
    )
    assert time.monotonic() - joined < BLIP_PAUSE - 4, (
        "paged when the pause ran out, not when the critical alert joined"
    )
    ended = ingest.get(f"/api/v1/incidents/{cut_short['id']}").json()
    assert [e["rule"] for e in ended["timeline"] if e["kind"] == "page_hold_ended"] == ["GRP-24"], ended["timeline"]
    resolve()
    resolve(critical)
    wait_until(
        lambda: ingest.get(f"/api/v1/incidents/{cut_short['id']}").json()["status"] == "resolved",
        30,
        "the incident whose pause was cut short to resolve",
    )

    lasting = fire()
    assert lasting["page_held_until"] is not None
    opened = time.monotonic()
    wait_until(lambda: len(pages(receiver, lasting["id"], "u1")) == 1, BLIP_PAUSE + 20, "the page once the pause ends")
    assert time.monotonic() - opened >= BLIP_PAUSE - 4
    assert pages(receiver, quiet["id"], "u1") == []  # its pause ended long ago: it never paged
    why = ingest.get(f"/api/v1/incidents/{quiet['id']}/explain").json()["pages"]
    assert any("transient pause" in line and "page_held" in line for line in why), why
    assert any("not_paged" in line and "resolved within its transient pause" in line for line in why), why


def test_escalation_moves_on_schedule_and_a_signed_link_stops_it(
    ingest: Ingest, receiver: Standin, workers: list[Process]
):
    full, acked = f"full-{RUN}", f"acked-{RUN}"
    post(ingest, [alert("Esc", full), alert("Esc", acked)])
    iid_full, iid_acked = open_incident(ingest, full)["id"], open_incident(ingest, acked)["id"]
    wait_until(lambda: len(pages(receiver, iid_acked, "u2")) == 1, 30, "level 2 of the incident to acknowledge")
    link = pages(receiver, iid_acked, "u2")[0]["body"]["links"]["ack"]
    assert "by=u2" in link
    assert requests.get(link, timeout=10).status_code == 200  # GET only shows the confirmation page
    assert ingest.get(f"/api/v1/incidents/{iid_acked}").json()["status"] == "triggered"
    tampered = link.replace("by=u2", "by=mallory")
    assert requests.post(tampered, timeout=10).status_code == 403
    assert requests.post(link, timeout=10).status_code == 202
    wait_until(lambda: ingest.get(f"/api/v1/incidents/{iid_acked}").json()["status"] == "acknowledged", 30, "the ack")

    wait_until(lambda: len(pages(receiver, iid_full, "u3")) == 1, 30, "level 3 of the other incident")
    time.sleep(DELAY + 2)  # the acknowledged incident's level 3 would be due by now
    assert pages(receiver, iid_acked, "u3") == []
    assert ingest.get(f"/api/v1/incidents/{iid_acked}").json()["acknowledged_by"] == "u2"

    def at(iid: str, level: int) -> float:
        entry = next(
            d
            for d in deliveries(ingest, iid)
            if d["kind"] == "page" and d["level"] == level and d["channel"] == "pager"
        )
        return datetime.fromisoformat(entry["at"]).timestamp()

    one, two, three = at(iid_full, 1), at(iid_full, 2), at(iid_full, 3)
    assert DELAY - 0.5 <= two - one <= DELAY + 3 and DELAY - 0.5 <= three - two <= DELAY + 3, (one, two, three)
    for iid, paged in ((iid_full, ["u1", "u2", "u3"]), (iid_acked, ["u1", "u2"])):
        assert [a for a in ("u1", "u2", "u3") if len(pages(receiver, iid, a)) == 1] == paged
    # Runbooks `on: [escalated]` run once per level past the first.
    for iid, count in ((iid_full, 2), (iid_acked, 1)):
        wait_until(
            lambda: len(ingest.get(f"/api/v1/runs?incident={iid}").json()["runs"]) == count, 30, "the escalated runs"
        )
        assert {r["trigger"] for r in ingest.get(f"/api/v1/runs?incident={iid}").json()["runs"]} == {"escalated"}


def test_a_worker_killed_between_levels_neither_skips_nor_doubles_one(
    stack: Stack, ingest: Ingest, receiver: Standin, workers: list[Process], paging_env: dict[str, str]
):
    service = f"killed-{RUN}"
    post(ingest, [alert("Esc", service)])
    iid = open_incident(ingest, service)["id"]
    wait_until(lambda: len(pages(receiver, iid, "u1")) == 1, 30, "level 1")
    workers[0].kill()  # SIGKILL between level 1 and level 2
    workers[0] = start_ready_worker(stack, "worker-paging-2", **paging_env)[0]
    wait_until(lambda: len(pages(receiver, iid, "u3")) >= 1, 60, "level 3 from the replacement worker")
    time.sleep(1)
    assert [len(pages(receiver, iid, u)) for u in ("u1", "u2", "u3")] == [1, 1, 1]


def test_a_flaky_receiver_gets_one_message_and_a_dead_one_is_dead_lettered(
    stack: Stack, ingest: Ingest, receiver: Standin, workers: list[Process]
):
    receiver.control(path="/hooks/flaky", fail=3, status=500)
    receiver.control(path="/hooks/dead", fail=1000, status=503)
    receiver.control(path="/hooks/refusing", fail=1000, status=400)
    flaky, dead = f"flaky-{RUN}", f"dead-{RUN}"
    post(ingest, [alert("Flaky", flaky), alert("Dead", dead)])
    iid_flaky, iid_dead = open_incident(ingest, flaky)["id"], open_incident(ingest, dead)["id"]

    wait_until(lambda: any(d["status"] == "delivered" for d in deliveries(ingest, iid_flaky)), 30, "the flaky delivery")
    assert len(receiver.requests("/hooks/flaky", iid_flaky)) == 4  # three 500s, then the one that counted
    [record] = [d for d in deliveries(ingest, iid_flaky) if d["kind"] == "page"]
    assert record["attempts"] == 4 and record["status"] == "delivered"

    wait_until(
        lambda: len([d for d in deliveries(ingest, iid_dead) if d["status"] == "dead_lettered"]) == 2,
        30,
        "dead letters",
    )
    failed = {d["channel"]: d for d in deliveries(ingest, iid_dead)}
    assert failed["dead"]["attempts"] == 4 and "HTTP 503" in failed["dead"]["error"]
    assert failed["refusing"]["attempts"] == 1 and "HTTP 400" in failed["refusing"]["error"]  # no retry on a 4xx
    assert len(receiver.requests("/hooks/refusing", iid_dead)) == 1
    dead_letters = [json.loads(v) for v in stack.read_topic("dead-letter") if v and iid_dead.encode() in v]
    assert {d["channel"] for d in dead_letters} == {"dead", "refusing"}


# -- issue 16, A: pages that never went out, and what an incident shows ----------------------------------------


def test_a_severity_rise_pages_by_the_route_the_incident_now_takes(
    ingest: Ingest, receiver: Standin, workers: list[Process]
):
    service = f"rises-{RUN}"
    post(ingest, [alert("Rises", service, severity="warning")])  # the route for warnings pages nobody
    iid = open_incident(ingest, service)["id"]
    post(ingest, [alert("Rises", service, severity="critical")])
    wait_until(lambda: len(pages(receiver, iid, "u1")) == 1, 30, "level 1 of the re-routed incident")
    assert ingest.post(f"/api/v1/incidents/{iid}/ack", json.dumps({"actor": "ana"})).status_code == 202

    def started() -> list[str]:
        response = ingest.get(f"/api/v1/incidents/{iid}/explain")
        decided = response.json()["decisions"] if response.status_code == 200 else []
        return [d["reason"] for d in decided if d["kind"] == "escalation_started"]

    wait_until(lambda: bool(started()), 30, "the re-route in the decision log")
    assert started()[0].startswith("re-routed (severity rose to critical): route #5"), started()


def test_an_alert_still_firing_after_a_person_resolved_its_incident_opens_one_that_pages(
    ingest: Ingest, receiver: Standin, workers: list[Process]
):
    service = f"cert-{RUN}"
    sent = alert("Esc", service, instance="lb-a")
    post(ingest, [sent])
    first = open_incident(ingest, service)["id"]
    wait_until(lambda: len(pages(receiver, first, "u1")) == 1, 30, "the first page")
    assert ingest.post(f"/api/v1/incidents/{first}/ack", json.dumps({"actor": "ana"})).status_code == 202
    assert ingest.post(f"/api/v1/incidents/{first}/resolve", json.dumps({"actor": "ana"})).status_code == 202

    def resolved_with_its_alert_released() -> bool:
        incident = ingest.get(f"/api/v1/incidents/{first}").json()
        return incident["status"] == "resolved" and [a["status"] for a in incident["alerts"].values()] == ["resolved"]

    wait_until(resolved_with_its_alert_released, 30, "the resolve, releasing the still-firing alert")
    time.sleep(1)  # the release reaches the dedup stage through the alert's partition
    post(ingest, [sent])  # the source sends it again, unchanged
    second = open_incident(ingest, service)["id"]
    assert second != first
    wait_until(lambda: len(pages(receiver, second, "u1")) == 1, 30, "a page for the incident the repeat opened")
    assert ingest.post(f"/api/v1/incidents/{second}/ack", json.dumps({"actor": "ana"})).status_code == 202
    post(ingest, [{**sent, "status": "resolved", "endsAt": datetime.now(UTC).isoformat()}])
    wait_until(
        lambda: ingest.get(f"/api/v1/incidents/{second}").json()["status"] == "resolved",
        30,
        "the source's resolve to resolve the new incident",
    )


def test_a_repeat_with_new_annotations_is_what_the_incident_shows(ingest: Ingest, workers: list[Process]):
    service = f"disk-{RUN}"
    sent = {**alert("DiskFilling", service, instance="db-3"), "annotations": {"summary": "disk 91% full"}}
    post(ingest, [sent])
    iid = open_incident(ingest, service)["id"]
    post(
        ingest, [{**sent, "annotations": {"summary": "disk 97% full"}, "generatorURL": "http://prometheus/graph?g0=1"}]
    )

    def shown() -> tuple[str, str]:
        [only] = ingest.get(f"/api/v1/incidents/{iid}").json()["alerts"].values()
        return only["annotations"]["summary"], only.get("generator_url", "")

    wait_until(lambda: shown() == ("disk 97% full", "http://prometheus/graph?g0=1"), 30, "the latest annotations")


def test_alerts_alertmanager_left_out_are_counted_and_noted_on_the_incident(ingest: Ingest, workers: list[Process]):
    service = f"truncated-{RUN}"
    body = {
        "version": "4",
        "status": "firing",
        "receiver": f"team-{RUN}",
        "truncatedAlerts": 7,
        "alerts": [{**alert("Truncated", service), "status": "firing", "someFutureField": True}],
    }
    response = ingest.post("/api/v1/alerts/alertmanager", json.dumps(body))
    assert response.status_code == 202, response.text  # an unknown alert field is ignored, not a 422
    iid = open_incident(ingest, service)["id"]

    def noted() -> list[str]:
        timeline = ingest.get(f"/api/v1/incidents/{iid}").json()["timeline"]
        return [e["detail"] for e in timeline if e["kind"] == "alerts_truncated"]

    wait_until(lambda: bool(noted()), 30, "the truncation on the incident's timeline")
    assert "7 alerts" in noted()[0] and "max_alerts" in noted()[0]
    metrics = requests.get(f"{ingest.url}/metrics", timeout=5).text
    assert f'firebreak_alerts_truncated_total{{receiver="team-{RUN}"}} 7.0' in metrics


def test_an_alert_sent_without_status_resolves_when_its_ends_at_passes(ingest: Ingest, workers: list[Process]):
    service = f"expiry-{RUN}"
    ends = datetime.now(UTC).timestamp() + 3
    sent = {
        "labels": {"alertname": "Expiring", "service": service, "run": RUN},  # Alertmanager API v2: no status
        "endsAt": datetime.fromtimestamp(ends, UTC).isoformat(),
    }
    post(ingest, [sent])
    iid = open_incident(ingest, service)["id"]
    wait_until(
        lambda: ingest.get(f"/api/v1/incidents/{iid}").json()["status"] == "resolved",
        30,
        "the incident to resolve once its only alert's endsAt passed",
    )
    timeline = ingest.get(f"/api/v1/incidents/{iid}").json()["timeline"]
    assert [e["rule"] for e in timeline if e["kind"] == "alert_resolved"] == ["GRP-29"]
