"""The worker's background loops (the decision-log consumer; the executor's and pager's poll loop) ride out
what they meet and never take the worker down.

A worker leaving its group while the sink was writing a batch once made the sink's commit raise
CommitFailedError, which ended the whole worker (stream stages, executor and pager with it). The consumer
here is a stand-in for aiokafka's: these tests are about the loop around it, and the real consumer runs in
tests/integration and tests/chaos.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from aiokafka.errors import CommitFailedError, KafkaConnectionError

from firebreak.settings import Settings
from schemas.decision import Decision, DecisionBatch, DecisionKind
from stream import decision_sink
from stream.decision_sink import DecisionSink


def _record(offset: int, fingerprint: str) -> SimpleNamespace:
    batch = DecisionBatch(
        decisions=[Decision(at=datetime(2026, 11, 29, tzinfo=UTC), kind=DecisionKind.fired, fingerprint=fingerprint)]
    )
    return SimpleNamespace(key=fingerprint.encode(), value=batch.model_dump_json().encode(), partition=0, offset=offset)


class _Consumer:
    """Hands out the given batches one per `getmany`, and fails `commit` or `getmany` as told."""

    def __init__(
        self,
        batches: list[list[Any]],
        commit_errors: list[Exception] | None = None,
        fetch_error: Exception | None = None,
    ) -> None:
        self.batches = batches
        self.commit_errors = commit_errors or []
        self.fetch_error = fetch_error
        self.commits = 0
        self.started = self.stopped = 0

    async def start(self) -> None:
        self.started += 1

    async def stop(self) -> None:
        self.stopped += 1

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[str, list[Any]]:
        if self.fetch_error is not None:
            raise self.fetch_error
        if not self.batches:
            await asyncio.sleep(3600)
        return {"decisions-0": self.batches.pop(0)}

    async def commit(self) -> None:
        if self.commit_errors:
            raise self.commit_errors.pop(0)
        self.commits += 1


class _Log:
    def __init__(self) -> None:
        self.written: list[str | None] = []

    async def record(self, decisions: list[Decision]) -> None:
        self.written += [d.fingerprint for d in decisions]


async def _no_dead_letters(*_: Any) -> None:
    raise AssertionError("nothing here should be dead-lettered")


def test_a_commit_refused_by_a_rebalance_is_logged_and_the_next_batch_still_goes_in(caplog):
    log = _Log()
    sink = DecisionSink(Settings(), log, _no_dead_letters)  # type: ignore[arg-type]
    consumer = _Consumer(
        [[_record(0, "a"), _record(1, "b")], [_record(2, "c")]],
        commit_errors=[CommitFailedError("the group has already rebalanced")],
    )

    async def two_batches() -> list[int]:
        return [await sink.step(consumer), await sink.step(consumer)]  # type: ignore[arg-type]

    assert asyncio.run(two_batches()) == [2, 1]
    assert log.written == ["a", "b", "c"]
    assert consumer.commits == 1  # the first batch's commit was refused, the second went through
    assert "written but not committed (CommitFailedError)" in caplog.text


def test_an_unexpected_failure_restarts_the_consumer_instead_of_ending_the_worker(monkeypatch, caplog):
    monkeypatch.setattr(decision_sink, "RESTART_SECONDS", 0.01)
    log = _Log()
    sink = DecisionSink(Settings(), log, _no_dead_letters)  # type: ignore[arg-type]
    broken = _Consumer([], fetch_error=KafkaConnectionError("the broker went away"))
    healthy = _Consumer([[_record(0, "a")]])
    consumers = [broken, healthy]
    monkeypatch.setattr(sink, "new_consumer", lambda: consumers.pop(0))

    async def run_until_written() -> None:
        task = asyncio.create_task(sink.run_forever())
        for _ in range(500):
            if log.written:
                break
            await asyncio.sleep(0.01)
        assert not task.done(), task  # still running: a failure restarted it, nothing ended it
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    asyncio.run(run_until_written())
    assert log.written == ["a"]
    assert (broken.started, broken.stopped) == (1, 1)  # the failed consumer let go of its connections
    assert (healthy.started, healthy.stopped, healthy.commits) == (1, 1, 1)  # and a cancelled one too
    assert "decision log consumer failed; restarting it" in caplog.text


def test_the_executor_and_pager_loop_outlives_an_unexpected_failure(caplog):
    """Same rule for the loop the executor and the pager share (actions/loop.py): a poll that fails for a
    reason nobody foresaw is logged and tried again; only a cancel ends it."""
    from actions.loop import PollLoop

    class Flaky(PollLoop):
        name = "flaky"

        def __init__(self) -> None:
            super().__init__(poll_seconds=0.01)
            self.polls = 0

        async def poll(self) -> int:
            self.polls += 1
            if self.polls == 1:
                raise ValueError("an escalation nobody could decode")
            return 0

    async def run() -> int:
        loop = Flaky()
        task = asyncio.create_task(loop.run_forever())
        while loop.polls < 3:
            await asyncio.sleep(0.01)
        assert not task.done()
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        return loop.polls

    assert asyncio.run(run()) >= 3
    assert "flaky: looking for due work failed" in caplog.text and "an escalation nobody could decode" in caplog.text
