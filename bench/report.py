"""Targets (PASS/FAIL, never asserted) and the printed table of a bench run."""

from __future__ import annotations

from typing import Any

FULL_PASS_CUSTOMERS = 1_000_000
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
    one = results.get("worker", {}).get("1", {}).get("events_per_s")
    if ceiling and one:
        ratio = one / ceiling
        out.append(_target("worker_throughput_vs_ceiling", round(ratio, 3), ">= 0.6", ratio >= 0.6))
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


def _target(name: str, value: float, limit: str, ok: bool) -> dict[str, Any]:
    return {"name": name, "value": value, "limit": limit, "result": _verdict(ok)}


def rows(results: dict[str, Any]) -> list[Row]:
    judged = {t["name"]: t for t in results.get("targets", [])}

    def result(name: str) -> str:
        return judged[name]["result"] if name in judged else ""

    out: list[Row] = []
    ceiling = results.get("ceiling", {}).get("events_per_s")
    if ceiling:
        out.append(("ceiling", "getmany>validate>apply>commit ev/s", _num(ceiling), "", "1.00x"))
    for n, run in sorted(results.get("worker", {}).items()):
        if "events_per_s" not in run:
            continue
        rate = run["events_per_s"]
        ratio = f"{rate / ceiling:.2f}x ceiling" if ceiling else ""
        if n == "1":
            target = f">= 0.6x ({_num(0.6 * ceiling)})" if ceiling else ">= 0.6x ceiling"
            out.append(("worker", "1 worker ev/s (first>last applied)", _num(rate), target, ""))
            out.append(
                ("", "  ratio to ceiling", ratio, "", result("worker_throughput_vs_ceiling"))
            )
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
