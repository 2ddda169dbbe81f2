"""Run every ``benchmarks/bench_*.py`` and write ``benchmarks/RESULTS.md``.

Each benchmark runs in its own process (``python -m benchmarks.bench_x``
from the project root), one after another so they never compete for the
CPUs; its Markdown output goes into RESULTS.md under its name, with the
time it took, or the tail of its errors if it failed.  The file opens with
the machine (CPU model, cores, Python, OS), the commit and the command, and
a summary of where asgikit stands against the targets of issue 7, computed
from the in-process matrix, the uvicorn runs and the memory runs.

    .venv/bin/python benchmarks/run_all.py              # everything, full size
    .venv/bin/python benchmarks/run_all.py --quick      # smaller sizes, fewer rounds
    .venv/bin/python benchmarks/run_all.py --only inprocess_matrix,uvicorn
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from _harness import cpu_model  # noqa: E402

# Run first: the ones whose figures make the summary; the rest follow by name.
FIRST = ["inprocess_matrix", "core", "uvicorn", "memory"]
# Smaller runs for --quick, for the benchmarks that take arguments.
QUICK_ARGS: dict[str, list[str]] = {
    "inprocess_matrix": ["--quick", "--rounds", "3"],
    "uvicorn": ["--duration", "2", "--rounds", "1"],
    "memory": ["--sizes-mib", "16,64", "--clients", "50,200"],
    "forms": ["--size-mib", "16", "--rounds", "2"],
    "files": ["--quick"],
    "proxy": ["--seconds", "2", "--no-profile"],
    "realtime": ["--messages", "500", "--events", "5000", "--rounds", "2"],
}
# The benchmarks that can also write their figures as JSON, for the summary.
JSON_OUTPUT = {"inprocess_matrix", "uvicorn", "memory"}
TIMEOUT = 3600


def discover() -> list[str]:
    names = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    return [n for n in FIRST if n in names] + [n for n in names if n not in FIRST]


def run(name: str, args: list[str]) -> tuple[int, str, str, float]:
    """Run one benchmark: (exit code, stdout, stderr, seconds)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", f"benchmarks.bench_{name}", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        code, out, err = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        code, err = -1, f"timed out after {TIMEOUT} s"
    return code, out, err, time.monotonic() - started


def machine_section(command: str) -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        commit += " (with uncommitted changes)" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return "\n".join(
        [
            f"- CPU: {cpu_model()}, {os.cpu_count()} cores",
            f"- Python: {platform.python_implementation()} {platform.python_version()}",
            f"- OS: {platform.system()} {platform.release()} ({platform.machine()})",
            f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
            f"- Commit: {commit}",
            f"- Command: `{command}`",
        ]
    )


def _mark(ok: bool) -> str:
    return "met" if ok else "**not met**"


def summary(figures: dict[str, Any]) -> str:
    """Where asgikit stands on the targets of issue 7."""
    lines: list[str] = []
    matrix = figures.get("inprocess_matrix")
    if matrix:
        lines += [
            "In-process (µs/request ratios; target: asgikit within 3x of raw, "
            "at least 3x faster than Starlette; BlackSheep for the record):",
            "",
            "| scenario | asgikit / raw | ≤ 3 | Starlette / asgikit | ≥ 3 "
            "| BlackSheep / asgikit |",
            "|---|---:|---|---:|---|---:|",
        ]
        for title, t in matrix.items():
            vs_raw = t["asgikit"] / t["raw"]
            vs_starlette = t["starlette"] / t["asgikit"]
            vs_blacksheep = t["blacksheep"] / t["asgikit"] if "blacksheep" in t else float("nan")
            lines.append(
                f"| {title} | {vs_raw:.2f} | {_mark(vs_raw <= 3)} | {vs_starlette:.2f} "
                f"| {_mark(vs_starlette >= 3)} | {vs_blacksheep:.2f} |"
            )
        lines.append("")
    served = figures.get("uvicorn")
    if served:
        lines += [
            "Under uvicorn (target: asgikit at least 90 % of raw requests/s):",
            "",
            "| scenario | asgikit % of raw | ≥ 90 % | asgikit / Starlette | p99 ms raw "
            "| p99 ms asgikit |",
            "|---|---:|---|---:|---:|---:|",
        ]
        for title, apps in served.items():
            share = 100 * apps["asgikit"]["rps"] / apps["raw"]["rps"]
            # The 90 % target is for hello and JSON; files are for the record
            # (issue 3: at least as fast as Starlette).
            targeted = not title.endswith("file")
            lines.append(
                f"| {title} | {share:.1f} % | {_mark(share >= 90) if targeted else '-'} "
                f"| {apps['asgikit']['rps'] / apps['starlette']['rps']:.2f} "
                f"| {apps['raw']['p99_ms']:.2f} | {apps['asgikit']['p99_ms']:.2f} |"
            )
        lines.append("")
    memory = figures.get("memory")
    if memory:
        lines += [
            "Memory (target: flat in body size, linear and small in idle connections):",
            "",
        ]
        for what, m in memory.items():
            delta = m["delta_kib"] / 1024
            per = (
                f", {m['delta_kib'] / m['connections']:.1f} KiB each" if "connections" in m else ""
            )
            lines.append(f"- {what}: peak RSS +{delta:.1f} MiB{per}")
        lines.append("")
    return "\n".join(lines) if lines else "(no figures for the summary)\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer rounds")
    parser.add_argument("--only", help="comma-separated names (bench_<name>.py)")
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()
    names = discover()
    if args.only:
        wanted = args.only.split(",")
        unknown = set(wanted) - set(names)
        if unknown:
            parser.error(f"no such benchmark: {', '.join(sorted(unknown))}")
        names = [n for n in names if n in wanted]
    command = "python benchmarks/run_all.py" + "".join(f" {a}" for a in sys.argv[1:])
    sections: list[str] = []
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name in names:
            bench_args = list(QUICK_ARGS.get(name, [])) if args.quick else []
            json_path = Path(scratch) / f"{name}.json"
            if name in JSON_OUTPUT:
                bench_args += ["--json", str(json_path)]
            print(f"== bench_{name} {' '.join(bench_args)}", flush=True)
            code, out, err, seconds = run(name, bench_args)
            print(f"   exit {code} after {seconds:.0f} s", flush=True)
            body = out.strip() or "(no output)"
            if code != 0:
                tail = "\n".join(err.strip().splitlines()[-25:])
                body += f"\n\n**Failed (exit {code}).** The end of its errors:\n\n```\n{tail}\n```"
            elif json_path.exists():
                figures[name] = json.loads(json_path.read_text())
            run_line = f"`python -m benchmarks.bench_{name} {' '.join(bench_args)}`".replace(
                f" --json {json_path}", ""
            )
            sections.append(f"## bench_{name}\n\nRun: {run_line}, {seconds:.0f} s.\n\n{body}\n")
    document = "\n".join(
        [
            "# asgikit benchmark results",
            "",
            "Written by `benchmarks/run_all.py`; every figure below comes from the run it",
            "describes.  Absolute numbers depend on the machine; the ratios, measured",
            "side by side in one run, are what to compare.",
            "",
            "## Machine",
            "",
            machine_section(command),
            "",
            "## Targets (issue 7)",
            "",
            summary(figures),
            *sections,
        ]
    )
    Path(args.output).write_text(document)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
