"""Test-only fault points, so the fault-injection suite can crash a worker at exact places.

Off unless ``RFM_TEST_FAULTS`` is set (never set it in production). Its value is a comma list
of ``point=action`` with action ``exit`` (die at once, like SIGKILL: no cleanup, no commit),
``raise`` (raise ``InjectedFault``) or ``raise-once``. Points:

* ``after_apply``     the batch is in Redis, scores are not written, offsets not committed
* ``after_score``     scores and outbox written, offsets not committed
* ``relay_published`` outbox records published to Kafka, not yet deleted from the outbox
* ``rescore_midway``  a rescoring pass has written its first chunk
* ``apply:<order_id>``  raise while applying the batch holding this order id (a "bug")
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

log = logging.getLogger(__name__)


class InjectedFault(RuntimeError):
    """Raised at a fault point; only ever in tests."""


def _parse(spec: str) -> dict[str, str]:
    points: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        point, _, action = item.partition("=")
        points[point] = action or "exit"
    return points


_POINTS = _parse(os.environ.get("RFM_TEST_FAULTS", ""))
if _POINTS:
    log.warning("test fault points are armed: %s", ", ".join(sorted(_POINTS)))


def hit(point: str) -> None:
    action = _POINTS.get(point)
    if action is None:
        return
    if action == "exit":
        log.warning("fault point %s: exiting now", point)
        os._exit(137)
    if action == "raise-once":
        del _POINTS[point]
    raise InjectedFault(f"injected fault at {point}")


def hit_order(order_ids: Iterable[str]) -> None:
    """Raise if the batch holds an order id armed with ``apply:<order_id>``."""
    if not _POINTS:
        return
    for order_id in order_ids:
        hit(f"apply:{order_id}")
