"""The worker's rescoring timer (issue #18): a pass that cannot start is logged and counted
as failed, never swallowed; and no failure stops the timer (the next tick retries)."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import REGISTRY
from redis.exceptions import ConnectionError as RedisConnectionError

from stream.app import rescore_tick
from stream.settings import Settings


def _failed(kind: str) -> float:
    value = REGISTRY.get_sample_value(
        "rfm_rescore_passes_total", {"kind": kind, "result": "failed"}
    )
    return value or 0.0


def _runtime(mode: str) -> Any:
    async def as_of_now() -> int:
        raise RedisConnectionError("Error 111 connecting to redis:6379. Connection refused.")

    settings = Settings().with_values({"RFM_SCORING": mode, "RFM_CLOCK": "event"})
    return SimpleNamespace(settings=settings, as_of_now=as_of_now)


@pytest.mark.parametrize(("mode", "kind"), [("thresholds", "due"), ("quintiles", "full")])
async def test_a_pass_that_cannot_start_is_logged_and_counted(
    mode: str, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    before = _failed(kind)
    with caplog.at_level(logging.WARNING):
        await rescore_tick(_runtime(mode))  # does not raise
    assert _failed(kind) == before + 1
    assert f"rescoring pass ({kind}) could not start" in caplog.text
    assert "Connection refused" in caplog.text
