"""Scenario 10: security. Redis with a password, with an ACL user limited to our keys, and
over TLS; the worker and the CLI work against each. Kafka SASL/SSL settings reach the
clients (unit level: the embedded broker cannot do SASL). Secrets never show in the worker
log, in error messages, in /readyz, nor in the CLI's output."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import time
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import orjson
import pytest
import redis

from state.model import MS_PER_DAY
from stream.embedded import find_redis_server, free_port
from stream.pipeline import RawRecord
from stream.runtime import Runtime
from stream.security import aiokafka_options, faust_credentials, redis_options
from stream.settings import load_settings
from stream.shop import ShopProfile, generate_history
from tests.conftest import RedisFactory
from tests.faults.common import START, FaultRun, Scenario, http_get
from tests.support.harness import run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]

PROFILE = ShopProfile(
    customers=300, orders=1_200, start_ms=START, end_ms=START + 200 * MS_PER_DAY, seed=1010
)
REDIS_PW = "s3cret-pw"
ACL_PW = "acl-pw-Zq8"
TLS_PW = "tls-pw-Kx2"
WRONG_PW = "wrong-pw-Yv5"
SASL_PW = "sasl-pw-Mt3"


def _no_secret(text: str | bytes, *secrets: str) -> None:
    body = text.decode(errors="replace") if isinstance(text, bytes) else text
    for secret in secrets:
        assert secret not in body, f"secret {secret[:3]}... leaked: ...{_around(body, secret)}..."


def _around(body: str, secret: str) -> str:
    at = body.find(secret)
    return body[max(0, at - 120) : at + 40]


def _apply_in_process(sc: Scenario, events: Sequence[tuple[bytes, bytes]]) -> None:
    """The worker's pipeline, run here against the configured Redis (faster than a worker):
    records get partitions by key and consecutive offsets, as a topic would give them."""
    partitions = sc.settings.partitions
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
        finally:
            await runtime.close()

    asyncio.run(go())
    sc.published.extend(v for _, v in events)


def _cli_round(sc: Scenario, customer: str, *secrets: str) -> dict[str, str]:
    """customer / segments / export work and print no secret."""
    outputs = {}
    for args in (("customer", customer), ("segments",), ("export",)):
        done = run_cli(sc.env, *args, timeout=60)
        assert done.returncode == 0, (args, done.stderr[-2000:])
        _no_secret(done.stdout + done.stderr, *secrets)
        outputs[args[0]] = done.stdout
    assert orjson.loads(outputs["customer"])["customer_id"] == customer
    assert "total" in outputs["segments"]
    assert len(outputs["export"].splitlines()) > 100
    return outputs


def _wrong_credentials(sc: Scenario, url: str, *secrets: str, **extra_env: str) -> str:
    """A read command with bad credentials fails, and says so without any secret."""
    done = run_cli({**sc.env, "RFM_REDIS_URL": url, **extra_env}, "customer", "c000001")
    assert done.returncode != 0
    _no_secret(done.stdout + done.stderr, *secrets)
    return done.stderr


def test_redis_with_password_worker_and_cli_leak_no_secret(
    kafka_bootstrap: str,
    private_redis: RedisFactory,
    topic_prefix: str,
    tmp_path: Path,
) -> None:
    server = private_redis(["--requirepass", REDIS_PW])
    assert REDIS_PW in server.url
    sc = Scenario(
        kafka_bootstrap,
        server.url,
        topic_prefix,
        tmp_path,
        RFM_LOG_LEVEL="debug",
        RFM_KAFKA_SASL_PASSWORD=SASL_PW,  # set but unused (PLAINTEXT): must not show either
    )
    events = list(generate_history(PROFILE))
    sc.publish(events)
    worker = sc.worker().start()
    try:
        sc.wait_accounted(worker, 90)
        sc.wait_relayed(worker, 60)
        status, body = http_get(worker, "/readyz")
        assert status == 200, body
        _no_secret(body, REDIS_PW, SASL_PW, "redis://")
        _, metrics = http_get(worker, "/metrics")
        _no_secret(metrics, REDIS_PW, SASL_PW)
    finally:
        assert worker.stop() == 0, worker.log_tail()
    _no_secret(worker.log_path.read_text(errors="replace"), REDIS_PW, SASL_PW)

    _cli_round(sc, "c000001", REDIS_PW, SASL_PW)
    host = server.url.rsplit("@", 1)[1]
    wrong = _wrong_credentials(sc, f"redis://:{WRONG_PW}@{host}", WRONG_PW, REDIS_PW)
    assert "auth" in wrong.lower() or "password" in wrong.lower(), wrong[-500:]
    _wrong_credentials(sc, f"redis://{host}", REDIS_PW)  # no password at all

    # A worker with a wrong password stops at start, before joining the group (it would
    # otherwise hold partitions it cannot process), says why, and logs no secret.
    locked_out = sc.worker("wrong-password", RFM_REDIS_URL=f"redis://:{WRONG_PW}@{host}")
    locked_out.start()
    assert locked_out.proc is not None
    try:
        code = locked_out.proc.wait(60)
    finally:
        locked_out.stop()
    assert code == 1, locked_out.log_tail()
    log = locked_out.log_path.read_text(errors="replace")
    assert "AuthenticationError" in log, log[-2000:]
    _no_secret(log, WRONG_PW, REDIS_PW, SASL_PW)

    run = FaultRun("security_redis_password", extra={"worker": True})
    sc.verify(run)


def test_redis_acl_user_limited_to_our_keys(
    kafka_bootstrap: str,
    private_redis: RedisFactory,
    topic_prefix: str,
    tmp_path: Path,
) -> None:
    server = private_redis()
    admin = redis.Redis.from_url(server.url)
    admin.acl_setuser(
        "rfm", enabled=True, passwords=[f"+{ACL_PW}"], keys=["rfm:*"], commands=["+@all"]
    )
    admin.acl_setuser("default", enabled=False)  # only the rfm user gets in
    url = f"redis://rfm:{ACL_PW}@{server.url.split('://', 1)[1]}"
    limited = redis.Redis.from_url(url)
    with pytest.raises(redis.exceptions.NoPermissionError):
        limited.set("other:key", "x")

    sc = Scenario(kafka_bootstrap, url, topic_prefix, tmp_path, RFM_LOG_LEVEL="debug")
    _apply_in_process(sc, list(generate_history(PROFILE)))
    _cli_round(sc, "c000001", ACL_PW)
    host = server.url.split("://", 1)[1]
    _wrong_credentials(sc, f"redis://rfm:{WRONG_PW}@{host}", WRONG_PW, ACL_PW)
    done = run_cli({**sc.env, "RFM_REDIS_PREFIX": "other"}, "segments")
    assert done.returncode != 0, "a prefix outside the ACL must be refused"
    _no_secret(done.stdout + done.stderr, ACL_PW)

    run = FaultRun("security_redis_acl_user", extra={"worker": False})
    sc.verify(run)


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it."""
    ca_key, ca = directory / "ca.key", directory / "ca.crt"
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.crt"
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca,
        "-days", "2", "-subj", "/CN=rfm-test-ca",
    )  # fmt: skip
    ext = directory / "san.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
        "-subj", "/CN=127.0.0.1",
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
        "-out", cert, "-days", "2", "-extfile", ext,
    )  # fmt: skip
    return ca, cert, key


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """redis-server with only a TLS port and a password; yields (rediss:// URL, CA file)."""
    certs = tmp_path / "tls"
    certs.mkdir()
    ca, cert, key = _certificates(certs)
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
    _apply_in_process(sc, list(generate_history(PROFILE)))
    _cli_round(sc, "c000001", TLS_PW)
    # Without our CA the server's certificate is refused: TLS is verified, not just used.
    env = {k: v for k, v in sc.env.items() if k != "RFM_REDIS_TLS_CA_FILE"}
    done = run_cli(env, "customer", "c000001")
    assert done.returncode != 0
    assert "certificate" in done.stderr.lower(), done.stderr[-800:]
    _no_secret(done.stdout + done.stderr, TLS_PW)
    _wrong_credentials(sc, url.replace(TLS_PW, WRONG_PW), WRONG_PW, TLS_PW)

    run = FaultRun("security_redis_tls", extra={"worker": False})
    sc.verify(run)


