"""Retry transient Redis failures forever, with capped exponential backoff.

faust acks an event whose handler raised and never delivers it again, so the processing
path must not raise on a transient failure: it waits here instead. While it waits the agent
takes no new batch, so consumption stops until Redis is back.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    BusyLoadingError,
    ReadOnlyError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from state.cancellation import raise_if_cancelled

log = logging.getLogger(__name__)
T = TypeVar("T")

TRANSIENT: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    BusyLoadingError,
    ReadOnlyError,
    TryAgainError,
    ConnectionError,
    TimeoutError,
    OSError,
)


# Wrong credentials do not heal by waiting: they must stop the worker loudly, not stall it.
PERMANENT: tuple[type[BaseException], ...] = (AuthenticationError, AuthorizationError)


async def retry_transient(
    op: Callable[[], Awaitable[T]],
    what: str,
    *,
    first_delay: float = 0.05,
    max_delay: float = 5.0,
    on_retry: Callable[[BaseException], None] | None = None,
) -> T:
    delay = first_delay
    attempt = 0
    while True:
        try:
            return await op()
        except PERMANENT:
            raise
        except TRANSIENT as exc:
            raise_if_cancelled()  # redis-py can drop one (state/cancellation.py)
            attempt += 1
            if on_retry is not None:
                on_retry(exc)
            level = logging.WARNING if attempt == 1 or attempt % 10 == 0 else logging.DEBUG
            log.log(
                level,
                "%s failed (%s: %s); retry %d in %.2fs",
                what,
                type(exc).__name__,
                exc,
                attempt,
                delay,
            )
            await asyncio.sleep(delay * (0.5 + random.random() / 2))
            delay = min(max_delay, delay * 2)
