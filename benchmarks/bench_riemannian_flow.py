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
5. Full width at the price of the layers (issue 18, item 5): time per right-hand side of
   riemannian_flow at depth 3 (engine "auto", which takes the chain engine here, and engine
   "factored") against factor_flow at depth 2 and 3 (balanced, widths k), on the example's
   instance (d = k = 30) and on a 100 x 100 one (k = 100); targets <= 1.5x and <= 2x of
   factor_flow at depth 2. CPU time per RHS, median over --repeats interleaved rounds; with
   ``--old PATH`` (a checkout's package, e.g. ``git archive b1f65f2 linrank | tar -x -C PATH``)
   that version's riemannian_flow and factor_flow are timed in the same rounds ("before").
6. Where the chain engine stops paying: time per RHS of both engines for depths 2-16.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pathlib
import platform
import shutil
import sys
import tempfile
import time

import benchlib  # benchmarks/benchlib.py, next to this script
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


def _load_old(path: str):
    """Another checkout's linrank package, imported as ``linrank_old``."""
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="linrank_old_"))
    shutil.copytree(pathlib.Path(path) / "linrank", tmp / "linrank_old")
    sys.path.insert(0, str(tmp))
    import linrank_old

    return linrank_old


def full_width_instance(m: int, seed: int = 0):
    """m x m, rank 5 (singular values 1 ... 0.3), 30% observed, W(0) = 1e-3 x orthogonal."""
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((m, 5)))[0]
    V = np.linalg.qr(rng.standard_normal((m, 5)))[0]
    M = (U * np.linspace(1.0, 0.3, 5)) @ V.T
    rows, cols = np.nonzero(rng.random((m, m)) < 0.3)
    Q1 = np.linalg.qr(rng.standard_normal((m, m)))[0]
    Q2 = np.linalg.qr(rng.standard_normal((m, m)))[0]
    return M, rows, cols, 1e-3 * Q1 @ Q2.T


def bench_full_width(repeats: int, quick: bool, old_path: str | None) -> None:
    print("### 5. Full width at the price of the layers (depth 3 vs the layers at depth 2)\n")
    old = _load_old(old_path) if old_path else None
    print("CPU time (`time.process_time`) per right-hand side, median over "
          f"{repeats} interleaved rounds; RK45, rtol 1e-8, atol 1e-14; ratio = median over the "
          "rounds of (time per RHS) / (factor_flow depth 2's in the same round). Accuracy: "
          "relative difference of W(T) from riemannian_flow with engine 'factored' at rtol "
          "1e-12 (the reference), and from factor_flow at depth 3 (Corollary 8)."
          + (f" 'before' = {old_path}." if old else "") + "\n")
    print("| instance | flow | time per RHS | RHS | ratio to factor_flow depth 2 | "
          "W(T) vs reference | W(T) vs layers |\n|---|---|---:|---:|---:|---:|---:|")
    cases = [("example: 30 x 30, k = 30, 258 observed", example_instance(), 50.0, 1.5)]
    if not quick:
        cases.append(("100 x 100, k = 100, 30% observed", full_width_instance(100), 80.0, 2.0))
    for name, inst, T, target in cases:
        _full_width_case(name, inst, T, target, repeats, old)
    print()


