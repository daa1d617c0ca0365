"""Benchmark the exact Riemannian Hessian (issue 3).

Run:  OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_hessian.py [--quick]

numpy and scipy each bundle their own OpenBLAS with its own thread pool; alternating calls into
both (ARPACK inside eigsh, scipy.linalg) while other processes load the machine made small calls
up to 100x slower here (a 2000 x 10 QR: 0.1 ms alone, 14-120 ms contended). The figures in
BENCHMARKS.md are given with OPENBLAS_NUM_THREADS=1 and with the default threads.

1. Hessian-vector product against a Riemannian gradient at (m, n, k) = (2000, 2000, 10), dense
   Euclidean gradient G and Hessian-vector product H given (target: <= 5x), depths 1, 3, 1000;
   also with G, H as LinearOperators of the autoencoder (never formed).
2. The smallest Hessian eigenvalue at a saddle of the autoencoder, d = 2000, k = 10, by Lanczos
   (hessian_spectrum, which="smallest"), against the closed form (target: <= 10 s).
3. TrustRegions vs SteepestDescent vs ConjugateGradient on the autoencoder (d = 40, k = 4),
   depths 1 to 4, from the same random start, each to the same accuracy: the first iterate with
   Riemannian gradient norm <= 1e-6 and <= 1e-8 (pymanopt's min_gradient_norm); reports time,
   iterations, the final excess loss f - f* and what stopped the run (SteepestDescent's line
   search may stop on its minimal step size first).
4. TrustRegions from many random starts, autoencoder and regression (Y != X), d = 40, k = 4,
   depths 1 to 4: iterations to ||grad|| <= 1e-9 within 30, for the retractions "projection"
   (default) and "polar" and Delta_bar = typical_dist = sqrt(dim) (the default), 1 and 4.
   (--section 4 runs only this section.)
"""

# bench-env: OPENBLAS_NUM_THREADS=1

from __future__ import annotations

import argparse
import platform
import time
import timeit

import benchlib  # benchmarks/benchlib.py, next to this script
import numpy as np
import pymanopt

from linrank import (
    DeepLinearFixedRank,
    autograd_problem,
    least_squares_problem,
    rank_constrained_minimizer,
)
from linrank.critical import AutoencoderProblem, closed_form_spectrum
from linrank.diagnostics import hessian_spectrum
from linrank.manifold import FixedRankPoint


def median_time(fn, number: int, repeat: int) -> float:
    return float(np.median(timeit.repeat(fn, number=number, repeat=repeat)) / number)


def bench_hvp(repeat: int) -> None:
    m = n = 2000
    k = 10
    rng = np.random.default_rng(0)
    G = rng.standard_normal((m, n))
    H = rng.standard_normal((m, n))
    print(f"1. Hessian-vector product vs Riemannian gradient, (m, n, k) = ({m}, {n}, {k})")
    for depth in (1, 3, 1000):
        man = DeepLinearFixedRank(m, n, k, depth)
        np.random.seed(depth)
        x = man.random_point()
        xi = man.random_tangent_vector(x)
        man.euclidean_to_riemannian_hessian(x, G, H, xi)  # warm the weight cache
        tg = median_time(lambda man=man, x=x: man.euclidean_to_riemannian_gradient(x, G), 5, repeat)
        th = median_time(
            lambda man=man, x=x, xi=xi: man.euclidean_to_riemannian_hessian(x, G, H, xi), 5, repeat
        )
        print(
            f"   depth {depth:>4}, dense G, H:  gradient {tg * 1e3:7.2f} ms   Hessian-vector "
            f"{th * 1e3:7.2f} ms   ratio {th / tg:5.2f}  (target <= 5)"
        )
        benchlib.figure(f"Hessian-vector / Riemannian gradient, ({m}, {n}, {k}) dense, depth "
                        f"{depth}", f"{th / tg:.2f} ({th * 1e3:.2f} ms vs {tg * 1e3:.2f} ms)",
                        "<= 5", th / tg <= 5)
    # autoencoder operators: G = (W - I) C, H = xi C (products with C = X X^T only)
    X = rng.standard_normal((m, m)) / np.sqrt(m)
    for depth in (1, 3):
        man = DeepLinearFixedRank(m, m, k, depth)
        ae = AutoencoderProblem(man, X)
        np.random.seed(depth)
        x = man.random_point()
        xi = man.random_tangent_vector(x)
        ae.riemannian_hessian(x, xi)
        tg = median_time(lambda ae=ae, x=x: ae.riemannian_gradient(x), 5, repeat)
        th = median_time(lambda ae=ae, x=x, xi=xi: ae.riemannian_hessian(x, xi), 5, repeat)
        print(
            f"   depth {depth:>4}, autoencoder operators: gradient {tg * 1e3:7.2f} ms   "
            f"Hessian-vector {th * 1e3:7.2f} ms   ratio {th / tg:5.2f}"
        )


