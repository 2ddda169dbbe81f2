"""Reading a form out of a request body: the parser by content type, the body capped.

``Request.form()`` calls ``parse_form`` the first time a form is asked for
(the caching, and sharing it with other ``Request`` objects over the scope,
stay in :mod:`asgikit.requests`).  The parsers (:mod:`asgikit._multipart`,
:mod:`asgikit._urlencoded`) build :mod:`asgikit.forms`' ``FormData``; this
module picks one, so that neither the parsers nor the form types import the
``Request`` that uses them.  Another content type (or none) gives an empty
``FormData`` and leaves the body unread.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping

from asgikit._headers import Headers, content_length_over
from asgikit.exceptions import HTTPException
from asgikit.forms import FormData, FormLimits, parse_content_type


def _repeats_boundary(value: str) -> bool:
    """Whether a content type names its ``boundary`` parameter more than once."""
    return (
        sum(item.partition("=")[0].strip().lower() == "boundary" for item in value.split(";")) > 1
    )


async def _limited_stream(
    headers: Mapping[str, str],
    stream: Callable[[], AsyncIterator[bytes]],
    max_body_size: int | None,
) -> AsyncGenerator[bytes, None]:
    """The request body, chunk by chunk; past ``max_body_size`` bytes, 413."""
    too_large = HTTPException(413, f"Form body larger than {max_body_size} bytes (max_body_size)")
    if max_body_size is not None:
        declared = headers.get("content-length")
        if declared is not None and content_length_over(declared, max_body_size):
            raise too_large
    seen = 0
    chunks = stream()
    try:
        async for chunk in chunks:
            seen += len(chunk)
            if max_body_size is not None and seen > max_body_size:
                raise too_large
            yield chunk
    finally:
        if isinstance(chunks, AsyncGenerator):
            await chunks.aclose()


async def parse_form(
    headers: Headers,
    stream: Callable[[], AsyncIterator[bytes]],
    limits: FormLimits,
) -> FormData:
    """The form in the body ``stream()`` gives, as the ``Content-Type`` in ``headers`` says."""
    content_types = headers.getlist("content-type")
    if len(content_types) > 1:
        # Which one counts is the reader's guess (the first here, the last
        # elsewhere): a proxy inspecting the body would read another form.
        raise HTTPException(400, "Malformed form: more than one Content-Type header")
    kind, params = parse_content_type(content_types[0] if content_types else "")
    if kind == "multipart/form-data":
        from asgikit._multipart import parse_multipart

        boundary = params.get("boundary", "")
        if (
            not boundary
            or len(boundary) > 200
            or "\n" in boundary
            or "\r" in boundary
            # Two boundaries: parsers disagree on which counts (the first
            # here, the last in others), so a proxy would inspect another body.
            or _repeats_boundary(content_types[0])
        ):
            raise HTTPException(400, "Malformed multipart body: missing or invalid boundary")
        body = _limited_stream(headers, stream, limits.max_body_size)
        try:
            return await parse_multipart(body, boundary, limits)
        finally:
            await body.aclose()
    if kind == "application/x-www-form-urlencoded":
        from asgikit._urlencoded import parse_urlencoded

        body = _limited_stream(headers, stream, limits.max_body_size)
        try:
            return await parse_urlencoded(body, limits)
        finally:
            await body.aclose()
    return FormData()


__all__ = ["parse_form"]
