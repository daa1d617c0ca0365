"""Benchmarks of riemannian_flow on matrix completion (issue 11). Prints a Markdown report.

Usage: OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_riemannian_flow.py [--repeats R] [--quick]
(one BLAS thread: on a loaded machine threaded BLAS calls on small arrays wait for their threads)

1. Cost per right-hand side of riemannian_flow, depth 100 vs depth 2 (target <= 1.2x), on the
   completion example's instance (30 x 30, rank 3, 30% observed, full rank k = 30) and on a
   large one (2000 x 2000, k = 10, 1% observed). Explicit Euler, fixed number of steps.
2. riemannian_flow vs factor_flow (the N layers) from balanced factors at equal accuracy, depth 8
   (target >= 10x): each run's error against a reference (riemannian_flow at rtol 1e-12),
   (a) on the example's instance (full rank, widths 30), (b) on a low-rank one (120 x 120,
   rank-10 start, widths 120).
3. manifold_flow (least-squares fast path) vs riemannian_flow(least_squares_problem(...)) on the
   same regression problem: can manifold_flow become the general flow at no cost?
4. The low-rank case of section 2 with the layers at the rtol where their error matches the
   manifold flow's at rtol 1e-9.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pathlib
import platform
import time

import numpy as np

from linrank import (
    DeepLinearFixedRank,
    balanced_factors,
    factor_flow,
    gaussian_data,
    least_squares_problem,
    manifold_flow,
    matrix_completion_problem,
    riemannian_flow,
)


def _load_example():
    """examples/deep_matrix_completion.py as a module (its instance is the one measured here)."""
    path = pathlib.Path(__file__).resolve().parent.parent / "examples" / "deep_matrix_completion.py"
    spec = importlib.util.spec_from_file_location("deep_matrix_completion", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def example_instance(m=30, r=3, frac=0.3, alpha=1e-3, seed=0):
    """The instance of examples/deep_matrix_completion.py: (M, rows, cols, W0)."""
    M, mask, Q1, Q2 = _load_example().instance(m, r, frac, seed)
    rows, cols = np.nonzero(mask)
    return M, rows, cols, alpha * Q1 @ Q2.T


def low_rank_instance(m=120, k=10, r=3, frac=0.2, alpha=1e-2, seed=1):
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((m, r)) @ rng.standard_normal((r, m)) / np.sqrt(m)
    mask = rng.random((m, m)) < frac
    rows, cols = np.nonzero(mask)
    u = np.linalg.qr(rng.standard_normal((m, k)))[0]
    v = np.linalg.qr(rng.standard_normal((m, k)))[0]
    return M, rows, cols, alpha * u @ v.T


def large_instance(m=2000, k=10, frac=0.01, seed=2):
    rng = np.random.default_rng(seed)
    lin = rng.choice(m * m, size=int(frac * m * m), replace=False)
    rows, cols = np.divmod(lin, m)
    M = rng.standard_normal((m, 3)) @ rng.standard_normal((3, m)) / np.sqrt(m)  # dense: fine
    u = np.linalg.qr(rng.standard_normal((m, k)))[0]
    v = np.linalg.qr(rng.standard_normal((m, k)))[0]
    return M, rows, cols, (u, np.linspace(1.0, 0.5, k), v.T)  # a point: no 2000 x 2000 SVD


def _rank(W0) -> int:
    return W0[1].size if isinstance(W0, tuple) else int(np.linalg.matrix_rank(W0))


def bench_rhs(repeats: int, quick: bool) -> None:
    print("### 1. Cost per right-hand side, depth 100 vs depth 2\n")
    print("riemannian_flow, explicit Euler (step 1e-3, 60 steps: one RHS evaluation per step, plus "
          "the re-orthonormalization and the records), time per RHS, median of "
          f"{repeats} interleaved repeats.\n")
    print("| instance | k | depth 2 | depth 100 | ratio |\n|---|---:|---:|---:|---:|")
    cases = [("example: 30 x 30, 30% observed", example_instance())]
    if not quick:
        cases.append(("2000 x 2000, 1% observed", large_instance()))
    for name, (M, rows, cols, W0) in cases:
        m, n = M.shape
        k = _rank(W0)
        probs = {N: matrix_completion_problem(DeepLinearFixedRank(m, n, k, N), rows, cols,
                                              M[rows, cols]) for N in (2, 100)}
        times = {2: [], 100: []}
        for _ in range(repeats):
            for N in (2, 100):
                t0 = time.perf_counter()
                r = riemannian_flow(probs[N], W0, 0.06, method="Euler", step=1e-3)
                times[N].append((time.perf_counter() - t0) / r.nfev)
        t2, t100 = np.median(times[2]), np.median(times[100])
        print(f"| {name} | {k} | {1e3 * t2:.3f} ms | {1e3 * t100:.3f} ms | **{t100 / t2:.2f}** |")
    print()


def bench_speedup(repeats: int, quick: bool) -> None:
    print("### 2. riemannian_flow vs factor_flow at equal accuracy\n")
    print("Both from the same W(0) (balanced factors for the layers), RK45 with the same rtol, "
          "atol 1e-14; error = ||W(T) - W_ref(T)|| / ||W_ref(T)||, W_ref from riemannian_flow at "
          f"rtol 1e-12. Times: median of {repeats}.\n")
    print("| instance | depth | T | rtol | riemannian_flow | factor_flow | speed-up | "
          "error (manifold) | error (layers) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    cases = [("example, k = 30 full rank, widths 30", example_instance(), 150.0, 30),
             ("120 x 120, rank-10 start, widths 120", low_rank_instance(), 20.0, 120)]
    depths = (8,)  # depth 100: examples/deep_matrix_completion.py (the layers take minutes)
    for name, (M, rows, cols, W0), T, width in cases:
        m, n = M.shape
        k = int(np.linalg.matrix_rank(W0))
        for N in depths:
            P = matrix_completion_problem(DeepLinearFixedRank(m, n, k, N), rows, cols,
                                          M[rows, cols])
            ref = riemannian_flow(P, W0, T, rtol=1e-12, atol=1e-16).W
            fs = balanced_factors(W0, (n,) + (width,) * (N - 1) + (m,), seed=N)
            for rtol in (1e-6, 1e-9):
                tol = {"rtol": rtol, "atol": 1e-14}
                tm, tl = [], []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    rm = riemannian_flow(P, W0, T, **tol)
                    tm.append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    rl = factor_flow(P, None, fs, T, **tol)
                    tl.append(time.perf_counter() - t0)
                em = np.linalg.norm(rm.W - ref) / np.linalg.norm(ref)
                el = np.linalg.norm(rl.W - ref) / np.linalg.norm(ref)
                a, b = np.median(tm), np.median(tl)
                print(f"| {name} | {N} | {T:g} | {rtol:g} | {a:.2f} s ({rm.nfev} RHS) | "
                      f"{b:.2f} s ({rl.nfev} RHS) | **{b / a:.1f}x** | {em:.1e} | {el:.1e} |")
    print()


def bench_equal_accuracy() -> None:
    """Section 2's low-rank case with the layers at the rtol that matches the manifold's error."""
    print("### 4. Low-rank case of section 2 at equal accuracy (one run each, one process)\n")
    M, rows, cols, W0 = low_rank_instance()
    m, n, N, T = M.shape[0], M.shape[1], 8, 20.0
    P = matrix_completion_problem(DeepLinearFixedRank(m, n, 10, N), rows, cols, M[rows, cols])
    ref = riemannian_flow(P, W0, T, rtol=1e-12, atol=1e-16).W
    fs = balanced_factors(W0, (n,) + (120,) * (N - 1) + (m,), seed=N)
    print("| flow | rtol | time | RHS | error |\n|---|---:|---:|---:|---:|")
    for name, rtol in (("factor_flow", 1e-8), ("factor_flow", 3e-8), ("riemannian_flow", 1e-9)):
        t0 = time.perf_counter()
        if name == "factor_flow":
            r = factor_flow(P, None, fs, T, rtol=rtol, atol=1e-14)
        else:
            r = riemannian_flow(P, W0, T, rtol=rtol, atol=1e-14)
        dt = time.perf_counter() - t0
        err = np.linalg.norm(r.W - ref) / np.linalg.norm(ref)
        print(f"| {name} | {rtol:g} | {dt:.2f} s | {r.nfev} | {err:.1e} |")
    print()


def bench_least_squares(repeats: int) -> None:
    print("### 3. manifold_flow vs riemannian_flow(least_squares_problem)\n")
    print("| problem | manifold_flow | riemannian_flow | ratio | rel. difference of W(T) |\n"
          "|---|---:|---:|---:|---:|")
    for d, k, N, T in ((120, 4, 8, 5.0), (300, 5, 3, 2.0)):
        X = gaussian_data(d, seed=2)
        rng = np.random.default_rng(3)
        u = np.linalg.qr(rng.standard_normal((d, k)))[0]
        v = np.linalg.qr(rng.standard_normal((d, k)))[0]
        W0 = (u * np.linspace(1.0, 0.5, k)) @ v.T
        P = least_squares_problem(DeepLinearFixedRank(d, d, k, N), X)
        tol = {"rtol": 1e-9, "atol": 1e-12}
        ta, tb = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            ra = manifold_flow(X, None, W0, N, T, **tol)
            ta.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            rb = riemannian_flow(P, W0, T, **tol)
            tb.append(time.perf_counter() - t0)
        a, b = np.median(ta), np.median(tb)
        rel = np.linalg.norm(ra.W - rb.W) / np.linalg.norm(ra.W)
        print(f"| autoencoder d = {d}, n = {3 * d}, k = {k}, depth {N}, T = {T:g}, rtol 1e-9 | "
              f"{a:.3f} s ({ra.nfev} RHS) | {b:.3f} s ({rb.nfev} RHS) | **{b / a:.1f}** | "
              f"{rel:.1e} |")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sections", default="1234", help="which sections to run, e.g. 1 or 13")
    a = ap.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, numpy {np.__version__}, load average {load:.1f}\n")
    if "1" in a.sections:
        bench_rhs(a.repeats, a.quick)
    if "2" in a.sections:
        bench_speedup(a.repeats if not a.quick else 1, a.quick)
    if "3" in a.sections:
        bench_least_squares(a.repeats)
    if "4" in a.sections:
        bench_equal_accuracy()


if __name__ == "__main__":
    main()
