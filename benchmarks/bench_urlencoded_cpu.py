"""CPU time to read a 4 MiB urlencoded form made of ``%`` against plain text.

Issue 12 #4: malformed percent-escapes once cost about a second of CPU per
MiB, in the event loop.  The body arrives in 64 KiB messages, as uvicorn
delivers it; time is process CPU time (``time.process_time``), best of 3.

    python benchmarks/bench_urlencoded_cpu.py [--size-mib 4]
"""

from __future__ import annotations

import argparse
import time

import anyio

from asgikit.requests import Request
from asgikit.types import Message

CHUNK = 64 * 1024
MiB = 1024 * 1024


def bodies(size: int) -> dict[str, bytes]:
    """One field of ``size`` bytes each: plain, ``%``, valid escapes, mixed."""
    return {
        "plain text": b"a=" + b"x" * size,
        "% only": b"a=" + b"%" * size,
        "valid escapes (%41)": b"a=" + b"%41" * (size // 3),
        "almost escapes (%4x)": b"a=" + b"%4x" * (size // 3),
    }


async def read_once(body: bytes) -> float:
    messages = [
        {"type": "http.request", "body": body[i : i + CHUNK], "more_body": True}
        for i in range(0, len(body), CHUNK)
    ]
    messages[-1]["more_body"] = False

    async def receive() -> Message:
        return messages.pop(0)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [(b"content-type", b"application/x-www-form-urlencoded")],
    }
    start = time.process_time()
    form = await Request(scope, receive).form(max_part_size=len(body) + 1)
    elapsed = time.process_time() - start
    assert len(form["a"]) > 0
    return elapsed


async def main(size: int) -> None:
    for name, body in bodies(size).items():
        best = min([await read_once(body) for _ in range(3)])
        print(f"{name:24} {len(body) / MiB:5.1f} MiB  {best:7.3f} s CPU")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=float, default=4)
    args = parser.parse_args()
    anyio.run(main, int(args.size_mib * MiB))