def bench_lanczos(d: int, k: int) -> None:
    print(f"2. smallest Hessian eigenvalue at a saddle, autoencoder d = {d}, k = {k}, Lanczos")
    rng = np.random.default_rng(1)
    X = rng.standard_normal((d, 2 * d)) / np.sqrt(2 * d)
    man = DeepLinearFixedRank(d, d, k, 2)
    ae = AutoencoderProblem(man, X)
    lam, U = np.linalg.eigh(ae.C)
    lam, U = lam[::-1], U[:, ::-1]
    J = list(
        range(1, k + 1)
    )  # drop the top eigenvector: index k saddle, most negative pair (1, k+1)
    uJ = U[:, J].copy()
    pt = FixedRankPoint(uJ, np.ones(k), uJ.T.copy())
    pred = closed_form_spectrum(lam, J, 2)
    t0 = time.perf_counter()
    spec = hessian_spectrum(man, ae, pt, which="smallest", n_eigs=1, tol=1e-10)
    t = time.perf_counter() - t0
    err = abs(spec.eigenvalues[0] - pred[0]) / abs(pred[0])
    print(
        f"   depth 2, dim {spec.dim}: lambda_min = {spec.eigenvalues[0]:.12f} (closed form "
        f"{pred[0]:.12f}, rel. error {err:.1e}) in {t:.2f} s, {spec.n_products} Hessian-vector "
        f"products (target <= 10 s)"
    )
    benchlib.figure(f"smallest Hessian eigenvalue at a saddle, d = {d}, k = {k}, Lanczos",
                    f"{t:.2f} s ({spec.n_products} products, rel. error {err:.1e})", "<= 10 s",
                    t <= 10)


def bench_optimizers(depths, repeat: int) -> None:
    d, k = 40, 4
    print(f"3. optimizers on the autoencoder, d = {d}, k = {k}, stop at ||grad||_g <= tol")
    rs = np.random.RandomState(0)
    X = rs.standard_normal((d, 2 * d)) / np.sqrt(2 * d)
    C = X @ X.T
    lam = np.sort(np.linalg.eigvalsh(C))[::-1]
    fstar = 0.5 * np.sum(lam[k:])
    print(
        f"   {'depth':>5} {'optimizer':<18} {'tol':>6} {'time [s]':>9} {'iters':>6} "
        f"{'f - f*':>9}  stopped by"
    )
    for depth in depths:
        man = DeepLinearFixedRank(d, d, k, depth)
        problem = least_squares_problem(man, X)
        np.random.seed(depth)
        x0 = man.random_point()
        for tol in (1e-6, 1e-8):
            for name, Opt in (
                ("TrustRegions", pymanopt.optimizers.TrustRegions),
                ("SteepestDescent", pymanopt.optimizers.SteepestDescent),
                ("ConjugateGradient", pymanopt.optimizers.ConjugateGradient),
            ):
                times = []
                for _ in range(repeat):
                    opt = Opt(
                        verbosity=0, max_iterations=100000, min_gradient_norm=tol, max_time=120
                    )
                    t0 = time.perf_counter()
                    res = opt.run(problem, initial_point=x0)
                    times.append(time.perf_counter() - t0)
                why = res.stopping_criterion.split(" - ")[-1].split(" reached")[0]
                print(
                    f"   {depth:>5} {name:<18} {tol:6.0e} {np.median(times):9.3f} "
                    f"{res.iterations:>6} {res.cost - fstar:9.1e}  {why}"
                )
                if tol == 1e-8:
                    benchlib.figure(f"{name}, autoencoder d = {d}, k = {k}, depth {depth}, "
                                    f"||grad|| <= 1e-8", f"{np.median(times):.3f} s, "
                                    f"{res.iterations} it, f - f* = {res.cost - fstar:.0e}")


