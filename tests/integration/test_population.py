"""Quintile mode's population is counted in Redis (state/lua/population.lua): the counts
must be those of the profiles as Python reads them, scorable customers only."""

from __future__ import annotations

from collections import Counter

import pytest

from state.model import MS_PER_DAY, recency_days
from state.population import Population
from state.scoring import QuintileBoundaries
from tests.support.generated_state import START, apply, generated_events, runtime

pytestmark = pytest.mark.integration


# as-of before some purchases (recency clamps to 0 days), on the day, long after
@pytest.mark.parametrize("as_of", [START - 3 * MS_PER_DAY, START, START + 200 * MS_PER_DAY])
async def test_population_counted_in_redis_is_that_of_the_profiles(
    redis_url: str, as_of: int
) -> None:
    rt = runtime(redis_url, "pop", "quintiles")
    try:
        customers = await apply(rt, generated_events(seed=5, customers=500, first_offset=0))
        states = [s for s in await rt.reader.customers(customers) if s is not None]
        scorable = [s for s in states if s.last_ms is not None and s.orders > 0]
        assert len(states) == len(customers) > len(scorable)  # some have no order left
        expected = Population(
            Counter(recency_days(s.last_ms or 0, as_of) for s in scorable),
            Counter(s.orders for s in scorable),
            Counter(s.spend_minor for s in scorable),
        )
        assert 0 in expected.recency_days or as_of != START - 3 * MS_PER_DAY

        got = Population()
        async for buckets in rt.reader.scan_buckets(7):  # several calls, merged
            got.add(await rt.rescorer.population.count(as_of, buckets))

        assert got == expected
        assert got.size == len(scorable)
        assert got.boundaries() == QuintileBoundaries.from_population(
            [recency_days(s.last_ms or 0, as_of) for s in scorable],
            [s.orders for s in scorable],
            [s.spend_minor for s in scorable],
        )
    finally:
        await rt.close()
