"""Issue #18: ``rfm-stream demo`` is development code (rfm_dev): a clone's dev install has it,
the production image does not, and there the command exits 2 saying what to do."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest

from stream.cli.main import EXIT_USAGE, _command, main


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("RFM_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr("logging.config.dictConfig", lambda config: None)
    return monkeypatch


def test_the_dev_install_provides_the_demo() -> None:
    assert _command("demo") is importlib.import_module("rfm_dev.demo").run


def test_demo_without_the_dev_package_exits_2_saying_what_to_install(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setitem(sys.modules, "rfm_dev", None)  # as if not installed
    clean_env.delitem(sys.modules, "rfm_dev.demo", raising=False)
    assert main(["demo"]) == EXIT_USAGE
    out, err = capsys.readouterr()
    assert not out
    assert err.startswith("rfm-stream demo: the demo is development code")
    assert "make demo" in err and "pip install -e '.[dev]'" in err
    assert len(err.strip().splitlines()) == 1


def test_nothing_shipped_imports_the_dev_package() -> None:
    """stream/ and state/ never import rfm_dev, except the demo command's lazy import."""
    root = Path(__file__).resolve().parents[2]
    offenders = [
        str(path.relative_to(root))
        for package in ("stream", "state")
        for path in (root / package).rglob("*.py")
        if "rfm_dev" in path.read_text(encoding="utf-8")
        and path != root / "stream" / "cli" / "main.py"
    ]
    assert not offenders
