"""Optional py-spy sampling of a worker during the throughput run (``--profile``)."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

RATE = 100  # samples per second
_LINE = re.compile(r":\d+\)$")


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def start(pid: int, out: Path) -> subprocess.Popen[bytes] | None:
    """Sample ``pid`` into a collapsed-stack file until ``stop``; None without py-spy."""
    exe = py_spy()
    if exe is None:
        return None
    args = [exe, "record", "--pid", str(pid), "--rate", str(RATE), "--format", "raw"]
    args += ["--output", str(out), "--nonblocking"]
    log = out.with_suffix(".log").open("wb")
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _frame(text: str) -> str:
    """'take_events (faust/streams.py:512)' -> 'take_events (faust/streams.py)'."""
    name = _LINE.sub(")", text.strip())
    return name.replace(str(Path(sys.prefix)), "").replace("/lib/python3.11/site-packages/", "")


def _package(frame: str) -> str:
    """'f (faust/streams.py)' -> 'faust'; stdlib modules as 'asyncio', 'selectors.py' ..."""
    path = frame.rpartition("(")[2].rstrip(")")
    if "/lib/python3" in path:
        path = path.split("/lib/python3", 1)[1].partition("/")[2]
    return path.split("/", 1)[0] or "?"


_PROJECT = ("(stream/", "(state/")


def summarise(path: Path, seconds: float, top: int = 15) -> dict[str, Any]:
    """Share of samples: per function (self), per package (self), per project function
    (inclusive: itself and what it calls), from py-spy's raw output."""
    own: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    samples = 0
    if not path.exists():
        return {"error": f"no profile written at {path}"}
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_frame(f) for f in stack.split(";") if f.strip()]
        frames = [f for f in frames if not f.startswith("process ")]  # py-spy's pid header
        if not frames:
            continue
        samples += n
        own[frames[-1]] += n
        packages[_package(frames[-1])] += n
        for name in set(frames):
            if any(marker in name for marker in _PROJECT) and "(stream/cli/" not in name:
                inclusive[name] += n
    share = max(samples, 1)
    return {
        "file": str(path),
        "samples": samples,
        "busy_share": round(samples / max(seconds * RATE, 1), 3),
        "self": [[name, round(n / share, 3)] for name, n in own.most_common(top)],
        "self_by_package": [[name, round(n / share, 3)] for name, n in packages.most_common(top)],
        "project_inclusive": [
            [name, round(n / share, 3)] for name, n in inclusive.most_common(top)
        ],
    }
