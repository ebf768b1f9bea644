"""The OpenAPI 3.1 document of ``/v1``, served at ``/v1/openapi.json``.

Written by hand next to the routes rather than generated, so it says what the README says;
a test validates it (openapi-spec-validator) and checks its paths are the app's routes.
"""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]

_ERROR: Json = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
}
_NULLABLE_TIME: Json = {"type": ["string", "null"], "format": "date-time"}
_SCORE: Json = {"type": ["integer", "null"], "minimum": 1, "maximum": 5}
_PROFILE: Json = {
    "type": "object",
    "description": "As `rfm-stream customer ID` prints it; spend is decimal text, never a float.",
    "properties": {
        "customer_id": {"type": "string"},
        "first_purchase_at": _NULLABLE_TIME,
        "last_purchase_at": _NULLABLE_TIME,
        "orders": {"type": "integer", "description": "In the window (what F was scored on)"},
        "spend": {"type": "string", "examples": ["129.90"], "description": "In the window"},
        "lifetime_orders": {"type": "integer"},
        "lifetime_spend": {"type": "string"},
        "window_days": {"type": "integer", "description": "0: the whole history"},
        "currency": {"type": "string"},
        "recency_days": {"type": ["integer", "null"]},
        "r": _SCORE,
        "f": _SCORE,
        "m": _SCORE,
        "segment": {"type": ["string", "null"]},
        "previous_segment": {
            "type": ["string", "null"],
            "description": "The segment before this one; null for none or unknown.",
        },
        "segment_since": {
            **_NULLABLE_TIME,
            "description": "When the customer entered its segment (the as_of of that change); "
            "null when unknown (state from before the segment history) or never scored.",
        },
        "as_of": _NULLABLE_TIME,
    },
}
_ERASURE: Json = {
    "type": "object",
    "properties": {
        "customer_id": {"type": "string"},
        "previous_segment": {"type": ["string", "null"]},
        "sequence": {"type": "integer"},
        "order_records_deleted": {"type": "integer"},
        "due_entries_deleted": {"type": "integer"},
    },
}
_BOUND: Json = {"type": ["integer", "string", "null"]}
_AXIS: Json = {
    "type": ["object", "null"],
    "description": "Score, the value it was read from, the inclusive range of values giving "
    "this score (null: unbounded) and the cuts of the scale; money as decimal text.",
    "properties": {
        "score": {"type": "integer"},
        "value": _BOUND,
        "min": _BOUND,
        "max": _BOUND,
        "cuts": {"type": "array", "items": _BOUND},
    },
}
_EXPLANATION: Json = {
    "type": "object",
    "properties": {
        "scoring": {"enum": ["thresholds", "quintiles"]},
        "rule": {
            "type": ["object", "null"],
            "description": "The first rule of the ordered list that holds the scores.",
            "properties": {
                "name": {"type": "string"},
                "position": {"type": "integer", "description": "1-based"},
                "of": {"type": "integer"},
                "r": {"type": "array", "items": {"type": "integer"}},
                "f": {"type": "array", "items": {"type": "integer"}},
                "m": {"type": "array", "items": {"type": "integer"}},
            },
        },
        "r": _AXIS,
        "f": _AXIS,
        "m": _AXIS,
        "next_change": {
            "type": ["object", "null"],
            "description": "When the profile is next due and why: recency (R drops; r and "
            "segment then) or window (an order leaves the window; r and segment null).",
            "properties": {
                "due_at": {"type": "string", "format": "date-time"},
                "cause": {"enum": ["recency", "window"]},
                "r": {"type": ["integer", "null"]},
                "segment": {"type": ["string", "null"]},
            },
        },
    },
}


def _json(schema: Json, description: str) -> Json:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _refs(*statuses: int) -> Json:
    return {str(s): {"$ref": f"#/components/responses/E{s}"} for s in statuses}


