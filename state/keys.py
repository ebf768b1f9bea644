"""The one place that knows Redis key names.

Layout (``P`` is the configurable prefix, default ``rfm``; ``B`` a bucket number):

==============================  ======  ================================================
key                             type    holds
==============================  ======  ================================================
``P:b:{B}``                     hash    customer id -> packed profile (state/lua/profile.lua)
``P:o:{B}``                     hash    ``<id>\\x1f<order>`` -> order record; refund marks
``P:due:<hour>``                list    ``<B>:<id>`` entries: R may drop in that hour
``P:due-hours``                 zset    hours that have a due list (score = hour)
``P:segment-codes``             hash    segment name <-> short code used in profiles
``P:layout``                    string  version of this layout ("2"); scripts refuse others
``P:offsets``                   hash    ``<topic>:<partition>`` -> last applied input offset
``P:stats``                     hash    input outcome counters (applied, duplicate, dlq:<reason>)
``P:clock``                     string  latest event time applied (epoch ms): the event clock
``P:partition-clocks``          hash    ``<topic>:<partition>`` -> latest event time applied
                                        from it; their minimum is the watermark by which
                                        RFM_CLOCK=event measures the order retention
``P:dirty``                     set     customers whose state changed but who are not rescored yet
``P:segments``                  hash    segment -> number of customers in it
``P:quintiles``                 string  quintile boundaries of the last full pass (JSON)
``P:outbox:<partition>``        stream  segment changes and dead letters waiting for Kafka
``P:outboxes``                  set     partitions that have an outbox (written with it)
``P:relay-lock:<partition>``    string  who relays that outbox right now
``P:rescore``                   hash    last pass: as_of, finished_at, counts
``P:seq-floor``                 string  change number new customers start after (erasure)
``P:erasures``                  string  customers erased so far (``rfm-stream forget``)
==============================  ======  ================================================

Why buckets: a key costs Redis ~60-80 bytes before it holds anything, more than a whole
packed profile. Customers share ``BUCKETS`` small hashes instead, which Redis keeps as
compact listpacks while they stay under ``hash-max-listpack-entries`` (128) and values under
``hash-max-listpack-value`` (64 bytes): about 15 customers a bucket at a million customers,
still under 128 at eight million. Ids are hash fields, so they need no escaping; validation
refuses control characters, so ``\\x1f`` and ``\\n`` separate safely. A bucket's two hashes
share a Redis Cluster hash tag.

Why due lists by hour instead of one sorted set: a sorted-set member costs ~100 bytes, a
list entry ~16. The lists are candidates: the profile holds the real due time, and
an entry whose profile says otherwise is skipped (docs/performance.md, "Memory").
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

BUCKETS = 65_536
HOUR_MS = 3_600_000


def bucket_of(customer_id: str) -> int:
    return zlib.crc32(customer_id.encode()) & (BUCKETS - 1)


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "rfm"

    def profiles(self, bucket: int) -> str:
        return f"{self.prefix}:b:{{{bucket}}}"

    def orders(self, bucket: int) -> str:
        return f"{self.prefix}:o:{{{bucket}}}"

    def profiles_of(self, customer_id: str) -> str:
        return self.profiles(bucket_of(customer_id))

    def orders_of(self, customer_id: str) -> str:
        return self.orders(bucket_of(customer_id))

    @property
    def orders_head(self) -> str:
        """``orders(b)`` is this + b + "}": the scripts that find a customer's order bucket
        from its profile bucket number build it so."""
        return f"{self.prefix}:o:{{"

    @property
    def profiles_head(self) -> str:
        """``profiles(b)`` is this + b + "}": the scripts that read due lists build it so."""
        return f"{self.prefix}:b:{{"

    def profiles_pattern(self) -> str:
        """SCAN pattern for every profile bucket; built from our prefix only."""
        return f"{self.prefix}:b:{{*"

    @property
    def due_head(self) -> str:
        return f"{self.prefix}:due:"

    def due(self, hour: int) -> str:
        return f"{self.due_head}{hour}"

    @property
    def due_hours(self) -> str:
        return f"{self.prefix}:due-hours"

    @property
    def segment_codes(self) -> str:
        return f"{self.prefix}:segment-codes"

    @property
    def layout(self) -> str:
        return f"{self.prefix}:layout"

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
    def partition_clocks(self) -> str:
        return f"{self.prefix}:partition-clocks"

    @property
    def dirty(self) -> str:
        return f"{self.prefix}:dirty"

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
    def seq_floor(self) -> str:
        """Customers created from now on number their segment changes after this: at least
        the last change number of every customer erased so far (state/lua/forget.lua), so a
        customer id that comes back never repeats an ``event_id`` it had before."""
        return f"{self.prefix}:seq-floor"

    @property
    def erasures(self) -> str:
        return f"{self.prefix}:erasures"

    @property
    def outbox_prefix(self) -> str:
        return f"{self.prefix}:outbox:"

    def outbox(self, partition: int) -> str:
        return f"{self.outbox_prefix}{partition}"

    @property
    def outboxes(self) -> str:
        """Every partition whose outbox was ever written: the relay, the drain and the
        backlog gauge cover these, whatever the settings say the topic has."""
        return f"{self.prefix}:outboxes"

    def outbox_pattern(self) -> str:
        """SCAN pattern for outboxes written before the ``outboxes`` set existed."""
        return f"{self.outbox_prefix}*"

    def relay_lock(self, partition: int) -> str:
        return f"{self.prefix}:relay-lock:{partition}"
