"""Instructions per request under callgrind: a cost that a busy machine does not blur.

Wall-clock figures move with whatever else the machine runs; the number of
instructions a request executes does not (callgrind repeats to a few
hundredths of a percent).  For each app of a scenario this runs a child
process under ``valgrind --tool=callgrind``: after a warm-up it serves ``N``
requests and then ``2N``, each batch inside a call of ``functools.reduce``,
and callgrind counts only inside that function (``--toggle-collect``) and
writes one count per batch (``--dump-after``).  Whatever a batch costs
besides its requests (starting the batch, a collection it triggers at the
end) is in both, so ``(I(2N) - I(N)) / N`` is what one request costs; the
start-up and imports are not counted at all.  (``--separate-runs`` measures
the two batches in two processes instead, counting everything, the check
that both ways agree; it is the way for the file scenarios, whose worker
threads the toggle does not follow.)  The apps are
the ones ``_scenarios.py`` defines: raw ASGI (the floor), asgikit,
Starlette, Litestar and BlackSheep where the scenario exists.

Run (Debian's ``valgrind``; a scenario takes from ten seconds to a minute
or two, most of it the frameworks' imports under valgrind)::

    .venv/bin/python benchmarks/callgrind.py hello
    .venv/bin/python benchmarks/callgrind.py echo --n 200 --apps raw,asgikit,litestar
    .venv/bin/python benchmarks/callgrind.py --list
    .venv/bin/python benchmarks/callgrind.py json --apps asgikit --tree /tmp/before

``--markdown`` prints the table for ``RESULTS.md``; ``--check`` runs each
app once without valgrind and prints its answer, to see that every app
does the same work.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# --tree measures the asgikit of another checkout (a "before" for a change).
sys.path.insert(0, os.environ.get("ASGIKIT_BENCH_TREE") or str(HERE.parent))

from _scenarios import SCENARIOS, Scenario, scope_for  # noqa: E402

WARM_UP = 30
_COLLECTED = re.compile(rb"Collected\s*:\s*(\d+)")


def _receive_for(body: bytes) -> Any:
    """The body in one message, then wait like a live client (until cancelled)."""
    message = {"type": "http.request", "body": body, "more_body": False}
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return message
        await asyncio.get_running_loop().create_future()
        raise AssertionError("unreachable")

    return receive


class _Sink:
    __slots__ = ("body", "headers", "status")

    def __init__(self) -> None:
        self.status = 0
        self.headers: list[Any] = []
        self.body = 0

    async def __call__(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
            self.headers = message.get("headers", [])
            self.body = 0
        elif kind == "http.response.body":
            self.body += len(message.get("body", b""))


def serve(scenario: Scenario, app_name: str, n: int, *, batches: bool = False) -> _Sink:
    """Build the app, warm it up, and serve ``n`` requests on one event loop.

    With ``batches``, serve ``n`` and then ``2n`` requests, each batch inside
    its own ``functools.reduce`` call: the function callgrind is told to count in.
    """
    app, startup = scenario.apps[app_name]()
    scope = scope_for(scenario)
    body = scenario.body
    sink = _Sink()
    no_gc = os.environ.get("ASGIKIT_CALLGRIND_GC") == "off"

    async def run(count: int) -> None:
        for _ in range(count):
            await app(dict(scope), _receive_for(body), sink)

    async def warm_up() -> None:
        if startup is not None:
            await startup()
        await run(WARM_UP)
        if sink.status != scenario.status:
            raise SystemExit(f"{app_name} answered {sink.status}, not {scenario.status}")

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(warm_up())
        for count in (n, 2 * n) if batches else (n,):
            gc.collect()
            if no_gc:
                gc.disable()
            if batches:
                functools.reduce(lambda _a, _b: loop.run_until_complete(run(count)), [0, 0])
            else:
                loop.run_until_complete(run(count))
            gc.enable()
    finally:
        loop.close()
    return sink


def _valgrind(arguments: list[str], child: list[str]) -> bytes:
    command = ["valgrind", "--tool=callgrind", *arguments, sys.executable, __file__, *child]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, env=env, capture_output=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"failed under valgrind:\n{done.stderr.decode(errors='replace')[-2000:]}")
    return done.stderr


def _batches(scenario_name: str, app_name: str, n: int) -> tuple[int, int]:
    """Instructions of the ``n`` and ``2n`` batches, counted in one process."""
    with tempfile.TemporaryDirectory() as tmp:
        out = f"{tmp}/out"
        _valgrind(
            [
                "--collect-atstart=no",
                "--toggle-collect=functools_reduce",
                "--dump-after=functools_reduce",
                f"--callgrind-out-file={out}",
            ],
            ["--child", scenario_name, app_name, str(n), "--batches"],
        )
        counts = []
        for number in (1, 2):
            text = Path(f"{out}.{number}").read_text()
            found = re.search(r"^totals: (\d+)", text, re.MULTILINE)
            if found is None:
                raise SystemExit(f"{app_name}: no totals in callgrind's dump {number}")
            counts.append(int(found[1]))
        extra = sorted(glob.glob(f"{out}.*"))
        if len(extra) != 2:
            raise SystemExit(f"{app_name}: expected two batches, callgrind wrote {extra}")
    return counts[0], counts[1]


def _whole_run(scenario_name: str, app_name: str, n: int) -> int:
    """Instructions of a whole child process serving ``n`` requests."""
    with tempfile.TemporaryDirectory() as tmp:
        stderr = _valgrind(
            [f"--callgrind-out-file={tmp}/out"], ["--child", scenario_name, app_name, str(n)]
        )
    found = _COLLECTED.findall(stderr)
    if not found:
        raise SystemExit(f"no instruction count in valgrind's output for {app_name}")
    return int(found[-1])


def measure(
    scenario_name: str, app_names: list[str], n: int, *, separate_runs: bool = False
) -> dict[str, float]:
    """Instructions per request for each app, from batches of ``n`` and ``2n`` requests."""
    results: dict[str, float] = {}
    for app_name in app_names:
        if separate_runs:
            once = _whole_run(scenario_name, app_name, n)
            twice = _whole_run(scenario_name, app_name, 2 * n)
        else:
            once, twice = _batches(scenario_name, app_name, n)
        results[app_name] = (twice - once) / n
        print(f"  {app_name}: {results[app_name]:,.0f}", file=sys.stderr, flush=True)
    return results


def table(title: str, results: dict[str, float], command: str) -> str:
    """A markdown table: instructions per request, the ratio to the floor and what was added."""
    floor_name = next(iter(results))
    floor = results[floor_name]
    lines = [
        f"### {title}",
        "",
        f"| app | instructions/request | x {floor_name} | + over {floor_name} |",
        "|---|---:|---:|---:|",
    ]
    for name, value in results.items():
        lines.append(f"| {name} | {value:,.0f} | {value / floor:.2f} | {value - floor:+,.0f} |")
    lines += ["", f"Command: `{command}`"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", nargs="?", choices=sorted(SCENARIOS))
    parser.add_argument("--n", type=int, help="requests in the shorter run (default per scenario)")
    parser.add_argument("--apps", help="comma-separated app names (default: all of the scenario)")
    parser.add_argument("--list", action="store_true", help="list the scenarios and their apps")
    parser.add_argument("--check", action="store_true", help="run each app once, no valgrind")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    parser.add_argument(
        "--no-gc",
        action="store_true",
        help="measure with the garbage collector off: the path alone, without the share "
        "of collections that falls on it (which moves by a few thousand instructions "
        "with any change to what a request allocates)",
    )
    parser.add_argument(
        "--child", nargs=3, metavar=("SCENARIO", "APP", "N"), help=argparse.SUPPRESS
    )
    parser.add_argument("--batches", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--tree",
        help="import asgikit from this directory (another checkout: the 'before' of a change)",
    )
    parser.add_argument(
        "--separate-runs",
        action="store_true",
        help="one process per batch, everything counted (slower; the cross-check)",
    )
    args = parser.parse_args()
    if args.tree:
        # Read by the children at start-up (this process has imported asgikit already).
        os.environ["ASGIKIT_BENCH_TREE"] = str(Path(args.tree).resolve())
        sys.path.insert(0, os.environ["ASGIKIT_BENCH_TREE"])  # for --check
    if args.child:
        scenario_name, app_name, n = args.child
        serve(SCENARIOS[scenario_name], app_name, int(n), batches=args.batches)
        return
    if args.list or args.scenario is None:
        for name, scenario in SCENARIOS.items():
            print(f"{name:16} {scenario.title}\n{'':16} apps: {', '.join(scenario.apps)}")
        return
    scenario = SCENARIOS[args.scenario]
    names = args.apps.split(",") if args.apps else list(scenario.apps)
    unknown = [name for name in names if name not in scenario.apps]
    if unknown:
        raise SystemExit(f"unknown apps {unknown}; this scenario has {list(scenario.apps)}")
    if args.check:
        for name in names:
            sink = serve(scenario, name, 1)
            headers = {bytes(k).decode(): bytes(v).decode() for k, v in sink.headers}
            print(f"{name}: {sink.status}, {sink.body} body bytes, {headers}")
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    if args.no_gc:
        os.environ["ASGIKIT_CALLGRIND_GC"] = "off"
    n = args.n or scenario.n
    print(f"{scenario.title}: {n} and {2 * n} requests under callgrind", file=sys.stderr)
    # Worker threads' instructions are only counted by whole runs.
    separate = args.separate_runs or scenario.threads
    results = measure(args.scenario, names, n, separate_runs=separate)
    command = "python benchmarks/callgrind.py " + " ".join(sys.argv[1:])
    text = table(scenario.title, results, command)
    if args.markdown:
        print(text)
    else:
        floor_name = names[0]
        for name, value in results.items():
            ratio = value / results[floor_name]
            print(f"{name:32} {value:12,.0f} instructions/request  {ratio:5.2f}x {floor_name}")


if __name__ == "__main__":
    main()
