"""``sessions``: a per-client dict at ``scope["session"]``, kept in a signed cookie.

The session is a ``dict`` (a :class:`Session`, which notices changes), so
Starlette's ``request.session`` and asgikit's work with it unchanged.

By default the whole session lives in the cookie, as base64url JSON with a
timestamp, signed with HMAC-SHA256 (:class:`Signer`).  ``secret_key`` may be a
list: the first key signs, every key verifies, so keys rotate without logging
anyone out.  A cookie that was tampered with, is older than ``max_age``, was
signed with an unknown key or does not decode gives an empty session — never
an error.  The data is signed, not encrypted: the client can read it.

With ``store=`` (or ``store_from_state=``, a key of the lifespan state) the data
stays on the server (:mod:`asgikit.middleware.session_stores`) and the cookie
holds only a signed random id.  Against session fixation (an attacker plants
an id of theirs in the victim's browser, then shares the login made with it),
an id the store does not know is never adopted, and the session moves to a
fresh id, the old one deleted, whenever one of ``identity_keys`` changes
(``user``, ``user_id``, ``username``, ``_auth_user_id`` by default: a login,
a logout, another user).  An app that records the login under another key
names it in ``identity_keys``, or calls ``session.regenerate_id()`` (or
:func:`regenerate_session_id`) itself.  ``authentication`` plays no part: it
runs before the handler that logs the user in, so the session is where the
login is seen.

Every answer that read or changed the session carries ``Vary: Cookie``
(RFC 9110 §12.5.5), merged into the app's own ``Vary``, so that no shared
cache hands one user's page to another.  An app may also replace
``scope["session"]`` (Litestar's ``request.set_session()`` and
``request.clear_session()`` do): what it holds when the answer starts is
saved, and ``None`` or a sentinel clears the session.

The cookie is sent only when the session changed (so ``max_age`` counts from
the last change), and cleared when the session was emptied.  A change inside
a nested value (``session["cart"].append(x)``) is not seen: assign the value
again, or set ``session.modified = True``.  A cookie session larger than
browsers keep (RFC 6265 §6.1: 4096 bytes) raises :class:`SessionCookieTooLarge`
when the response starts, so it surfaces as a 500 instead of a silently
dropped cookie.  WebSocket connections get the session to read; changes made
there are not saved (a handshake response cannot be relied on to set cookies).

Deliberate differences from Starlette's ``SessionMiddleware``: the cookie is
signed by :class:`Signer`, not itsdangerous, so the two cannot read each
other's cookies; clearing sends ``Max-Age=0`` as well as a past ``Expires``;
``pop`` and ``setdefault`` count as reads even when nothing changes (the
answer may depend on the key's absence); a cookie too large for browsers is
an error, not a silently dropped cookie.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import secrets
from collections.abc import (
    ItemsView,
    Iterable,
    Iterator,
    KeysView,
    Mapping,
    ValuesView,
)
from datetime import datetime, timezone
from typing import Any

from asgikit._cookies import format_set_cookie
from asgikit._send import wrap_send
from asgikit.composition import middleware
from asgikit.datastructures import parse_cookie_header
from asgikit.middleware._exclude import Exclude, compile_exclude
from asgikit.middleware._http import add_vary
from asgikit.middleware._session_cookie import (
    SecretKey,
    Signer,
    decode_session,
    encode_session,
)
from asgikit.middleware.session_stores import IDENTITY_KEYS, SessionStore
from asgikit.types import ASGIApp, Message, Receive, Scope, Send

#: RFC 6265 §6.1: browsers keep cookies of at least 4096 bytes (name, value and attributes).
MAX_COOKIE_SIZE = 4096


class SessionCookieTooLarge(ValueError):
    """The session does not fit in a cookie: store less, or use a server-side store."""


class Session(dict[str, Any]):
    """The session dict: ``modified`` says it must be saved, ``accessed`` that it was read.

    Every read through the dict's methods (``get``, ``[]``, ``in``, iteration,
    ``len``, ``dict(session)``, ``json.dumps(session)``...) sets ``accessed``, so
    the answer carries ``Vary: Cookie``; Starlette's ``request.session`` marks it
    too, through :meth:`mark_accessed`.
    """

    __slots__ = ("accessed", "modified", "regenerate")

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        super().__init__(data or {})
        #: Set by every read; the answer then varies on the cookie.
        self.accessed = False
        #: Set by every change through the dict's methods; set it by hand after
        #: changing a nested value.
        self.modified = False
        #: Whether the next save moves the data to a fresh id (server-side stores).
        self.regenerate = False

    def mark_accessed(self) -> None:
        """Note a read the dict cannot see (Starlette's ``request.session`` calls this)."""
        self.accessed = True

    def mark_modified(self) -> None:
        """Note a change the dict cannot see, such as one inside a nested value."""
        self.accessed = self.modified = True

    def regenerate_id(self) -> None:
        """Give the session a new id when it is saved (call on login, against fixation).

        With a cookie session there is no id; the cookie is simply issued anew.
        """
        self.regenerate = True
        self.mark_modified()

    # -- reads ----------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        self.accessed = True
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        """``dict.get``, noting the read."""
        self.accessed = True
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self.accessed = True
        return super().__contains__(key)

    def __iter__(self) -> Iterator[str]:
        # Also what makes dict(session) and {**session} go through keys().
        self.accessed = True
        return super().__iter__()

    def __reversed__(self) -> Iterator[str]:
        self.accessed = True
        return super().__reversed__()

    def __len__(self) -> int:
        self.accessed = True
        return super().__len__()

    def keys(self) -> KeysView[str]:  # type: ignore[override]
        """``dict.keys``, noting the read."""
        self.accessed = True
        return super().keys()

    def values(self) -> ValuesView[Any]:  # type: ignore[override]
        """``dict.values``, noting the read."""
        self.accessed = True
        return super().values()

    def items(self) -> ItemsView[str, Any]:  # type: ignore[override]
        """``dict.items`` (what ``json.dumps`` uses), noting the read."""
        self.accessed = True
        return super().items()

    def copy(self) -> dict[str, Any]:
        """A plain ``dict`` copy, noting the read."""
        self.accessed = True
        return dict(super().items())

    def __or__(self, other: Any) -> dict[str, Any]:  # type: ignore[override]
        self.accessed = True
        return dict(super().items()) | other  # type: ignore[no-any-return]

    def __ror__(self, other: Any) -> dict[str, Any]:  # type: ignore[override]
        self.accessed = True
        return other | dict(super().items())  # type: ignore[no-any-return]

    def __eq__(self, other: object) -> bool:
        self.accessed = True
        return super().__eq__(other)

    def __ne__(self, other: object) -> bool:
        self.accessed = True
        return super().__ne__(other)

    __hash__ = None

    def __repr__(self) -> str:
        self.accessed = True
        return f"Session({super().__repr__()})"

    # -- changes --------------------------------------------------------------

    def __setitem__(self, key: str, value: Any) -> None:
        self.mark_modified()
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self.mark_modified()

    def __ior__(self, other: Any) -> Session:  # type: ignore[override]
        self.mark_modified()
        super().__ior__(other)
        return self

    def clear(self) -> None:
        """Empty the session (its cookie is cleared, its stored data deleted)."""
        self.mark_modified()
        super().clear()

    def pop(self, key: str, *default: Any) -> Any:
        """``dict.pop``, noting the read, and the change when ``key`` was there."""
        self.accessed = True
        if super().__contains__(key):
            self.modified = True
        return super().pop(key, *default)

    def popitem(self) -> tuple[str, Any]:
        """``dict.popitem``, noting the change."""
        item = super().popitem()
        self.mark_modified()
        return item

    def setdefault(self, key: str, default: Any = None) -> Any:
        """``dict.setdefault``, noting the read, and the change when ``key`` was missing."""
        self.accessed = True
        if not super().__contains__(key):
            self.modified = True
        return super().setdefault(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        """``dict.update``, noting the change."""
        self.mark_modified()
        super().update(*args, **kwargs)


def regenerate_session_id(connection: Mapping[str, Any]) -> None:
    """Move the session to a new id when it is saved; takes a scope or a ``Request``."""
    session = connection.get("session")
    if not isinstance(session, Session):
        raise RuntimeError("no asgikit session here: wrap the app in sessions()")
    session.regenerate_id()


def _cookie(scope: Scope, name: str) -> str | None:
    header = [v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"cookie"]
    if not header:
        return None
    return parse_cookie_header("; ".join(header)).get(name)


def _identity(data: dict[str, Any], keys: tuple[str, ...]) -> str:
    """The identity values of ``data`` as text: a snapshot a later in-place change cannot alter."""
    if not keys:
        return ""
    # dict.get: reading for the middleware's own bookkeeping is not the app's read.
    values = [dict.get(data, key) for key in keys]
    return json.dumps(values, sort_keys=True, default=repr)


def _replacement(value: Any) -> Session:
    """A session the app put in ``scope["session"]`` in place of ours, as a changed ``Session``.

    Litestar's ``request.set_session(data)`` stores a dict (or a dataclass or
    pydantic model) there, ``request.clear_session()`` its ``Empty`` sentinel
    (an enum member); ``None``, or any such sentinel, clears the session.
    """
    if value is None or isinstance(value, (type, enum.Enum)):
        data: Mapping[str, Any] = {}
    elif isinstance(value, Mapping):
        data = value
    elif callable(getattr(value, "model_dump", None)):
        data = value.model_dump(mode="json")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = dataclasses.asdict(value)
    else:
        raise TypeError(
            f"scope['session'] was replaced with a {type(value).__name__}: "
            "use a dict (or None to clear the session)"
        )
    session = Session(data)
    session.mark_modified()
    return session


@middleware
def sessions(
    app: ASGIApp,
    *,
    secret_key: SecretKey,
    session_cookie: str = "session",
    max_age: int | None = 14 * 24 * 60 * 60,
    same_site: str = "lax",
    https_only: bool = False,
    path: str = "/",
    domain: str | None = None,
    partitioned: bool = False,
    store: SessionStore | None = None,
    store_from_state: str | None = None,
    identity_keys: Iterable[str] = IDENTITY_KEYS,
    exclude: Exclude = None,
) -> ASGIApp:
    """Give the app a session at ``scope["session"]``, kept in a signed cookie or a store.

    ``max_age`` (seconds, ``None`` for a browser-session cookie) bounds both the
    cookie and the signature's age; ``same_site``, ``https_only`` (``Secure``),
    ``path``, ``domain`` and ``partitioned`` (CHIPS, needs ``https_only``) are
    the cookie's attributes, and it is always ``HttpOnly``.  ``store`` keeps the
    data on the server; ``store_from_state`` names the lifespan-state key
    holding the store instead (so it can be made in ``lifespan``).  With a
    store, a change to any of ``identity_keys`` (a login, a logout, another
    user) moves the session to a new id, against fixation; ``()`` leaves that
    to explicit :func:`regenerate_session_id` calls.  ``exclude`` (paths or a
    scope predicate) skips the middleware.
    """
    if store is not None and store_from_state is not None:
        raise TypeError("give store or store_from_state, not both")
    if isinstance(identity_keys, str):
        raise TypeError("identity_keys is a list of session keys, not one string")
    identity = tuple(identity_keys)
    signer = Signer(secret_key, salt=b"asgikit.sessions")
    # Built once: also checks the name and attributes (SameSite=None needs Secure).
    attributes = format_set_cookie(
        session_cookie,
        max_age=max_age,
        path=path,
        domain=domain,
        secure=https_only,
        httponly=True,
        samesite=same_site,
        partitioned=partitioned,
    ).partition("; ")[2]
    set_prefix = f"{session_cookie}="
    set_suffix = f"; {attributes}" if attributes else ""
    clear_cookie = format_set_cookie(
        session_cookie,
        "null",
        max_age=0,
        expires=datetime(1970, 1, 1, tzinfo=timezone.utc),
        path=path,
        domain=domain,
        secure=https_only,
        httponly=True,
        samesite=same_site,
        partitioned=partitioned,
    ).encode("latin-1")
    skip = compile_exclude(exclude)
    uses_store = store is not None or store_from_state is not None

    def cookie_header(value: str) -> bytes:
        header = f"{set_prefix}{value}{set_suffix}"
        if len(header) > MAX_COOKIE_SIZE:
            raise SessionCookieTooLarge(
                f"the session cookie is {len(header)} bytes, over the {MAX_COOKIE_SIZE}-byte "
                "limit browsers keep (RFC 6265 §6.1): keep less in the session, or use a "
                "server-side store (sessions(..., store=...))"
            )
        return header.encode("latin-1")

    def find_store(scope: Scope) -> SessionStore:
        if store is not None:
            return store
        state = scope.get("state") or {}
        found: SessionStore | None = state.get(store_from_state)
        if found is None:
            raise RuntimeError(
                f"no session store at lifespan state key {store_from_state!r}: "
                "yield it from the lifespan handler"
            )
        return found

    def save(session: Session, token: str | None) -> bytes | None:
        """The ``Set-Cookie`` value for a cookie session, or ``None`` to send nothing."""
        if not session.modified:
            return None
        if not dict.__len__(session):
            return clear_cookie if token is not None else None
        return cookie_header(signer.sign(encode_session(session)))

    async def save_to_store(
        session: Session, token: str | None, session_id: str | None, sessions_store: SessionStore
    ) -> bytes | None:
        if not session.modified:
            return None
        if not dict.__len__(session):
            if session_id is not None:
                await sessions_store.delete(session_id)
            return clear_cookie if token is not None else None
        if session_id is not None and session.regenerate:
            await sessions_store.delete(session_id)
            session_id = None
        if session_id is None:
            session_id = secrets.token_urlsafe(32)
        await sessions_store.save(session_id, dict(dict.items(session)), max_age)
        return cookie_header(signer.sign(session_id.encode("ascii")))

    async def sessions_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or (skip is not None and skip(scope)):
            await app(scope, receive, send)
            return
        token = _cookie(scope, session_cookie)
        payload = None if token is None else signer.unsign(token, max_age=max_age)
        session_id: str | None = None
        sessions_store: SessionStore | None = None
        if uses_store:
            sessions_store = find_store(scope)
            data: dict[str, Any] | None = None
            if payload is not None:
                session_id = payload.decode("ascii", "replace")
                data = await sessions_store.load(session_id)
            if data is None:
                # Never adopt an id the store does not know (session fixation).
                session_id, data = None, {}
        else:
            data = {} if payload is None else decode_session(payload)
        session = Session(data)
        scope = {**scope, "session": session}
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        loaded_identity = _identity(data, identity) if session_id is not None else ""

        async def on_start(message: Message) -> None:
            current = scope.get("session")
            # An app may put a new object there (Litestar's set_session and
            # clear_session do): what it holds at the answer is the session.
            final = current if isinstance(current, Session) else _replacement(current)
            if final is not session:
                final.mark_modified()
                final.regenerate = final.regenerate or session.regenerate
            if sessions_store is None:
                header = save(final, token)
            else:
                if (
                    session_id is not None
                    and final.modified
                    and _identity(final, identity) != loaded_identity
                ):
                    final.regenerate = True
                header = await save_to_store(final, token, session_id, sessions_store)
            if final.accessed or header is not None:
                headers = list(message.get("headers", ()))
                # The answer depends on the cookie: shared caches must key on it.
                add_vary(headers, b"Cookie")
                if header is not None:
                    headers.append((b"set-cookie", header))
                message = {**message, "headers": headers}
            await send(message)

        await app(scope, receive, wrap_send(send, {"http.response.start": on_start}))

    return sessions_app


__all__ = [
    "MAX_COOKIE_SIZE",
    "SecretKey",
    "Session",
    "SessionCookieTooLarge",
    "Signer",
    "regenerate_session_id",
    "sessions",
]
