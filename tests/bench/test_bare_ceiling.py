"""The bare ceiling's decode and script, and the report rows it adds (fast; one Redis)."""

from __future__ import annotations

import zlib
from typing import Any

import pytest
import redis

from bench import bare_ceiling, commandstats, report


def test_decode_takes_objects_with_both_ids_and_nothing_else() -> None:
    value = b'{"order_id":"o1","customer_id":"c1","amount":"7.45","currency":"USD"}'
    assert bare_ceiling.decode(value) == (zlib.crc32(b"c1") & 65535, "c1", "o1", "7.45")
    assert bare_ceiling.decode(b'{"order_id":"o1","customer_id":"c1"}') == (
        zlib.crc32(b"c1") & 65535,
        "c1",
        "o1",
        0,
    )
    assert bare_ceiling.decode(b'{"order_id":"o1","customer_id":"c1","amount":[1]}') is not None
    for skipped in (
        None,
        b"",
        b'{"type":"purchase","order_id":"o1","customer_id":"c1","amount":"19.99","occ',
        b"[1, 2]",
        b'"text"',
        b'{"customer_id":"c1"}',
        b'{"order_id":"o1","customer_id":7}',
    ):
        assert bare_ceiling.decode(skipped) is None, skipped


@pytest.mark.integration
def test_script_dedupes_orders_counts_customers_and_stores_offsets(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        script = client.register_script(bare_ceiling.SCRIPT)

        def apply(offsets: list[Any], events: list[tuple[Any, ...]]) -> Any:
            args: list[Any] = [bare_ceiling.PREFIX, len(offsets) // 2, *offsets]
            for event in events:
                args += event
            return script(keys=["bare:offsets"], args=args)

        b = zlib.crc32(b"c1") & 65535
        first = [(b, "c1", "o1", "7.45"), (b, "c1", "o2", "0.55"), (b, "c1", "o1", "7.45")]
        assert apply(["t:0", 2, "t:3", 0], first) == [2, 1]
        odd = [(b, "c1", "o3", "1e999"), (b, "c1", "o4", "nan"), (b, "c1", "o5", 3)]
        assert apply(["t:0", 5], [*odd, (b, "c1", "o2", "0.55")]) == [3, 1]
        assert client.hgetall(f"bare:c:{{{b}}}:c1") == {b"orders": b"5", b"spend": b"1100"}
        assert client.hlen(f"bare:o:{{{b}}}") == 5
        assert client.hget(f"bare:o:{{{b}}}", "c1\x1fo1") == b"1"
        assert client.hgetall("bare:offsets") == {b"t:0": b"5", b"t:3": b"0"}
    finally:
        client.close()


def _results() -> dict[str, Any]:
    stats = {
        "evalsha": {"calls": 20, "usec": 200_000, "usec_per_call": 10_000.0},
        "hget": {"calls": 30_000, "usec": 18_000, "usec_per_call": 0.6},
    }
    return {
        "ceiling": {"events_per_s": 30_000.0},
        "bare_ceiling": {
            "events_per_s": 50_000.0,
            "cpu_s_per_1000_events": {"bench": 0.0077, "redis": 0.0136},
        },
        "worker": {
            "1": {
                "events_per_s": 20_000.0,
                "cpu_s_per_1000_events": {"worker0": 0.034, "redis": 0.012},
                "commandstats": commandstats.summarise(stats, 20_000, 0.3),
            }
        },
    }


def test_report_judges_the_bare_ceiling_and_redis_per_event() -> None:
    results = _results()
    judged = {t["name"]: t for t in report.targets(results)}
    assert judged["worker_throughput_vs_bare_ceiling"] == {
        "name": "worker_throughput_vs_bare_ceiling",
        "value": 0.4,
        "limit": ">= 0.5",
        "result": "FAIL",
    }
    redis_target = judged["redis_cpu_us_per_event_1_worker"]
    assert redis_target["value"] == 12.0 and redis_target["result"] == "PASS"
    assert redis_target["bare_ceiling"] == 13.6
    results["targets"] = list(judged.values())
    text = report.table(results)
    assert "bare ceiling" in text and "ratio to bare ceiling" in text
    assert "bare ceiling 13.6" in text and "bare ceiling 7.7" in text  # Redis, Python floors
    assert "evalsha (incl. its scripts' calls)" in text
    summary = results["worker"]["1"]["commandstats"]
    assert summary["scripts_us_per_event"] == 10.0
    assert summary["redis_cpu_us_per_event"] == 15.0
    assert list(summary["commands"]) == ["evalsha", "hget"]
    assert summary["commands"]["hget"]["calls_per_event"] == 1.5
