"""``python -m rfm_dev.fault_worker ARGS``: ``rfm-stream ARGS`` with the fault points armed.

The fault-injection suite starts workers and passes with this instead of ``rfm-stream``
(tests/support/harness.py), so the hooks that exit or raise (rfm_dev/faults.py, armed by
``RFM_TEST_FAULTS``) are development code that a production process never loads: the image
does not ship ``rfm_dev``, and ``rfm-stream`` itself runs with the no-op hooks.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from rfm_dev.faults import ArmedFaults
from stream.cli.main import main as cli_main


def main(argv: Sequence[str] | None = None) -> int:
    return cli_main(argv, hooks=ArmedFaults.from_env())


if __name__ == "__main__":
    sys.exit(main())
