"""Reading order files for ``rfm-stream produce``: what becomes a record, what is reported."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream.produce import ProduceReport, format_report, read_events

HEADER = "customer_id,order_id,amount,occurred_at"


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def split(path: Path) -> tuple[list[tuple[int, bytes, dict[str, Any]]], list[tuple[int, str]]]:
    good: list[tuple[int, bytes, dict[str, Any]]] = []
    bad: list[tuple[int, str]] = []
    for line, row in read_events(path):
        if isinstance(row, str):
            bad.append((line, row))
        else:
            good.append((line, row[0], orjson.loads(row[1])))
    return good, bad


def test_csv_rows_become_json_events_keyed_by_customer(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "orders.csv",
        f"{HEADER}\nc1,o1,129.90,2026-11-25T10:00:00.000Z\nc2,o2,5.00,1795600800000\n",
    )
    good, bad = split(path)
    assert bad == []
    assert good == [
        (2, b"c1", {"customer_id": "c1", "order_id": "o1", "amount": "129.90",
                    "occurred_at": "2026-11-25T10:00:00.000Z"}),
        (3, b"c2", {"customer_id": "c2", "order_id": "o2", "amount": "5.00",
                    "occurred_at": 1795600800000}),
    ]  # fmt: skip


def test_optional_columns_in_any_order(tmp_path: Path) -> None:
    text = (
        " Type ,customer_id,currency,order_id,amount,occurred_at,refund_id\n"
        "refund,c1,EUR,o1,10.00,2026-11-25T10:00:00Z,r1\n"
        "cancel,c1,,o2,,2026-11-25T11:00:00Z,\n"
        ",c2,,o3,1.50,2026-11-25T12:00:00Z,\n"
    )
    good, bad = split(write(tmp_path, "orders.csv", text))
    assert bad == []
    events = [event for _, _, event in good]
    assert events[0] == {"type": "refund", "customer_id": "c1", "currency": "EUR",
                         "order_id": "o1", "amount": "10.00",
                         "occurred_at": "2026-11-25T10:00:00Z", "refund_id": "r1"}  # fmt: skip
    assert events[1] == {"type": "cancel", "customer_id": "c1", "order_id": "o2",
                         "occurred_at": "2026-11-25T11:00:00Z"}  # fmt: skip
    assert "type" not in events[2] and "currency" not in events[2]


def test_bad_csv_rows_are_reported_with_their_line(tmp_path: Path) -> None:
    text = (
        f"{HEADER},type\n"
        "c1,o1,1.00,2026-11-25T10:00:00Z,\n"  # line 2: good
        "c1,o2,1.00\n"  # line 3: too few columns
        "\n"  # line 4: blank, skipped
        ",o3,1.00,2026-11-25T10:00:00Z,\n"  # line 5: no customer
        "c1,o4,,2026-11-25T10:00:00Z,purchase\n"  # line 6: a purchase needs an amount
        'c1,"o5\nstill o5",-3,2026-11-25T10:00:00Z,\n'  # lines 7-8: quoted newline, good
        "c1,o6,1.00,2026-11-25T10:00:00Z,,extra\n"  # line 9: too many columns
    )
    good, bad = split(write(tmp_path, "orders.csv", text))
    assert [line for line, _, _ in good] == [2, 7]
    assert good[1][2]["amount"] == "-3"  # business rules are the worker's job
    assert bad == [
        (3, "expected 5 columns, got 3"),
        (5, "missing customer_id"),
        (6, "missing amount"),
        (9, "expected 5 columns, got 6"),
    ]


def test_csv_with_byte_order_mark_and_bad_bytes(tmp_path: Path) -> None:
    data = (
        b"\xef\xbb\xbf" + HEADER.encode() + b"\n"
        b"c1,o1,1.00,2026-11-25T10:00:00Z\n"
        b"c\xff,o2,1.00,2026-11-25T10:00:00Z\n"
    )
    good, bad = split(write(tmp_path, "orders.csv", data))
    assert [line for line, _, _ in good] == [2]
    assert bad == [(3, "not valid UTF-8")]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (f"{HEADER},discount,notes", "unknown column(s) discount, notes"),
        ("customer_id,order_id,amount", "required column(s) occurred_at"),
        (f"{HEADER},order_id", "order_id appear more than once"),
        ("", "no header row"),
    ],
)
def test_csv_header_problems_fail_at_once(tmp_path: Path, header: str, message: str) -> None:
    rows = "\nc1,o1,1.00,2026-11-25T10:00:00Z\n" if header else ""
    path = write(tmp_path, "orders.csv", header + rows)
    with pytest.raises(ValueError, match=re.escape(message)):
        read_events(path)


@pytest.mark.parametrize("suffix", [".jsonl", ".ndjson", ".json"])
def test_json_lines_are_sent_as_written(tmp_path: Path, suffix: str) -> None:
    first = b'{"customer_id": "c1", "order_id": "o1", "amount": "1.00", "extra": [1]}'
    text = b"\n".join([
        first,
        b"",  # 2: blank, skipped
        b"   ",  # 3: blank, skipped
        b"[1, 2]",  # 4: not an object
        b'{"customer_id": "c1", ',  # 5: not JSON
        b'{"order_id": "o2"}',  # 6: no customer
        b'{"customer_id": 7}',  # 7: not a string
        b'{"customer_id": ""}',  # 8: empty
        b'  {"customer_id": "c2", "amount": -1}  ',  # 9: good, negative is the worker's job
    ])  # fmt: skip
    results = list(read_events(write(tmp_path, "orders" + suffix, b"\xef\xbb\xbf" + text)))
    assert results[0] == (1, (b"c1", first))
    assert results[-1] == (9, (b"c2", b'{"customer_id": "c2", "amount": -1}'))
    bad = {line: row for line, row in results if isinstance(row, str)}
    assert sorted(bad) == [4, 5, 6, 7, 8]
    assert bad[4] == "not a JSON object"
    assert bad[5].startswith("not valid JSON")
    assert "customer_id" in bad[6] and "customer_id" in bad[7]


def test_unknown_extension_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.xlsx"):
        read_events(write(tmp_path, "orders.xlsx", "x"))


def test_format_report_shows_at_most_twenty_bad_rows() -> None:
    assert format_report(ProduceReport(3, [])) == "sent 3 events; no bad rows"
    assert format_report(ProduceReport(1, [(7, "missing amount")])) == (
        "sent 1 event; 1 bad row:\n  line 7: missing amount"
    )
    text = format_report(ProduceReport(1000, [(n, "bad") for n in range(2, 27)]))
    lines = text.splitlines()
    assert lines[0] == "sent 1000 events; 25 bad rows:"
    assert lines[1:21] == [f"  line {n}: bad" for n in range(2, 22)]
    assert lines[21:] == ["  ... and 5 more"]
