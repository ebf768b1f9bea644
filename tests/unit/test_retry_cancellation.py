"""A retry loop stops when its task is cancelled, even if the cancellation was dropped on
the way (state/cancellation.py: redis-py's use of asyncio.wait_for on Python 3.11)."""

from __future__ import annotations

import asyncio
import contextlib

from stream.retry import retry_transient


async def test_a_retry_stops_when_the_operation_dropped_its_cancellation() -> None:
    attempts = 0

    async def op() -> None:
        """Fails as Redis down would; a cancellation landing in it is dropped, as
        asyncio.wait_for drops one on Python 3.11 (the task still counts it)."""
        nonlocal attempts
        attempts += 1
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0.01)
        raise ConnectionError("Redis went away")

    task = asyncio.create_task(retry_transient(op, "a test", first_delay=0.001, max_delay=0.001))
    await asyncio.sleep(0.05)
    assert attempts > 1 and not task.done()
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=2)
    assert done == {task}, "the retry loop ran on after its cancellation"
    assert task.cancelled()
