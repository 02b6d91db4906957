"""The one way Firebreak opens Redis: a pooled asyncio client that replaces a dead pooled connection and
sends the command again, instead of failing it.

Every process keeps a pool of connections. When Redis restarts (or a proxy or firewall drops an idle
connection) each pooled connection is dead until it is next used, and without a retry the first command
on each one fails with `ConnectionError: Connection closed by server` although Redis answers again. That
failure lands wherever the connection happened to be used next, for instance between a runbook step's
claim and its call, where it used to make a step that never ran look `unknown` (RUN-20).

`connect()` sets what redis-py's own `Redis(host=...)` constructor defaults to and `from_url` does not: a
command that met a dead connection (`ConnectionError`, which includes `LOADING` while Redis reads its data
back) is sent again on a new one after a short jittered backoff. A timeout is not retried: Redis is slow,
and sending the same work again would make it slower. A command sent again may have run the first time
(the connection died after Redis took it but before the answer came back), so every write that is not
naturally repeatable recognises its own repeat: the run store's scripts (adapters/run_store.py), the
pager's claim and advance (actions/pager.py), the read-model rebuild's claim (firebreak/worker.py).
Whatever still fails after the retries is Redis being away; the callers wait for it
(adapters/redis_errors.py), and the executor sends a step's claim and outcome until Redis answers.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

RETRIES = 3  # attempts after the first, each on a new connection
RETRY_BASE_SECONDS = 0.05  # the first wait; doubled per attempt with jitter, at most RETRY_CAP_SECONDS
RETRY_CAP_SECONDS = 1.0
HEALTH_CHECK_SECONDS = 30  # a connection idle this long is pinged before it is used again


def retry_policy(retries: int = RETRIES) -> Retry:
    """The retry of `connect()`: `retries` more attempts after the first, 0.05 s doubling up to 1 s, jittered."""
    return Retry(
        ExponentialWithJitterBackoff(base=RETRY_BASE_SECONDS, cap=RETRY_CAP_SECONDS),
        retries,
        supported_errors=(RedisConnectionError,),
    )


def connect(url: str, name: str, *, socket_timeout: float | None = 5.0, retries: int = RETRIES) -> aioredis.Redis:
    """A pooled client for `url` (redis:// or rediss://, as `FIREBREAK_REDIS_URL`), nothing opened yet.

    `name` is each connection's `CLIENT SETNAME` (`firebreak-worker`, `firebreak-ingest`, ...), so `CLIENT
    LIST` on the Redis side tells which process holds which connection. `socket_timeout` (seconds) bounds each
    read and write; `retries` is how many times a command that met a dead connection is sent again on a new
    one. Raises ValueError for a URL redis-py cannot read.
    """
    return aioredis.Redis.from_url(
        url,
        client_name=name,
        socket_timeout=socket_timeout,
        socket_connect_timeout=5.0,
        retry=retry_policy(retries),
        retry_on_error=[RedisConnectionError],
        health_check_interval=HEALTH_CHECK_SECONDS,
    )
