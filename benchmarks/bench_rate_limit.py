"""What ``rate_limit`` (memory store) adds to a request, in-process, same run.

bench_core's JSON scenario (an ``int`` path parameter in a table of 24
routes) with and without ``rate_limit`` around the router, one client,
a limit it never reaches (every request does the full check: key, GCRA,
the two header fields; with ``headers=False`` only the check).  For
scale: the same with two limits at once, and ``security_headers`` (the
cheapest middleware that adds response header fields: what wrapping
``send`` alone costs).  Target (issue 15): under 10 % added.

Two measures: the harness's wall-clock median (as bench_core), and the
*fastest* round in CPU time of this thread, which a machine shared with
other work disturbs least (contention only ever adds time).  Run:

    .venv/bin/python benchmarks/bench_rate_limit.py
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Sink, call_once, compare, http_scope, machine, make_receive, report
from bench_core import asgikit_app

from asgikit.middleware.rate_limit import rate_limit
from asgikit.middleware.security_headers import security_headers

# Far above what a run sends, so that no request is refused.
ONE_LIMIT = "1000000/minute"
TWO_LIMITS = {"burst": "1000000/minute", "daily": "100000000/day"}


def fastest_cpu(
    apps: dict[str, Any], scope: dict[str, Any], *, n: int = 2000, rounds: int = 15
) -> dict[str, float]:
    """The fastest round's CPU µs per request for each app, rounds interleaved."""

    async def run() -> dict[str, float]:
        best = {name: float("inf") for name in apps}
        for _ in range(rounds):
            for name, app in apps.items():
                sink = Sink()
                gc.collect()
                start = time.thread_time_ns()
                for _ in range(n):
                    await app(dict(scope), make_receive(b""), sink)
                elapsed = (time.thread_time_ns() - start) / n / 1000
                if sink.status != 200:
                    raise RuntimeError(f"{name} answered {sink.status}")
                best[name] = min(best[name], elapsed)
        return best

    return asyncio.run(run())


def main() -> None:
    apps = {
        "asgikit": asgikit_app,
        "asgikit + rate_limit": rate_limit(asgikit_app, limits=ONE_LIMIT),
        "asgikit + rate_limit, headers=False": rate_limit(
            asgikit_app, limits=ONE_LIMIT, headers=False
        ),
        "asgikit + rate_limit, 2 limits": rate_limit(asgikit_app, limits=TWO_LIMITS),
        "asgikit + security_headers": security_headers(asgikit_app),
    }
    scope = http_scope("GET", "/users/123")
    status, headers, _ = asyncio.run(call_once(apps["asgikit + rate_limit"], scope))
    assert status == 200, status
    assert dict(headers)[b"ratelimit-policy"] == b'"default";q=1000000;w=60'
    print(f"Machine: {machine()}\n")
    title = "JSON, int path parameter, 24 routes"
    for label, timings in [
        ("wall clock, median", compare(apps, scope)),
        ("CPU time, fastest round", fastest_cpu(apps, scope)),
    ]:
        print(report(f"{title} ({label})", timings, floor="asgikit"))
        base = timings["asgikit"]
        print()
        for name, value in timings.items():
            if name != "asgikit":
                print(f"- {name}: +{value - base:.2f} µs, +{(value / base - 1) * 100:.1f} %")
        print()


if __name__ == "__main__":
    main()