def bench_trust_regions_starts(n_starts: int) -> None:
    d, k, ns = 40, 4, 80
    print(
        f"4. TrustRegions from {n_starts} random starts (np.random.seed 0..{n_starts - 1}), d = {d}, "
        f"k = {k}, max 30 iterations, stop at ||grad||_g <= 1e-9; per variant: runs not converged "
        f"in 30 iterations (or not at f*) for AE/RE depth 1..4, total, median/max iterations, "
        f"median/max time"
    )
    cases = [(task, depth) for task in ("autoencoder", "regression") for depth in (1, 2, 3, 4)]
    data = {}
    for task, depth in cases:
        X = np.random.RandomState(depth).standard_normal((d, ns)) / np.sqrt(ns)
        if task == "autoencoder":
            Y = X
        else:
            A = np.random.RandomState(100 + depth).standard_normal((d, d)) / np.sqrt(d)
            Y = A @ X + 0.1 * np.random.RandomState(7).standard_normal((d, ns))
        data[task, depth] = (X, Y, rank_constrained_minimizer(X, Y, k)[1])

    def make(task, depth, retraction, how):
        X, Y, _ = data[task, depth]
        man = DeepLinearFixedRank(d, d, k, depth, retraction=retraction)
        if how == "autograd":
            import autograd.numpy as anp

            return autograd_problem(man, lambda W: 0.5 * anp.sum((Y - W @ X) ** 2))
        return least_squares_problem(man, X, Y)

    variants = [
        ("projection", None, "ambient"),
        ("projection", 1.0, "ambient"),
        ("projection", 4.0, "ambient"),
        ("polar", None, "ambient"),
        ("polar", 4.0, "ambient"),
        ("polar", 4.0, "autograd"),
    ]
    print(
        f"   {'retraction':<10} {'Delta_bar':>9} {'problem':<8} {'AE 1 2 3 4 | RE 1 2 3 4':<24} "
        f"{'total':>7} {'med it':>6} {'max it':>6} {'med t [s]':>9} {'max t [s]':>9}"
    )
    for retraction, dbar, how in variants:
        fails, its, times = [], [], []
        for task, depth in cases:
            problem = make(task, depth, retraction, how)
            fstar = data[task, depth][2]
            nf = 0
            for seed in range(n_starts):
                np.random.seed(seed)
                opt = pymanopt.optimizers.TrustRegions(
                    verbosity=0, max_iterations=30, min_gradient_norm=1e-9
                )
                t0 = time.perf_counter()
                res = opt.run(problem, Delta_bar=dbar) if dbar else opt.run(problem)
                times.append(time.perf_counter() - t0)
                ok = "grad norm" in res.stopping_criterion and res.cost - fstar <= 1e-9 * fstar
                its.append(res.iterations if ok else 31)
                nf += not ok
            fails.append(nf)
        label = f"{dbar:g}" if dbar else "sqrt(dim)"
        per = " ".join(map(str, fails[:4])) + " | " + " ".join(map(str, fails[4:]))
        print(
            f"   {retraction:<10} {label:>9} {how:<8} {per:<24} {sum(fails):>3}/{len(its):<3} "
            f"{np.median(its):6.1f} {max(its):>6} {np.median(times):9.3f} {max(times):9.3f}"
        )
        benchlib.figure(f"TrustRegions, {retraction} retraction, Delta_bar {label}, {how}: runs "
                        f"needing > 30 iterations", f"{sum(fails)}/{len(its)} (median "
                        f"{np.median(its):.0f} it, {np.median(times):.3f} s)",
                        "0" if (retraction, dbar) == ("polar", 4.0) else "",
                        sum(fails) == 0 if (retraction, dbar) == ("polar", 4.0) else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument(
        "--section", type=int, choices=(1, 2, 3, 4), default=None, help="run only this section"
    )
    parser.add_argument(
        "--starts", type=int, default=None, help="random starts per case in section 4 (20)"
    )
    benchlib.add_json_argument(parser)
    args = parser.parse_args()
    repeat = 3 if args.quick else 7
    import os

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f}, python {platform.python_version()}, numpy {np.__version__}, "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}"
    )
    run = {args.section} if args.section else {1, 2, 3, 4}
    if 1 in run:
        bench_hvp(repeat)
    if 2 in run:
        bench_lanczos(2000, 10)
    if 3 in run:
        bench_optimizers([1, 2, 3, 4], 1 if args.quick else 3)
    if 4 in run:
        bench_trust_regions_starts(args.starts or (5 if args.quick else 20))
    benchlib.write_json(args.json)


if __name__ == "__main__":
    main()
