"""Scenario 10: security. Redis with a password and with an ACL user limited to our keys;
the worker and the CLI work against each. Kafka SASL/SSL settings reach the clients (unit
level: the embedded broker cannot do SASL). Secrets never show in the worker log, in error
messages, in /readyz, nor in the CLI's output."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
import redis

from rfm_dev.shop import generate_history
from stream.runtime import Runtime
from stream.security import aiokafka_options, faust_credentials
from stream.settings import load_settings
from tests.conftest import RedisFactory
from tests.faults.common import FaultRun, http_get
from tests.faults.scenario import Scenario
from tests.faults.security_support import (
    ACL_PW,
    PROFILE,
    REDIS_PW,
    SASL_PW,
    WRONG_PW,
    apply_in_process,
    certificates,
    cli_round,
    no_secret,
    wrong_credentials,
)
from tests.support.harness import run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]


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
        no_secret(body, REDIS_PW, SASL_PW, "redis://")
        _, metrics = http_get(worker, "/metrics")
        no_secret(metrics, REDIS_PW, SASL_PW)
    finally:
        assert worker.stop() == 0, worker.log_tail()
    no_secret(worker.log_path.read_text(errors="replace"), REDIS_PW, SASL_PW)

    cli_round(sc, "c000001", REDIS_PW, SASL_PW)
    host = server.url.rsplit("@", 1)[1]
    wrong = wrong_credentials(sc, f"redis://:{WRONG_PW}@{host}", WRONG_PW, REDIS_PW)
    assert "auth" in wrong.lower() or "password" in wrong.lower(), wrong[-500:]
    wrong_credentials(sc, f"redis://{host}", REDIS_PW)  # no password at all

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
    no_secret(log, WRONG_PW, REDIS_PW, SASL_PW)

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
    apply_in_process(sc, list(generate_history(PROFILE)))
    cli_round(sc, "c000001", ACL_PW)
    host = server.url.split("://", 1)[1]
    wrong_credentials(sc, f"redis://rfm:{WRONG_PW}@{host}", WRONG_PW, ACL_PW)
    done = run_cli({**sc.env, "RFM_REDIS_PREFIX": "other"}, "segments")
    assert done.returncode != 0, "a prefix outside the ACL must be refused"
    no_secret(done.stdout + done.stderr, ACL_PW)

    run = FaultRun("security_redis_acl_user", extra={"worker": False})
    sc.verify(run)


def test_kafka_sasl_and_ssl_settings_reach_the_clients(tmp_path: Path) -> None:
    ca, _, _ = certificates(tmp_path)
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
        no_secret(repr(settings), SASL_PW, REDIS_PW)
        no_secret(str(settings.redacted()), SASL_PW, REDIS_PW)

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
