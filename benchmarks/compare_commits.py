"""Run benchmark scripts at two commits, alternating, and print the time ratios with their spread.

Usage: .venv/bin/python benchmarks/compare_commits.py BASE HEAD [--only a,b] [--skip a,b]
           [--rounds R] [--quick] [--timeout S] [--max-ratio X]

* BASE and HEAD are git revisions of this repository; HEAD may be ``.`` for the checkout as it is
  (uncommitted edits included). Each revision is exported (``git archive``) into a temporary
  directory, and its own ``benchmarks/bench_*.py`` run there with this Python and
  ``PYTHONPATH`` set to that directory, so each side imports its own linrank (checked before
  the runs). Nothing of linrank is imported here: module paths may differ between the commits.
* A script is run ``R`` times on each side, the sides alternating with the order flipped every
  round (A B, B A, A B, ...), so that load from other jobs reaches both alike. ``--quick`` is
  passed to a side's script if that script takes it; a script's ``# bench-env: NAME=VALUE``
  line is honoured (as benchmarks/run_all.py does).
* Per script it prints the median CPU time (user + system of the script's process and its
  children) and wall time of each side, and the ratios HEAD / BASE of the pairs: median and
  [min, max] over the rounds. CPU time is the figure to judge on a shared machine.
  ``--max-ratio X`` makes the exit status 1 if a median CPU ratio exceeds X.
* A script that exists on one side only, or fails on either, is reported and left out.

The noise floor is the spread of a commit against itself (``BASE HEAD`` the same revision):
see BENCHMARKS.md, "Comparing two commits".
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Scripts that cannot run without arguments of their own.
NOT_STANDALONE = {"bench_compare_commits.py"}


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def export(rev: str, dest: Path) -> str:
    """The tree of ``rev`` (or the checkout itself for '.') as a directory; returns its label."""
    if rev == ".":
        return f"checkout ({git('rev-parse', '--short', 'HEAD')} + edits)"
    sha = git("rev-parse", "--verify", "--short", f"{rev}^{{commit}}")
    dest.mkdir()
    archive = dest.with_suffix(".tar")
    subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", "-o", str(archive), sha],
                   check=True)
    with tarfile.open(archive) as tf:
        tf.extractall(dest, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    archive.unlink()
    return sha


def side_env(tree: Path, script: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    for line in script.read_text().splitlines():
        m = re.match(r"#\s*bench-env:\s*(.*)", line)
        if m:
            env.update(item.partition("=")[::2] for item in m.group(1).split())
    return env


def check_import(tree: Path) -> None:
    """The side's Python imports linrank from the side's tree (not an installed copy)."""
    out = subprocess.run([sys.executable, "-c", "import linrank; print(linrank.__file__)"],
                         env=dict(os.environ, PYTHONPATH=str(tree)), cwd=tree,
                         capture_output=True, text=True, check=False)
    where = Path(out.stdout.strip() or "?").resolve()
    if out.returncode or not where.is_relative_to(tree.resolve()):
        sys.exit(f"compare_commits: {tree} imports linrank from {where}: {out.stderr[-500:]}")


def run_once(tree: Path, name: str, quick: bool, timeout: float | None) -> tuple[float, float]:
    """(cpu seconds, wall seconds) of one run of ``benchmarks/<name>`` in ``tree``."""
    script = tree / "benchmarks" / name
    cmd = [sys.executable, str(script.relative_to(tree))]
    if quick and '"--quick"' in script.read_text():
        cmd.append("--quick")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=tree, env=side_env(tree, script), capture_output=True,
                          text=True, timeout=timeout, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        last = (proc.stderr.strip().splitlines() or ["-"])[-1]
        raise RuntimeError(f"exit {proc.returncode}: {last[:300]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} [{min(values):.3f}, {max(values):.3f}]"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base", help="git revision (the reference)")
    ap.add_argument("head", help="git revision, or '.' for the checkout as it is")
    ap.add_argument("--only", default="", help="comma-separated script names (bench_x.py or x)")
    ap.add_argument("--skip", default="", help="comma-separated script names to leave out")
    ap.add_argument("--rounds", type=int, default=3, help="runs per side and script (default 3)")
    ap.add_argument("--quick", action="store_true", help="pass --quick to scripts that take it")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per run")
    ap.add_argument("--max-ratio", type=float, default=None,
                    help="exit status 1 if a median CPU ratio HEAD / BASE exceeds this")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")

    def names(text: str) -> set[str]:
        return {n if n.endswith(".py") else (n if n.startswith("bench_") else "bench_" + n) + ".py"
                for n in text.split(",") if n}

    only, skip = names(args.only), names(args.skip) | NOT_STANDALONE
    # a kill ends the running benchmark and removes the exported trees (as Ctrl-C does)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("compare_commits: terminated"))
    with tempfile.TemporaryDirectory(prefix="linrank-compare-") as tmp:
        trees, labels = [], []
        for key, rev in (("base", args.base), ("head", args.head)):
            tree = ROOT if rev == "." else Path(tmp) / key
            try:
                labels.append(export(rev, tree))
            except subprocess.CalledProcessError as exc:
                ap.error(f"{key} {rev!r}: not a commit of {ROOT} ({(exc.stderr or '').strip()})")
            check_import(tree)
            trees.append(tree)
        found = [{p.name for p in (t / "benchmarks").glob("bench_*.py")} for t in trees]
        unknown = only - (found[0] | found[1])
        if unknown:
            ap.error(f"no such benchmark: {', '.join(sorted(unknown))}")
        for side, (mine, other) in zip(labels, (found, found[::-1])):
            for n in sorted((mine - other) & (only or mine) - skip):
                print(f"{n}: only at {side}; left out")
        scripts = sorted(n for n in found[0] & found[1] if (not only or n in only) and n not in skip)
        load = os.getloadavg()[0]
        print(f"BASE {labels[0]}, HEAD {labels[1]}; {args.rounds} rounds, order flipped every round;"
              f" {platform.machine()}, {os.cpu_count()} cores, load average {load:.1f} at the start,"
              f" Python {platform.python_version()}, OPENBLAS_NUM_THREADS="
              f"{os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}", flush=True)
        print("\n| script | BASE CPU s | HEAD CPU s | CPU HEAD/BASE median [min, max] | "
              "wall HEAD/BASE median [min, max] |\n|---|---:|---:|---|---|", flush=True)
        worst, t_start = 0.0, time.perf_counter()
        for name in scripts:
            cpu, wall = ([], []), ([], [])
            try:
                for r in range(args.rounds):
                    for side in ((0, 1) if r % 2 == 0 else (1, 0)):
                        c, w = run_once(trees[side], name, args.quick, args.timeout)
                        cpu[side].append(c)
                        wall[side].append(w)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                print(f"| {name} | failed at {labels[side]}: {exc} | | | |", flush=True)
                continue
            rc = [h / b for b, h in zip(*cpu)]
            rw = [h / b for b, h in zip(*wall)]
            worst = max(worst, statistics.median(rc))
            flag = " --quick" if args.quick and '"--quick"' in (trees[1] / "benchmarks" / name).read_text() else ""
            print(f"| {name}{flag} | {statistics.median(cpu[0]):.1f} | "
                  f"{statistics.median(cpu[1]):.1f} | {spread(rc)} | {spread(rw)} |", flush=True)
        print(f"\n{time.perf_counter() - t_start:.0f} s; load average {os.getloadavg()[0]:.1f} "
              f"at the end")
    if args.max_ratio is not None and worst > args.max_ratio:
        print(f"compare_commits: a median CPU ratio ({worst:.3f}) exceeds {args.max_ratio}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
