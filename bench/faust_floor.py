"""The framework's own cost per record: a Faust agent over a topic that does nothing but read, optionally with
one table write and one output send per record (what a Firebreak stage does at the least).

    python bench/faust_floor.py BOOTSTRAP TOPIC COUNT OUT.json [--table] [--send]

Writes `{"records": n, "seconds": s}` to OUT.json once COUNT records were read (timed from the first one)
and exits. bench/run.py runs it beside the stream scenario, so the stage's rate can be read against the
framework's floor on the same machine in the same run.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from pathlib import Path

import faust


def main() -> None:
    bootstrap, topic, count, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    table, send = "--table" in sys.argv, "--send" in sys.argv
    app = faust.App(
        f"faust-floor-{uuid.uuid4().hex[:6]}",
        broker=f"kafka://{bootstrap}",
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        topic_partitions=4,
        producer_acks=-1,
    )
    source = app.topic(topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    sink = app.topic(
        f"faust-floor-out-{uuid.uuid4().hex[:6]}",
        key_type=bytes,
        value_type=bytes,
        partitions=4,
        key_serializer="raw",
        value_serializer="raw",
    )
    entries = app.Table("floor", default=None, key_type=str, value_type=bytes) if table else None
    seen = {"n": 0, "start": 0.0}

    @app.agent(source)
    async def read(stream: faust.StreamT) -> None:
        if send:
            await sink.maybe_declare()  # the broker does not create topics on first use
        async for event in stream.events():
            if seen["n"] == 0:
                seen["start"] = time.monotonic()
            seen["n"] += 1
            key = event.message.key or b""
            if entries is not None:
                entries[key.decode()] = event.message.value
            if send:
                await app.producer.send(sink.get_topic_name(), key, event.message.value, None, None, None)
            if seen["n"] >= count:
                out.write_text(json.dumps({"records": seen["n"], "seconds": time.monotonic() - seen["start"]}))
                os._exit(0)

    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn"]
    app.main()


if __name__ == "__main__":
    main()
