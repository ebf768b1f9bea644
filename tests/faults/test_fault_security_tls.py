"""Scenario 10, TLS: Redis over TLS with a self-signed CA made in the test; the worker and
the CLI verify it, and fail without it."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from rfm_dev.embedded import find_redis_server, free_port
from rfm_dev.shop import generate_history
from stream.security import redis_options
from tests.faults.common import FaultRun
from tests.faults.scenario import Scenario
from tests.faults.security_support import (
    PROFILE,
    TLS_PW,
    WRONG_PW,
    apply_in_process,
    certificates,
    cli_round,
    no_secret,
    wrong_credentials,
)
from tests.support.harness import Worker, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]


def start_tls_redis(certs: Path, port: int) -> tuple[subprocess.Popen[bytes], str, Path]:
    """redis-server with only a TLS port and a password, its certificate from a new CA made
    in ``certs``; returns (process, rediss:// URL, CA file) once it answers."""
    certs.mkdir()
    ca, cert, key = certificates(certs)
    proc = subprocess.Popen(
        [
            find_redis_server(), "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
            "--tls-cert-file", str(cert), "--tls-key-file", str(key),
            "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no",
            "--requirepass", TLS_PW, "--save", "", "--appendonly", "no", "--dir", str(certs),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"rediss://:{TLS_PW}@127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url, ssl_ca_certs=str(ca))
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
    except BaseException:
        stop(proc)
        raise
    return proc, url, ca


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """redis-server with only a TLS port and a password; yields (rediss:// URL, CA file)."""
    proc, url, ca = start_tls_redis(tmp_path / "tls", free_port())
    try:
        yield url, ca
    finally:
        stop(proc)


def test_redis_over_tls(
    kafka_bootstrap: str,
    tls_redis: tuple[str, Path],
    topic_prefix: str,
    tmp_path: Path,
) -> None:
    url, ca = tls_redis
    sc = Scenario(
        kafka_bootstrap,
        url,
        topic_prefix,
        tmp_path,
        client_url=f"{url}?ssl_ca_certs={ca}",  # the test's own clients trust the CA too
        RFM_REDIS_TLS_CA_FILE=str(ca),
        RFM_LOG_LEVEL="debug",
    )
    assert redis_options(sc.settings) == {"ssl_ca_certs": str(ca)}
    apply_in_process(sc, list(generate_history(PROFILE)))
    cli_round(sc, "c000001", TLS_PW)
    # Without our CA the server's certificate is refused: TLS is verified, not just used.
    env = {k: v for k, v in sc.env.items() if k != "RFM_REDIS_TLS_CA_FILE"}
    done = run_cli(env, "customer", "c000001")
    assert done.returncode != 0
    assert "certificate" in done.stderr.lower(), done.stderr[-800:]
    no_secret(done.stdout + done.stderr, TLS_PW)
    wrong_credentials(sc, url.replace(TLS_PW, WRONG_PW), WRONG_PW, TLS_PW)

    run = FaultRun("security_redis_tls", extra={"worker": False})
    sc.verify(run)


def _exits(worker: Worker, timeout: float) -> int:
    assert worker.proc is not None
    try:
        return worker.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"the worker still runs after {timeout}s:\n{worker.log_tail()}"
        ) from None


def test_a_worker_that_cannot_verify_redis_stops_with_a_clear_message(
    kafka_bootstrap: str, tls_redis: tuple[str, Path], topic_prefix: str, tmp_path: Path
) -> None:
    """A wrong CA at start: exit non-zero at once, saying why, instead of retrying."""
    url, ca = tls_redis
    wrong = tmp_path / "other-ca"
    wrong.mkdir()
    wrong_ca, _, _ = certificates(wrong)
    sc = Scenario(
        kafka_bootstrap,
        url,
        topic_prefix,
        tmp_path,
        client_url=f"{url}?ssl_ca_certs={ca}",
        RFM_REDIS_TLS_CA_FILE=str(wrong_ca),
    )
    worker = sc.worker("wrong-ca").start()
    assert _exits(worker, 60) not in (0, None)
    log = worker.log_path.read_text(errors="replace")
    assert "certificate verify failed" in log, log[-2000:]
    assert "retrying will not help" in log, log[-2000:]
    no_secret(log, TLS_PW)


def test_a_worker_whose_redis_certificate_changes_stops_instead_of_retrying(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """Redis comes back with a certificate from a CA the worker does not trust (a rotation
    gone wrong): an OSError to redis-py like a refused connection, yet waiting cannot heal
    it, so the worker stops without acknowledging instead of stalling forever."""
    port = free_port()
    proc, url, ca = start_tls_redis(tmp_path / "tls", port)
    try:
        sc = Scenario(
            kafka_bootstrap,
            url,
            topic_prefix,
            tmp_path,
            client_url=f"{url}?ssl_ca_certs={ca}",
            RFM_REDIS_TLS_CA_FILE=str(ca),
        )
        events = list(generate_history(PROFILE))
        worker = sc.worker("rotated").start()
        sc.publish(events[:200])
        sc.wait_accounted(worker)
        stop(proc)
        proc, _, _ = start_tls_redis(tmp_path / "rotated-tls", port)
        sc.publish(events[200:400])
        assert _exits(worker, 120) not in (0, None)
    finally:
        stop(proc)
    log = worker.log_path.read_text(errors="replace")
    assert "waiting will not heal it" in log, log[-3000:]
    assert "certificate verify failed" in log, log[-3000:]
    no_secret(log, TLS_PW)
