"""Peak memory of LinearData.from_samples beyond the data (issue 8 item 5).

Run:  OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_memory.py [--d 2000] [--n 6000]

Measured with tracemalloc (numpy reports its allocations to it): the peak of traced memory while
the data object is built from X (d x n, Y = X), for the covariance form (keeps X X^T: d^2 floats)
and the samples form (keeps references to X only). Target: peak beyond the data <= the
covariance plus small (~1 MiB) temporaries.
"""

from __future__ import annotations

import argparse
import platform
import time
import tracemalloc

import numpy as np

from linrank import LinearData


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d", type=int, default=2000)
    ap.add_argument("--n", type=int, default=6000)
    args = ap.parse_args()
    d, n = args.d, args.n
    py, npv = platform.python_version(), np.__version__
    print(f"machine: {platform.machine()}, python {py}, numpy {npv}")
    X = np.random.default_rng(0).standard_normal((d, n))
    cov = d * d * 8 / 2**20
    print(f"X: {X.nbytes / 2**20:.1f} MiB, covariance X X^T: {cov:.1f} MiB")
    for form in ("covariance", "samples"):
        tracemalloc.start()
        t0 = time.perf_counter()
        LinearData.from_samples(X, form=form)
        dt = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"form={form:<10}: peak beyond the data {peak / 2**20:6.1f} MiB ({dt:.1f} s)")


if __name__ == "__main__":
    main()
