"""README, "Command line": the exit codes and messages of ``rfm-stream``, run as an operator
runs it, against the suite's real broker and Redis.

customer: 0 with the profile as JSON, 1 with a message for an unknown id; produce: 0 for a
good file, 1 when any row is bad (the good rows are published all the same) or the file is
missing; rescore: 0, 2 for a bad --as-of; every command that needs Redis: 1 with one line
that names no password when Redis cannot be reached; a bad setting: 2, naming it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from state.model import iso_utc
from stream.pipeline import RawRecord
from stream.runtime import Runtime
from tests.support.harness import ROOT, free_port, read_topic, rfm_env, run_cli, settings_of

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000
NOW = 1_780_000_000_000  # 2026-05-28
PASSWORD = "pw-Qm7x-never-shown"


@pytest.fixture
def env(kafka_bootstrap: str, redis_url: str, topic_prefix: str, tmp_path: Path) -> dict[str, str]:
    return rfm_env(kafka_bootstrap, redis_url, topic_prefix, tmp_path, RFM_CLOCK="event")


def _order(customer: str, order: str, amount: str, days_ago: int) -> bytes:
    doc = {
        "customer_id": customer,
        "order_id": order,
        "amount": amount,
        "occurred_at": iso_utc(NOW - days_ago * DAY_MS),
    }
    return orjson.dumps(doc)


def _apply(env: dict[str, str], values: list[bytes]) -> None:
    """Orders into Redis through the worker's own pipeline, in this process (no worker)."""

    async def go() -> None:
        runtime = Runtime.build(settings_of(env))
        try:
            await runtime.pipeline.process(
                [RawRecord(0, offset, b"k", value) for offset, value in enumerate(values)]
            )
        finally:
            await runtime.close()

    asyncio.run(go())


# ---------------------------------------------------------------------------- customer


def test_customer_known_is_0_with_json_and_unknown_is_1_with_a_message(
    env: dict[str, str],
) -> None:
    _apply(env, [_order("c-1", "o1", "150.00", 40), _order("c-1", "o2", "20.50", 3)])

    known = run_cli(env, "customer", "c-1")
    assert known.returncode == 0, known.stderr[-2000:]
    profile = orjson.loads(known.stdout)
    assert profile["customer_id"] == "c-1"
    assert (profile["orders"], profile["spend"], profile["currency"]) == (2, "170.50", "USD")
    assert profile["segment"] and profile["as_of"] and profile["r"] == 5

    unknown = run_cli(env, "customer", "c-404")
    assert unknown.returncode == 1
    assert not unknown.stdout
    assert unknown.stderr.strip() == "rfm-stream customer: no customer 'c-404'"


# ---------------------------------------------------------------------------- produce

GOOD_CSV = """customer_id,order_id,amount,occurred_at
p1,o1,10.00,2026-05-01T10:00:00Z
p2,o2,12.50,2026-05-02T10:00:00Z
"""
# Line 3 lacks the amount, line 5 has a column too few: both reported; lines 2 and 4 sent.
BAD_CSV = """customer_id,order_id,amount,occurred_at
p3,o3,1.00,2026-05-03T10:00:00Z
p4,o4,,2026-05-03T11:00:00Z
p5,o5,7.00,2026-05-04T10:00:00Z
p6,o6,8.00
"""


def test_produce_exit_codes_and_the_good_rows_of_a_bad_file_are_published(
    env: dict[str, str], kafka_bootstrap: str, tmp_path: Path
) -> None:
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text(GOOD_CSV, encoding="utf-8")
    bad.write_text(BAD_CSV, encoding="utf-8")

    done = run_cli(env, "produce", str(good))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "sent 2 events; no bad rows"

    done = run_cli(env, "produce", str(bad))
    assert done.returncode == 1, done.stderr[-2000:]
    assert done.stdout.splitlines() == [
        "sent 2 events; 2 bad rows:",
        "  line 3: missing amount",
        "  line 5: expected 4 columns, got 3",
    ]

    missing = tmp_path / "absent.csv"
    done = run_cli(env, "produce", str(missing))
    assert done.returncode == 1
    assert str(missing) in done.stderr and "Traceback" not in done.stderr

    sent = read_topic(kafka_bootstrap, env["RFM_ORDERS_TOPIC"], expect=4, timeout=20)
    assert sorted(r.key for r in sent) == [b"p1", b"p2", b"p3", b"p5"]


# ---------------------------------------------------------------------------- rescore


def test_rescore_is_0_and_a_bad_as_of_is_2(env: dict[str, str]) -> None:
    _apply(env, [_order("r-1", "o1", "99.00", 10)])

    done = run_cli(env, "rescore", "--as-of", iso_utc(NOW + 200 * DAY_MS))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "rescored 1 of 1 customers" in done.stdout

    bad = run_cli(env, "rescore", "--as-of", "next tuesday")
    assert bad.returncode == 2
    assert bad.stderr.startswith("rfm-stream rescore: --as-of 'next tuesday': ")
    assert len(bad.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------------------- Redis down


@pytest.mark.parametrize(
    "args", [("customer", "c-1"), ("segments",), ("export",), ("rescore",), ("worker",)]
)
def test_redis_unreachable_is_1_with_one_line_naming_no_password(
    env: dict[str, str], args: tuple[str, ...]
) -> None:
    """The default wall clock: rescore would otherwise start its pass before Redis is
    asked anything (and print the failed pass's traceback)."""
    url = f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"
    done = run_cli({**env, "RFM_REDIS_URL": url, "RFM_CLOCK": "wall"}, *args, timeout=60)
    assert done.returncode == 1, done.stderr[-2000:]
    output = done.stdout + done.stderr
    assert PASSWORD not in output
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr[-2000:]
    assert lines[0].startswith(f"rfm-stream {args[0]}: ConnectionError: "), lines
    assert "redis://***@127.0.0.1:" in lines[0]


# ---------------------------------------------------------------------------- settings


def test_a_bad_setting_is_2_naming_it_through_the_installed_command(
    env: dict[str, str],
) -> None:
    """The console script, as the README runs it: main()'s 2 must reach the shell."""
    script = Path(sys.executable).parent / "rfm-stream"
    assert script.exists(), "the package is not installed in this environment"
    done = subprocess.run(
        [str(script), "segments"],
        env={**os.environ, **env, "RFM_PARTITIONS": "0"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "rfm-stream: bad setting: RFM_PARTITIONS='0': must be a whole number > 0"
    )
    assert not done.stdout
