"""Shared parts of the security scenario (10): the secrets, and checks that none leaks."""

from __future__ import annotations

import asyncio
import subprocess
import zlib
from collections.abc import Sequence
from pathlib import Path

import orjson

from rfm_dev.shop import ShopProfile
from state.model import MS_PER_DAY
from stream.pipeline import RawRecord
from stream.runtime import Runtime
from tests.faults.common import START
from tests.faults.scenario import Scenario
from tests.support.harness import run_cli

PROFILE = ShopProfile(
    customers=300, orders=1_200, start_ms=START, end_ms=START + 200 * MS_PER_DAY, seed=1010
)
REDIS_PW = "s3cret-pw"
ACL_PW = "acl-pw-Zq8"
TLS_PW = "tls-pw-Kx2"
WRONG_PW = "wrong-pw-Yv5"
SASL_PW = "sasl-pw-Mt3"


def no_secret(text: str | bytes, *secrets: str) -> None:
    body = text.decode(errors="replace") if isinstance(text, bytes) else text
    for secret in secrets:
        assert secret not in body, f"secret {secret[:3]}... leaked: ...{around(body, secret)}..."


def around(body: str, secret: str) -> str:
    at = body.find(secret)
    return body[max(0, at - 120) : at + 40]


def apply_in_process(sc: Scenario, events: Sequence[tuple[bytes, bytes]]) -> None:
    """The worker's pipeline and outbox relay, run here against the configured Redis
    (faster than a worker): records get partitions by key and consecutive offsets, as a
    topic would give them; their segment changes are published as a worker's relay would."""
    partitions = sc.settings.kafka.partitions
    next_offset = [0] * partitions
    records = []
    for key, value in events:
        p = zlib.crc32(key) % partitions
        records.append(RawRecord(p, next_offset[p], key, value))
        next_offset[p] += 1

    async def go() -> None:
        runtime = Runtime.build(sc.settings)
        try:
            for i in range(0, len(records), 200):
                await runtime.pipeline.process(records[i : i + 200])
            await runtime.relay.drain()
        finally:
            await runtime.close()

    asyncio.run(go())
    sc.published.extend(v for _, v in events)


def cli_round(sc: Scenario, customer: str, *secrets: str) -> dict[str, str]:
    """customer / segments / export work and print no secret."""
    outputs = {}
    for args in (("customer", customer), ("segments",), ("export",)):
        done = run_cli(sc.env, *args, timeout=60)
        assert done.returncode == 0, (args, done.stderr[-2000:])
        no_secret(done.stdout + done.stderr, *secrets)
        outputs[args[0]] = done.stdout
    assert orjson.loads(outputs["customer"])["customer_id"] == customer
    assert "total" in outputs["segments"]
    assert len(outputs["export"].splitlines()) > 100
    return outputs


def wrong_credentials(sc: Scenario, url: str, *secrets: str, **extra_env: str) -> str:
    """A read command with bad credentials fails, and says so without any secret."""
    done = run_cli({**sc.env, "RFM_REDIS_URL": url, **extra_env}, "customer", "c000001")
    assert done.returncode != 0
    no_secret(done.stdout + done.stderr, *secrets)
    return done.stderr


def openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)


def certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it."""
    ca_key, ca = directory / "ca.key", directory / "ca.crt"
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.crt"
    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca,
        "-days", "2", "-subj", "/CN=rfm-test-ca",
    )  # fmt: skip
    ext = directory / "san.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
        "-subj", "/CN=127.0.0.1",
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
        "-out", cert, "-days", "2", "-extfile", ext,
    )  # fmt: skip
    return ca, cert, key
