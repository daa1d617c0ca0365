"""Tabulate the critical points of the autoencoder loss and their Hessian spectra (Props. 29, 30).

Data set: Section 7's, X = d x m with i.i.d. N(0, 1/d) entries (m = 3d by default; numpy
default_rng(seed)), loss 1/2 ||X - W X||^2 on rank-k d x d matrices with the deep-linear
metric of the given depth. For every critical point
W_J = sum_{j in J} u_j u_j^T (all of them when C(d, k) <= --max-points, else a sample that
contains the global minimizer) the table lists J (1 = largest eigenvalue of X X^T), the loss, the
Morse index predicted by the closed form and computed from the Riemannian Hessian, the smallest
eigenvalue (predicted and computed) and the classification. Exit status 1 if a computed index or
spectrum disagrees with the closed form (relative 1e-8), or a gradient is not ~0; 2 on bad
arguments, an unusable --output path or sizes that do not fit in memory (checked before any
work); 130 when interrupted.

--output FILE is written row by row into a temporary file next to FILE, which replaces FILE
when the table is complete; an existing FILE is refused unless --overwrite. On Ctrl-C the rows
so far stay in the temporary file (its name is printed), and FILE is not touched.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import tempfile

import numpy as np

from . import non_negative_int, positive_int

HELP = "critical points of the autoencoder: loss, Morse index, smallest Hessian eigenvalue"

_FIELDS = [
    "J",
    "loss",
    "kind",
    "predicted_index",
    "computed_index",
    "predicted_smallest",
    "computed_smallest",
    "spectrum_error",
    "gradient_norm",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--d", type=positive_int, default=6, help="dimension d of the data (6)")
    parser.add_argument(
        "--m", type=positive_int, default=None, help="number of samples (default 3 d)"
    )
    parser.add_argument("--k", type=positive_int, default=2, help="rank k (2)")
    parser.add_argument("--depth", type=positive_int, default=2, help="depth N of the metric (2)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="random seed of the data (0)")
    parser.add_argument(
        "--max-points",
        type=positive_int,
        default=64,
        help="all critical points if there are at most this many, else a sample of this size (64)",
    )
    parser.add_argument(
        "--output",
        default=None,
        help="also write the table to this file (.json for JSON, otherwise CSV), row by row",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace --output if it exists"
    )


def check_size(d: int, m: int, k: int, points: int = 0) -> None:
    """Refuse sizes whose data and critical-point work do not fit in this machine's memory.

    Needs about 8 (d m + 4 d^2 + ((2d - k) k)^2) bytes (X, X X^T and its eigenvectors, a dense
    Hessian of the largest size computed densely) and about 1000 + 64 k bytes per row of the
    table (``points`` rows are kept: the sample of index sets and the rows); refused above half
    the physical memory.
    """
    from ..experiments.shared.resources import check_memory

    dim = (2 * d - k) * k
    check_memory(8 * (d * m + 4 * d * d + (dim * dim if dim <= 1500 else 0))
                 + points * (1000 + 64 * k),
                 f"--d {d} with --m {m}" + (f" and {points:,} critical points" if points else ""))


def _row(cp) -> dict:
    return {
        "J": " ".join(str(j + 1) for j in cp.J),
        "loss": cp.loss,
        "kind": cp.kind,
        "predicted_index": cp.predicted_index,
        "computed_index": cp.computed_index,
        "predicted_smallest": cp.predicted_smallest,
        "computed_smallest": cp.computed_smallest,
        "spectrum_error": cp.spectrum_error,
        "gradient_norm": cp.gradient_norm,
    }


def run(args: argparse.Namespace) -> int:
    from ..critical import iter_critical_points

    d, k = args.d, args.k
    m = args.m if args.m is not None else 3 * d
    if k > d:
        raise ValueError(f"--k must be at most --d = {d}, got {k}")
    if args.max_points < 3:
        raise ValueError("--max-points must be at least 3")
    check_size(d, m, k, min(math.comb(d, k), args.max_points))
    target = None
    if args.output:
        from ..experiments.shared.outputs import check_new_file

        target = check_new_file(args.output, overwrite=args.overwrite)
    rng = np.random.default_rng(args.seed)
    X = rng.standard_normal((d, m)) / math.sqrt(d)  # Section 7: N(0, 1/d) entries
    total = math.comb(d, k)
    print(
        f"autoencoder, Section 7 data X: {d} x {m}, N(0, 1/d) entries (seed {args.seed}), "
        f"rank k = {k}, "
        f"depth N = {args.depth}; {total} critical points"
        + ("" if total <= args.max_points else f", showing a sample of {args.max_points}")
    )
    header = (
        f"{'J':<{max(3, 3 * k)}} {'loss':>12} {'index':>5} {'(comp)':>6} "
        f"{'min eig':>12} {'(comp)':>12} {'rel.err':>8}  kind"
    )
    print(header)
    out = None
    writer = None
    rows = []
    failed = 0
    tmp = None
    complete = False
    try:
        if target is not None:
            fd, tmp = tempfile.mkstemp(prefix=os.path.basename(target) + ".",
                                       suffix=".partial", dir=os.path.dirname(target))
            out = os.fdopen(fd, "w", newline="")  # closed in the finally clause
            if not args.output.endswith(".json"):
                writer = csv.DictWriter(out, fieldnames=_FIELDS)
                writer.writeheader()
        for cp in iter_critical_points(X, k, args.depth, max_points=args.max_points):
            row = _row(cp)
            ok = (cp.computed_index is None or cp.computed_index == cp.predicted_index) and (
                cp.spectrum_error is None or cp.spectrum_error <= 1e-8
            )
            ok = ok and cp.gradient_norm <= 1e-8 * max(1.0, abs(cp.predicted_spectrum).max())
            failed += not ok
            comp_idx = "-" if cp.computed_index is None else str(cp.computed_index)
            comp_min = "-" if cp.computed_smallest is None else f"{cp.computed_smallest:12.5e}"
            err = "-" if cp.spectrum_error is None else f"{cp.spectrum_error:8.1e}"
            print(
                f"{row['J']:<{max(3, 3 * k)}} {cp.loss:12.6g} {cp.predicted_index:>5} "
                f"{comp_idx:>6} {cp.predicted_smallest:12.5e} {comp_min:>12} {err:>8}  "
                f"{cp.kind}{'' if ok else '  MISMATCH'}"
            )
            sys.stdout.flush()
            if writer is not None:
                writer.writerow(row)
                out.flush()
            rows.append(row)
            if out is not None and writer is None:  # JSON: rewrite the whole list each time
                out.seek(0)
                out.truncate()
                json.dump(rows, out, indent=1)
                out.flush()
        complete = True
    finally:
        if out is not None:
            out.close()
        if tmp is not None:
            if complete:
                mask = os.umask(0)
                os.umask(mask)
                os.chmod(tmp, 0o666 & ~mask)
                os.replace(tmp, target)
            elif rows:
                print(f"linrank saddles: stopped after {len(rows)} rows; they are in {tmp} "
                      f"({args.output} was not written)", file=sys.stderr)
            else:
                os.remove(tmp)
    n_min = sum(r["kind"] == "global minimizer" for r in rows)
    print(
        f"{len(rows)} critical points: {n_min} global minimizer(s), {len(rows) - n_min} strict "
        f"saddle(s); {failed} mismatch(es) with the closed form"
    )
    return 1 if failed else 0
