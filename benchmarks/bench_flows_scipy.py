"""The layer-wise flow (5): linrank's Runge-Kutta loop against scipy's solve_ivp (issue 10).

Usage: OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_flows_scipy.py [--repeats R]

Problem of bench_flows.py section 2: depth 8, widths 120, d = 120, n = 360, k = 4, t_end = 5,
rtol 1e-9, atol 1e-12, autoencoder, balanced factors. ``factor_flow`` (linrank.flows.integrator)
and ``scipy.integrate.solve_ivp(method="RK45")`` integrate the same right-hand side
(linrank.flows.LayerSystem.rhs); both are compared with manifold_flow at rtol 1e-12 (Corollary 8:
the product of (5) from balanced factors is the flow (31)). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
from scipy.integrate import solve_ivp

from linrank import balanced_factors, factor_flow, gaussian_data, manifold_flow, product
from linrank.data import as_data
from linrank.flows import LayerSystem


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    d, k, N, width, t_end = 120, 4, 8, 120, 5.0
    X = gaussian_data(d, seed=2)
    rng = np.random.default_rng(3)
    u = np.linalg.qr(rng.standard_normal((d, k)))[0]
    v = np.linalg.qr(rng.standard_normal((d, k)))[0]
    W0 = (u * np.linspace(1.0, 0.5, k)) @ v.T
    fs = balanced_factors(W0, (d,) + (width,) * (N - 1) + (d,), seed=4)
    tol = {"rtol": 1e-9, "atol": 1e-12}
    ref = manifold_flow(X, None, W0, N, t_end, rtol=1e-12, atol=1e-14).W
    system = LayerSystem(as_data(X), [W.shape for W in fs], None, False, None)
    y0 = system.initial_state(fs)
    rows = {"factor_flow": [], "solve_ivp": []}
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        r = factor_flow(X, None, fs, t_end, **tol)
        rows["factor_flow"].append((time.perf_counter() - t0, r.nsteps, r.nfev, r.W))
        t0 = time.perf_counter()
        sol = solve_ivp(lambda t, y: system.rhs(y).K, (0.0, t_end), y0, method="RK45", **tol)
        W = product(system.split(sol.y[:, -1]))
        rows["solve_ivp"].append((time.perf_counter() - t0, sol.t.size - 1, sol.nfev, W))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, numpy {np.__version__}, OPENBLAS_NUM_THREADS="
          f"{os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, load average {load:.1f}\n")
    print(f"| integrator | time (median of {args.repeats}) | steps | RHS evaluations | error of W |")
    print("|---|---:|---:|---:|---:|")
    for name, rs in rows.items():
        err = np.linalg.norm(rs[-1][3] - ref) / np.linalg.norm(ref)
        print(f"| {name} | {np.median([x[0] for x in rs]):.2f} s | {rs[-1][1]} | {rs[-1][2]} | "
              f"{err:.2e} |")


if __name__ == "__main__":
    main()
