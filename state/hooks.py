"""Fault hooks: the places where the fault-injection suite may crash a process.

Production code only calls these; what a hook does is injected from outside (``Runtime``'s
``hooks``). The default does nothing, and nothing in ``state/`` or ``stream/`` reads a test
variable: the armed implementation is development code (``faults.py`` of the development
package, which the image does not ship), installed only by its ``fault_worker`` entry.
The protocol lives here, not in ``stream/``, so the state layer (the rescorer's passes)
can take hooks without importing the stream layer.

Points: ``after_apply`` (batch in Redis, not scored, offsets not committed),
``after_score`` (scores and outbox written, offsets not committed), ``relay_published``
(outbox records acknowledged by Kafka, not yet deleted), ``rescore_midway`` (a rescoring
pass wrote a chunk), and per order id, applying a batch that holds it (``hit_order``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


class FaultHooks(Protocol):
    def hit(self, point: str) -> None:
        """Called when the process reaches ``point``; may raise or end the process."""

    def hit_order(self, order_ids: Iterable[str]) -> None:
        """Called before a batch holding these order ids is applied; may raise."""


class NoFaults:
    """The production hooks: every point passes, without looking at the order ids."""

    def hit(self, point: str) -> None:
        return None

    def hit_order(self, order_ids: Iterable[str]) -> None:
        return None


NO_FAULTS: FaultHooks = NoFaults()
