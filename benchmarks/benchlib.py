"""What every benchmark script shares: its headline figures in a machine-readable form.

A script calls :func:`figure` for each number it reports against a target (or worth tracking)
and, when run with ``--json PATH`` (added by :func:`add_json_argument`), writes them with
:func:`write_json`; ``benchmarks/run_all.py`` runs every ``bench_*.py`` that way and rewrites
the tables of BENCHMARKS.md from the files, so the figures there are never older than the run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

FIGURES: list[dict] = []
_T0 = time.perf_counter()
_C0 = time.process_time()


def figure(name: str, measured: str, target: str = "", met: bool | None = None) -> None:
    """Record one headline figure: ``measured`` as displayed, ``target`` like "<= 1.2" (or ""),
    ``met`` True/False against the target (None: no target)."""
    FIGURES.append({"figure": name, "measured": measured, "target": target,
                    "met": None if met is None else bool(met)})


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", default=None, metavar="PATH",
                        help="also write the headline figures to PATH (for benchmarks/run_all.py)")


def machine() -> str:
    """Machine, cores, load, Python, numpy, BLAS threads: what the figures depend on."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{platform.machine()}, {os.cpu_count()} cores, load average {load:.1f} at the "
            f"start, Python {platform.python_version()}, numpy {np.__version__}, "
            f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")


_MACHINE_AT_START = machine()


def write_json(path: str | None) -> None:
    """Write the figures, the command and the machine to ``path`` (nothing if None)."""
    if path is None:
        return
    args = [a for i, a in enumerate(sys.argv)
            if a != "--json" and (i == 0 or sys.argv[i - 1] != "--json")]
    env = os.environ.get("OPENBLAS_NUM_THREADS")
    command = (f"OPENBLAS_NUM_THREADS={env} " if env else "") + \
        ".venv/bin/python " + " ".join([os.path.relpath(args[0])] + args[1:])
    doc = {"script": os.path.basename(sys.argv[0]), "command": command,
           "machine": _MACHINE_AT_START, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "wall_time": time.perf_counter() - _T0, "cpu_time": time.process_time() - _C0,
           "figures": FIGURES}
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(doc, fh, indent=1)
    os.replace(tmp, path)
