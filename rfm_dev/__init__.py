"""Development-only code: the synthetic shop, the embedded servers and ``rfm-stream demo``.

Installed by the editable development install (``pip install -e '.[dev]'``, what ``make
demo`` and ``make test`` run), never shipped in the production image: the Dockerfile builds
the worker from ``stream/`` and ``state/`` only; its ``shop`` stage adds this package for
the compose ``demo`` profile. Nothing in ``stream`` or ``state`` imports it, except
``rfm-stream demo``, which says what to install when it is missing.

- ``rfm_dev.shop``: a deterministic synthetic order stream (tests, benchmarks, the demo);
- ``rfm_dev.shopper``: ``python -m rfm_dev.shopper``, the shop publishing live orders;
- ``rfm_dev.embedded`` / ``rfm_dev.embedded_stack``: a Kafka-protocol broker and a Redis as
  child processes, from wheels (the ``embedded`` extra);
- ``rfm_dev.demo``: ``rfm-stream demo``.
"""
