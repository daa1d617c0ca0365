"""Run a grid of flow runs (the paper's conjectures at scale), report on it, or rerun one row.

``linrank sweep --grid GRID.toml --out DIR [--jobs J | --scheduler ADDRESS]`` runs every run of
the grid that DIR does not hold yet and appends one row per finished run to DIR/runs.csv (an
interrupted sweep resumes with the same command). ``linrank sweep --report DIR`` writes
DIR/report.md, DIR/cells.csv and DIR/figures/. ``linrank sweep --rerun DIR ROW_ID`` recomputes
one row alone and compares it with the stored one (exit 1 if a number differs).
Exit status: 0 done, 1 rerun differs, 2 bad input, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys

from . import jobs_count, non_negative_int, positive_int

HELP = "run a grid of flow runs into DIR (resumable), report on it, or rerun one row"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--grid", metavar="GRID.toml", help="the grid to run (needs --out)")
    mode.add_argument("--report", metavar="DIR", help="write report.md and figures for DIR")
    mode.add_argument("--rerun", nargs=2, metavar=("DIR", "ROW_ID"),
                      help="recompute one row of DIR alone and compare")
    parser.add_argument("--out", metavar="DIR",
                        help="output directory of --grid (its parent must exist)")
    parser.add_argument("--jobs", type=jobs_count, default=2, metavar="J",
                        help="local worker processes (2; at most 4 per CPU)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run on the Dask cluster of this scheduler (tcp://host:port)")
    parser.add_argument("--retry-failed", action="store_true",
                        help="redo runs recorded with status 'error'")
    parser.add_argument("--max-runs", type=non_negative_int, default=None, metavar="N",
                        help="run at most this many missing runs, then stop (resumable)")
    from ..experiments.sweep.grid import MAX_GRID_RUNS

    parser.add_argument("--grid-limit", type=positive_int, default=MAX_GRID_RUNS, metavar="N",
                        help="refuse grids of more than N runs, counted before expanding "
                             f"({MAX_GRID_RUNS})")
    parser.add_argument("--then-report", action="store_true",
                        help="write the report when the sweep is complete")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def interrupted_note(args: argparse.Namespace) -> str:
    """Where the finished runs are and the command that resumes (see linrank.cli)."""
    if args.grid is None:
        return ""
    from . import resume_note

    return resume_note(args, f"{args.out}/runs.csv")


def _fail(msg: str) -> int:
    print(f"linrank sweep: error: {msg}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    from ..experiments.sweep import GridError, SweepError, rerun, sweep

    try:
        if args.rerun is not None:
            out, rid = args.rerun
            try:
                row_id = non_negative_int(rid)
            except argparse.ArgumentTypeError as exc:
                return _fail(f"ROW_ID: {exc}")
            res = rerun(out, row_id)
            keys = ("status", "reached_global", "t_converge", "final_distance",
                    "final_loss_gap", "n_saddles", "saddle_sets", "condition_47", "margin_47")
            for k in keys:
                print(f"  {k:>15}: stored {res.stored[k]:<24} rerun {res.new[k]}")
            if not res.intact:
                print(f"row {row_id}: the stored row was changed after linrank wrote it "
                      "(its checksum does not match)")
            if res.same:
                print(f"row {row_id}: rerun gives the same numbers (every non-timing column)")
                return 0
            print(f"row {row_id}: columns differ: {', '.join(res.differences)}")
            return 1
        if args.report is not None:
            from ..experiments.sweep import write_report

            rep = write_report(args.report)
            print(f"linrank sweep: wrote {rep.path} ({rep.n_runs} runs, {rep.n_cells} cells, "
                  f"{len(rep.figures)} figures)")
            return 0
        if not args.out:
            return _fail("--grid needs --out DIR")
        res = sweep(args.grid, args.out, n_jobs=args.jobs, scheduler=args.scheduler,
                    progress=not args.quiet, retry_failed=args.retry_failed,
                    max_runs=args.max_runs, grid_limit=args.grid_limit)
        counts = ", ".join(f"{v} {k}" for k, v in sorted(res.counts.items()))
        state = "complete" if res.complete else f"incomplete ({res.total - sum(res.counts.values())} to go)"
        print(f"linrank sweep: {res.ran} runs now, {res.done_before} before; {res.total} in the "
              f"grid, {state}: {counts} ({res.elapsed:.1f} s) -> {args.out}/runs.csv")
        if args.then_report and res.complete:
            from ..experiments.sweep import write_report

            rep = write_report(args.out)
            print(f"linrank sweep: wrote {rep.path}")
        return 0
    except (GridError, SweepError) as exc:
        return _fail(str(exc))
