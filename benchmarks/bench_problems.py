"""Benchmark of matrix_completion_problem at scale (issue 11). Prints a Markdown report.

Usage: .venv/bin/python benchmarks/bench_problems.py [--m 20000] [--k 10] [--frac 0.01] [--repeats 7]

m = n = 20000, k = 10, 1% observed (4e6 entries), depth 3. Compared, interleaved in one process
(medians of ``repeats`` rounds, the cache cleared before each evaluation):

* floor A: one blocked gather of the observed values W_ij = (u_i * s) . v_j (np.take of the rows
  of u * s and of v, einsum over k, 65536 entries a block): one pass over the observations, the
  least any evaluation of f needs;
* floor B: the same as one unblocked vectorized einsum over the observed rows of u * s and
  columns of vt (the naive one-pass expression);
* cost + Euclidean gradient (``loss_and_gradient``: residual and the csr matrix around it);
* cost + Riemannian gradient (what an optimizer or a flow step needs: also G v and G^T u);
* one Riemannian Hessian-vector product (the residual cached, as inside TrustRegions).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import benchlib  # benchmarks/benchlib.py, next to this script
import numpy as np

from linrank import DeepLinearFixedRank, matrix_completion_problem


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m", type=int, default=20000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--frac", type=float, default=0.01)
    ap.add_argument("--repeats", type=int, default=7)
    benchlib.add_json_argument(ap)
    a = ap.parse_args()
    m = n = a.m
    k = a.k
    p = int(round(a.frac * m * n))
    rng = np.random.default_rng(0)
    lin = rng.choice(m * n, size=p, replace=False)
    rows, cols = np.divmod(lin, n)
    vals = rng.standard_normal(p)
    man = DeepLinearFixedRank(m, n, k, 3)
    t0 = time.perf_counter()
    P = matrix_completion_problem(man, rows, cols, vals)
    t_build = time.perf_counter() - t0
    np.random.seed(1)
    x = man.random_point()
    xi = man.random_tangent_vector(x)
    R, C = P.rows, P.cols  # the stored (sorted, int32) indices

    def floor_a():
        return P.observed(x)

    def floor_b():
        return np.einsum("ij,ij->i", (x.u * x.s)[R], x.vt.T[C])

    def cost_grad():
        P._cache = None
        return P.loss_and_gradient(x)

    def cost_rgrad():
        P._cache = None
        return P.cost(x), P.riemannian_gradient(x)

    P.cost(x)

    def hess():
        return P.riemannian_hessian(x, xi)

    cases = {"floor A": floor_a, "floor B": floor_b, "cost + Euclidean gradient": cost_grad,
             "cost + Riemannian gradient": cost_rgrad}
    times: dict[str, list[float]] = {key: [] for key in cases}
    for _ in range(a.repeats):
        for key, fn in cases.items():
            t = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t)
    P.cost(x)
    th = []
    for _ in range(max(3, a.repeats // 2)):
        t = time.perf_counter()
        hess()
        th.append(time.perf_counter() - t)
    med = {key: float(np.median(v)) for key, v in times.items()}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print("## Problems: matrix completion at scale\n")
    print(f"Command: `.venv/bin/python benchmarks/bench_problems.py --m {m} --k {k} --frac "
          f"{a.frac} --repeats {a.repeats}`. Machine: {platform.machine()}, {os.cpu_count()} cores "
          f"(load average {load:.1f} at the end), Python {platform.python_version()}, numpy "
          f"{np.__version__}. m = n = {m}, k = {k}, {p} observed entries ({100 * a.frac:g}%), "
          f"depth 3; medians of {a.repeats} interleaved rounds.\n")
    print("| evaluation | time | / floor A | / floor B |\n|---|---:|---:|---:|")
    for key in cases:
        print(f"| {key} | {med[key]:.3f} s | {med[key] / med['floor A']:.2f} | "
              f"{med[key] / med['floor B']:.2f} |")
        benchlib.figure(f"completion m = n = {m}, k = {k}, {100 * a.frac:g}% observed: {key}",
                        f"{med[key]:.3f} s ({med[key] / med['floor A']:.2f}x floor A)")
    mh = float(np.median(th))
    print(f"| Riemannian Hessian-vector product (residual cached) | {mh:.3f} s | "
          f"{mh / med['floor A']:.2f} | {mh / med['floor B']:.2f} |")
    print(f"\nBuilding the problem (checks, duplicate test, sort into CSR order): {t_build:.2f} s.")
    benchlib.figure(f"completion m = n = {m}, k = {k}: Riemannian Hessian-vector product",
                    f"{mh:.3f} s ({mh / med['floor A']:.2f}x floor A)")
    benchlib.write_json(a.json)


if __name__ == "__main__":
    main()
