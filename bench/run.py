"""``python -m bench.run [--small] [--only ceiling,bare_ceiling,worker,...] [--commandstats]``

Starts a private tansu broker and redis-server, publishes a deterministic workload once,
measures each selected part, prints a table and writes JSON (bench/results/latest.json).
Targets are reported as PASS/FAIL; nothing is asserted. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import (
    bare_ceiling,
    broker_floor,
    ceiling,
    latency,
    memory,
    paced,
    report,
    rescoring,
    worker,
    workload,
)
from bench.env import ROOT, Produced, Stack, create_topic, flush, machine_info, private_stack
from bench.env import produce as publish

PARTS = ("ceiling", "bare_ceiling", "worker", "latency", "rescoring", "memory")
THROUGHPUT_PARTS = {"ceiling", "bare_ceiling", "worker"}  # they read the published workload
TOPIC = "bench.orders"
DEFAULT_LATENCY_RATE = 1000.0  # when the worker part is not run


@dataclass(frozen=True)
class Size:
    events: int  # throughput workload
    customers: int  # rescoring and memory
    latency_s: float  # how long orders are published in the latency part


FULL = Size(events=500_000, customers=1_000_000, latency_s=30)
SMALL = Size(events=20_000, customers=20_000, latency_s=5)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    p.add_argument("--small", action="store_true", help="a quick run (seconds, not minutes)")
    p.add_argument("--only", default=",".join(PARTS), help=f"comma list of {', '.join(PARTS)}")
    p.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    p.add_argument("--events", type=int, help="override the throughput workload size")
    p.add_argument("--customers", type=int, help="override the rescoring/memory population")
    p.add_argument("--workers", default="1,2", help="worker counts to measure (default 1,2)")
    p.add_argument("--latency-rate", type=float, help="orders/s (default: half the 1-worker rate)")
    p.add_argument("--profile", action="store_true", help="py-spy the 1-worker run")
    p.add_argument(
        "--commandstats",
        action="store_true",
        help="CONFIG RESETSTAT before the 1-worker run, INFO commandstats after it",
    )
    p.add_argument("--keep", type=Path, help="keep server/worker logs in this directory")
    return p


def say(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        print(f"unknown part(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    base = SMALL if args.small else FULL
    size = Size(args.events or base.events, args.customers or base.customers, base.latency_s)
    started = time.time()
    results: dict[str, Any] = {"meta": _meta(args, size, parts)}
    failed = False
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)  # --profile writes beside it early
    with private_stack(args.keep) as stack:
        say(f"broker {stack.bootstrap}, redis {stack.redis_url}, workdir {stack.workdir}")
        results["meta"]["machine"] = machine_info(stack.redis_url, stack.redis.args[0])
        produced = _prepare(stack, size, parts, results) if THROUGHPUT_PARTS & set(parts) else None
        for part in parts:
            say(f"{part} ...")
            try:
                results[part] = _RUNNERS[part](stack, size, produced, results, args)
            except Exception as exc:  # report it, go on with the other parts
                failed = True
                traceback.print_exc()
                results[part] = {"error": f"{type(exc).__name__}: {exc}"}
            say(f"{part} done")
    results["targets"] = report.targets(results)
    results["meta"]["duration_s"] = round(time.time() - started, 1)
    text = report.table(results)
    results["table"] = text.splitlines()
    _write(args.json, results)
    print(text)
    print(f"\nresults: {args.json}")
    return 1 if failed else 0


def _meta(args: argparse.Namespace, size: Size, parts: list[str]) -> dict[str, Any]:
    return {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "small" if args.small else "full",
        "command": " ".join(["python -m bench.run", *(sys.argv[1:] if sys.argv else [])]),
        "parts": parts,
        "size": size.__dict__,
        "workers": args.workers,
        "commandstats": args.commandstats,
    }


def _prepare(stack: Stack, size: Size, parts: list[str], results: dict[str, Any]) -> Produced:
    say(f"generating {size.events:,} events (seed {workload.SEED}) ...")
    work = workload.build(size.events)
    results["meta"]["workload"] = work.describe()
    say(f"publishing them to {TOPIC} ...")
    asyncio.run(create_topic(stack.bootstrap, TOPIC))
    mark = time.perf_counter()
    produced = asyncio.run(publish(stack.bootstrap, TOPIC, work.records))
    results["meta"]["workload"]["publish_events_per_s"] = round(
        produced.total / (time.perf_counter() - mark), 1
    )
    return produced


Runner = Callable[[Stack, Size, Produced | None, dict[str, Any], argparse.Namespace], Any]


def _ceiling(stack: Stack, size: Size, produced: Produced | None, *_: Any) -> Any:
    assert produced is not None
    flush(stack.redis_url)
    return ceiling.measure(stack.bootstrap, stack.redis_url, TOPIC, produced.total)


def _bare_ceiling(stack: Stack, size: Size, produced: Produced | None, *_: Any) -> Any:
    assert produced is not None
    flush(stack.redis_url)
    pid = stack.redis.popen.pid if stack.redis.popen is not None else None
    return bare_ceiling.measure(stack.bootstrap, stack.redis_url, TOPIC, produced.total, pid)


def _worker(
    stack: Stack, size: Size, produced: Produced | None, _: Any, args: argparse.Namespace
) -> Any:
    assert produced is not None
    out: dict[str, Any] = {}
    profile_to = (args.json.parent / "worker-profile.txt") if args.profile else None
    for n in (int(x) for x in args.workers.split(",") if x.strip()):
        say(f"  {n} worker(s) ...")
        spy = profile_to if n == 1 else None
        stats = args.commandstats and n == 1
        out[str(n)] = worker.measure(stack, TOPIC, produced, n, stack.workdir, spy, stats)
    return out


def _latency(
    stack: Stack, size: Size, _: Any, results: dict[str, Any], args: argparse.Namespace
) -> Any:
    one = results.get("worker", {}).get("1", {}).get("events_per_s")
    rate = args.latency_rate or (one / 2 if one else DEFAULT_LATENCY_RATE)
    source = "--latency-rate" if args.latency_rate else "half of 1 worker" if one else "default"
    say(f"  {rate:,.0f} orders/s for {size.latency_s:.0f} s ({source}), on a restarted broker")
    # Memory storage: a restart empties the broker, so what earlier parts left there (500k
    # records, consumer groups) cannot weigh on this part.
    stack.kafka.restart()
    events = workload.build(paced.workload_events(rate, size.latency_s)).records
    result = latency.measure(stack, rate, size.latency_s, stack.workdir, events)
    say("  the broker alone at the same rate, on a restarted broker ...")
    floor = broker_floor.measure(stack, rate, size.latency_s, events)
    say("  every order a new customer's (each a change), same rate, on a restarted broker ...")
    stack.kafka.restart()
    stress = latency.measure(stack, rate, size.latency_s, stack.workdir, None)
    return result | {
        "rate_source": source,
        "fresh_broker": True,
        "broker_alone": floor,
        "every_order_a_change": stress,
    }


def _rescoring(stack: Stack, size: Size, *_: Any) -> Any:
    return rescoring.measure(stack.redis_url, size.customers)


def _memory(stack: Stack, size: Size, *_: Any) -> Any:
    return memory.measure(stack.redis_url, size.customers)


_RUNNERS: dict[str, Runner] = {
    "ceiling": _ceiling,
    "bare_ceiling": _bare_ceiling,
    "worker": _worker,
    "latency": _latency,
    "rescoring": _rescoring,
    "memory": _memory,
}


def _write(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
