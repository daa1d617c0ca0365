"""Redo the experiments of Section 7 (Figures 1-4) and the studies around them; report verdicts.

Writes into --out: fig1.png ... fig6.png, summary.json (one entry per run with its start's
condition (47), hidden widths and status, and per verdict the runs it rests on), details.json
and report.md (a verdict per claim over all seeds and per seed, the set-up and where it differs
from the paper, every run). Finished runs are cached in OUT/.runs, so an interrupted
reproduction resumes; Ctrl-C stops at once. OUT is locked while the command runs, and a file
in it is replaced only if linrank wrote it (--overwrite to take over a directory).
Exit status 1 if a claim that the project expects to hold is not confirmed, 2 on bad arguments
or unusable output paths, 130 when interrupted.
"""

from __future__ import annotations

import argparse

from . import non_negative_int, positive_int

HELP = "redo Section 7 (Figures 1-4) over several seeds: figures, summary.json, report.md"


def seed_list(text: str) -> list[int]:
    """Parse ``"0-4"``, ``"0,2,7"`` or ``"3"`` into a list of non-negative seeds."""
    out: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part[1:]:
                a, b = part.split("-", 1)
                lo, hi = int(a), int(b)
                if hi < lo:
                    raise ValueError
                out += range(lo, hi + 1)
            else:
                out.append(int(part))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected seeds like 0-4 or 0,2,7 (non-negative integers), got {text!r}") from None
    if not out or min(out) < 0 or len(out) > 1000:
        raise argparse.ArgumentTypeError(f"expected 1 to 1000 non-negative seeds, got {text!r}")
    return list(dict.fromkeys(out))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="results", help="output directory (results)")
    parser.add_argument("--seeds", type=seed_list, default=None,
                        help="seeds of data and starts, e.g. 0-4 or 0,3 (default 0-4; "
                             "with --quick: 0)")
    parser.add_argument("--seed", type=non_negative_int, default=None,
                        help="a single seed (same as --seeds S)")
    parser.add_argument("--quick", action="store_true",
                        help="a reduced set of runs (for tests; the report says so)")
    parser.add_argument("--jobs", type=positive_int, default=2,
                        help="worker processes (2)")
    parser.add_argument("--no-cache", action="store_true",
                        help="recompute every run instead of reusing those in OUT/.runs")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace files in OUT that linrank did not write")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..experiments import reproduce

    if args.seeds is not None and args.seed is not None:
        raise argparse.ArgumentTypeError("give --seeds or --seed, not both")
    seeds = args.seeds if args.seeds is not None else (
        [args.seed] if args.seed is not None else ([0] if args.quick else [0, 1, 2, 3, 4]))
    res = reproduce(args.out, seeds=seeds, quick=args.quick, progress=not args.quiet,
                    use_cache=not args.no_cache, jobs=args.jobs, overwrite=args.overwrite)
    print(f"linrank reproduce: {len(res.records)} runs (+{len(res.perturbed)} perturbed), seeds "
          f"{','.join(map(str, seeds))}, in {res.elapsed:.1f} s ({res.cpu:.1f} s CPU); wrote "
          f"{', '.join(res.figures)}, summary.json, details.json, report.md to {args.out}")
    for v in res.verdicts:
        print(f"  [{v.status}] {v.claim} ({v.n_converged} converged, {v.n_counterexamples} "
              f"counterexamples, {v.n_unfinished} unresolved)")
    return 0 if res.ok else 1
