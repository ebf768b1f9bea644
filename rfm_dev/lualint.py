"""``python -m rfm_dev.lualint``: luacheck on the Lua scripts as Redis runs them.

Every script is loaded with the prelude (``profile.lua``, ``window.lua``: state/scripts.py)
in front of it, so linting a
script alone would call the prelude's functions undefined globals: each one is checked as
prelude plus script, written to a temporary file, and the findings are reported against
the original files and lines. The prelude is a library each script uses part of, so its
top-level functions that a script does not call are not findings.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from state.scripts import PRELUDE

ROOT = Path(__file__).resolve().parents[1]
LUA = ROOT / "state" / "lua"
CONFIG = ROOT / ".luacheckrc"
INSTALL_HINT = "install it: apt-get install lua-check (Debian/Ubuntu) or luarocks install luacheck"
_FINDING = re.compile(r"^(?P<path>.+?):(?P<line>\d+):(?P<rest>\d+:.*)$")
_TOP_FUNCTION = re.compile(r"^local function (\w+)", re.MULTILINE)


PRELUDE_FILES = [LUA / f"{part}.lua" for part in PRELUDE]


def combined(prelude: str, script: str) -> tuple[str, int]:
    """The text luacheck sees, and how many lines come before the script's first line.

    Line 1 opens the ignore for the prelude's unused top-level functions (and only those),
    the prelude follows from line 2, then one line closes the ignore."""
    names = _TOP_FUNCTION.findall(prelude)
    ignore = " ".join(f"211/{name}" for name in names)
    lines = prelude.splitlines()
    text = "\n".join([f"-- luacheck: push ignore {ignore}", *lines, "-- luacheck: pop", script])
    return text, len(lines) + 2


def prelude_text() -> str:
    return "\n".join(path.read_text(encoding="utf-8").rstrip("\n") for path in PRELUDE_FILES)


def locate(line: int, before: int, script: Path) -> tuple[Path, int]:
    """The original file and line of a line of the combined text."""
    if line <= 1 or line == before:
        return script, 1  # the added comment lines; luacheck does not report on them
    if line < before:
        at = line - 1  # line within the prelude
        for path in PRELUDE_FILES:
            count = len(path.read_text(encoding="utf-8").rstrip("\n").splitlines())
            if at <= count:
                return path, at
            at -= count
        return PRELUDE_FILES[-1], at
    return script, line - before


def lint(luacheck: str, scripts: Sequence[Path]) -> list[str]:
    """Findings as ``path:line:col: (code) message``, each once (the prelude's would
    otherwise repeat for every script)."""
    prelude = prelude_text()
    findings: dict[str, None] = {}
    with tempfile.TemporaryDirectory(prefix="lualint-") as tmp:
        shifts: dict[str, tuple[int, Path]] = {}
        for script in scripts:
            text, before = combined(prelude, script.read_text(encoding="utf-8"))
            target = Path(tmp) / script.name
            target.write_text(text, encoding="utf-8")
            shifts[str(target)] = (before, script)
        run = subprocess.run(
            [luacheck, "--config", str(CONFIG), "--codes", "--formatter", "plain", *shifts],
            capture_output=True,
            text=True,
            check=False,
        )
        for raw in run.stdout.splitlines():
            match = _FINDING.match(raw)
            if match is None or match["path"] not in shifts:
                findings[raw] = None
                continue
            before, script = shifts[match["path"]]
            path, line = locate(int(match["line"]), before, script)
            shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
            findings[f"{shown}:{line}:{match['rest']}"] = None
        if run.returncode not in (0, 1) and not findings:  # 1: warnings, 2: errors
            findings[f"luacheck failed ({run.returncode}): {run.stderr.strip()}"] = None
    return list(findings)


def main(argv: Sequence[str] | None = None) -> int:
    luacheck = shutil.which("luacheck")
    if luacheck is None:
        print(f"rfm_dev.lualint: luacheck is not installed; {INSTALL_HINT}", file=sys.stderr)
        return 2
    names = list(argv if argv is not None else sys.argv[1:])
    scripts = (
        [LUA / f"{n}.lua" for n in names]
        if names
        else sorted(p for p in LUA.glob("*.lua") if p not in PRELUDE_FILES)
    )
    findings = lint(luacheck, scripts)
    for finding in findings:
        print(finding)
    after = ", ".join(path.name for path in PRELUDE_FILES)
    print(f"luacheck: {len(scripts)} scripts (each after {after}), {len(findings)} findings")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
