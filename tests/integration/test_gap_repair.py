"""The gap repair fetches exactly the records a stream skipped, from the real broker."""

from __future__ import annotations

import asyncio

import pytest
from kafka import KafkaProducer

from adapters.gaps import GapFetcher
from tests.conftest import Stack

pytestmark = pytest.mark.integration


def test_fetch_returns_the_missing_offsets_in_order(stack: Stack):
    producer = KafkaProducer(bootstrap_servers=stack.bootstrap)
    before = stack.end_offsets("dead-letter")
    # dead-letter has 4 partitions; pin these to partition 0 so their offsets are consecutive there.
    futures = [producer.send("dead-letter", value=f"gap-{n}".encode(), key=b"gap-test", partition=0) for n in range(6)]
    offsets = [f.get(timeout=30).offset for f in futures]
    producer.close()
    assert stack.end_offsets("dead-letter") == before + 6

    async def fetch():
        fetcher = GapFetcher(stack.bootstrap)
        try:
            return await fetcher.fetch("dead-letter", 0, offsets[1], offsets[4])
        finally:
            await fetcher.stop()

    fetched = asyncio.run(fetch())
    assert [e.message.offset for e in fetched] == offsets[1:4]
    assert [e.value for e in fetched] == [b"gap-1", b"gap-2", b"gap-3"]
    assert all(e.message.partition == 0 and e.message.timestamp > 1e9 for e in fetched)
