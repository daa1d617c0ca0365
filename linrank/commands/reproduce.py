"""Redo the experiments of Section 7 (Figures 1-4) and write a report of what they show.

Writes into --out: fig1.png ... fig4.png, summary.json (one entry per run: figure, depth, d, rank,
init, final_error, final_loss_gap, initial_norm, min_norm, w2_minus_w1t, imbalance_drift,
escape_time, seed), details.json and report.md (figures, table of runs, a verdict per claim of
the paper). Finished runs are cached in --out/.runs, so an interrupted reproduction resumes.
Exit status 1 if a claim that the project expects to hold is not confirmed.
"""

from __future__ import annotations

import argparse

from . import non_negative_int

HELP = "redo Section 7 (Figures 1-4): figures, summary.json and report.md with verdicts"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="results", help="output directory (results)")
    parser.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of data and starts (0)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smaller run (about 10 s) with the same kinds of runs",
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="recompute every run instead of reusing those in OUT/.runs",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..experiments import reproduce

    res = reproduce(
        args.out,
        seed=args.seed,
        quick=args.quick,
        progress=not args.quiet,
        use_cache=not args.no_cache,
    )
    print(
        f"linrank reproduce: {len(res.records)} runs (+{len(res.perturbed)} perturbed) in "
        f"{res.elapsed:.1f} s; wrote {', '.join(res.figures)}, summary.json, details.json, "
        f"report.md to {args.out}"
    )
    for v in res.verdicts:
        print(f"  [{v.status}] {v.claim}")
    return 0 if res.ok else 1
