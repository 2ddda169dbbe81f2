"""The debug page of ``server_errors(debug=True)``: the traceback with local variables.

Everything that comes from the program — messages, source lines, the
``repr`` of each local — is HTML-escaped, and each ``repr`` is cut short, so
the page can neither run script nor grow without bound.  It shows secrets
held in local variables: never turn it on in production.
"""

from __future__ import annotations

import html
import linecache
import reprlib
import traceback
from types import FrameType

#: Longest ``repr`` of one local variable shown on the page.
MAX_REPR = 500
#: Source lines shown above and below each frame's line.
CONTEXT_LINES = 3
#: Chained exceptions (cause or context) shown after the first.
MAX_CHAIN = 5

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.4em; color: #b00; }
.frame { border: 1px solid #ddd; margin: 1em 0; border-radius: 4px; }
.where { background: #f4f4f4; padding: .4em .8em; font-family: monospace; }
pre { margin: 0; padding: .4em .8em; overflow-x: auto; }
.current { background: #fdd; }
table { border-collapse: collapse; margin: .4em .8em; font-family: monospace; }
td { border-top: 1px solid #eee; padding: .2em .6em; vertical-align: top; }
td.name { color: #555; }
"""


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = MAX_REPR
_REPR.maxlevel = 3


def _safe_repr(value: object) -> str:
    # reprlib bounds the work for containers and strings; an object's own
    # __repr__ may still fail or be huge, hence the guard and the cut.
    try:
        text = _REPR.repr(value)
    except Exception as exc:
        text = f"<repr failed: {type(exc).__name__}>"
    return text if len(text) <= MAX_REPR else text[:MAX_REPR] + "…"


def _source(filename: str, lineno: int) -> str:
    rows = []
    for number in range(max(1, lineno - CONTEXT_LINES), lineno + CONTEXT_LINES + 1):
        line = linecache.getline(filename, number)
        if not line:
            continue
        css = ' class="current"' if number == lineno else ""
        rows.append(f"<span{css}>{number:>5} {html.escape(line.rstrip())}</span>")
    return "<pre>" + "\n".join(rows) + "</pre>" if rows else ""


def _frame(frame: FrameType, lineno: int) -> str:
    code = frame.f_code
    where = html.escape(f"{code.co_filename}, line {lineno}, in {code.co_name}")
    local_rows = "".join(
        f'<tr><td class="name">{html.escape(name)}</td>'
        f"<td>{html.escape(_safe_repr(value))}</td></tr>"
        for name, value in sorted(frame.f_locals.items())
    )
    local_table = f"<table>{local_rows}</table>" if local_rows else ""
    return (
        f'<div class="frame"><div class="where">{where}</div>'
        f"{_source(code.co_filename, lineno)}{local_table}</div>"
    )


def _exception(exc: BaseException) -> str:
    title = html.escape("".join(traceback.format_exception_only(type(exc), exc)).strip())
    frames = [_frame(frame, lineno) for frame, lineno in traceback.walk_tb(exc.__traceback__)]
    return f"<h1>{title}</h1><p>Most recent call first.</p>{''.join(reversed(frames))}"


def debug_page(exc: BaseException) -> str:
    """The HTML page for ``exc``, its cause and context chain included."""
    sections = [_exception(exc)]
    current = exc
    for _ in range(MAX_CHAIN):
        if current.__cause__ is not None:
            current = current.__cause__
            sections.append("<h2>The above was caused by:</h2>")
        elif current.__context__ is not None and not current.__suppress_context__:
            current = current.__context__
            sections.append("<h2>The above was raised while handling:</h2>")
        else:
            break
        sections.append(_exception(current))
    body = "".join(sections)
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>500 Server Error</title>'
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def debug_text(exc: BaseException) -> str:
    """The plain-text traceback, for clients that do not ask for HTML."""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


__all__ = ["CONTEXT_LINES", "MAX_CHAIN", "MAX_REPR", "debug_page", "debug_text"]
