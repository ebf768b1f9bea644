"""Targets (PASS/FAIL, never asserted) and the printed table of a bench run."""

from __future__ import annotations

from typing import Any

from bench.commandstats import breakdown

FULL_PASS_CUSTOMERS = 1_000_000
VS_CEILING = 0.6  # 1 worker / the product's ceiling (bench/ceiling.py)
VS_BARE = 0.5  # 1 worker / the bare ceiling (bench/bare_ceiling.py)
REDIS_US_PER_EVENT = 14.0  # Redis CPU per input event, 1 worker
Row = tuple[str, str, str, str, str]  # section, metric, value, target, result
# The full-pass target holds in both scoring modes: (target name, result of the pass).
FULL_PASSES = (
    ("full_pass_seconds_1m_customers", "full_pass"),
    ("full_pass_seconds_1m_customers_quintiles", "full_pass_quintiles"),
)


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _num(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target the spec sets, judged on what this run measured (skipped if not run)."""
    out: list[dict[str, Any]] = []
    ceiling = results.get("ceiling", {}).get("events_per_s")
    bare = results.get("bare_ceiling", {}).get("events_per_s")
    single = results.get("worker", {}).get("1", {})
    one = single.get("events_per_s")
    if ceiling and one:
        ratio = one / ceiling
        out.append(
            _target(
                "worker_throughput_vs_ceiling",
                round(ratio, 3),
                f">= {VS_CEILING}",
                ratio >= VS_CEILING,
            )
        )
    if bare and one:
        ratio = one / bare
        out.append(
            _target(
                "worker_throughput_vs_bare_ceiling",
                round(ratio, 3),
                f">= {VS_BARE}",
                ratio >= VS_BARE,
            )
        )
    redis_us = us_per_event(single, "redis")
    if redis_us is not None:
        out.append(
            _target(
                "redis_cpu_us_per_event_1_worker",
                redis_us,
                f"<= {REDIS_US_PER_EVENT:g}",
                redis_us <= REDIS_US_PER_EVENT,
            )
            | {"bare_ceiling": us_per_event(results.get("bare_ceiling", {}), "redis")}
        )
    p99 = results.get("latency", {}).get("publish_to_change_publish", {}).get("p99_ms")
    if p99 is not None:
        out.append(_target("latency_p99_ms_at_half_max_rate", p99, "<= 250", p99 <= 250))
    scoring = results.get("rescoring", {})
    if "full_pass" in scoring:
        share = scoring["due_over_full"]
        out.append(_target("due_pass_over_full_pass", share, "<= 0.03", share <= 0.03))
        for name, kind in FULL_PASSES:
            seconds = scoring[kind]["seconds"] * FULL_PASS_CUSTOMERS / scoring["customers"]
            out.append(
                _target(name, round(seconds, 2), "<= 10", seconds <= 10)
                | {"extrapolated": scoring["customers"] != FULL_PASS_CUSTOMERS}
            )
    memory = results.get("memory", {})
    if "bytes_per_customer" in memory:
        per_customer, per_order = memory["bytes_per_customer"], memory["bytes_per_order"]
        out.append(_target("redis_bytes_per_customer", per_customer, "<= 150", per_customer <= 150))
        out.append(_target("redis_bytes_per_order", per_order, "<= 50", per_order <= 50))
    return out


def us_per_event(run: dict[str, Any], process: str) -> float | None:
    """CPU of one process in µs per input event, from a run's ``cpu_s_per_1000_events``."""
    seconds = run.get("cpu_s_per_1000_events", {}).get(process)
    return None if seconds is None else round(seconds * 1000, 2)


def _target(name: str, value: float, limit: str, ok: bool) -> dict[str, Any]:
    return {"name": name, "value": value, "limit": limit, "result": _verdict(ok)}


def rows(results: dict[str, Any]) -> list[Row]:
    judged = {t["name"]: t for t in results.get("targets", [])}

    def result(name: str) -> str:
        return judged[name]["result"] if name in judged else ""

    out: list[Row] = []
    ceiling = results.get("ceiling", {}).get("events_per_s")
    bare_run = results.get("bare_ceiling", {})
    bare = bare_run.get("events_per_s")
    if ceiling:
        out.append(("ceiling", "getmany>validate>apply>commit ev/s", _num(ceiling), "", "1.00x"))
    if bare:
        ratio = f"ceiling = {ceiling / bare:.2f}x bare" if ceiling else ""
        out.append(
            ("bare ceiling", "getmany>orjson>minimal Lua>commit ev/s", _num(bare), "", ratio)
        )
    for n, run in sorted(results.get("worker", {}).items()):
        if "events_per_s" not in run:
            continue
        rate = run["events_per_s"]
        ratio = f"{rate / ceiling:.2f}x ceiling" if ceiling else ""
        if n == "1":
            target = f">= {VS_CEILING}x ({_num(VS_CEILING * ceiling)})" if ceiling else ""
            out.append(("worker", "1 worker ev/s (first>last applied)", _num(rate), target, ""))
            if ceiling:
                out.append(
                    ("", "  ratio to ceiling", ratio, "", result("worker_throughput_vs_ceiling"))
                )
            out.extend(_worker_vs_bare_rows(run, bare_run, result))
        else:
            one = results["worker"].get("1", {}).get("events_per_s")
            scale = f"{rate / one:.2f}x 1 worker" if one else ""
            out.append(("worker", f"{n} workers ev/s", _num(rate), "", f"{ratio}, {scale}"))
    out.extend(_latency_rows(results.get("latency", {}), result))
    out.extend(_scoring_rows(results.get("rescoring", {}), result))
    memory = results.get("memory", {})
    if "bytes_per_customer" in memory:
        n = _num(memory["customers"])
        out.append(
            (
                "memory",
                f"bytes/customer ({n}, incl. indexes)",
                _num(memory["bytes_per_customer"], 1),
                "<= 150",
                f"{memory['bytes_per_customer'] / 150:.2f}x  {result('redis_bytes_per_customer')}",
            )
        )
        out.append(
            (
                "",
                "bytes/order (dedupe field)",
                _num(memory["bytes_per_order"], 1),
                "<= 50",
                f"{memory['bytes_per_order'] / 50:.2f}x  {result('redis_bytes_per_order')}",
            )
        )
    return out


def _worker_vs_bare_rows(run: dict[str, Any], bare_run: dict[str, Any], result: Any) -> list[Row]:
    """The 1-worker run against the bare ceiling: rate, Redis and Python CPU per event."""
    out: list[Row] = []
    bare = bare_run.get("events_per_s")
    if bare:
        out.append(
            ("", "  ratio to bare ceiling", f"{run['events_per_s'] / bare:.2f}x",
             f">= {VS_BARE}x ({_num(VS_BARE * bare)})",
             result("worker_throughput_vs_bare_ceiling"))
        )  # fmt: skip
    redis, floor = us_per_event(run, "redis"), us_per_event(bare_run, "redis")
    beside = f"bare ceiling {floor:.1f}" if floor is not None else ""
    if redis is not None:
        out.append(
            ("", "  Redis CPU us/input event", f"{redis:.1f}", f"<= {REDIS_US_PER_EVENT:g}",
             f"{redis / REDIS_US_PER_EVENT:.2f}x  {result('redis_cpu_us_per_event_1_worker')}"
             + (f"  ({beside})" if beside else ""))
        )  # fmt: skip
    python, floor = us_per_event(run, "worker0"), us_per_event(bare_run, "bench")
    if python is not None:
        beside = f"bare ceiling {floor:.1f}" if floor is not None else ""
        out.append(("", "  worker (Python) CPU us/input event", f"{python:.1f}", "", beside))
    out.extend(_commandstats_rows(run.get("commandstats", {})))
    return out


def _commandstats_rows(stats: dict[str, Any]) -> list[Row]:
    if "commands" not in stats:
        return []
    proc = stats.get("redis_cpu_us_per_event")
    out: list[Row] = [
        ("redis", "commandstats, 1 worker, wall us/input event", "", "",
         f"Redis CPU {proc:.1f} us/event over the same span" if proc is not None else ""),
    ]  # fmt: skip
    for name, us, rest in breakdown(stats):
        out.append(("", f"  {name}", f"{us:.2f}", "", rest))
    return out


def _latency_rows(latency: dict[str, Any], result: Any) -> list[Row]:
    if "publish_to_change_publish" not in latency:
        return []
    lat = latency["publish_to_change_publish"]
    split = latency.get("publish_to_batch_start", {})
    floor = latency.get("broker_alone", {})
    stress = latency.get("every_order_a_change", {}).get("publish_to_change_publish", {})
    rate = f"at {_num(latency['achieved_rate'])} ev/s"
    p99 = lat["p99_ms"]
    return [
        ("latency", f"publish>change p50/p95/p99 ms {rate}",
         f"{lat['p50_ms']:.0f} / {lat['p95_ms']:.0f} / {p99:.0f}", "p99 <= 250",
         f"{p99 / 250:.2f}x  {result('latency_p99_ms_at_half_max_rate')}"),
        ("", "  of which publish>batch start p50/p99",
         f"{split.get('p50_ms', 0):.0f} / {split.get('p99_ms', 0):.0f}", "", ""),
        ("", "  broker alone (publish>consumed) p50/p95/p99",
         f"{floor.get('p50_ms', 0):.0f} / {floor.get('p95_ms', 0):.0f} / "
         f"{floor.get('p99_ms', 0):.0f}", "", "same rate, no worker"),
        ("", "  every order a change (probes only) p50/p95/p99",
         f"{stress.get('p50_ms', 0):.0f} / {stress.get('p95_ms', 0):.0f} / "
         f"{stress.get('p99_ms', 0):.0f}", "", "same rate, no target"),
    ]  # fmt: skip


def _scoring_rows(scoring: dict[str, Any], result: Any) -> list[Row]:
    if "full_pass" not in scoring:
        return []
    n = _num(scoring["customers"])
    first, due, days = scoring["full_pass_first"], scoring["due_pass"], len(scoring["due_passes"])
    note = "" if scoring["customers"] == FULL_PASS_CUSTOMERS else " (extrapolated to 1M)"
    labels = {
        "full_pass": f"steady, median of {len(scoring['full_passes_s'])}",
        "full_pass_quintiles": "quintile scoring, steady",
    }
    full_passes = [
        ("", f"full pass s ({n}, {labels[kind]})", f"{scoring[kind]['seconds']:.2f}",
         "<= 10 s @1M",
         f"{scoring[kind]['seconds'] * FULL_PASS_CUSTOMERS / scoring['customers'] / 10:.2f}x"
         f"{note}  {result(name)}")
        for name, kind in FULL_PASSES
    ]  # fmt: skip
    return [
        ("rescoring", f"first full pass s ({n}, all change)", f"{first['seconds']:.2f}", "", ""),
        *full_passes,
        ("", f"due pass s ({_num(due['rescored'])} due, median of {days} days)",
         f"{due['seconds']:.3f}",
         "<= 3% of full", f"{scoring['due_over_full'] * 100:.1f}%  "
         f"{result('due_pass_over_full_pass')}"),
    ]  # fmt: skip


def table(results: dict[str, Any]) -> str:
    body = rows(results)
    head: Row = ("section", "metric", "value", "target", "ratio / result")
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(5)]
    line = "  ".join("-" * w for w in widths)

    def fmt(r: Row) -> str:
        cells = [r[0].ljust(widths[0]), r[1].ljust(widths[1]), r[2].rjust(widths[2])]
        return "  ".join([*cells, r[3].ljust(widths[3]), r[4]]).rstrip()

    return "\n".join([fmt(head), line, *(fmt(r) for r in body)])
