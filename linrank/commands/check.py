"""Check the metric, its inverse and the Riemannian gradient against dense references.

Draws random points of several sizes and depths and prints a table of relative errors against the
dense fractional-power formula of Definition 4 and, for depth 2, Proposition 9's integral by
quadrature. Exits with status 1 if any error exceeds its bound.
"""

from __future__ import annotations

import argparse

import numpy as np

from ..verify import check_instance
from . import non_negative_int, positive_int

HELP = "check the metric, its inverse and the gradient against dense references"

_SIZES = [(6, 6, 2), (7, 5, 3), (4, 9, 1), (8, 8, 4)]
_DEPTHS = [1, 2, 3, 5, 10, 1000]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--repeats",
        type=positive_int,
        default=2,
        help="random instances per size and depth (default 2)",
    )


def run(args: argparse.Namespace) -> int:
    rng = np.random.default_rng(args.seed)
    # one line per (size, depth, check) with the worst error over the repeats (kept as they
    # come: memory does not grow with --repeats)
    worst: dict[tuple, object] = {}
    for m, n, k in _SIZES:
        for depth in _DEPTHS:
            for _ in range(args.repeats):
                for r in check_instance(m, n, k, depth, rng):
                    key = (r.m, r.n, r.k, r.depth, r.check)
                    if key not in worst or not (r.error <= worst[key].error):
                        worst[key] = r
    print(
        f"{'m':>3} {'n':>3} {'k':>2} {'depth':>6}  {'check':<28} {'rel. error':>10} {'bound':>8}  ok"
    )
    failed = 0
    for r in worst.values():
        failed += not r.ok
        print(
            f"{r.m:>3} {r.n:>3} {r.k:>2} {r.depth:>6}  {r.check:<28} {r.error:>10.2e} "
            f"{r.bound:>8.0e}  {'yes' if r.ok else 'NO'}"
        )
    print(f"{len(worst) - failed} passed, {failed} failed")
    return 1 if failed else 0
