"""The one place that knows Redis key names.

Layout (``P`` is the configurable prefix, default ``rfm``):

=============================  ======  ===============================================
key                            type    holds
=============================  ======  ===============================================
``P:c:{<customer>}``           hash    one customer: profile fields and one field per order
``P:offsets``                  hash    ``<topic>:<partition>`` -> last applied input offset
``P:stats``                    hash    input outcome counters (applied, duplicate, dlq:<reason>)
``P:clock``                    string  latest event time applied (epoch ms): the event clock
``P:dirty``                    set     customers whose state changed but who are not rescored yet
``P:due``                      zset    customer -> epoch ms at which their R score next drops
``P:segments``                 hash    segment -> number of customers in it
``P:quintiles``                string  quintile boundaries of the last full pass (JSON)
``P:outbox:<partition>``       stream  segment changes and dead letters waiting for Kafka
``P:relay-lock:<partition>``   string  who relays that outbox right now
``P:rescore``                  hash    last pass: as_of, finished_at, counts
=============================  ======  ===============================================

A customer's hash is named with a Redis Cluster hash tag around the customer id, so all of
one customer's data sits in one slot. Customer ids may contain any character, so ``{``,
``}`` and ``%`` are percent-escaped: the tag always ends where we say it ends, and no id can
name another customer's key. Ids never go into a SCAN pattern unescaped; the only pattern we
use is our own prefix.
"""

from __future__ import annotations

from dataclasses import dataclass

_ESCAPES = str.maketrans({"%": "%25", "{": "%7B", "}": "%7D"})


def escape_id(customer_id: str) -> str:
    return customer_id.translate(_ESCAPES)


def unescape_id(escaped: str) -> str:
    return escaped.replace("%7D", "}").replace("%7B", "{").replace("%25", "%")


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "rfm"

    def customer(self, customer_id: str) -> str:
        return f"{self.prefix}:c:{{{escape_id(customer_id)}}}"

    def customer_pattern(self) -> str:
        """SCAN pattern for every customer hash; built from our prefix only."""
        return f"{self.prefix}:c:{{*"

    def customer_id_of(self, key: str | bytes) -> str:
        text = key.decode() if isinstance(key, bytes) else key
        head = f"{self.prefix}:c:{{"
        if not (text.startswith(head) and text.endswith("}")):
            raise ValueError(f"not a customer key: {text!r}")
        return unescape_id(text[len(head) : -1])

    @property
    def offsets(self) -> str:
        return f"{self.prefix}:offsets"

    @property
    def stats(self) -> str:
        return f"{self.prefix}:stats"

    @property
    def clock(self) -> str:
        return f"{self.prefix}:clock"

    @property
    def dirty(self) -> str:
        return f"{self.prefix}:dirty"

    @property
    def due(self) -> str:
        return f"{self.prefix}:due"

    @property
    def segments(self) -> str:
        return f"{self.prefix}:segments"

    @property
    def quintiles(self) -> str:
        return f"{self.prefix}:quintiles"

    @property
    def rescore(self) -> str:
        return f"{self.prefix}:rescore"

    @property
    def outbox_prefix(self) -> str:
        return f"{self.prefix}:outbox:"

    def outbox(self, partition: int) -> str:
        return f"{self.outbox_prefix}{partition}"

    def relay_lock(self, partition: int) -> str:
        return f"{self.prefix}:relay-lock:{partition}"
