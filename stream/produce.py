"""``rfm-stream produce FILE``: publish order events from a CSV or JSON-lines file.

This is a loader, not a validator: the worker is the one place that decides what an order
event means and dead-letters what it refuses, so a file and a live producer are treated
alike. Only rows that cannot even become a Kafka record (no customer id for the key, a
broken CSV row, a line that is not a JSON object) are reported here and left unsent.
Files are streamed, so a file larger than memory loads fine.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO

import orjson

from stream.publisher import OutgoingRecord, Publisher

__all__ = ["ProduceReport", "format_report", "produce_file", "read_events"]

Row = tuple[int, tuple[bytes, bytes] | str]

REQUIRED_COLUMNS: Final = ("customer_id", "order_id", "amount", "occurred_at")
OPTIONAL_COLUMNS: Final = ("currency", "type", "refund_id")
JSON_SUFFIXES: Final = frozenset({".jsonl", ".json", ".ndjson"})
_SHOWN_BAD_ROWS: Final = 20
_SHOW_CHARS: Final = 60
_BOM: Final = b"\xef\xbb\xbf"


@dataclass
class ProduceReport:
    sent: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)


def read_events(path: Path) -> Iterator[Row]:
    """``(line, (key, value))`` for each record and ``(line, reason)`` for each bad row.

    The format and a CSV header are checked before the first row is read, so a wrong file
    fails at once with a ``ValueError`` instead of after part of it has been published.
    """
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _csv_rows(path, _csv_header(path))
    if suffix in JSON_SUFFIXES:
        return _json_rows(path)
    raise ValueError(
        f"{path}: cannot tell the format from the extension {suffix or '(none)'!r}; "
        "use .csv, or .jsonl/.ndjson/.json for one JSON object per line"
    )


def _open_csv(path: Path) -> TextIO:
    # utf-8-sig drops the byte-order mark spreadsheets write; surrogateescape lets a row
    # with bad bytes be reported on its own instead of aborting the whole file.
    return path.open(encoding="utf-8-sig", errors="surrogateescape", newline="")


def _csv_header(path: Path) -> list[str]:
    with _open_csv(path) as handle:
        header = next(csv.reader(handle), None)
    if not header:
        raise ValueError(f"{path}: the CSV file has no header row")
    columns = [name.strip().lower() for name in header]
    unknown = [name for name in columns if name not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if unknown:
        allowed = ", ".join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
        raise ValueError(f"{path}: unknown column(s) {', '.join(unknown)}; allowed: {allowed}")
    repeated = sorted({name for name in columns if columns.count(name) > 1})
    if repeated:
        raise ValueError(f"{path}: column(s) {', '.join(repeated)} appear more than once")
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise ValueError(f"{path}: the header lacks required column(s) {', '.join(missing)}")
    return columns


def _csv_rows(path: Path, columns: list[str]) -> Iterator[Row]:
    with _open_csv(path) as handle:
        reader = csv.reader(handle)
        next(reader)  # the header, already checked
        while True:
            line = reader.line_num + 1  # where the next record starts
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield line, f"not a valid CSV row: {exc}"
                continue
            if cells:  # blank lines are skipped
                yield line, _csv_record(columns, cells)


def _csv_record(columns: list[str], cells: list[str]) -> tuple[bytes, bytes] | str:
    if len(cells) != len(columns):
        return f"expected {len(columns)} columns, got {len(cells)}"
    if not _is_utf8(cells):
        return "not valid UTF-8"
    row = {name: cell.strip() for name, cell in zip(columns, cells, strict=True)}
    required = [n for n in REQUIRED_COLUMNS if n != "amount" or row.get("type") != "cancel"]
    missing = [name for name in required if not row[name]]
    if missing:
        return f"missing {', '.join(missing)}"
    event: dict[str, Any] = {name: value for name, value in row.items() if value}
    # Epoch milliseconds are sent as a JSON number, as the wire format defines them.
    occurred = event["occurred_at"]
    if occurred.isascii() and occurred.isdigit():
        event["occurred_at"] = int(occurred)
    return row["customer_id"].encode(), orjson.dumps(event)


def _is_utf8(cells: list[str]) -> bool:
    """False if the file had bytes that are not UTF-8 (decoded as lone surrogates)."""
    try:
        "".join(cells).encode()
    except UnicodeEncodeError:
        return False
    return True


def _json_rows(path: Path) -> Iterator[Row]:
    with path.open("rb") as handle:
        for line, raw in enumerate(handle, start=1):
            text = (raw.removeprefix(_BOM) if line == 1 else raw).strip()
            if text:
                yield line, _json_record(text)


def _json_record(text: bytes) -> tuple[bytes, bytes] | str:
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return f"not valid JSON: {_clip(str(exc))}"
    if not isinstance(document, dict):
        return "not a JSON object"
    customer_id = document.get("customer_id")
    if not isinstance(customer_id, str) or not customer_id:
        return "customer_id is missing or not a non-empty string"
    # The line is sent as written: the worker must see exactly what the producer wrote.
    return customer_id.encode(), text


def _clip(text: str) -> str:
    return text if len(text) <= _SHOW_CHARS else text[: _SHOW_CHARS - 3] + "..."


async def produce_file(
    path: Path, publisher: Publisher, topic: str, batch: int = 1000
) -> ProduceReport:
    """Publish every record of ``path``; returns once the broker acknowledged them all.

    Batches bound memory and let each ``publish`` wait for acknowledgements without
    paying a round trip per record.
    """
    if batch <= 0:
        raise ValueError("batch must be > 0")
    report = ProduceReport()
    pending: list[OutgoingRecord] = []
    for line, row in read_events(path):
        if isinstance(row, str):
            report.bad.append((line, row))
            continue
        pending.append(OutgoingRecord(topic, row[0], row[1]))
        if len(pending) >= batch:
            await publisher.publish(pending)
            report.sent += len(pending)
            pending = []
    if pending:
        await publisher.publish(pending)
        report.sent += len(pending)
    return report


def format_report(report: ProduceReport) -> str:
    """A summary for the terminal; long lists of bad rows are cut so the total stays visible."""
    events = "event" if report.sent == 1 else "events"
    if not report.bad:
        return f"sent {report.sent} {events}; no bad rows"
    rows = "bad row" if len(report.bad) == 1 else "bad rows"
    lines = [f"sent {report.sent} {events}; {len(report.bad)} {rows}:"]
    lines += [f"  line {line}: {reason}" for line, reason in report.bad[:_SHOWN_BAD_ROWS]]
    if len(report.bad) > _SHOWN_BAD_ROWS:
        lines.append(f"  ... and {len(report.bad) - _SHOWN_BAD_ROWS} more")
    return "\n".join(lines)
