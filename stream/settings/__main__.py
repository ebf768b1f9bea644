"""``python -m stream.settings``: the README's settings tables, to paste after a change."""

import sys

from stream.settings.loading import markdown_table

sys.stdout.write(markdown_table())
