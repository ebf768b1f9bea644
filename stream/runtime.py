"""Builds the state, scoring and relay objects from settings, for the worker and the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field

import redis.asyncio as aioredis

from state.hooks import NO_FAULTS, FaultHooks
from state.keys import Keys
from state.model import History, now_ms
from state.reads import StateReader
from state.rescorer import Rescorer, ScoringContexts
from state.scoring import ThresholdScorer
from state.segments import SegmentRules, SegmentRulesError, load_segment_rules
from state.store import StateStore
from stream.gaps import GapFiller
from stream.pipeline import OrderPipeline
from stream.publisher import Publisher
from stream.relay import OutboxRelay
from stream.security import aiokafka_options, redis_options
from stream.settings import Settings, SettingsError
from stream.validation import ValidationRules


def load_rules(settings: Settings) -> SegmentRules:
    try:
        return load_segment_rules(settings.scoring.segments)
    except SegmentRulesError as exc:
        raise SettingsError(f"RFM_SEGMENTS={settings.scoring.segments!r}: {exc}") from exc


@dataclass
class Runtime:
    settings: Settings
    rules: SegmentRules
    redis: aioredis.Redis
    keys: Keys
    store: StateStore
    reader: StateReader
    rescorer: Rescorer
    publisher: Publisher
    relay: OutboxRelay
    pipeline: OrderPipeline
    hooks: FaultHooks = field(default=NO_FAULTS)

    @classmethod
    def build(cls, settings: Settings, hooks: FaultHooks = NO_FAULTS) -> Runtime:
        """``hooks`` are the fault points' (state/hooks.py): nothing in production; the
        fault-injection suite passes armed ones (the development package's fault_worker)."""
        rules = load_rules(settings)
        redis = aioredis.from_url(
            settings.redis.url,
            socket_timeout=settings.redis.socket_timeout,
            socket_connect_timeout=settings.redis.connect_timeout,
            health_check_interval=settings.redis.health_check_interval,
            **redis_options(settings),
        )
        keys = Keys(settings.redis.prefix)
        history = History(
            window_days=settings.scoring.window_days,
            retention_days=settings.scoring.retention_days,
            event_clock=settings.scoring.clock == "event",
        )
        store = StateStore(redis, keys, history)
        reader = StateReader(redis, keys)
        contexts = ScoringContexts(
            redis,
            keys,
            settings.scoring.mode,
            ThresholdScorer(settings.scoring.thresholds),
            rules,
            settings.scoring.currency,
            settings.scoring.exponent,
            history,
        )
        rescorer = Rescorer(store, reader, contexts, hooks)
        publisher = Publisher(settings.kafka.bootstrap, **aiokafka_options(settings))
        relay = OutboxRelay(
            redis,
            keys,
            publisher,
            settings.kafka.changes_topic,
            settings.kafka.dlq_topic,
            snapshot_topic=settings.kafka.snapshot_topic or None,
            chunk=settings.operations.relay_chunk,
            lock_seconds=settings.operations.relay_lock_timeout,
            hooks=hooks,
        )
        validation = ValidationRules(
            currencies=settings.scoring.currencies,
            max_future_skew_ms=round(settings.scoring.max_future_skew * 1000),
        )
        gaps = GapFiller(
            settings.kafka.bootstrap,
            settings.kafka.orders_topic,
            settings.kafka.batch_size,
            **aiokafka_options(settings),
        )
        pipeline = OrderPipeline(
            settings.kafka.orders_topic,
            validation,
            store,
            rescorer,
            settings.scoring.clock,
            gaps,
            hooks,
        )
        return cls(
            settings, rules, redis, keys, store, reader, rescorer, publisher, relay, pipeline, hooks
        )

    async def as_of_now(self) -> int:
        """The time recency is measured against: now, or the latest event time applied."""
        if self.settings.scoring.clock == "event":
            return await self.reader.clock_ms() or now_ms()
        return now_ms()

    async def retention_clock(self) -> int:
        """The time the order retention is measured by: now, or with RFM_CLOCK=event the
        watermark of the input partitions (state/lua/window.lua)."""
        if self.settings.scoring.clock == "event":
            return await self.reader.watermark_ms() or now_ms()
        return now_ms()

    async def close(self) -> None:
        try:
            await self.pipeline.settle()
        finally:
            await self.publisher.stop()
            await self.redis.aclose()
