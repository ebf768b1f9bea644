"""Bearer tokens of the query API (``RFM_API_TOKENS``), and the rule for starting without.

Several tokens are accepted at once so one can be rotated out while clients move to the
next. Comparison is constant-time (``hmac.compare_digest``) against every token, so the
time of a refusal says nothing about how much of a guess was right. Without any token the
API only starts on a loopback address: customer data never goes unauthenticated onto a
network by accident.
"""

from __future__ import annotations

import hmac
import ipaddress

from aiohttp import web
from aiohttp.typedefs import Middleware

from stream.api.errors import Handler, error_response
from stream.settings import Settings, SettingsError

REALM = "rfm-stream"
OPEN_PATHS = frozenset({"/metrics"})  # scraped by Prometheus; holds no customer data


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def check_startable(settings: Settings) -> None:
    """Refuse to serve customer data to a network without tokens (exit 2 via the CLI)."""
    host = settings.api.host
    if not settings.api.token_list and not is_loopback(host):
        raise SettingsError(
            f"RFM_API_TOKENS is empty: the query API serves without tokens only on a loopback "
            f"address (127.0.0.1, ::1, localhost), not on RFM_API_HOST={host!r}"
        )


def token_matches(given: str, tokens: tuple[str, ...]) -> bool:
    """Compared with every token, always, each in constant time."""
    found = False
    for token in tokens:
        found |= hmac.compare_digest(given.encode(), token.encode())
    return found


def _unauthorized(message: str, error: str | None) -> web.Response:
    challenge = f'Bearer realm="{REALM}"'
    if error:
        challenge += f', error="{error}"'
    return error_response(401, "unauthorized", message, {"WWW-Authenticate": challenge})


def _forbidden() -> web.Response:
    return error_response(
        403, "forbidden", "erasing a customer needs a token of RFM_API_ERASE_TOKENS"
    )


def auth_middleware(tokens: tuple[str, ...], erase_tokens: tuple[str, ...] = ()) -> Middleware:
    """Checks ``Authorization: Bearer <token>`` on every route but ``OPEN_PATHS``; with no
    tokens configured (loopback only, see ``check_startable``) reading is open. Erasing
    (DELETE) always needs one of ``erase_tokens``: never open, not even on loopback."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        erasing = request.method == "DELETE"
        if erasing and not erase_tokens:
            return _forbidden()
        if (not tokens and not erasing) or request.path in OPEN_PATHS:
            return await handler(request)
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if not header:
            return _unauthorized("a bearer token is required", None)
        if scheme.lower() != "bearer" or not given.strip():
            return _unauthorized(
                "the Authorization header must be 'Bearer <token>'", "invalid_request"
            )
        if not token_matches(given.strip(), tokens):
            return _unauthorized("the token is not valid", "invalid_token")
        if erasing and not token_matches(given.strip(), erase_tokens):
            return _forbidden()
        return await handler(request)

    return middleware