def _full_width_case(name, inst, T, target, repeats, old) -> None:
    """One instance of section 5 (a function, so that the timed closures bind its locals)."""
    M, rows, cols, W0 = inst
    m, n = M.shape
    k = min(m, n)
    vals = M[rows, cols]
    probs = {N: matrix_completion_problem(DeepLinearFixedRank(m, n, k, N), rows, cols, vals)
             for N in (2, 3)}
    fs = {N: balanced_factors(W0, (n,) + (k,) * (N - 1) + (m,), seed=N) for N in (2, 3)}
    tol = {"rtol": 1e-8, "atol": 1e-14}
    runs = {
        "factor_flow, depth 2": lambda: factor_flow(probs[2], None, fs[2], T, **tol),
        "factor_flow, depth 3": lambda: factor_flow(probs[3], None, fs[3], T, **tol),
        "riemannian_flow, depth 3 (auto: chain)": lambda: riemannian_flow(probs[3], W0, T,
                                                                           **tol),
        "riemannian_flow, depth 3, engine 'factored'": lambda: riemannian_flow(
            probs[3], W0, T, engine="factored", **tol),
    }
    if old is not None:
        oprob = {N: old.matrix_completion_problem(old.DeepLinearFixedRank(m, n, k, N), rows,
                                                  cols, vals) for N in (2, 3)}
        runs["before: factor_flow, depth 2"] = lambda: old.factor_flow(oprob[2], None, fs[2],
                                                                       T, **tol)
        runs["before: riemannian_flow, depth 3"] = lambda: old.riemannian_flow(oprob[3], W0,
                                                                               T, **tol)
    per, ratio, res = {key: [] for key in runs}, {key: [] for key in runs}, {}
    for i in range(repeats):
        order = list(runs) if i % 2 == 0 else list(runs)[::-1]
        got = {}
        for key in order:
            t0 = time.process_time()
            r = runs[key]()
            got[key] = (time.process_time() - t0) / r.nfev
            res[key] = r
        for key in runs:
            per[key].append(got[key])
            ratio[key].append(got[key] / got["factor_flow, depth 2"])
    ref = riemannian_flow(probs[3], W0, T, engine="factored", rtol=1e-12, atol=1e-16).W
    lay = res["factor_flow, depth 3"].W
    for key in runs:
        W = res[key].W
        if "depth 2" in key:  # another flow (depth 2): no accuracy to compare
            e_ref = e_lay = "-"
        else:
            e_ref = f"{np.linalg.norm(W - ref) / np.linalg.norm(ref):.1e}"
            e_lay = f"{np.linalg.norm(W - lay) / np.linalg.norm(lay):.1e}"
        q = float(np.median(ratio[key]))
        print(f"| {name} | {key} | {1e6 * np.median(per[key]):.1f} us | {res[key].nfev} | "
              f"**{q:.2f}** | {e_ref} | {e_lay} |")
    q = float(np.median(ratio["riemannian_flow, depth 3 (auto: chain)"]))
    benchlib.figure(f"riemannian_flow depth 3 / factor_flow depth 2, time per RHS, {name}",
                    f"{q:.2f}", f"<= {target}", q <= target)
    qf = float(np.median(ratio["riemannian_flow, depth 3, engine 'factored'"]))
    benchlib.figure(f"the same with engine 'factored', {name}", f"{qf:.2f}")
    if old is not None:
        qo = float(np.median(ratio["before: riemannian_flow, depth 3"]))
        benchlib.figure(f"before: riemannian_flow depth 3 / factor_flow depth 2, {name}",
                        f"{qo:.2f}")


def bench_crossover(repeats: int, quick: bool) -> None:
    print("### 6. Chain vs factored engine by depth (time per RHS, chain / factored)\n")
    from linrank.flows.chain import chain_is_cheaper

    shapes = [(30, 30, 30.0), (120, 10, 5.0)] if quick else \
        [(30, 30, 30.0), (120, 10, 5.0), (60, 60, 10.0), (100, 100, 10.0)]
    depths = (2, 3, 4, 6, 8, 10, 12, 16)
    print("Completion, 20-30% observed, start 1e-2 x (orthonormal u, v), RK45 rtol 1e-8; median "
          f"of {repeats}. An entry is marked * where engine='auto' takes the chain.\n")
    print("| m = n, k | " + " | ".join(f"N = {N}" for N in depths) + " |\n|---|"
          + "---:|" * len(depths))
    for m, k, T in shapes:
        rng = np.random.default_rng(0)
        M = rng.standard_normal((m, 3)) @ rng.standard_normal((3, m)) / np.sqrt(m)
        rows, cols = np.nonzero(rng.random((m, m)) < (0.3 if k == m else 0.2))
        u = np.linalg.qr(rng.standard_normal((m, k)))[0]
        v = np.linalg.qr(rng.standard_normal((m, k)))[0]
        x0 = (u, np.full(k, 1e-2), v.T)
        cells = []
        for N in depths:
            P = matrix_completion_problem(DeepLinearFixedRank(m, m, k, N), rows, cols,
                                          M[rows, cols])
            tt: dict[str, list[float]] = {"chain": [], "factored": []}
            for _ in range(repeats):
                for eng in tt:
                    t0 = time.process_time()
                    r = riemannian_flow(P, x0, T, rtol=1e-8, atol=1e-14, engine=eng)
                    tt[eng].append((time.process_time() - t0) / r.nfev)
            q = np.median(tt["chain"]) / np.median(tt["factored"])
            cells.append(f"{q:.2f}" + ("*" if chain_is_cheaper(m, m, k, N) else ""))
        print(f"| {m}, {k} | " + " | ".join(cells) + " |")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sections", default="123456", help="which sections to run, e.g. 1 or 13")
    ap.add_argument("--old", default=None, metavar="PATH",
                    help="section 5: also time the linrank package under PATH ('before')")
    benchlib.add_json_argument(ap)
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
    if "5" in a.sections:
        bench_full_width(a.repeats, a.quick, a.old)
    if "6" in a.sections:
        bench_crossover(a.repeats, a.quick)
    benchlib.write_json(a.json)


if __name__ == "__main__":
    main()
