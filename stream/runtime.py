"""Builds the state, scoring and relay objects from settings, for the worker and the CLI."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from state.keys import Keys
from state.reads import StateReader
from state.rescorer import Rescorer, ScoringContexts
from state.scoring import ThresholdScorer
from state.segments import SegmentRules, SegmentRulesError, load_segment_rules
from state.store import StateStore
from stream import faults
from stream.gaps import GapFiller
from stream.pipeline import OrderPipeline, now_ms
from stream.publisher import Publisher
from stream.relay import OutboxRelay
from stream.security import aiokafka_options, redis_options
from stream.settings import Settings, SettingsError
from stream.validation import ValidationRules


def load_rules(settings: Settings) -> SegmentRules:
    try:
        return load_segment_rules(settings.segments)
    except SegmentRulesError as exc:
        raise SettingsError(f"RFM_SEGMENTS={settings.segments!r}: {exc}") from exc


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

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        rules = load_rules(settings)
        redis = aioredis.from_url(
            settings.redis_url,
            socket_timeout=10,
            socket_connect_timeout=5,
            health_check_interval=30,
            **redis_options(settings),
        )
        keys = Keys(settings.redis_prefix)
        store = StateStore(redis, keys)
        reader = StateReader(redis, keys)
        contexts = ScoringContexts(
            redis,
            keys,
            settings.scoring,
            ThresholdScorer(settings.thresholds),
            rules,
            settings.currency,
            settings.exponent,
        )
        rescorer = Rescorer(store, reader, contexts, on_chunk=lambda: faults.hit("rescore_midway"))
        publisher = Publisher(settings.kafka_bootstrap, **aiokafka_options(settings))
        relay = OutboxRelay(redis, keys, publisher, settings.changes_topic, settings.dlq_topic)
        validation = ValidationRules(
            currencies=settings.currencies,
            max_future_skew_ms=round(settings.max_future_skew * 1000),
        )
        gaps = GapFiller(
            settings.kafka_bootstrap,
            settings.orders_topic,
            settings.batch_size,
            **aiokafka_options(settings),
        )
        pipeline = OrderPipeline(
            settings.orders_topic, validation, store, rescorer, settings.clock, gaps
        )
        return cls(
            settings, rules, redis, keys, store, reader, rescorer, publisher, relay, pipeline
        )

    async def as_of_now(self) -> int:
        """The time recency is measured against: now, or the latest event time applied."""
        if self.settings.clock == "event":
            return await self.reader.clock_ms() or now_ms()
        return now_ms()

    async def close(self) -> None:
        try:
            await self.pipeline.settle()
        finally:
            await self.publisher.stop()
            await self.redis.aclose()
