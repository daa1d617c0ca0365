"""Benchmark `linrank compare` (issue 13): the quick comparison under 2 minutes, the full one
under 20 minutes, on 2 cores; wall and CPU time (the machine is shared: CPU time is the part
that does not depend on the other jobs).

Usage: .venv/bin/python benchmarks/bench_compare.py [--full] [--quick]

Runs `linrank compare --quick` (and with --full the default comparison: three problems at
d = 40 and d = 2000, depths 1, 2, 3, 4, 100, seeds 0-2 (large: 0)) into a fresh temporary
directory, in this process, and prints the run counts by status and the times.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import benchlib  # benchmarks/benchlib.py, next to this script

from linrank.cli import main as linrank_main


def timed(args: list[str], label: str, target: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        t0, c0 = time.perf_counter(), time.process_time()
        code = linrank_main(["compare", "--out", f"{tmp}/out", "--quiet"] + args)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if code != 0:
            raise SystemExit(f"linrank compare {' '.join(args)} exited with {code}")
        with open(f"{tmp}/out/results.csv") as fh:
            runs = sum(1 for _ in fh) - 1
    print(f"| `linrank compare {' '.join(args)}` | {runs} | {wall:.0f} s | {cpu:.0f} s | "
          f"< {target:.0f} s | exit {code} |")
    benchlib.figure(f"linrank compare {' '.join(args)} ({runs} runs): wall time (CPU time)",
                    f"{wall:.0f} s ({cpu:.0f} s CPU)", f"< {target:.0f} s", wall < target)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="also the full comparison (~20 min)")
    ap.add_argument("--quick", action="store_true", help="the quick comparison only (default)")
    benchlib.add_json_argument(ap)
    args = ap.parse_args()
    print(f"Machine: {benchlib.machine()}\n")
    print("| command | runs | wall | CPU | target | |\n|---|---:|---:|---:|---:|---|")
    timed(["--quick"], "quick", 120.0)
    if args.full and not args.quick:
        timed([], "full", 1200.0)
    benchlib.write_json(args.json)


if __name__ == "__main__":
    main()
