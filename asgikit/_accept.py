"""Content negotiation on ``Accept`` for the bodies asgikit makes itself.

Error answers and the debug page come in two shapes (plain text and JSON, or
plain text and HTML); :func:`preferred` picks one from the request's
``Accept`` fields following RFC 9110 §12.5.1:

- each media range may carry a weight ``q`` (0 to 1, three decimals at most,
  §12.4.2); ``q=0`` means "not acceptable";
- an offer takes the weight of the most specific range that matches it
  (``type/subtype`` over ``type/*`` over ``*/*``);
- the offer with the highest weight wins; on equal weights the one matched
  by the more specific range; on a full tie, the first (default) offer.

Deliberately simple where the RFC leaves room: parameters other than ``q``
are ignored when matching (``text/plain;format=flowed`` counts as
``text/plain``); a structured-syntax suffix range such as
``application/problem+json`` matches the ``application/json`` offer as
exactly as ``application/json`` itself (the client reads JSON, RFC 6839 §3.1),
a range whose weight is malformed is skipped, and a quoted parameter value
may hold ``,`` and ``;`` (RFC 9110 §5.6.6) without splitting anything.  With no ``Accept`` field,
or when nothing offered is acceptable, the first offer is the answer: an
error body is better sent in the default shape than refused with a 406.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Specificity of the range that matched an offer.
_NONE = -1
_ANY = 0  # */*
_TYPE = 1  # type/*
_EXACT = 2  # type/subtype (or a +suffix of it)

_DIGITS = "0123456789"
# RFC 9110 §5.6.4: a quoted-string (an unterminated one runs to the end).
# Its two alternatives cannot both match a character, so the scan is linear.
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"?', re.DOTALL)


def _weight(params: list[str]) -> float | None:
    """The ``q`` among a range's parameters: 1 when absent, ``None`` if malformed."""
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() != "q":
            continue
        value = value.strip()
        # qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
        whole, _, fraction = value.partition(".")
        if whole not in ("0", "1") or len(fraction) > 3 or fraction.strip(_DIGITS):
            return None
        weight = float(value)
        return weight if weight <= 1 else None
    return 1.0


def _match(media_range: str, offer: str) -> int:
    """How specifically ``media_range`` (lower-case, no parameters) matches ``offer``."""
    if media_range == offer:
        return _EXACT
    kind, _, subtype = media_range.partition("/")
    offer_kind, _, offer_subtype = offer.partition("/")
    if kind == "*" and subtype == "*":
        return _ANY
    if kind != offer_kind:
        return _NONE
    if subtype == "*":
        return _TYPE
    # RFC 6839 §3.1: "+json" names JSON as the structured syntax.
    if offer_subtype == "json" and subtype.endswith("+json"):
        return _EXACT
    return _NONE


def preferred(accept: Iterable[bytes], offers: tuple[str, ...]) -> str:
    """The offer (lower-case ``type/subtype``) the ``Accept`` values prefer.

    ``accept`` holds the raw values of every ``Accept`` field (a list header:
    several fields are one list, RFC 9110 §5.3).
    """
    best = dict.fromkeys(offers, (_NONE, 0.0))  # offer -> (specificity, weight)
    for value in accept:
        text = value.decode("latin-1")
        if '"' in text:
            # Only q counts, and q is a bare token: a quoted parameter value
            # is emptied, so a "," or ";" inside it splits nothing.
            text = _QUOTED.sub('""', text)
        for item in text.split(","):
            media_range, *params = item.split(";")
            media_range = media_range.strip().lower()
            if "/" not in media_range:
                continue
            weight = _weight(params)
            if weight is None:
                continue
            for offer in offers:
                specificity = _match(media_range, offer)
                if specificity > best[offer][0]:
                    best[offer] = (specificity, weight)
    choice = offers[0]
    choice_key = (0.0, _NONE)
    for offer in offers:
        specificity, weight = best[offer]
        if specificity == _NONE or weight <= 0:
            continue
        key = (weight, specificity)
        if key > choice_key:
            choice, choice_key = offer, key
    return choice


def accept_values(headers: Iterable[tuple[bytes, bytes]]) -> list[bytes]:
    """The raw values of every ``Accept`` field in an ASGI header list."""
    return [value for name, value in headers if name == b"accept"]


__all__ = ["accept_values", "preferred"]