def _param(name: str, where: str, schema: Json, description: str) -> Json:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": schema,
        "description": description,
    }


def _paths() -> Json:
    page = {
        "type": "object",
        "properties": {
            "segment": {"type": "string"},
            "customers": {"type": "array", "items": {"$ref": "#/components/schemas/Profile"}},
            "next_cursor": {"type": ["string", "null"]},
        },
    }
    sizes = {
        "type": "object",
        "properties": {
            "segments": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"segment": {"type": "string"}, "customers": {"type": "integer"}},
                },
            },
            "total": {"type": "integer"},
        },
    }
    profile: Json = {
        "allOf": [
            {"$ref": "#/components/schemas/Profile"},
            {
                "type": "object",
                "properties": {"explanation": {"$ref": "#/components/schemas/Explanation"}},
            },
        ]
    }
    return {
        "/v1/customers/{id}": {
            "get": {
                "operationId": "getCustomer",
                "summary": "One customer's profile and why it is in its segment",
                "parameters": [
                    _param("id", "path", {"type": "string"}, "Customer id, URL-encoded")
                ],
                "responses": {"200": _json(profile, "the profile")} | _refs(400, 401, 404, 500),
            },
            "delete": {
                "operationId": "eraseCustomer",
                "summary": "Erase the customer (right to erasure); needs an erase token",
                "description": "As `rfm-stream forget ID`: everything Redis holds about the "
                "customer is deleted and its `erased` change event queued for the relay.",
                "parameters": [
                    _param("id", "path", {"type": "string"}, "Customer id, URL-encoded")
                ],
                "responses": {"200": _json(_ERASURE, "what was erased")}
                | _refs(400, 401, 403, 404, 500),
            },
        },
        "/v1/segments": {
            "get": {
                "operationId": "getSegments",
                "summary": "Customers per segment, largest first",
                "responses": {"200": _json(sizes, "segment sizes")} | _refs(401, 500),
            }
        },
        "/v1/segments/{name}/customers": {
            "get": {
                "operationId": "getSegmentCustomers",
                "summary": "The customers of one segment, paged or streamed",
                "description": "Walks the profile buckets in order (no segment index): a page "
                "reads about limit/share profiles, at most 50,000; a page may hold fewer than "
                "limit customers and still have a next_cursor. Only next_cursor null ends.",
                "parameters": [
                    _param("name", "path", {"type": "string"}, "Segment name"),
                    _param(
                        "limit",
                        "query",
                        {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                        "Customers per page",
                    ),
                    _param("cursor", "query", {"type": "string"}, "next_cursor of a page"),
                    _param(
                        "stream",
                        "query",
                        {"enum": ["0", "1"], "default": "0"},
                        "1: every customer from the cursor on, one JSON object a line",
                    ),
                ],
                "responses": {
                    "200": {
                        "description": "a page, or with stream=1 JSON lines (chunked)",
                        "content": {
                            "application/json": {"schema": page},
                            "application/x-ndjson": {
                                "schema": {"$ref": "#/components/schemas/Profile"}
                            },
                        },
                    }
                }
                | _refs(400, 401, 404, 500),
            }
        },
        "/v1/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "summary": "This document",
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")} | _refs(401),
            }
        },
    }


def document() -> Json:
    described = {
        400: "Bad input: an invalid id, limit, cursor or stream value",
        401: "Missing or wrong bearer token (see WWW-Authenticate)",
        403: "The token may not do this (erasing needs one of RFM_API_ERASE_TOKENS)",
        404: "Unknown customer or segment",
        500: "Internal error; details only in the server log",
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "rfm-stream query API",
            "version": "1",
            "description": "Views of the RFM state, and erasure (README, 'Query API').",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Profile": _PROFILE, "Explanation": _EXPLANATION, "Error": _ERROR},
            "responses": {
                f"E{status}": _json({"$ref": "#/components/schemas/Error"}, text)
                for status, text in described.items()
            },
        },
    }
