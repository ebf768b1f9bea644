"""Armed fault hooks for the fault-injection suite (development code, never shipped).

``RFM_TEST_FAULTS`` is a comma list of ``point=action``, action ``exit`` (die at once, like
SIGKILL: no cleanup, no commit; the default), ``raise`` (raise ``InjectedFault``) or
``raise-once``. The points are listed in ``state/hooks.py``; ``apply:<order_id>`` raises
while applying the batch holding that order id (a "bug"). Only ``rfm_dev.fault_worker``
reads the variable, so a production process cannot be armed by its environment.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping

log = logging.getLogger(__name__)
VARIABLE = "RFM_TEST_FAULTS"
EXIT_AT_FAULT = 137  # what a SIGKILLed process reports, so the tests read alike


class InjectedFault(RuntimeError):
    """Raised at a fault point; only ever in tests."""


def parse(spec: str) -> dict[str, str]:
    points: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        point, _, action = item.partition("=")
        points[point] = action or "exit"
    return points


class ArmedFaults:
    """``FaultHooks`` (state/hooks.py) that exit or raise at the armed points."""

    def __init__(self, points: Mapping[str, str]) -> None:
        self.points = dict(points)
        if self.points:
            log.warning("test fault points are armed: %s", ", ".join(sorted(self.points)))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ArmedFaults:
        return cls(parse((os.environ if env is None else env).get(VARIABLE, "")))

    def hit(self, point: str) -> None:
        action = self.points.get(point)
        if action is None:
            return
        if action == "exit":
            log.warning("fault point %s: exiting now", point)
            os._exit(EXIT_AT_FAULT)
        if action == "raise-once":
            del self.points[point]
        raise InjectedFault(f"injected fault at {point}")

    def hit_order(self, order_ids: Iterable[str]) -> None:
        """Raise if the batch holds an order id armed with ``apply:<order_id>``."""
        if not self.points:
            return
        for order_id in order_ids:
            self.hit(f"apply:{order_id}")
