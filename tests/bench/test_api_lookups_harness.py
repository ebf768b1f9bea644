"""The API lookup benchmark (bench/api_lookups.py) runs end to end at a tiny size and
reports its figures; speed is judged by the bench itself, never here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(180)
def test_api_lookup_bench_reports_its_row(tmp_path: Path) -> None:
    out = tmp_path / "api.json"
    args = ["--customers", "2000", "--rate", "200", "--seconds", "1", "--json", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "bench.api_lookups", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["statuses"] == {"200": 200}, result  # every lookup found its customer
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert result["result"] in ("PASS", "FAIL")
    assert "p99" in done.stdout
