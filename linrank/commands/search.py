"""Search for adversarial starts inside a hypothesis (slow or non-converging flows).

``linrank search --hypothesis NAME --d D --rank R --depth N [--budget SECONDS] [--seed S]
[--scheduler ADDRESS] --out DIR`` runs random starts inside the hypothesis (the baseline) and
CMA-ES (or Nelder-Mead) restarts that maximize the time to converge (or the distance to U_rU_r^T at the
horizon), writing DIR/worst.csv (one row per candidate, worst first) and DIR/report.md. Rerunning
the same command resumes; rows that do not verify are named and recomputed.
Exit status: 0 done, 2 bad input, 130 interrupted.
"""

from __future__ import annotations

import argparse
import math
import sys

from . import int_at_least, non_negative_int, positive_int

int_at_least_2 = int_at_least(2)

HELP = "search for starts inside a hypothesis that converge slowest or not at all"


def _seconds(text: str) -> float:
    try:
        val = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (val >= 0 and math.isfinite(val)):
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds >= 0, got {text}")
    return val


def _positive(text: str) -> float:
    try:
        val = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (val > 0 and math.isfinite(val)):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return val


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..experiments.shared.hypotheses import HYPOTHESES

    parser.add_argument("--hypothesis", required=True, choices=list(HYPOTHESES),
                        help="; ".join(f"{k}: {v[1]}" for k, v in HYPOTHESES.items()))
    parser.add_argument("--d", type=positive_int, required=True, help="data dimension")
    parser.add_argument("--rank", type=positive_int, required=True, help="rank r <= d")
    parser.add_argument("--depth", type=int_at_least_2, required=True, help="depth N >= 2")
    parser.add_argument("--out", metavar="DIR", required=True, help="output directory")
    parser.add_argument("--budget", type=_seconds, default=None,
                        help="wall seconds during which restarts are started (default 60 without "
                             "--restarts, no limit with it)")
    parser.add_argument("--restarts", type=non_negative_int, default=None,
                        help="total number of restarts (default: as many as the budget allows)")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="seed of the data and of every draw (0)")
    parser.add_argument("--horizon", type=_positive, default=200.0,
                        help="flow time of each evaluation (200)")
    parser.add_argument("--evals", type=positive_int, default=120,
                        help="flow evaluations per restart (120)")
    parser.add_argument("--random", type=non_negative_int, default=16,
                        help="random starts of the baseline (16)")
    parser.add_argument("--optimizer", choices=["cma", "nelder-mead"], default="cma",
                        help="CMA-ES from starts with little weight off span U_r (cma), or "
                             "Nelder-Mead (nelder-mead)")
    parser.add_argument("--tol", type=_positive, default=1e-6,
                        help="converged when ||W - W*|| <= tol ||W*|| (1e-6)")
    parser.add_argument("--scale", type=_positive, default=None,
                        help="||W(0)||_F of every start (default sqrt(rank))")
    parser.add_argument("--jobs", type=positive_int, default=2,
                        help="local worker processes (2)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run on the Dask cluster of this scheduler (tcp://host:port)")


def run(args: argparse.Namespace) -> int:
    from ..experiments.search import SearchError, search
    from ..experiments.shared.startfile import StartFileError

    try:
        res = search(args.hypothesis, args.d, args.rank, args.depth, args.out,
                     budget=args.budget, restarts=args.restarts, seed=args.seed,
                     horizon=args.horizon, evals=args.evals, random=args.random, tol=args.tol,
                     optimizer=args.optimizer,
                     scale=args.scale, n_jobs=args.jobs, scheduler=args.scheduler)
    except KeyboardInterrupt:
        print("linrank search: interrupted; finished units are in "
              f"{args.out}/worst.csv: run the same command to resume", file=sys.stderr)
        return 130
    except (SearchError, StartFileError) as exc:
        print(f"linrank search: error: {exc}", file=sys.stderr)
        return 2
    for p in res.problems:
        print(f"linrank search: {p}", file=sys.stderr)
    counts = ", ".join(f"{v} {k}" for k, v in sorted(res.counts.items()))
    w = res.worst
    worst = "none inside" if w is None else (
        f"objective {float(w['objective']):.4g} ({w['status']}"
        + (f", t = {float(w['t_converge']):.4g}" if w["t_converge"] else "")
        + (f", J = {w['critical_J']}" if w["status"] != "converged" else "") + ")")
    print(f"linrank search: {res.units_run} units now, {res.units_before} before; "
          f"{len(res.rows)} candidates: {counts}; worst {worst} ({res.elapsed:.1f} s) -> "
          f"{args.out}/worst.csv, {args.out}/report.md")
    return 0
