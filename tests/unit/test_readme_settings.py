"""The README's settings tables are the ones generated from stream/settings/."""

import re
from pathlib import Path

from stream.settings import markdown_table, settings_table

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_readme_lists_every_setting_with_its_default() -> None:
    missing = []
    for variable, default, _ in settings_table():
        row = f"| `{variable}` | `{default}` |" if default else f"| `{variable}` | |"
        if row not in README:
            missing.append(variable)
    assert not missing, f"README settings table lacks {missing}"


def test_readme_settings_tables_are_the_generated_ones() -> None:
    """Regenerate with ``python -m stream.settings`` after changing a setting."""
    assert markdown_table() in README


def test_readme_has_no_row_for_a_setting_that_does_not_exist() -> None:
    section = README[README.index("## Settings\n") : README.index("## State in Redis\n")]
    rows = set(re.findall(r"^\| `(RFM_[A-Z0-9_]+)` \|", section, flags=re.MULTILINE))
    assert rows == {variable for variable, _, _ in settings_table()}
