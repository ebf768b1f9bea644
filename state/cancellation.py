"""A cancellation that redis-py dropped, raised again where a loop can stop.

redis-py sends every command through ``asyncio.wait_for`` when the client has a socket
timeout (the worker's has: stream/runtime.py), and on Python 3.11 ``wait_for`` returns a
result that completes together with a cancellation and drops the cancellation. A task
cancelled while it sends a command then carries on as if nothing happened; a loop that runs
until cancelled (the outbox relay, a retry, a rescoring pass, the gauges' refresh) would
run on, and a worker's shutdown would wait for it until SIGKILL. Cancelled at each of its
first 300 loop steps, the relay loop ran on after 89 of them (tests/integration/
test_relay.py). The task still counts the request (``Task.cancelling``), so such loops call
``raise_if_cancelled`` between steps.
"""

from __future__ import annotations

import asyncio


def raise_if_cancelled() -> None:
    """Raise CancelledError if this task was asked to stop and has not yet."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
