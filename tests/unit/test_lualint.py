"""``python -m rfm_dev.lualint`` checks each script after the prelude, as Redis loads it, and
reports findings against the original files and lines."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rfm_dev.lualint import LUA, PRELUDE_FILES, combined, lint, locate, main

PRELUDE_TEXT = "local function helper() return 1 end\nlocal function other() return 2 end\n"


def test_the_prelude_comes_first_with_its_functions_ignored_when_unused() -> None:
    text, before = combined(PRELUDE_TEXT, "return helper()\n")
    lines = text.splitlines()
    assert lines[0] == "-- luacheck: push ignore 211/helper 211/other"
    assert lines[1:3] == PRELUDE_TEXT.splitlines()
    assert lines[before - 1] == "-- luacheck: pop"
    assert lines[before] == "return helper()"


def test_lines_map_back_to_the_original_files() -> None:
    script = LUA / "due_take.lua"
    _, before = combined(PRELUDE_TEXT, "x = 1\n")
    assert locate(2, before, script) == (PRELUDE_FILES[0], 1)
    assert locate(before + 1, before, script) == (script, 1)


@pytest.mark.skipif(shutil.which("luacheck") is None, reason="luacheck is not installed")
def test_a_finding_is_reported_at_its_script_line(tmp_path: Path) -> None:
    script = tmp_path / "broken.lua"
    script.write_text("local unused = 1\nreturn 1\n")
    luacheck = shutil.which("luacheck")
    assert luacheck is not None
    findings = lint(luacheck, [script])
    assert len(findings) == 1
    assert findings[0].endswith(":1:7: (W211) unused variable 'unused'"), findings


def test_missing_luacheck_fails_saying_how_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert main([]) == 2
    assert "apt-get install lua-check" in capsys.readouterr().err
