"""Builds the Grafana dashboards of rfm-stream as JSON: ``python dashboards/generate.py``.

Edit the Python, not the JSON: run this to rewrite ``pipeline-health.json`` and
``segments.json`` next to it, and commit both. ``--check`` exits 1 when the committed JSON
differs from what the builders generate (the test suite runs it).

Where things are: ``grafana.py`` holds the building blocks (targets, panels, layout,
template variables) and the conventions every panel follows; ``pipeline_health.py`` and
``segments_board.py`` build one dashboard each. Also ``python -m dashboards.generate``.

Metric names, labels and meanings: ``stream/metrics.py`` and ``docs/operations.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
if __package__ in (None, ""):  # run as a script: make ``dashboards`` importable
    sys.path.insert(0, str(HERE.parent))

from dashboards.grafana import Json  # noqa: E402
from dashboards.pipeline_health import pipeline_health  # noqa: E402
from dashboards.segments_board import segments  # noqa: E402

DASHBOARDS = {"pipeline-health.json": pipeline_health, "segments.json": segments}


def render(build: Callable[[], Json]) -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    parser.add_argument("--out", type=Path, default=HERE, help="directory of the JSON files")
    args = parser.parse_args(argv)
    stale = []
    for name, build in DASHBOARDS.items():
        path = args.out / name
        text = render(build)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print(
            f"out of date: {', '.join(stale)}; run python dashboards/generate.py",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
