"""Shared servers for the whole suite: one Redis and one broker per session, plus factories.

Starting real servers costs a second or two, so the session shares one of each and tests
isolate themselves instead (FLUSHALL before each test, a unique topic prefix per test).
Tests that kill or restart a server get a private one from a factory, so a fault in one
test can never leak into another.  Where a Docker daemon answers, the shared servers come
from testcontainers; otherwise (and always for the factories) from ``rfm_dev.embedded``,
whose missing-binary error fails the run on purpose: a skipped suite looks like a green one.
"""

from __future__ import annotations

import shutil
import subprocess
import warnings
from collections.abc import Iterator, Sequence
from os import environ
from pathlib import Path
from typing import Any, Protocol
from uuid import uuid4

import pytest
import redis

from rfm_dev.embedded import ServerProcess, start_kafka, start_redis


class Server(Protocol):
    """What tests may rely on, whichever way the server was started."""

    @property
    def url(self) -> str: ...

    def kill(self) -> None: ...

    def restart(self) -> None: ...

    def stop(self) -> None: ...


class RedisFactory(Protocol):
    def __call__(
        self, extra_args: Sequence[str] = ..., *, port: int | None = ...
    ) -> ServerProcess: ...


class KafkaFactory(Protocol):
    def __call__(self, *, port: int | None = ...) -> ServerProcess: ...


class ContainerServer:
    """A testcontainers container behind the ``Server`` interface; faults are not supported."""

    def __init__(self, container: Any, url: str) -> None:
        self._container = container
        self.url = url

    def kill(self) -> None:
        pytest.skip("kill() needs an embedded server; use private_redis / private_kafka")

    def restart(self) -> None:
        pytest.skip("restart() needs an embedded server; use private_redis / private_kafka")

    def stop(self) -> None:
        self._container.stop()


def _docker_available() -> bool:
    """RFM_TEST_CONTAINERS=1 forces containers, =0 forbids them, else ask the daemon."""
    forced = environ.get("RFM_TEST_CONTAINERS", "")
    if forced in ("0", "1"):
        return forced == "1"
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        done = subprocess.run([docker, "info"], capture_output=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@pytest.fixture(scope="session")
def use_containers() -> bool:
    return _docker_available()


@pytest.fixture(scope="session")
def servers_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


def _redis_container() -> ContainerServer:
    from testcontainers.redis import RedisContainer

    container = RedisContainer("redis:7-alpine").start()
    host, port = container.get_container_host_ip(), container.get_exposed_port(6379)
    return ContainerServer(container, f"redis://{host}:{port}/0")


def _kafka_container() -> ContainerServer:
    # The testcontainers Kafka module drives Confluent's image scripts, so not apache/kafka.
    from testcontainers.kafka import KafkaContainer

    container = KafkaContainer("confluentinc/cp-kafka:7.6.1").with_kraft().start()
    return ContainerServer(container, container.get_bootstrap_server())


@pytest.fixture(scope="session")
def redis_server(use_containers: bool, servers_workdir: Path) -> Iterator[Server]:
    with warnings.catch_warnings():  # testcontainers' module-path deprecation
        warnings.simplefilter("ignore", DeprecationWarning)
        server: Server = _redis_container() if use_containers else start_redis(servers_workdir)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def kafka_server(use_containers: bool, servers_workdir: Path) -> Iterator[Server]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        server: Server = _kafka_container() if use_containers else start_kafka(servers_workdir)
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: Server) -> str:
    """The shared Redis, emptied first so no test sees another test's keys."""
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server.url


@pytest.fixture
def kafka_bootstrap(kafka_server: Server) -> str:
    return kafka_server.url


@pytest.fixture
def topic_prefix() -> str:
    """Topics cannot be cheaply emptied, so each test names its own on the shared broker."""
    return f"t{uuid4().hex[:8]}."


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisFactory]:
    """A Redis of the test's own, for tests that kill or restart it."""
    started: list[ServerProcess] = []

    def factory(extra_args: Sequence[str] = (), *, port: int | None = None) -> ServerProcess:
        server = start_redis(tmp_path, port=port, extra_args=extra_args)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture
def private_kafka(tmp_path: Path) -> Iterator[KafkaFactory]:
    """A broker of the test's own; restarting it loses every topic (memory storage)."""
    started: list[ServerProcess] = []

    def factory(*, port: int | None = None) -> ServerProcess:
        server = start_kafka(tmp_path, port=port)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()
