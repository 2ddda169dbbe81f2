"""What ``rate_limit`` (memory store) adds to a request, in-process, same run.

bench_core's JSON scenario (an ``int`` path parameter in a table of 24
routes) with and without ``rate_limit`` around the router, one client,
a limit it never reaches (every request does the full check: key, GCRA,
the two header fields).  For scale: the same with two limits at once, and
``security_headers`` (the cheapest middleware that adds response header
fields: what wrapping ``send`` alone costs).  Target (issue 15): under
10 % added.  Run:

    .venv/bin/python benchmarks/bench_rate_limit.py
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import call_once, compare, http_scope, machine, report
from bench_core import asgikit_app

from asgikit.middleware.rate_limit import rate_limit
from asgikit.middleware.security_headers import security_headers

# Far above what a run sends, so that no request is refused.
ONE_LIMIT = "1000000/minute"
TWO_LIMITS = {"burst": "1000000/minute", "daily": "100000000/day"}


def main() -> None:
    apps = {
        "asgikit": asgikit_app,
        "asgikit + rate_limit": rate_limit(asgikit_app, limits=ONE_LIMIT),
        "asgikit + rate_limit, 2 limits": rate_limit(asgikit_app, limits=TWO_LIMITS),
        "asgikit + security_headers": security_headers(asgikit_app),
    }
    scope = http_scope("GET", "/users/123")
    status, headers, _ = asyncio.run(call_once(apps["asgikit + rate_limit"], scope))
    assert status == 200, status
    assert dict(headers)[b"ratelimit-policy"] == b'"default";q=1000000;w=60'
    timings = compare(apps, scope)
    print(f"Machine: {machine()}\n")
    print(report("JSON, int path parameter, 24 routes", timings, floor="asgikit"))
    base = timings["asgikit"]
    for name, value in timings.items():
        if name != "asgikit":
            print(f"\n{name}: +{(value / base - 1) * 100:.1f} % per request")


if __name__ == "__main__":
    main()
