"""What a ``Broadcast`` and its backends say to each other: ``Event``, ``Gap``, the protocol.

The vocabulary below both :mod:`asgikit.broadcast` and every backend
(:mod:`asgikit._broadcast_redis`), so that a backend never imports the
``Broadcast`` that loads it.  :mod:`asgikit.broadcast` re-exports every name.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

Message = str | bytes


@dataclasses.dataclass(frozen=True)
class Event:
    """A message as a subscriber receives it, with the channel it came on."""

    channel: str
    message: Message


@dataclasses.dataclass(frozen=True)
class Gap:
    """What a backend returns from ``next_published`` after it was reconnected.

    Messages on ``channel`` may have been lost before this point; every
    message after it is delivered again.
    """

    channel: str


class BroadcastBackend(Protocol):
    """What a backend does: carry published messages to every ``Broadcast`` listening.

    ``subscribe`` returns once messages published from now on are delivered.
    ``next_published`` waits for the next message on a subscribed channel.
    """

    async def connect(self) -> None:
        """Open the connection (called when the ``Broadcast`` starts)."""
        ...

    async def disconnect(self) -> None:
        """Close the connection (called when the ``Broadcast`` stops)."""
        ...

    async def subscribe(self, channel: str) -> None:
        """Start receiving ``channel``'s messages."""
        ...

    async def unsubscribe(self, channel: str) -> None:
        """Stop receiving ``channel``'s messages."""
        ...

    async def publish(self, channel: str, message: Message) -> None:
        """Send ``message`` to every subscriber of ``channel`` the backend reaches."""
        ...

    async def next_published(self) -> Event | Gap:
        """The next message on any subscribed channel, or a gap after a reconnection."""
        ...


__all__ = ["BroadcastBackend", "Event", "Gap", "Message"]
