"""CPU time of the manifold operations: this checkout against another commit's linrank, interleaved.

Run (e.g. against 1ff0808, before the re-layering of issue 10 and the input checks of issue 8):

    mkdir -p /tmp/old && git archive 1ff0808 linrank | tar -x -C /tmp/old
    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_compare_commits.py /tmp/old [--quick]

The other linrank is imported as ``linrank_old`` (a copy of its package directory; its imports
are relative). Each figure is the median over ``--rounds`` alternating pairs of runs (new first
in even rounds) of ``time.process_time`` per call, so that other processes on a loaded machine
affect both sides alike and count less than in wall-clock time. Sizes: (40, 40, 4), the size of
the TrustRegions runs in bench_hessian.py, and (2000, 2000, 10), that of bench_manifold.py.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import linrank


def _load_old(path: Path):
    tmp = Path(tempfile.mkdtemp(prefix="linrank_old_"))
    shutil.copytree(path / "linrank", tmp / "linrank_old")
    sys.path.insert(0, str(tmp))
    import linrank_old

    return linrank_old


def _per_call(fn, number: int) -> float:
    t0 = time.process_time()
    for _ in range(number):
        fn()
    return (time.process_time() - t0) / number


def compare(name: str, f_old, f_new, number: int, rounds: int) -> None:
    ratios, t_old, t_new = [], [], []
    for i in range(rounds):
        if i % 2:
            a, b = _per_call(f_old, number), _per_call(f_new, number)
        else:
            b, a = _per_call(f_new, number), _per_call(f_old, number)
        ratios.append(b / a)
        t_old.append(a)
        t_new.append(b)
    print(
        f"{name:<28} new/old {np.median(ratios):.3f}   old {np.median(t_old) * 1e6:9.1f} us   "
        f"new {np.median(t_new) * 1e6:9.1f} us",
        flush=True,
    )


def bench_size(old_pkg, d: int, k: int, depth: int, num: int, rounds: int) -> None:
    """Every operation at (d, d, k) and one depth, new against old."""
    rng = np.random.default_rng(0)
    G = rng.standard_normal((d, d))
    new = linrank.DeepLinearFixedRank(d, d, k, depth)
    old = old_pkg.DeepLinearFixedRank(d, d, k, depth)
    np.random.seed(0)
    x = new.random_point()
    a, b = new.random_tangent_vector(x), new.random_tangent_vector(x)
    cases = (
        ("gradient", lambda m: m.euclidean_to_riemannian_gradient(x, G), 2 * num),
        ("inner", lambda m: m.inner_product(x, a, b), 20 * num),
        ("retraction", lambda m: m.retraction(x, a), 2 * num),
        ("transport", lambda m: m.transport(x, x, a), 2 * num),
        ("hessian", lambda m: m.euclidean_to_riemannian_hessian(x, G, G, a), num),
    )
    for name, op, number in cases:
        compare(
            f"({d}, {d}, {k}) depth {depth} {name}",
            lambda op=op: op(old),
            lambda op=op: op(new),
            number,
            rounds,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", type=Path, help="directory that contains the other commit's linrank/")
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--quick", action="store_true", help="(40, 40, 4) only")
    args = ap.parse_args()
    old_pkg = _load_old(args.old)
    py, npv = platform.python_version(), np.__version__
    print(f"machine: {platform.machine()}, python {py}, numpy {npv}")
    sizes = [(40, 4, 100)] + ([] if args.quick else [(2000, 10, 3)])
    for d, k, num in sizes:
        for depth in (1, 3):
            bench_size(old_pkg, d, k, depth, num, args.rounds)


if __name__ == "__main__":
    main()
