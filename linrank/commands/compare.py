"""Compare optimizers on the fixed-rank manifold, and the effect of the depth metric on them.

Runs pymanopt's SteepestDescent, ConjugateGradient and TrustRegions on DeepLinearFixedRank of
each depth and on pymanopt's FixedRankEmbedded, the Riemannian gradient flow, gradient descent
on the layers and the closed-form answer, from the same starts, on the paper's autoencoder, a
spiked autoencoder, a regression problem, matrix completion and matrix sensing (sizes "small"
d = 40 and "large" d = 2000; --quick: d = 20). Each run stops at the target gap or after its
budget of CPU time. Writes into --out: results.csv (one row per run), history.csv (every iterate),
report.md (summary table, figures, what the depth metric does) and fig-<problem>-<size>.png.
Finished runs are cached in OUT/.runs: an interrupted comparison resumes when rerun.
Exit status 2 on bad input (unknown names, bad depths, an --out holding other files).
"""

from __future__ import annotations

import argparse
import sys

HELP = "compare manifold optimizers and depths on least-squares problems: table, figure, report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="compare-results", metavar="DIR",
                        help="output directory (compare-results); its parent must exist; new, "
                             "empty or written by linrank compare")
    parser.add_argument("--quick", action="store_true",
                        help="small problems only (d = 20), seeds 0 and 1, 0.5 s CPU per run")
    parser.add_argument("--problems", default=None,
                        help="comma-separated name or name:size (default: all problems, sizes "
                             "small and large; with --quick size quick)")
    parser.add_argument("--solvers", default=None, help="comma-separated solver names (all)")
    parser.add_argument("--depths", default="1,2,3,4,100",
                        help="comma-separated depths N >= 1 (1,2,3,4,100); depths whose layers "
                             "do not fit in memory for layer-gd are refused")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds (0,1,2; quick: 0,1)")
    parser.add_argument("--large-seeds", default="0", help="seeds of the large size (0)")
    parser.add_argument("--max-time", default=None, metavar="T",
                        help="seconds of CPU time per run (default: quick 0.5, small 2, large 4)")
    parser.add_argument("--no-cache", action="store_true",
                        help="recompute every run and cache none (an interrupt then keeps "
                             "nothing)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _ints(text: str, what: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{what} must be comma-separated integers, got {text!r}") from None


def interrupted_note(args: argparse.Namespace) -> str:
    """Where the finished runs are and the command that resumes (see linrank.cli)."""
    from . import resume_note

    return resume_note(args, f"{args.out}/.runs")


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..experiments.compare import OutputDirError, compare, default_budget

    try:
        depths = _ints(args.depths, "--depths")
        seeds = _ints(args.seeds or ("0,1" if args.quick else "0,1,2"), "--seeds")
        large_seeds = _ints(args.large_seeds, "--large-seeds")
        problems = args.problems or ("all:quick" if args.quick else "all")
        budget = {s: default_budget(s) for s in ("quick", "small", "large")}
        if args.quick:
            budget["quick"] = replace(budget["quick"], max_time=0.5)
        if args.max_time is not None:
            try:
                t = float(args.max_time)
            except ValueError:
                raise ValueError(f"--max-time must be a positive number, got {args.max_time!r}") \
                    from None
            budget = {s: replace(b, max_time=t) for s, b in budget.items()}
        res = compare(problems, args.solvers, depths, seeds, budget, args.out,
                      progress=not args.quiet, use_cache=not args.no_cache,
                      large_seeds=large_seeds)
    except (ValueError, TypeError, OutputDirError) as exc:
        print(f"linrank compare: error: {exc}", file=sys.stderr)
        return 2
    counts: dict[str, int] = {}
    for row in res.rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    print(f"linrank compare: {len(res.rows)} runs ({', '.join(f'{n} {k}' for k, n in counts.items())}"
          f") in {res.elapsed:.1f} s wall, {res.cpu:.1f} s CPU; wrote {', '.join(res.files)} "
          f"to {args.out}")
    return 0
