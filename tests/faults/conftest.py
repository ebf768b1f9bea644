"""Fault-injection suite: real broker and Redis processes, faults, then a batch oracle."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.common import kill_leftover_workers


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: fault-injection suite")


@pytest.fixture(autouse=True)
def _no_worker_outlives_its_test() -> Iterator[None]:
    """A scenario that fails midway may leave workers running: they are killed here."""
    yield
    kill_leftover_workers()
