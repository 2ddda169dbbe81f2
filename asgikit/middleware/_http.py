"""Small helpers the middleware share: raw header edits and short refusals.

Kept to what is needed on the hot path of more than one middleware: editing
the raw ASGI header list without building a headers object, and answering
a request (or refusing a WebSocket handshake) with a short plain-text body.
"""

from __future__ import annotations

from collections.abc import Iterable

from asgikit.types import Message, Receive, Scope, Send

RawHeaders = list[tuple[bytes, bytes]]


def _is(name: bytes, lower: bytes) -> bool:
    # ASGI wants lower-case names, but an app may not comply: compare the
    # length first, so most names are told apart without lower-casing them.
    return len(name) == len(lower) and (name == lower or name.lower() == lower)


def _vary_lists(value: bytes, wanted: bytes) -> bool:
    # Whether a Vary field value already covers ``wanted`` (or is ``*``).
    if value == wanted:
        return True
    listed = [part.strip().lower() for part in value.split(b",")]
    return wanted in listed or b"*" in listed


def add_vary(headers: RawHeaders, token: bytes) -> None:
    """Add ``token`` to ``Vary`` in place, unless it (or ``*``) is listed already.

    ``Vary`` is a list header (RFC 9110 §12.5.5) and may come as several
    fields; the token is compared case-insensitively.
    """
    wanted = token.lower()
    first = -1
    for i, (name, value) in enumerate(headers):
        if _is(name, b"vary"):
            if _vary_lists(value.lower(), wanted):
                return
            if first < 0:
                first = i
    if first < 0:
        headers.append((b"vary", token))
    else:
        name, value = headers[first]
        headers[first] = (name, value + b", " + token if value.strip() else token)


class HeaderEdit:
    """One fixed edit of a response's raw header list, prepared at construction time.

    ``drop`` names (lower-case) are removed, the ``add`` pairs are appended,
    and with ``vary`` that token is added to ``Vary`` as :func:`add_vary`
    would.  Applying it is one pass over the list, and only names as long as
    one it looks for are lower-cased; when no name has such a length (the
    usual case), the result is built in one step.
    """

    __slots__ = ("add", "drop", "lengths", "tail", "vary", "vary_pair", "wanted")

    def __init__(
        self,
        *,
        drop: frozenset[bytes] = frozenset(),
        vary: bytes | None = None,
        add: Iterable[tuple[bytes, bytes]] = (),
    ) -> None:
        self.drop = drop
        self.vary = vary
        self.add = tuple(add)
        self.wanted = b"" if vary is None else vary.lower()
        self.lengths = frozenset({len(name) for name in drop} | ({4} if vary else set()))
        # What goes after the headers when none of them needs looking at.
        self.vary_pair: tuple[tuple[bytes, bytes], ...] = (
            () if vary is None else ((b"vary", vary),)
        )
        self.tail = (*self.add, *self.vary_pair)

    def apply(
        self, headers: Iterable[tuple[bytes, bytes]], add: Iterable[tuple[bytes, bytes]] = ()
    ) -> RawHeaders:
        """A new raw list: ``headers`` edited, then this edit's ``add`` and ``add`` appended."""
        if type(headers) is not list:
            headers = list(headers)  # read twice below
        lengths = self.lengths
        for name, _ in headers:
            if len(name) in lengths:
                break
        else:
            if add:
                return [*headers, *self.add, *add, *self.vary_pair]
            return [*headers, *self.tail]
        drop = self.drop
        vary = self.vary
        out: RawHeaders = []
        vary_at = -1
        vary_done = vary is None
        for pair in headers:
            if len(pair[0]) in lengths:
                name = pair[0].lower()
                if name in drop:
                    continue
                if name == b"vary" and not vary_done:
                    if _vary_lists(pair[1].lower(), self.wanted):
                        vary_done = True
                    elif vary_at < 0:
                        vary_at = len(out)
            out.append(pair)
        out.extend(self.add)
        out.extend(add)
        if vary is not None and not vary_done:
            if vary_at < 0:
                out.append((b"vary", vary))
            else:
                name, value = out[vary_at]
                out[vary_at] = (name, value + b", " + vary if value.strip() else vary)
        return out

    def message(self, message: Message) -> Message:
        """A copy of a start message with its headers edited (for ``edit_start``)."""
        headers = message.get("headers", ())
        if type(headers) is list:
            # apply's usual case, inlined: this runs once a response.
            lengths = self.lengths
            for name, _ in headers:
                if len(name) in lengths:
                    break
            else:
                headers = [*headers, *self.tail]
                message = {**message}  # then one assignment: cheaper than {**m, k: v}
                message["headers"] = headers
                return message
        headers = self.apply(headers)
        message = {**message}
        message["headers"] = headers
        return message


def has_header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bool:
    """Whether a header called ``name`` (lower-case) is in the raw list."""
    return any(_is(key, name) for key, _ in headers)


def without(headers: Iterable[tuple[bytes, bytes]], names: frozenset[bytes]) -> RawHeaders:
    """A copy of the raw list without the headers called any of ``names`` (lower-case)."""
    return HeaderEdit(drop=names).apply(headers)


async def text_response(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    text: str,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """Answer with ``status`` and ``text`` as plain text, for HTTP and WebSocket alike.

    Used to refuse a request (and for the short ``200 OK`` of a preflight).

    A WebSocket handshake gets the HTTP response through the
    ``websocket.http.response`` extension where the server offers it, and a
    close (which the server turns into a 403) where it does not.
    """
    body = text.encode("utf-8")
    raw = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode("ascii")),
        *headers,
    ]
    if scope["type"] == "websocket":
        if "websocket.http.response" not in scope.get("extensions", {}):
            await send({"type": "websocket.close", "code": 1008})
            return
        prefix = "websocket."
    else:
        prefix = ""
    if scope.get("method") == "HEAD":
        body = b""
    await send({"type": prefix + "http.response.start", "status": status, "headers": raw})
    await send({"type": prefix + "http.response.body", "body": body})


__all__ = ["HeaderEdit", "RawHeaders", "add_vary", "has_header", "text_response", "without"]
