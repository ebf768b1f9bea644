"""Scenario 10, TLS: Redis over TLS with a self-signed CA made in the test; the worker and
the CLI verify it, and fail without it."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from stream.embedded import find_redis_server, free_port
from stream.security import redis_options
from stream.shop import generate_history
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
from tests.support.harness import run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """redis-server with only a TLS port and a password; yields (rediss:// URL, CA file)."""
    certs = tmp_path / "tls"
    certs.mkdir()
    ca, cert, key = certificates(certs)
    port = free_port()
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
        yield url, ca
    finally:
        proc.terminate()
        proc.wait(10)


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