def test_kafka_sasl_and_ssl_settings_reach_the_clients(tmp_path: Path) -> None:
    ca, _, _ = _certificates(tmp_path)
    base = {
        "RFM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "RFM_KAFKA_SASL_USERNAME": "rfm-svc",
        "RFM_KAFKA_SASL_PASSWORD": SASL_PW,
        "RFM_KAFKA_SSL_CA_FILE": str(ca),
        "RFM_REDIS_URL": f"redis://user:{REDIS_PW}@redis.internal:6379/0",
    }

    sasl_ssl = load_settings(env={**base, "RFM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"})
    options = aiokafka_options(sasl_ssl)
    context = options.pop("ssl_context")
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert options == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "rfm-svc",
        "sasl_plain_password": SASL_PW,
    }
    credentials = faust_credentials(sasl_ssl)
    assert type(credentials).__name__ == "SASLCredentials"
    assert credentials.username == "rfm-svc" and credentials.password == SASL_PW
    assert str(credentials.mechanism.value if hasattr(credentials.mechanism, "value") else
               credentials.mechanism) == "SCRAM-SHA-512"  # fmt: skip
    assert credentials.ssl_context is not None

    sasl_plain = load_settings(env={**base, "RFM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"})
    options = aiokafka_options(sasl_plain)
    assert "ssl_context" not in options
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    assert options["sasl_plain_password"] == SASL_PW
    assert faust_credentials(sasl_plain).ssl_context is None

    tls_only = load_settings(env={**base, "RFM_KAFKA_SECURITY_PROTOCOL": "SSL"})
    options = aiokafka_options(tls_only)
    assert set(options) == {"security_protocol", "ssl_context"}
    assert type(faust_credentials(tls_only)).__name__ == "SSLCredentials"

    plain = load_settings(env={**base, "RFM_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"})
    assert aiokafka_options(plain) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(plain) is None

    # Settings shown anywhere (repr in tracebacks, redacted for display) hide both secrets.
    for settings in (sasl_ssl, sasl_plain, tls_only, plain):
        _no_secret(repr(settings), SASL_PW, REDIS_PW)
        _no_secret(str(settings.redacted()), SASL_PW, REDIS_PW)

    # The publisher every worker and CLI command uses gets the same options.
    runtime = Runtime.build(sasl_ssl)
    try:
        publisher_options = dict(runtime.publisher._options)
    finally:
        asyncio.run(runtime.redis.aclose())
    assert publisher_options["security_protocol"] == "SASL_SSL"
    assert publisher_options["sasl_plain_password"] == SASL_PW
    assert isinstance(publisher_options["ssl_context"], ssl.SSLContext)
    FaultRun("security_kafka_options", ok=True).record()
