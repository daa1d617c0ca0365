"""Benchmarks of the gradient flows (issue 4, section 8). Prints a Markdown report.

Usage: .venv/bin/python benchmarks/bench_flows.py [--skip-large] [--repeats R]

1. Cost per right-hand-side evaluation of manifold_flow, depth 64 vs depth 2 (target <= 1.2x).
2. Depth 8, widths 120, d = 120, n = 360 samples, k = 4, t_end = 5, rtol 1e-9: manifold_flow vs
   factor_flow from balanced factors (target >= 10x faster, same final W to 1e-6).
3. d = 2000, n = 6000, k = 5, depth 3, t_end = 20, rtol 1e-8 (target <= 60 s, memory O((m+n)k)
   beyond the data plus the d x d covariance), peak memory by tracemalloc.
4. Error of explicit Euler with fixed steps against the accurate flows.
All runs: autoencoder Y = X with the paper's data (i.i.d. N(0, 1/d) entries, n = 3d).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import tracemalloc

import benchlib  # benchmarks/benchlib.py, next to this script
import numpy as np

from linrank import LinearData, balanced_factors, factor_flow, gaussian_data, manifold_flow
from linrank.linalg import ENV_VAR, ORIENTATIONS, thin_product


def _start(rng, d, k, scale=1.0):
    u = np.linalg.qr(rng.standard_normal((d, k)))[0]
    v = np.linalg.qr(rng.standard_normal((d, k)))[0]
    s = scale * np.linspace(1.0, 0.5, k)
    return u, s, v.T


def _product_floor(C: np.ndarray, ncols: int, number: int = 10) -> dict[str, float]:
    """Time of one product of C with ``ncols`` columns in each orientation (linrank.linalg)."""
    B = np.random.default_rng(7).standard_normal((C.shape[1], ncols))
    out = {}
    for o in ORIENTATIONS:
        t0 = time.perf_counter()
        for _ in range(number):
            thin_product(C, B, orientation=o)
        out[o] = (time.perf_counter() - t0) / number
    return out


def bench_rhs_depth(repeats: int) -> None:
    d, k = 2000, 5
    X = gaussian_data(d, seed=0)
    data = LinearData.from_samples(X)
    p = _start(np.random.default_rng(1), d, k)
    h, nsteps = 1e-4, 40
    times = {2: [], 64: []}
    floor = {o: [] for o in ORIENTATIONS}
    for _ in range(repeats):
        for N in (2, 64):
            t0 = time.perf_counter()
            r = manifold_flow(data, None, p, N, h * nsteps, method="Euler", step=h)
            times[N].append((time.perf_counter() - t0) / r.nfev)
        for o, t in _product_floor(data.Cxx, 2 * k).items():  # interleaved with the flows
            floor[o].append(t)
    t2, t64 = np.median(times[2]), np.median(times[64])
    fl = {o: float(np.median(v)) for o, v in floor.items()}
    best = min(fl.values())
    chosen = data.product_orientations(k)["Cxx"]
    print("### 1. Cost per right-hand side, depth 64 vs depth 2\n")
    print(f"d = {d}, n = {3 * d}, k = {k}, data as X X^T (autoencoder); explicit Euler, {nsteps} "
          f"steps, time per RHS evaluation including the retraction, median of {repeats}.\n")
    print("| depth | time per RHS |\n|---:|---:|")
    print(f"| 2 | {1e3 * t2:.2f} ms |\n| 64 | {1e3 * t64:.2f} ms |")
    print(f"\nratio depth 64 / depth 2: **{t64 / t2:.3f}** (target <= 1.2)\n")
    benchlib.figure(f"manifold_flow time per RHS, depth 64 / depth 2, d = {d}, k = {k}",
                    f"{t64 / t2:.2f} ({1e3 * t64:.2f} ms vs {1e3 * t2:.2f} ms)", "<= 1.2",
                    t64 / t2 <= 1.2)
    print(f"Floor: one product X X^T @ [v u] ({d} x {2 * k}), interleaved with the runs: "
          + ", ".join(f"{o} {1e3 * t:.2f} ms" for o, t in fl.items())
          + f"; the flows use \"{chosen}\" (measured). Time per RHS / fastest product: "
          f"**{t2 / best:.2f}** (depth 2, target <= 1.3), {t64 / best:.2f} (depth 64)\n")
    benchlib.figure(f"manifold_flow time per RHS / fastest covariance product, d = {d}, k = {k}",
                    f"{t2 / best:.2f} ({1e3 * t2:.2f} ms vs {1e3 * best:.2f} ms)", "<= 1.3",
                    t2 / best <= 1.3)


def bench_depth8(repeats: int, N: int = 8, width: int = 120) -> None:
    d, k, t_end = 120, 4, 5.0
    X = gaussian_data(d, seed=2)
    W0 = (lambda u, s, vt: (u * s) @ vt)(*_start(np.random.default_rng(3), d, k))
    fs = balanced_factors(W0, (d,) + (width,) * (N - 1) + (d,), seed=4)
    tol = {"rtol": 1e-9, "atol": 1e-12}
    tf, tm = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        rf = factor_flow(X, None, fs, t_end, **tol)
        tf.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        rm = manifold_flow(X, None, W0, N, t_end, **tol)
        tm.append(time.perf_counter() - t0)
    rel = np.linalg.norm(rf.W - rm.W) / np.linalg.norm(rm.W)
    print(f"### 2. Depth {N}, widths {width}: manifold_flow vs factor_flow\n")
    print(f"d = {d}, n = {3 * d}, k = {k}, t_end = {t_end}, rtol = 1e-9, atol = 1e-12, balanced "
          f"factors from the same W0; median of {repeats}.\n")
    print("| flow | time | steps | RHS evaluations |\n|---|---:|---:|---:|")
    print(f"| factor_flow | {np.median(tf):.3f} s | {rf.nsteps} | {rf.nfev} |")
    print(f"| manifold_flow | {np.median(tm):.3f} s | {rm.nsteps} | {rm.nfev} |")
    print(f"\nspeed-up **{np.median(tf) / np.median(tm):.1f}x** (target >= 10x); "
          f"||W_factor - W_manifold|| / ||W|| = **{rel:.2e}** (target <= 1e-6)\n")
    speed = np.median(tf) / np.median(tm)
    target = ">= 10x" if (N, width) == (8, 120) else ""
    benchlib.figure(f"manifold_flow vs factor_flow, depth {N}, widths {width}, d = {d}: speed-up",
                    f"{speed:.1f}x ({np.median(tf):.3f} s vs {np.median(tm):.3f} s)", target,
                    speed >= 10 if target else None)
    benchlib.figure(f"manifold_flow vs factor_flow, depth {N}, widths {width}: rel. difference "
                    "of W(5)", f"{rel:.1e}", "<= 1e-6", rel <= 1e-6)
    return X, W0, fs, rm.W


def bench_euler(X, W0, fs, W_ref) -> None:
    d, N, t_end = X.shape[0], len(fs), 5.0
    print("### 4. Explicit Euler against the accurate flow (problem of section 2)\n")
    print("| step h | manifold_flow error | factor_flow error | time (manifold) |\n"
          "|---:|---:|---:|---:|")
    for h in (0.1, 0.03, 0.01, 0.001):
        t0 = time.perf_counter()
        rm = manifold_flow(X, None, W0, N, t_end, method="Euler", step=h)
        tm = time.perf_counter() - t0
        em = (np.linalg.norm(rm.W - W_ref) / np.linalg.norm(W_ref) if rm.success
              else float("nan"))
        rf = factor_flow(X, None, fs, t_end, method="Euler", step=h)
        ef = (np.linalg.norm(rf.W - W_ref) / np.linalg.norm(W_ref) if rf.success
              else float("nan"))
        note = "" if rm.success else f" ({rm.status})"
        print(f"| {h:g} | {em:.2e}{note} | {ef:.2e} | {tm:.2f} s |")
    print(f"\n(relative Frobenius error of W(t_end = {t_end}) against manifold_flow at rtol 1e-9; "
          f"d = {d}, depth {N})\n")


def bench_large(repeats: int = 1) -> None:
    d, k, N, t_end = 2000, 5, 3, 20.0
    X = gaussian_data(d, seed=5)
    p = _start(np.random.default_rng(6), d, k)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    data = LinearData.from_samples(X)
    t1 = time.perf_counter()
    after_cov = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    r = manifold_flow(data, None, p, N, t_end, rtol=1e-8, atol=1e-12)
    t2 = time.perf_counter()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # the same run with the products pinned to "direct" (the orientation before linrank.linalg)
    # and with the measured choice, interleaved (tracemalloc off)
    saved = os.environ.get(ENV_VAR)
    runs = {"direct": [], "measured": []}
    try:
        for _ in range(repeats):
            for name in runs:
                os.environ[ENV_VAR] = "direct" if name == "direct" else "measure"
                ta = time.perf_counter()
                rr = manifold_flow(data, None, p, N, t_end, rtol=1e-8, atol=1e-12)
                runs[name].append((time.perf_counter() - ta, rr.nsteps,
                                   data.product_orientations(k)["Cxx"]))
    finally:
        if saved is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = saved
    state = 8 * (2 * d * k + k)
    print("### 3. d = 2000, n = 6000, k = 5, depth 3, t_end = 20, rtol = 1e-8\n")
    print(f"status {r.status}, {r.nsteps} steps ({r.nrejected} rejected), {r.nfev} RHS "
          f"evaluations, L1: {r.loss[0]:.6f} -> {r.loss[-1]:.6f}\n")
    print(f"- covariance X X^T: {t1 - t0:.2f} s, {(after_cov - base) / 2**20:.1f} MiB "
          f"(data X itself: {X.nbytes / 2**20:.1f} MiB)")
    print(f"- flow: **{t2 - t1:.1f} s** (target <= 60 s); total with the covariance "
          f"{t2 - t0:.1f} s")
    benchlib.figure(f"manifold_flow d = {d}, n = {3 * d}, k = {k}, depth {N}, t_end = {t_end:g}, "
                    f"rtol 1e-8", f"{t2 - t1:.1f} s ({r.nsteps} steps)", "<= 60 s", t2 - t1 <= 60)
    benchlib.figure("its peak memory beyond data and covariance",
                    f"{(peak - after_cov) / 2**20:.2f} MiB")
    print(f"- peak memory of the flow beyond data and covariance (tracemalloc): "
          f"**{(peak - after_cov) / 2**20:.2f} MiB**; the state (u, s, vt) is "
          f"{state / 2**20:.3f} MiB; the rest is the Runge-Kutta stages (7 slopes of the factors, "
          f"each O((m + n) k)) and the recorded history, which grows with the number of steps\n")
    td = float(np.median([x[0] for x in runs["direct"]]))
    tm = float(np.median([x[0] for x in runs["measured"]]))
    print(f"- orientation of the products (median of {repeats} interleaved runs each): "
          f"\"direct\" {td:.1f} s ({runs['direct'][0][1]} steps), measured "
          f"{runs['measured'][0][2]} {tm:.1f} s ({runs['measured'][0][1]} steps): "
          f"**{td / tm:.2f}x**\n")
    W_ref = r.point
    print("Explicit Euler on this problem, relative error of W(20) against the RK45 run:\n")
    print("| step h | error | time |\n|---:|---:|---:|")
    for h in (0.1, 0.01):
        t0 = time.perf_counter()
        re = manifold_flow(data, None, p, N, t_end, method="Euler", step=h, target=W_ref)
        err = re.distance[-1] / np.linalg.norm(W_ref.s) if re.success else float("nan")
        print(f"| {h:g} | {err:.2e}{'' if re.success else ' (' + re.status + ')'} | "
              f"{time.perf_counter() - t0:.1f} s |")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--skip-large", action="store_true", help="skip section 3")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--repeats-large", type=int, default=1,
                    help="interleaved runs per orientation in section 3")
    benchlib.add_json_argument(ap)
    args = ap.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, numpy {np.__version__}, OPENBLAS_NUM_THREADS="
          f"{os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, load average {load:.1f}\n")
    bench_rhs_depth(args.repeats)
    X, W0, fs, W_ref = bench_depth8(args.repeats)
    for N, width in ((8, 480), (32, 120)):
        bench_depth8(1, N=N, width=width)
    if not args.skip_large:
        bench_large(args.repeats_large)
    bench_euler(X, W0, fs, W_ref)
    benchlib.write_json(args.json)


if __name__ == "__main__":
    main()
