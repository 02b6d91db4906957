"""Group commit in the durable producer (ingest/producer.py): concurrent requests share records, alerts go at
once while Kafka has nothing in flight and wait (up to the linger) while it has, each request is answered only
when every record holding its alerts is acknowledged, a failed record fails exactly its requests, and no
request waits beyond the produce timeout. Kafka is a fake here, shaped like aiokafka's producer (send
returns a future the test settles); the real one is in tests/integration/test_ingest_group_commit.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError, NotEnoughReplicasError, OutOfOrderSequenceNumber

from ingest.producer import DurableProducer, KafkaUnavailable
from schemas.alert import Alert
from schemas.batch import AlertBatch, alert_records, partition_of
from tests.factories import alert

PARTITIONS = 4
HOLD = KafkaTimeoutError()  # what `FakeKafka.settle` returns to leave a record unacknowledged


class FakeKafka:
    """aiokafka's producer as far as ingest uses it: `partitions_for`, `send` returning a future, and `stop`,
    which lets what is in flight finish. Each sent record is settled by `settle(partition)` on the next loop
    turn (None: acknowledged, HOLD: left open, another exception: failed); `settle` None leaves every record
    open."""

    def __init__(self, settle: Callable[[int], BaseException | None] | None = lambda partition: None) -> None:
        self.settle = settle
        self.sent: list[dict[str, Any]] = []
        self.stopped = False
        self.finishes_on_stop = True  # False: a broken producer whose open records never settle

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self.stopped = True
        for record in self.sent if self.finishes_on_stop else []:
            if not record["future"].done():
                record["future"].set_result(None)

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(PARTITIONS))

    async def send(
        self, topic: str, value: bytes | None = None, key: bytes | None = None, partition: int | None = None
    ) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sent.append({"topic": topic, "value": value, "key": key, "partition": partition, "future": future})
        outcome = HOLD if self.settle is None else self.settle(partition if partition is not None else -1)
        if outcome is None:
            asyncio.get_running_loop().call_soon(future.set_result, None)
        elif outcome is not HOLD:
            asyncio.get_running_loop().call_soon(future.set_exception, outcome)
        return future

    def alerts_by_partition(self) -> dict[int, list[Alert]]:
        found: dict[int, list[Alert]] = {}
        for record in self.sent:
            found.setdefault(record["partition"], []).extend(alert_records(record["value"]))
        return found


async def connected(kafka: FakeKafka, *fakes: FakeKafka, linger_ms: int = 20, timeout: float = 2.0) -> DurableProducer:
    """A DurableProducer over `kafka` (then `fakes`, one per replacement), connected."""
    producer = DurableProducer("unused:9092", timeout, 0, linger_ms)
    queue = [kafka, *fakes]
    producer._new_producer = lambda: queue.pop(0)  # type: ignore[method-assign,assignment,return-value]
    await producer.start()
    for _ in range(10):
        await asyncio.sleep(0)
    assert await producer.ready()
    return producer


def in_partition(partition: int, n: int, tag: str) -> list[Alert]:
    """`n` alerts whose fingerprints hash to `partition` of the fake's topic."""
    found: list[Alert] = []
    i = 0
    while len(found) < n:
        candidate = alert(alertname="GroupCommit", tag=tag, instance=str(i))
        if partition_of(candidate.fingerprint.encode(), PARTITIONS) == partition:
            found.append(candidate)
        i += 1
    return found


def spread(n: int, tag: str) -> list[Alert]:
    return [alert(alertname="GroupCommit", tag=tag, instance=str(i)) for i in range(n)]


def test_concurrent_requests_share_one_record_per_partition():
    async def main() -> None:
        kafka = FakeKafka()
        producer = await connected(kafka)
        requests = [spread(20, f"r{n}") for n in range(5)]
        await asyncio.gather(*(producer.send_alerts(r) for r in requests))

        assert len(kafka.sent) == PARTITIONS  # 100 alerts of 5 requests: one record per partition
        assert all(r["topic"] == "alerts" and r["key"] is None and AlertBatch.is_one(r["value"]) for r in kafka.sent)
        accepted = [a for r in requests for a in r]
        for partition, inside in kafka.alerts_by_partition().items():
            assert inside == [a for a in accepted if partition_of(a.fingerprint.encode(), PARTITIONS) == partition]
            assert len({a.labels["tag"] for a in inside}) > 1  # several requests' alerts in one record
        await producer.stop()

    asyncio.run(main())


