"""Issue #18: the fault points are injected hooks. Production code runs the no-op ones and
never reads ``RFM_TEST_FAULTS``; the armed hooks are development code (rfm_dev)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rfm_dev.faults import ArmedFaults, InjectedFault, parse
from state.hooks import NO_FAULTS
from tests.support.harness import cli_command

ROOT = Path(__file__).resolve().parents[2]


def test_no_production_module_reads_the_test_variable() -> None:
    readers = [
        str(path.relative_to(ROOT))
        for package in ("stream", "state")
        for path in (ROOT / package).rglob("*.py")
        if "RFM_TEST_FAULTS" in path.read_text()
    ]
    assert readers == []


def test_the_default_hooks_do_nothing() -> None:
    NO_FAULTS.hit("after_apply")
    NO_FAULTS.hit_order(["o-1"])


def test_the_spec_defaults_to_exit() -> None:
    assert parse(" after_apply , apply:o-1=raise,,x=raise-once") == {
        "after_apply": "exit",
        "apply:o-1": "raise",
        "x": "raise-once",
    }


def test_armed_hooks_raise_at_their_points_only() -> None:
    hooks = ArmedFaults.from_env({"RFM_TEST_FAULTS": "apply:o-2=raise,once=raise-once"})
    hooks.hit("after_apply")
    hooks.hit_order(["o-1", "o-3"])
    with pytest.raises(InjectedFault):
        hooks.hit_order(["o-1", "o-2"])
    with pytest.raises(InjectedFault):
        hooks.hit_order(["o-2"])  # raise: every time
    with pytest.raises(InjectedFault):
        hooks.hit("once")
    hooks.hit("once")  # raise-once: only the first time


def test_only_armed_runs_use_the_dev_entry() -> None:
    assert cli_command({})[1:] == ["-m", "stream.cli.main"]
    assert cli_command({"RFM_TEST_FAULTS": ""})[1:] == ["-m", "stream.cli.main"]
    assert cli_command({"RFM_TEST_FAULTS": "after_apply"})[1:] == ["-m", "rfm_dev.fault_worker"]
