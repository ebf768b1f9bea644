"""Lua scripts shipped with the package, registered with redis-py.

redis-py's ``Script`` runs EVALSHA and, on ``NOSCRIPT`` (a restarted or flushed Redis),
loads the script again and retries once, so a Redis restart costs one extra round trip.
Every script starts with ``profile.lua``, the one definition of the packed profile format,
and ``window.lua``, the one definition of order records and windows.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

PRELUDE = ("profile", "window")


def _read(name: str) -> str:
    return (files("state") / "lua" / f"{name}.lua").read_text(encoding="utf-8")


@cache
def lua_source(name: str) -> str:
    return "\n".join([*(_read(part) for part in PRELUDE), _read(name)])


def register(redis: Redis, name: str) -> AsyncScript:
    return redis.register_script(lua_source(name))