def test_a_request_is_answered_only_when_every_record_with_its_alerts_is_acknowledged():
    async def main() -> None:
        kafka = FakeKafka(settle=None)
        producer = await connected(kafka)
        request = asyncio.create_task(producer.send_alerts(in_partition(0, 2, "x") + in_partition(1, 2, "x")))
        while len(kafka.sent) < 2:
            await asyncio.sleep(0.005)
        by_partition = {r["partition"]: r["future"] for r in kafka.sent}
        by_partition[1].set_result(None)
        await asyncio.sleep(0.05)
        assert not request.done()  # partition 0's record is not acknowledged yet
        by_partition[0].set_result(None)
        await asyncio.wait_for(request, 1)

    asyncio.run(main())


def test_a_failed_record_fails_exactly_the_requests_with_alerts_in_it():
    async def main() -> None:
        kafka = FakeKafka(settle=lambda partition: NotEnoughReplicasError() if partition == 0 else None)
        producer = await connected(kafka)
        only_zero, only_one, both, only_two = (
            in_partition(0, 3, "a"),
            in_partition(1, 3, "b"),
            in_partition(0, 1, "c") + in_partition(2, 1, "c"),
            in_partition(2, 2, "d"),
        )
        results = await asyncio.gather(
            *(producer.send_alerts(r) for r in (only_zero, only_one, both, only_two)), return_exceptions=True
        )

        assert [type(r).__name__ for r in results] == ["KafkaUnavailable", "NoneType", "KafkaUnavailable", "NoneType"]
        assert "NotEnoughReplicas" in str(results[0])
        assert len(kafka.sent) == 3  # the three requests' alerts went as one flush: a record per partition
        # The next requests are unaffected.
        kafka.settle = lambda partition: None
        await producer.send_alerts(only_zero)

    asyncio.run(main())


def test_a_failure_while_handing_a_record_to_the_producer_fails_only_that_record():
    async def main() -> None:
        kafka = FakeKafka()
        send = kafka.send

        async def refusing(
            topic: str, value: bytes | None = None, key: bytes | None = None, partition: int | None = None
        ) -> asyncio.Future[None]:
            if partition == 3:
                raise KafkaTimeoutError()
            return await send(topic, value, key, partition)

        kafka.send = refusing  # type: ignore[method-assign]
        producer = await connected(kafka)
        results = await asyncio.gather(
            producer.send_alerts(in_partition(3, 2, "a")),
            producer.send_alerts(in_partition(1, 2, "b")),
            return_exceptions=True,
        )
        assert isinstance(results[0], KafkaUnavailable) and results[1] is None

    asyncio.run(main())


def test_a_broken_idempotent_producer_is_replaced_and_its_requests_answer_503():
    async def main() -> None:
        broken = FakeKafka(settle=lambda partition: OutOfOrderSequenceNumber())
        fresh = FakeKafka()
        producer = await connected(broken, fresh)
        with pytest.raises(KafkaUnavailable):
            await producer.send_alerts(spread(3, "a"))
        for _ in range(20):
            await asyncio.sleep(0)
        assert broken.stopped and await producer.ready()
        await producer.send_alerts(spread(3, "b"))
        assert fresh.sent and all(AlertBatch.is_one(r["value"]) and r["partition"] is not None for r in fresh.sent)

    asyncio.run(main())


def holding_the_first_record() -> FakeKafka:
    """A Kafka that leaves the first record unacknowledged (until stop) and acknowledges the others."""
    kafka = FakeKafka()
    kafka.settle = lambda partition: None if len(kafka.sent) > 1 else HOLD
    return kafka


def test_alerts_go_at_once_while_kafka_has_nothing_in_flight():
    async def main() -> None:
        kafka = FakeKafka()
        producer = await connected(kafka, linger_ms=1000)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await producer.send_alerts(spread(3, "a"))
        assert loop.time() - started < 0.2  # no linger: nothing to share a flush with

    asyncio.run(main())


