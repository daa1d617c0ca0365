"""Tiny singular values: manifold_flow's chain engine against the factored engine (issue 17).

1. Speed (always): CPU time of manifold_flow with engine="chain" (what "auto" takes for
   2 <= N <= CHAIN_MAX_DEPTH with RK45) against engine="factored", same run, ratio chain /
   factored, best of 3: Gaussian data (d x 4d samples), a random rank-k start, rtol 1e-8,
   t_end 20, at (d, k, N) = (10, 2, 3), (50, 5, 3), (50, 5, 8), (100, 10, 3), (100, 10, 8).
2. Precision (``--full``; long): issue 17's family B at eta = 1e-7 (Section 7 data, d = 10,
   W(0) = V M V^T, M = [[0.3, 1], [1, 0.3]], V = [u_1, (u_2 + eta u_3)/|.|]), N = 3: the time to
   reach L* + 1e-6 by an own layer-wise integration (scipy DOP853 on balanced width-2 factors,
   rtol 1e-12, atol 1e-30) and by manifold_flow at rtol 1e-8 (auto: the chain); and family A
   (eta = 0) through manifold_flow to t_end = 1e5: status, min over t of -det(U_2^T W U_2).

Run:  OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_tiny_singular_values.py [--full]
      [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from scipy.integrate import solve_ivp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import add_json_argument, figure, machine, write_json  # noqa: E402

from linrank import balanced_factors, gaussian_data, manifold_flow  # noqa: E402

M_FAMILY = np.array([[0.3, 1.0], [1.0, 0.3]])


def show(name: str, measured: str, target: str = "", met: bool | None = None) -> None:
    figure(name, measured, target, met)
    print(f"{name}: {measured}" + (f"  [target {target}: {'met' if met else 'NOT met'}]"
                                   if target else ""), flush=True)


def speed() -> None:
    for d, k, N in ((10, 2, 3), (50, 5, 3), (50, 5, 8), (100, 10, 3), (100, 10, 8)):
        rng = np.random.default_rng(d + k + N)
        X = rng.standard_normal((d, 4 * d)) / np.sqrt(d)
        W0 = rng.standard_normal((d, k)) @ rng.standard_normal((k, d)) / d
        times, steps = {}, {}
        for engine in ("chain", "factored"):
            best = np.inf
            for _ in range(3):
                t0 = time.process_time()
                r = manifold_flow(X, None, W0, N, 20.0, rtol=1e-8, engine=engine)
                best = min(best, time.process_time() - t0)
            times[engine], steps[engine] = best, r.nsteps
        ratio = times["chain"] / times["factored"]
        show(f"chain / factored CPU, d = {d}, k = {k}, N = {N}",
               f"{ratio:.2f} ({times['chain']:.2f} s / {times['factored']:.2f} s; steps "
               f"{steps['chain']} / {steps['factored']})")


def _section7():
    X = gaussian_data(10, seed=0)
    lam, U = np.linalg.eigh(X @ X.T)
    lam, U = lam[::-1], U[:, ::-1]
    return X, U, 0.5 * (float(np.sum(lam)) - lam[0] - lam[1])


def _family(U, eta):
    V = U[:, :2].copy()
    V[:, 1] = (U[:, 1] + eta * U[:, 2]) / np.hypot(1.0, eta)
    return V @ M_FAMILY @ V.T


def _layer_reference(X, W0, ftol, T):
    """Own reference: layer flow (5) of balanced width-2 factors, N = 3, DOP853 rtol 1e-12."""
    C = X @ X.T
    fs = balanced_factors(W0, (10, 2, 2, 10), seed=1, rank=2)
    shapes = [f.shape for f in fs]
    off = np.cumsum([0] + [a * b for a, b in shapes])

    def split(y):
        return [y[off[j]: off[j + 1]].reshape(shapes[j]) for j in range(3)]

    def rhs(_t, y):
        W1, W2, W3 = split(y)
        G = (W3 @ W2 @ W1 - np.eye(10)) @ C
        return -np.concatenate([((W3 @ W2).T @ G).ravel(), (W3.T @ G @ W1.T).ravel(),
                                (G @ (W2 @ W1).T).ravel()])

    def event(_t, y):
        W1, W2, W3 = split(y)
        return 0.5 * float(np.sum((X - W3 @ W2 @ W1 @ X) ** 2)) - ftol

    event.terminal = True
    sol = solve_ivp(rhs, (0.0, T), np.concatenate([f.ravel() for f in fs]), method="DOP853",
                    rtol=1e-12, atol=1e-30, events=event)
    return float(sol.t_events[0][0]) if sol.t_events[0].size else None


def precision() -> None:
    X, U, Lstar = _section7()
    W0 = _family(U, 1e-7)
    t0 = time.process_time()
    t_ref = _layer_reference(X, W0, Lstar + 1e-6, 1e5)
    c_ref = time.process_time() - t0
    t0 = time.process_time()
    r = manifold_flow(X, None, W0, 3, 1e5, rtol=1e-8, ftol=Lstar + 1e-6)
    c_mf = time.process_time() - t0
    show("family B, eta = 1e-7, N = 3: t to L* + 1e-6, DOP853 layers (rtol 1e-12)",
           f"{t_ref} ({c_ref:.0f} s CPU)")
    show("family B, eta = 1e-7, N = 3: manifold_flow rtol 1e-8",
           f"{r.status} at t = {r.t_final:.6g} ({c_mf:.0f} s CPU, {r.nsteps} steps); "
           f"relative difference {abs(r.t_final - t_ref) / t_ref:.2%}",
           "within 50%, no collapse",
           r.status == "converged" and abs(r.t_final - t_ref) <= 0.5 * t_ref)
    W0 = _family(U, 0.0)
    t0 = time.process_time()
    grid = np.linspace(0.0, 1e5, 201)
    a = manifold_flow(X, None, W0, 3, 1e5, rtol=1e-8, ftol=Lstar + 1e-6, t_eval=grid,
                      record={"det": lambda t, p: float(np.linalg.det(
                          U[:, :2].T @ ((p.u * p.s) @ p.vt) @ U[:, :2]))})
    show("family A, N = 3, t_end = 1e5: manifold_flow rtol 1e-8",
           f"{a.status} at t = {a.t_final:.6g} ({time.process_time() - t0:.0f} s CPU), "
           f"max det(U_2^T W U_2) = {np.max(a.records['det']):.3e}; {a.message}",
           "runs to t_end, never converged", a.status == "completed")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="also the long precision runs")
    add_json_argument(ap)
    args = ap.parse_args()
    print(machine())
    speed()
    if args.full:
        precision()
    write_json(args.json)


if __name__ == "__main__":
    main()
