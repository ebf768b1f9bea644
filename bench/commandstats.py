"""Where Redis's time goes: ``INFO commandstats`` over a run, per input event.

``CONFIG RESETSTAT`` before the run, ``INFO commandstats`` after it. Redis counts every
command a script runs under that command's own name (``hget``, ``xadd``, ...) AND inside
the ``evalsha`` that ran it: the time of a script's ``redis.call``s is part of the
``evalsha`` usec, so the rows must not be summed. ``usec`` is wall-clock time inside the
command (Redis reads a monotonic clock around it), not CPU: on cores shared with other
processes it can exceed Redis's CPU (``/proc``) over the same span, which also holds what
no command counts (reading requests, writing replies, the event loop). Instructions, which
do not depend on the machine's load: callgrind (bench/README.md).
"""

from __future__ import annotations

from typing import Any

from bench.env import sync_redis

SCRIPT_COMMANDS = ("evalsha", "eval", "evalsha_ro", "eval_ro", "fcall", "fcall_ro")


def reset(redis_url: str) -> None:
    client = sync_redis(redis_url)
    try:
        client.config_resetstat()
    finally:
        client.close()


def read(redis_url: str) -> dict[str, dict[str, float]]:
    """command -> {calls, usec, usec_per_call} as Redis counted them since the last reset
    (subcommands as ``config|resetstat``)."""
    client = sync_redis(redis_url)
    try:
        info: dict[str, Any] = client.info("commandstats")
    finally:
        client.close()
    return {
        name.removeprefix("cmdstat_"): {
            "calls": int(s.get("calls", 0)),
            "usec": int(s.get("usec", 0)),
            "usec_per_call": float(s.get("usec_per_call", 0.0)),
        }
        for name, s in info.items()
        if name.startswith("cmdstat_") and isinstance(s, dict)
    }


def summarise(
    stats: dict[str, dict[str, float]], events: int, redis_cpu_s: float | None = None
) -> dict[str, Any]:
    """Per input event, busiest first; ``redis_cpu_s``: Redis's CPU over the same run."""
    per = max(events, 1)
    commands = {
        name: {
            "calls": int(s["calls"]),
            "usec": int(s["usec"]),
            "usec_per_call": round(s["usec_per_call"], 2),
            "calls_per_event": round(s["calls"] / per, 4),
            "us_per_event": round(s["usec"] / per, 3),
        }
        for name, s in sorted(stats.items(), key=lambda kv: -kv[1]["usec"])
    }
    scripts = sum(s["usec"] for name, s in stats.items() if name in SCRIPT_COMMANDS)
    out: dict[str, Any] = {
        "events": events,
        "scripts_us_per_event": round(scripts / per, 3),
        "commands": commands,
        "note": "usec is wall-clock time inside each command, not CPU; a script's "
        "redis.call()s are counted under their own names and inside evalsha: do not sum",
    }
    if redis_cpu_s is not None:
        out["redis_cpu_us_per_event"] = round(redis_cpu_s / per * 1e6, 3)
    return out


def breakdown(summary: dict[str, Any], top: int = 8) -> list[tuple[str, float, str]]:
    """(command, us per event, calls per event and us per call) of the busiest commands."""
    rows = []
    for name, s in list(summary.get("commands", {}).items())[:top]:
        label = f"{name} (incl. its scripts' calls)" if name in SCRIPT_COMMANDS else name
        rest = f"{s['calls_per_event']:.3f} calls/event, {s['usec_per_call']:.1f} us/call"
        rows.append((label, float(s["us_per_event"]), rest))
    return rows