def test_while_a_record_is_unacknowledged_later_requests_wait_and_then_share_records():
    async def main() -> None:
        kafka = FakeKafka(settle=None)
        producer = await connected(kafka, linger_ms=1000)
        first = asyncio.create_task(producer.send_alerts(in_partition(0, 1, "first")))
        while not kafka.sent:
            await asyncio.sleep(0.005)
        kafka.settle = lambda partition: None
        later = [asyncio.create_task(producer.send_alerts(spread(10, f"r{n}"))) for n in range(3)]
        for _ in range(3):
            await asyncio.sleep(0.01)
            assert len(kafka.sent) == 1  # held back while Kafka has the first record in flight
        kafka.sent[0]["future"].set_result(None)
        await asyncio.wait_for(asyncio.gather(first, *later), 0.5)  # long before the linger's 1 s
        assert len(kafka.sent) == 1 + PARTITIONS
        assert all(len({a.labels["tag"] for a in alert_records(r["value"])}) > 1 for r in kafka.sent[1:])

    asyncio.run(main())


def test_records_a_replaced_producer_never_settles_do_not_hold_back_the_next_flushes():
    async def main() -> None:
        broken = FakeKafka()
        broken.settle = lambda partition: HOLD if len(broken.sent) == 1 else OutOfOrderSequenceNumber()
        broken.finishes_on_stop = False
        fresh = FakeKafka()
        producer = await connected(broken, fresh, linger_ms=1000)
        held = asyncio.create_task(producer.send_alerts(in_partition(0, 1, "held")))
        await asyncio.sleep(0.01)
        with pytest.raises(KafkaUnavailable):
            await producer.send_alerts(in_partition(1, 1, "broken"))  # waits out the held record, then fails
        for _ in range(20):
            await asyncio.sleep(0)
        assert await producer.ready()
        loop = asyncio.get_running_loop()
        started = loop.time()
        await producer.send_alerts(spread(2, "next"))
        assert loop.time() - started < 0.2  # the broken producer's held record is not waited for
        held.cancel()

    asyncio.run(main())


def test_no_request_waits_beyond_the_timeout_and_an_expired_request_is_not_sent():
    async def main() -> None:
        silent = FakeKafka(settle=None)  # never acknowledges
        producer = await connected(silent, linger_ms=500, timeout=0.2)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(KafkaUnavailable, match="within 0.2 s"):
            await producer.send_alerts(spread(2, "a"))
        assert loop.time() - started < 0.5 and len(silent.sent) > 0
        sent = len(silent.sent)
        with pytest.raises(KafkaUnavailable):
            await producer.send_alerts(spread(2, "b"))  # lingers behind the unacknowledged records, times out first
        await asyncio.sleep(0.6)
        assert len(silent.sent) == sent  # nobody waits for those alerts any more: they are not produced

    asyncio.run(main())


def test_stop_flushes_waiting_alerts_at_once_and_answers_their_requests():
    async def main() -> None:
        kafka = holding_the_first_record()
        producer = await connected(kafka, linger_ms=1000, timeout=5)
        first = asyncio.create_task(producer.send_alerts(in_partition(0, 1, "first")))
        await asyncio.sleep(0.01)
        waiting = asyncio.create_task(producer.send_alerts(spread(4, "a")))  # lingers behind the first record
        await asyncio.sleep(0.01)
        assert len(kafka.sent) == 1
        loop = asyncio.get_running_loop()
        started = loop.time()
        await producer.stop()
        await asyncio.wait_for(asyncio.gather(first, waiting), 0.5)  # both acknowledged, not cut off
        assert loop.time() - started < 0.5 and len(kafka.sent) > 1 and kafka.stopped
        with pytest.raises(KafkaUnavailable):
            await producer.send_alerts(spread(1, "b"))

    asyncio.run(main())


def test_alerts_of_one_fingerprint_keep_accept_order_across_flushes():
    async def main() -> None:
        kafka = FakeKafka()
        producer = await connected(kafka, linger_ms=1)
        firing = alert(alertname="Ordered", service="s")
        resolved = alert("resolved", ends=5, alertname="Ordered", service="s")
        for copy in (firing, resolved, firing):
            await producer.send_alerts([copy])
        [(partition, inside)] = kafka.alerts_by_partition().items()
        assert partition == partition_of(firing.fingerprint.encode(), PARTITIONS)
        assert inside == [firing, resolved, firing]

    asyncio.run(main())
