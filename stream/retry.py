"""Retry transient Redis failures forever, with capped exponential backoff.

faust acks an event whose handler raised and never delivers it again, so the processing
path must not raise on a transient failure: it waits here instead. While it waits the agent
takes no new batch, so consumption stops until Redis is back.

A failure that waiting cannot heal is raised at once instead (``is_permanent``): credentials
Redis refuses, and TLS that fails to verify (a wrong CA, a certificate for another name, TLS
spoken to a plain port). redis-py reports those as its ConnectionError, an OSError like a
refused connection, so the cause is looked up in the exception's chain.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
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
# TLS errors that are a connection cut mid-handshake (a server restarting), not a refusal.
_TRANSIENT_TLS: tuple[type[BaseException], ...] = (
    ssl.SSLEOFError,
    ssl.SSLZeroReturnError,
    ssl.SSLSyscallError,
    ssl.SSLWantReadError,
    ssl.SSLWantWriteError,
)


def is_permanent(exc: BaseException) -> bool:
    """True for refused credentials and failed TLS verification, wherever they are in the
    chain of causes; False for real connection errors (refused, reset, timed out)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, PERMANENT):
            return True
        if isinstance(current, ssl.SSLError) and not isinstance(current, _TRANSIENT_TLS):
            return True
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return False


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
        except TRANSIENT as exc:
            if is_permanent(exc):
                log.error(
                    "%s failed and waiting will not heal it (%s: %s); not retrying",
                    what,
                    type(exc).__name__,
                    exc,
                )
                raise
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
