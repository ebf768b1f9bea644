"""The periodic rescoring job, shared by the worker's timer and ``rfm-stream rescore``.

Thresholds mode rescores only the customers whose R score can have dropped (the due index);
quintile mode recomputes the boundaries and so rescores everyone. Each pass is recorded in
Redis (``P:rescore``) and in metrics, so "rescoring overdue" can be alerted on.
"""

from __future__ import annotations

import logging
import time

from state.model import iso_utc
from state.rescorer import PassResult
from stream import metrics
from stream.pipeline import report_failures
from stream.runtime import Runtime

log = logging.getLogger(__name__)


async def periodic_pass(runtime: Runtime) -> PassResult:
    full = runtime.settings.scoring.mode == "quintiles"
    try:
        as_of = await runtime.as_of_now()
    except Exception:
        # A pass that cannot start (the event clock unreadable) is a failed pass too.
        kind = "full" if full else "due"
        metrics.RESCORE_PASSES.labels(kind, "failed").inc()
        log.exception("rescoring pass (%s) could not start: reading the clock failed", kind)
        raise
    if full:
        return await run_pass(runtime, as_of, full=True, cause_full="rescore")
    return await run_pass(runtime, as_of, full=False)


async def run_pass(
    runtime: Runtime,
    as_of_ms: int,
    *,
    full: bool,
    cause_full: str = "rescore",
    clock_ms: int | None = None,
) -> PassResult:
    """``clock_ms`` (default ``as_of_ms``): the clock order retention is measured by."""
    kind = "full" if full else "due"
    try:
        swept = await runtime.rescorer.sweep_dirty(runtime.as_of_now)
        if full:
            result = await runtime.rescorer.full_pass(as_of_ms, cause="rescore", clock_ms=clock_ms)
        else:
            result = await runtime.rescorer.due_pass(as_of_ms)
    except Exception:
        metrics.RESCORE_PASSES.labels(kind, "failed").inc()
        log.exception("rescoring pass (%s) as of %s failed", kind, iso_utc(as_of_ms))
        raise
    result.transitions.update(swept.transitions)
    cause = "recency" if kind == "due" else "rescore"
    report_failures(swept, "order")
    report_failures(result, cause)
    metrics.RESCORE_PASSES.labels(kind, "ok").inc()
    metrics.RESCORE_SECONDS.labels(kind).observe(result.seconds)
    metrics.RESCORE_EXAMINED.labels(kind).set(result.examined)
    metrics.RESCORE_RESCORED.labels(kind).set(result.rescored)
    metrics.RESCORE_LAST_SUCCESS.labels(kind).set(time.time())
    metrics.CUSTOMERS_RESCORED.labels(cause).inc(result.rescored)
    metrics.count_transitions(result.transitions)
    await runtime.redis.hset(
        runtime.keys.rescore,
        mapping={
            "kind": kind,
            "as_of": as_of_ms,
            "finished_at": int(time.time() * 1000),
            "examined": result.examined,
            "rescored": result.rescored,
            "changes": result.changes,
            "failed": len(result.failed),
            "seconds": f"{result.seconds:.3f}",
        },
    )
    log.info(
        "rescoring pass (%s) as of %d: %d examined, %d rescored, %d changes in %.2fs; "
        "%d dirty swept",
        kind,
        as_of_ms,
        result.examined,
        result.rescored,
        result.changes,
        result.seconds,
        swept.rescored,
    )
    return result
