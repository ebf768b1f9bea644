"""Which Redis failures are retried (issue #18): a refused or cut connection heals by waiting;
refused credentials and TLS that fails to verify do not, and stop at once instead of being
retried forever. redis-py wraps all of them in its ConnectionError (an OSError), so the
classification looks at the chain of causes; these cases use real redis-py errors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, AuthorizationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from stream.retry import is_permanent, retry_transient


def _wrapped(cause: BaseException) -> RedisConnectionError:
    """As redis-py's Connection.connect raises it: ConnectionError from the OSError."""
    try:
        try:
            raise cause
        except OSError as exc:
            raise RedisConnectionError(f"Error connecting: {exc}") from exc
    except RedisConnectionError as wrapped:
        return wrapped


@pytest.mark.parametrize(
    "exc",
    [
        AuthenticationError("invalid username-password pair"),
        AuthorizationError("NOAUTH"),
        _wrapped(ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] failed")),
        _wrapped(ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")),
        ssl.SSLCertVerificationError(1, "certificate verify failed"),
    ],
    ids=["auth", "authz", "cert-verify", "tls-to-plain-port", "bare-cert-verify"],
)
def test_credentials_and_tls_failures_are_permanent(exc: BaseException) -> None:
    assert is_permanent(exc)


@pytest.mark.parametrize(
    "exc",
    [
        _wrapped(ConnectionRefusedError(111, "Connection refused")),
        _wrapped(ConnectionResetError(104, "Connection reset by peer")),
        _wrapped(ssl.SSLEOFError(8, "EOF occurred in violation of protocol")),
        _wrapped(ssl.SSLZeroReturnError(6, "TLS/SSL connection has been closed")),
        RedisTimeoutError("Timeout reading from socket"),
        TimeoutError(),
        OSError(113, "No route to host"),
    ],
    ids=["refused", "reset", "tls-eof", "tls-closed", "redis-timeout", "timeout", "no-route"],
)
def test_connection_errors_stay_transient(exc: BaseException) -> None:
    assert not is_permanent(exc)


@contextlib.asynccontextmanager
async def _plain_server() -> AsyncIterator[int]:
    """A TCP server that answers a TLS hello with plain text, as a Redis without TLS would."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"-ERR unknown command\r\n" * 4)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def test_real_redis_py_errors_are_classified() -> None:
    async with _plain_server() as port:
        client = aioredis.from_url(f"rediss://127.0.0.1:{port}/0", socket_connect_timeout=5)
        with pytest.raises(RedisConnectionError) as tls:
            await client.ping()
        await client.aclose()
    assert is_permanent(tls.value), repr(tls.value)

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    client = aioredis.from_url(f"redis://127.0.0.1:{closed}/0", socket_connect_timeout=5)
    with pytest.raises(RedisConnectionError) as refused:
        await client.ping()
    await client.aclose()
    assert not is_permanent(refused.value), repr(refused.value)


async def test_a_permanent_failure_is_raised_at_once_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    attempts = 0
    failure = _wrapped(ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] x"))

    async def op() -> None:
        nonlocal attempts
        attempts += 1
        raise failure

    with caplog.at_level(logging.ERROR), pytest.raises(RedisConnectionError):
        await retry_transient(op, "applying a batch", first_delay=0.001)
    assert attempts == 1
    assert "applying a batch failed and waiting will not heal it" in caplog.text
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text


async def test_a_transient_failure_is_retried_until_it_heals() -> None:
    attempts = 0

    async def op() -> str:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise _wrapped(ConnectionRefusedError(111, "Connection refused"))
        return "ok"

    assert await retry_transient(op, "a test", first_delay=0.001, max_delay=0.001) == "ok"
    assert attempts == 3
