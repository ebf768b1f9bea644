"""Every error of the query API is ``{"error": code, "message": text}`` with its status.

Clients branch on ``error`` (stable codes); ``message`` is for people. Nothing internal
ever reaches a client: unexpected exceptions become a generic 500 and go to the log only.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """A refusal the client can act on: status, stable code, readable message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def bad_request(message: str, code: str = "bad_request") -> ApiError:
    return ApiError(400, code, message)


def not_found(message: str, code: str = "not_found") -> ApiError:
    return ApiError(404, code, message)


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status, headers=headers)


# aiohttp's own refusals (no such route, wrong method) in the same shape.
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return error_response(exc.status, code, exc.reason, headers)
    except Exception:
        # Logged with the route template only: a path may carry a customer id.
        route = request.match_info.route.resource
        where = route.canonical if route is not None else "unmatched"
        log.exception("query API: unexpected error in %s %s", request.method, where)
        return error_response(500, "internal_error", "internal error; see the server log")
