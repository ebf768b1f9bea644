"""Entry point of ``rfm-stream``: parses arguments, loads settings, runs a subcommand."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging.config
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from state.hooks import NO_FAULTS, FaultHooks
from stream.logs import logging_config
from stream.retry import is_permanent
from stream.settings import Settings, SettingsError, load_settings

EXIT_USAGE = 2
Command = Callable[[Settings, argparse.Namespace, FaultHooks], int]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rfm-stream",
        description="Streaming RFM segmentation: Kafka order events in, segment changes out.",
    )
    parser.add_argument("--config", metavar="FILE.toml", help="settings file (RFM_* env wins)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("demo", help="embedded broker and Redis, a worker and a synthetic shop")
    sub.add_parser("worker", help="run one worker against the configured Kafka and Redis")
    p = sub.add_parser("produce", help="publish order events from a CSV or JSON-lines file")
    p.add_argument("file")
    p = sub.add_parser("rescore", help="one full rescoring pass now; emits segment changes")
    p.add_argument("--as-of", metavar="TIME", help="RFC 3339 time (default: the clock setting)")
    p = sub.add_parser("customer", help="one customer's profile as JSON")
    p.add_argument("customer_id")
    p = sub.add_parser("export", help="every profile, streamed")
    p.add_argument("--segment", metavar="NAME")
    p.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    sub.add_parser("segments", help="segment sizes")
    p = sub.add_parser("forget", help="erase one customer (right to erasure); emits 'erased'")
    p.add_argument("customer_id")
    sub.add_parser("serve", help="the read-only HTTP query API (RFM_API_HOST, RFM_API_PORT)")
    return parser


# Imported on use, so ``rfm-stream customer`` does not pay for importing faust.
_COMMANDS = {
    "demo": ("rfm_dev.demo", "run"),
    "worker": ("stream.cli.worker", "run"),
    "produce": ("stream.cli.ops", "produce"),
    "rescore": ("stream.cli.ops", "rescore"),
    "customer": ("stream.cli.queries", "customer"),
    "export": ("stream.cli.queries", "export"),
    "segments": ("stream.cli.queries", "segments"),
    "forget": ("stream.cli.erase", "forget"),
    "serve": ("stream.cli.serve", "run"),
}


DEV_PACKAGE = "rfm_dev"  # development code: in a clone's dev install, not in the image


class DevCodeMissingError(RuntimeError):
    """A command made of development code, in an installation without it."""


def _command(name: str) -> Command:
    module, attr = _COMMANDS[name]
    try:
        loaded = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name not in (DEV_PACKAGE, module):
            raise
        raise DevCodeMissingError(
            f"the {name} is development code, which this installation does not include "
            "(the production image ships the worker and the CLI only). Run it from a clone "
            "of the repository: `make demo`, or `pip install -e '.[dev]'` and `rfm-stream demo`."
        ) from exc
    command: Command = getattr(loaded, attr)
    return command


def main(argv: Sequence[str] | None = None, hooks: FaultHooks = NO_FAULTS) -> int:
    """``hooks``: the fault points' (state/hooks.py); only the development fault worker
    arms them, so ``rfm-stream`` cannot be armed by its environment."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(config_file=args.config)
    except SettingsError as exc:
        print(f"rfm-stream: bad setting: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logging.config.dictConfig(
        logging_config(settings.operations.log_level, settings.operations.log_format)
    )
    try:
        return _command(args.command)(settings, args, hooks)
    except SettingsError as exc:
        print(f"rfm-stream: bad setting: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DevCodeMissingError as exc:
        print(f"rfm-stream {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except (RedisError, KafkaError, OSError) as exc:
        # A clear line instead of a traceback; URLs with credentials are never printed.
        redis_url = settings.redacted()["RFM_REDIS_URL"]
        print(
            f"rfm-stream {args.command}: {type(exc).__name__}: {exc} "
            f"(Kafka {settings.kafka.bootstrap}, Redis {redis_url}){_hint(exc)}",
            file=sys.stderr,
        )
        return 1


def _hint(exc: BaseException) -> str:
    if not is_permanent(exc):
        return ""
    return (
        "; TLS verification or credentials refused, retrying will not help: check the "
        "passwords (RFM_REDIS_URL, RFM_KAFKA_SASL_*), the CA files (RFM_REDIS_TLS_CA_FILE, "
        "RFM_KAFKA_SSL_CA_FILE) and the server's certificate"
    )


def run_async(coro: Coroutine[Any, Any, int]) -> int:
    """Run a subcommand coroutine that returns an exit code."""
    return asyncio.run(coro)


if __name__ == "__main__":
    sys.exit(main())
