"""Fault-injection suite: real broker and Redis processes, faults, then a batch oracle."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: fault-injection suite")
