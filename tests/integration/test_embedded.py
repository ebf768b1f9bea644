"""The embedded servers for real: the fault tests and the demo are only as good as these.

Nothing here relies on end offsets: tansu answers "latest" with the last batch's base
offset + 1, which is not what Kafka answers once a batch holds several records.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from rfm_dev import embedded
from rfm_dev.embedded import EmbeddedServerError, ServerProcess, port_is_open
from rfm_dev.embedded_stack import EmbeddedStack

RedisFactory = Callable[..., ServerProcess]  # the private_redis fixture
KafkaFactory = Callable[..., ServerProcess]  # the private_kafka fixture
pytestmark = pytest.mark.integration


def ping(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        return bool(client.ping())
    finally:
        client.close()


async def topic_names(bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return list(await admin.list_topics())
    finally:
        await admin.close()


def test_redis_answers_ping_after_restart_on_same_port(private_redis: RedisFactory) -> None:
    server = private_redis()
    port, url = server.port, server.url
    assert ping(url)
    server.restart()
    assert (server.port, server.url) == (port, url)
    assert ping(url)


def test_redis_with_fsynced_aof_keeps_writes_across_kill(private_redis: RedisFactory) -> None:
    server = private_redis(["--appendonly", "yes", "--appendfsync", "always"])
    redis.Redis.from_url(server.url).set("k", "v")
    server.kill()
    server.restart()
    assert redis.Redis.from_url(server.url).get("k") == b"v"


def test_requirepass_goes_into_the_url(private_redis: RedisFactory) -> None:
    server = private_redis(["--requirepass", "s3cr/t"])
    assert server.url.startswith("redis://:s3cr%2Ft@127.0.0.1:")
    assert ping(server.url)


@pytest.mark.parametrize("kind", ["redis", "kafka"])
def test_kill_leaves_the_port_free(
    kind: str, private_redis: RedisFactory, private_kafka: KafkaFactory
) -> None:
    server: ServerProcess = private_redis() if kind == "redis" else private_kafka()
    assert port_is_open(server.port)
    server.kill()
    assert not server.running
    assert not port_is_open(server.port)


async def test_kafka_restart_comes_back_on_same_port(private_kafka: KafkaFactory) -> None:
    server = private_kafka()
    port = server.port
    await asyncio.to_thread(server.restart)
    assert server.port == port and server.running
    assert isinstance(await topic_names(server.url), list)


async def test_message_round_trip(kafka_bootstrap: str, topic_prefix: str) -> None:
    topic = f"{topic_prefix}roundtrip"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    assert topic in await topic_names(kafka_bootstrap)

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        sent = await producer.send_and_wait(topic, b"hello", key=b"customer-1")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=30)
    finally:
        await consumer.stop()
    assert (record.key, record.value, record.partition) == (b"customer-1", b"hello", sent.partition)


@pytest.mark.parametrize("run", [1, 2])
def test_redis_url_fixture_starts_empty(redis_url: str, run: int) -> None:
    client = redis.Redis.from_url(redis_url)
    assert client.dbsize() == 0
    client.set(f"left-behind-by-run-{run}", "1")  # the flush before run 2 must remove it
    client.close()


def test_embedded_stack_stops_both_servers(tmp_path: Path) -> None:
    with EmbeddedStack(tmp_path) as stack:
        assert ping(stack.redis_url)
        assert asyncio.run(topic_names(stack.kafka_bootstrap)) == []
        servers = list(stack.servers)
    assert len(servers) == 2
    assert all(not s.running and not port_is_open(s.port) for s in servers)
    assert not embedded._LIVE & set(servers)


def test_embedded_stack_stops_on_keyboard_interrupt_and_removes_its_temp_dir() -> None:
    stack = EmbeddedStack()
    with pytest.raises(KeyboardInterrupt), stack:
        assert stack.workdir is not None and stack.workdir.is_dir()
        raise KeyboardInterrupt
    assert all(not s.running and not port_is_open(s.port) for s in stack.servers)
    assert stack.workdir is not None and not stack.workdir.exists()


def test_missing_binaries_name_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(embedded, "_package_bin", lambda package, name: None)
    for find in (embedded.find_redis_server, embedded.find_tansu):
        with pytest.raises(EmbeddedServerError, match=r"pip install 'rfm-stream\[embedded\]'"):
            find()
