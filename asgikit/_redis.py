"""The ``redis.asyncio`` client that the Redis-backed stores make and close.

``redis`` is an optional dependency (the ``redis`` extra): it is imported
only when a store is made from a URL, and a missing package says how to
install it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

INSTALL_HINT = "RedisStore needs the redis extra: pip install 'asgikit-toolkit[redis]'"


def client_from_url(url: str, **options: Any) -> Any:
    """A new ``redis.asyncio.Redis`` for ``url`` (``ImportError`` naming the extra)."""
    try:
        import redis.asyncio
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(INSTALL_HINT) from exc
    return redis.asyncio.Redis.from_url(url, **options)


async def close_client(client: object) -> None:
    """Close ``client``'s connections, if it has ``aclose`` (a user's stand-in may not)."""
    close: Callable[[], Awaitable[None]] | None = getattr(client, "aclose", None)
    if close is not None:
        await close()


__all__ = ["INSTALL_HINT", "client_from_url", "close_client"]
