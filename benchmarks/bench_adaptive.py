"""Benchmark of adaptive_rank_flow at scale (issue 18, item 4). Prints a Markdown report.

Usage: OPENBLAS_NUM_THREADS=2 .venv/bin/python benchmarks/bench_adaptive.py [--m 10000]
       [--rank 5] [--observed 1000000] [--depth 3] [--alpha 1e-3] [--rel-ftol 1e-8]
       [--t-end 100] [--max-steps 20000] [--json PATH]

Completion of a planted rank-5 m x m matrix A = U diag(sigma) V^T (sigma proportional to
5, 4, 3, 2, 1, scaled so that the mean squared entry is 1; U, V Haar) from ``observed`` entries
chosen uniformly without repetition, by the rank-adaptive flow at depth 3 from
``init_scale = alpha * ||A||_2``, until the training loss is ``rel_ftol`` times its value at
W = 0 (or t_end, or max_steps per piece). Reported: wall and CPU time, right-hand sides, the rank
increases, the relative error on 100,000 unobserved entries (sampled) and on the observed ones,
and the tracemalloc peak of everything allocated after the data (Python and numpy allocations;
a dense m x m matrix would be 8 m^2 bytes). Target (issue 18): m = 10,000, 10^6 observations,
depth 3 in <= 10 min on 2 cores, memory O((m + n) k + observations).
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc

import benchlib  # benchmarks/benchlib.py, next to this script
import numpy as np

from linrank import adaptive_rank_flow, matrix_completion_problem


def planted(m: int, rank: int, p: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((m, rank)))[0]
    V = np.linalg.qr(rng.standard_normal((m, rank)))[0]
    sig = np.arange(rank, 0, -1, dtype=float)
    sig *= np.sqrt(m * m / np.sum(sig ** 2))  # mean squared entry 1
    lin = rng.choice(m * m, size=p, replace=False)
    rows, cols = np.divmod(lin, m)
    vals = np.einsum("ij,ij->i", U[rows] * sig, V[cols])
    return U, sig, V, rows, cols, vals, rng


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m", type=int, default=10000)
    ap.add_argument("--rank", type=int, default=5)
    ap.add_argument("--observed", type=int, default=1_000_000)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--alpha", type=float, default=1e-3)
    ap.add_argument("--rel-ftol", type=float, default=1e-8)
    ap.add_argument("--t-end", type=float, default=100.0)
    ap.add_argument("--max-steps", type=int, default=20000)
    benchlib.add_json_argument(ap)
    a = ap.parse_args()
    m = a.m
    U, sig, V, rows, cols, vals, rng = planted(m, a.rank, a.observed)
    f0 = 0.5 * float(vals @ vals)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    w0, c0 = time.perf_counter(), time.process_time()
    r = adaptive_rank_flow(
        lambda man: matrix_completion_problem(man, rows, cols, vals), shape=(m, m),
        depth=a.depth, t_end=a.t_end, init_scale=a.alpha * sig[0], ftol=a.rel_ftol * f0,
        max_rank=min(m, 4 * a.rank), max_steps=a.max_steps, t_eval=[0.0, a.t_end])
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    # errors: observed entries, and 100,000 unobserved ones drawn uniformly
    u, s, vt = r.point
    obs_err = np.linalg.norm(np.einsum("ij,ij->i", u[rows] * s, vt.T[cols]) - vals) \
        / np.linalg.norm(vals)
    lin = rng.integers(0, m * m, size=200_000)
    lin = np.setdiff1d(lin, rows.astype(np.int64) * m + cols)[:100_000]
    ur, uc = np.divmod(lin, m)
    truth = np.einsum("ij,ij->i", U[ur] * sig, V[uc])
    est = np.einsum("ij,ij->i", u[ur] * s, vt.T[uc])
    unobs_err = np.linalg.norm(est - truth) / np.linalg.norm(truth)
    dense = 8.0 * m * m
    print(f"# adaptive_rank_flow: {m} x {m}, planted rank {a.rank}, {a.observed} observed, "
          f"depth {a.depth}\n")
    print(f"machine: {benchlib.machine()}\n")
    print("| quantity | value |\n|---|---|")
    rows_out = [
        ("status", f"{r.status}: {r.message}"),
        ("wall time", f"{wall:.1f} s"), ("CPU time", f"{cpu:.1f} s"),
        ("right-hand sides / steps", f"{r.nfev} / {r.nsteps} ({r.nrejected} rejected)"),
        ("rank increases (t, k)", ", ".join(f"({t:.4g}, {k})" for t, k in r.ranks)),
        ("final singular values / planted", f"{np.round(np.sort(s)[::-1], 2)} / "
                                            f"{np.round(sig, 2)}"),
        ("relative training loss", f"{r.loss[-1] / f0:.2e}"),
        ("relative error, observed entries", f"{obs_err:.2e}"),
        ("relative error, 1e5 unobserved entries", f"{unobs_err:.2e}"),
        ("tracemalloc peak after the data", f"{peak / 2**20:.1f} MiB (a dense m x m matrix: "
                                            f"{dense / 2**20:.0f} MiB)"),
        ("load average at the end", f"{os.getloadavg()[0]:.1f}"),
    ]
    for name, val in rows_out:
        print(f"| {name} | {val} |")
    benchlib.figure("adaptive completion 10^4 x 10^4, 10^6 obs, N = 3: wall time",
                    f"{wall:.0f} s", "<= 600 s", wall <= 600 and r.status == "converged")
    benchlib.figure("adaptive completion: tracemalloc peak", f"{peak / 2**20:.0f} MiB",
                    "O((m + n) k + observations)")
    benchlib.write_json(a.json)


if __name__ == "__main__":
    main()
