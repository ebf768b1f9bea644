"""The pure parts of the query API: tokens, loopback, cursors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from state.keys import BUCKETS
from stream.api.app import build_app
from stream.api.auth import check_startable, is_loopback, token_matches
from stream.api.errors import ApiError
from stream.api.paging import Position, decode_cursor, encode_cursor
from stream.settings import SettingsError, load_settings

A, B = "tok-" + "a" * 20, "tok-" + "b" * 20


def test_token_matches_any_configured_token_and_nothing_else() -> None:
    assert token_matches(A, (A, B)) and token_matches(B, (A, B))
    for wrong in ("", A[:-1], A + "x", A.upper(), f"{A},{B}", " " + A):
        assert not token_matches(wrong, (A, B)), wrong
    assert not token_matches(A, ())


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.1", "example.org", "localhost.evil"])
def test_other_hosts_are_not_loopback_and_need_tokens(host: str) -> None:
    assert not is_loopback(host)
    settings = load_settings(env={"RFM_API_HOST": host})
    with pytest.raises(SettingsError, match="RFM_API_TOKENS"):
        check_startable(settings)
    with pytest.raises(SettingsError, match="RFM_API_TOKENS"):
        build_app(settings)  # no way around the refusal
    check_startable(load_settings(env={"RFM_API_HOST": host, "RFM_API_TOKENS": A}))


ids = st.none() | st.text(min_size=1, max_size=300)


@given(bucket=st.integers(0, BUCKETS - 1), after=ids)
def test_cursor_round_trips(bucket: int, after: str | None) -> None:
    cursor = encode_cursor(Position(bucket, after))
    assert cursor.isascii() and "=" not in cursor  # URL-safe as it is
    assert decode_cursor(cursor) == Position(bucket, after)


@given(text=st.text(max_size=60))
def test_any_other_cursor_is_refused_or_a_valid_position(text: str) -> None:
    try:
        position = decode_cursor(text)
    except ApiError as exc:
        assert (exc.status, exc.code) == (400, "bad_cursor")
    else:
        assert 0 <= position.bucket < BUCKETS
