"""The query API section: ``rfm-stream serve``, its own process."""

from __future__ import annotations

import re
from dataclasses import dataclass

from stream.settings.fields import Secret, _port, _Section, _setting, _text

# RFC 6750's b64token: what a bearer token may contain, so it fits an Authorization header.
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
MIN_TOKEN_CHARS = 16


def _api_tokens(text: str) -> Secret:
    """Comma-separated bearer tokens (several, so one can be rotated out while the next is
    in use). Never quoted in an error: the message says which one by position only."""
    tokens = [t.strip() for t in text.split(",")] if text.strip() else []
    for position, token in enumerate(tokens, start=1):
        if len(token) < MIN_TOKEN_CHARS or not _BEARER_TOKEN.fullmatch(token):
            raise ValueError(
                f"token #{position} must be at least {MIN_TOKEN_CHARS} characters of "
                "A-Z a-z 0-9 - . _ ~ + / (then = padding only)"
            )
    return Secret(",".join(tokens))


@dataclass(frozen=True, repr=False)
class ApiSettings(_Section):
    """``rfm-stream serve``: the read-only query API, its own process."""

    host: str = _setting(
        "RFM_API_HOST",
        "127.0.0.1",
        _text,
        "Address the query API (rfm-stream serve) listens on; beyond loopback it needs tokens",
    )
    port: int = _setting(
        "RFM_API_PORT", "8080", _port, "HTTP port of the query API: /v1/..., /metrics"
    )
    tokens: Secret = _setting(
        "RFM_API_TOKENS",
        "",
        _api_tokens,
        "Bearer tokens of the query API, comma-separated (never shown)",
        secret=True,
    )
    erase_tokens: Secret = _setting(
        "RFM_API_ERASE_TOKENS",
        "",
        _api_tokens,
        "Bearer tokens that may also erase customers (DELETE /v1/customers/{id}); never shown",
        secret=True,
    )

    @property
    def token_list(self) -> tuple[str, ...]:
        """Every accepted token (reading); for the one place that compares them
        (stream/api/auth.py). An erase token reads too."""
        return _split(self.tokens) + self.erase_token_list

    @property
    def erase_token_list(self) -> tuple[str, ...]:
        return _split(self.erase_tokens)


def _split(secret: Secret) -> tuple[str, ...]:
    raw = secret.get_secret_value()
    return tuple(raw.split(",")) if raw else ()
