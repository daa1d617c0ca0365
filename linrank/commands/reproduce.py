"""Redo the experiments of Section 7 (Figures 1-4) and the studies around them; report verdicts.

Writes into --out: fig1.png ... fig6.png, summary.json (one entry per run with its start's
condition (47), hidden widths and status, and per verdict the runs it rests on), details.json
and report.md (a verdict per claim over all seeds and per seed, the set-up and where it differs
from the paper, every run). Finished runs are cached in OUT/.runs (each file sealed with its
run's identity and a checksum), so an interrupted reproduction resumes; Ctrl-C stops at once and
prints the command that resumes. OUT (default results, with --quick results-quick; its parent
must exist) is locked while the command runs, a file in it is replaced only if linrank wrote it
(--overwrite to take over a directory), and --quick refuses an OUT holding a full reproduction.
Exit status 1 if a claim that the project expects to hold is not confirmed, 2 on bad arguments
or unusable output paths, 130 when interrupted.
"""

from __future__ import annotations

import argparse

from . import jobs_count, non_negative_int

HELP = "redo Section 7 (Figures 1-4) over several seeds: figures, summary.json, report.md"


def seed_list(text: str) -> list[int]:
    """Parse ``"0-4"``, ``"0,2,7"`` or ``"3"`` into a list of non-negative seeds."""
    from ..experiments.reproduce import MAX_SEEDS

    parts: list[range] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part[1:]:
                a, b = part.split("-", 1)
                lo, hi = int(a), int(b)
                if hi < lo:
                    raise ValueError
                parts.append(range(lo, hi + 1))
            else:
                parts.append(range(int(part), int(part) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected seeds like 0-4 or 0,2,7 (non-negative integers), got {text!r}") from None
    count = sum(len(r) for r in parts)  # counted before any list is built
    if not count or min(r.start for r in parts) < 0 or count > MAX_SEEDS:
        raise argparse.ArgumentTypeError(
            f"expected 1 to {MAX_SEEDS} non-negative seeds, got {text!r} ({count:,} seeds)")
    return list(dict.fromkeys(s for r in parts for s in r))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="output directory (results; with --quick: results-quick); its "
                             "parent must exist")
    parser.add_argument("--seeds", type=seed_list, default=None,
                        help="seeds of data and starts, e.g. 0-4 or 0,3 (default 0-4; "
                             "with --quick: 0)")
    parser.add_argument("--seed", type=non_negative_int, default=None,
                        help="a single seed (same as --seeds S)")
    parser.add_argument("--quick", action="store_true",
                        help="a reduced set of runs (for tests; the report says so)")
    parser.add_argument("--jobs", type=jobs_count, default=2, metavar="J",
                        help="worker processes (2; at most 4 per CPU)")
    parser.add_argument("--no-cache", action="store_true",
                        help="recompute every run and cache none (an interrupt then keeps "
                             "nothing)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace files in OUT that linrank did not write")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _out(args: argparse.Namespace) -> str:
    return args.out if args.out is not None else ("results-quick" if args.quick else "results")


def interrupted_note(args: argparse.Namespace) -> str:
    """Where the finished runs are and the command that resumes (see linrank.cli)."""
    from . import resume_note

    return resume_note(args, f"{_out(args)}/.runs")


def run(args: argparse.Namespace) -> int:
    from ..experiments.reproduce import reproduce

    if args.seeds is not None and args.seed is not None:
        raise argparse.ArgumentTypeError("give --seeds or --seed, not both")
    seeds = args.seeds if args.seeds is not None else (
        [args.seed] if args.seed is not None else ([0] if args.quick else [0, 1, 2, 3, 4]))
    out = _out(args)
    res = reproduce(out, seeds=seeds, quick=args.quick, progress=not args.quiet,
                    use_cache=not args.no_cache, jobs=args.jobs, overwrite=args.overwrite)
    print(f"linrank reproduce: {len(res.records)} runs (+{len(res.perturbed)} perturbed), seeds "
          f"{','.join(map(str, seeds))}, in {res.elapsed:.1f} s ({res.cpu:.1f} s CPU); wrote "
          f"{', '.join(res.figures)}, summary.json, details.json, report.md to {out}")
    for v in res.verdicts:
        print(f"  [{v.status}] {v.claim} ({v.n_converged} converged, {v.n_counterexamples} "
              f"counterexamples, {v.n_critical} certified critical, {v.n_unfinished} "
              "unresolved)")
    return 0 if res.ok else 1
