"""The README's settings table names every setting, with its default."""

from pathlib import Path

from stream.settings import settings_table

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_readme_lists_every_setting_with_its_default() -> None:
    missing = []
    for variable, default, _ in settings_table():
        row = f"| `{variable}` | `{default}` |" if default else f"| `{variable}` | |"
        if row not in README:
            missing.append(variable)
    assert not missing, f"README settings table lacks {missing}"
