"""Deep matrix completion: the implicit low-rank bias of depth, at the cost of one layer.

A rank-3 matrix M (m = n = 30, singular values 1, 0.7, 0.4) is observed on 30% of its entries.
Deep linear networks W = W_N ... W_1 of full width are trained by gradient flow on the
observed squared error from a small balanced initialization (every singular value of W(0) equal
to alpha = 1e-3). By Corollary 8 (whose chain-rule argument holds for any loss of the product)
W(t) is the Riemannian gradient flow of the loss on M_k, k = min(m, n) = 30, for the metric of
depth N: ``riemannian_flow(matrix_completion_problem(...), W0, t_end)`` integrates it with a
state of O((m + n) k) whatever N. For every depth N in 1..8 and 100 the example prints

* the relative recovery error on the unobserved entries, ||P_unobs(W - M)|| / ||P_unobs(M)||,
* the effective rank exp(entropy of s / sum(s)) of W (Roy and Vetterli 2007),
* the run time of riemannian_flow and of factor_flow (the N layers, widths 30) on [0, t_end]
  (depth 100: the layer-wise flow only on a short initial interval, stated), and the relative
  difference of their final products (Corollary 8),

and plots, over time, the recovery error, the effective rank and the singular values of W(t)
for depths 1, 2, 3 and 8: depth makes them appear one at a time (incremental learning).

Run:  .venv/bin/python examples/deep_matrix_completion.py [--quick] [--out FILE]

``--quick`` (or the environment variable LINRANK_EXAMPLES_QUICK=1, set by the test suite) runs a
10 x 10 instance, depths 1, 2, 20, t_end = 40, and writes its figure to a temporary file unless
--out is given. The full run writes docs/deep_matrix_completion.png.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import tempfile
import time

import numpy as np

from linrank import (
    DeepLinearFixedRank,
    balanced_factors,
    factor_flow,
    matrix_completion_problem,
    riemannian_flow,
)

ROOT = pathlib.Path(__file__).resolve().parent.parent


def effective_rank(s: np.ndarray) -> np.ndarray:
    """exp(-sum p log p), p = s / sum(s), row-wise."""
    p = s / s.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.sum(np.where(p > 0, p * np.log(p), 0.0), axis=-1)
    return np.exp(h)


def instance(m: int, r: int, frac: float, seed: int):
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((m, r)))[0]
    V = np.linalg.qr(rng.standard_normal((m, r)))[0]
    M = (U * np.array([1.0, 0.7, 0.4][:r])) @ V.T
    mask = rng.random((m, m)) < frac
    Q1 = np.linalg.qr(rng.standard_normal((m, m)))[0]
    Q2 = np.linalg.qr(rng.standard_normal((m, m)))[0]
    return M, mask, Q1, Q2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small instance (used by the tests)")
    ap.add_argument("--out", help="where to write the figure")
    ap.add_argument("--alpha", type=float, help="initial singular values (default 1e-3)")
    ap.add_argument("--frac", type=float, help="fraction of observed entries (default 0.3)")
    ap.add_argument("--t-end", type=float, help="final time (default 300)")
    args = ap.parse_args()
    quick = args.quick or os.environ.get("LINRANK_EXAMPLES_QUICK") == "1"
    m, r, frac, alpha = (10, 2, 0.5, 1e-3) if quick else (30, 3, 0.3, 1e-3)
    depths = [1, 2, 20] if quick else [1, 2, 3, 4, 5, 6, 7, 8, 100]
    t_end = 40.0 if quick else 300.0
    alpha = args.alpha if args.alpha is not None else alpha
    frac = args.frac if args.frac is not None else frac
    t_end = args.t_end if args.t_end is not None else t_end
    t_short = 0.05 * t_end  # the layer-wise flow at depth 100 (too slow for the full interval)
    if args.out:
        out = pathlib.Path(args.out)
    elif quick:
        out = pathlib.Path(tempfile.mkdtemp()) / "deep_matrix_completion.png"
    else:
        out = ROOT / "docs" / "deep_matrix_completion.png"
    M, mask, Q1, Q2 = instance(m, r, frac, seed=0)
    rows, cols = np.nonzero(mask)
    unobs = ~mask
    W0 = alpha * Q1 @ Q2.T  # every singular value alpha
    t_eval = np.concatenate(([0.0], np.geomspace(1e-2, t_end, 120 if not quick else 40)))
    tol = {"rtol": 1e-8, "atol": 1e-14}
    print(f"{m} x {m} matrix of rank {r}, {rows.size} of {m * m} entries observed "
          f"({100 * rows.size / m / m:.0f}%), W(0) = {alpha:g} x orthogonal, k = {m}, "
          f"t_end = {t_end:g}, rtol {tol['rtol']:g}\n")
    print("manifold: riemannian_flow's time on [0, t_end]; layers: factor_flow's; ratio: "
          "layers / manifold on the same interval\n(> 1: the manifold flow is faster, < 1: the "
          "layer-wise flow is faster; times from one run, they vary with the load)\n")
    print(f"{'depth':>5} {'recovery err':>12} {'eff. rank':>9} {'loss':>9} {'manifold':>9} "
          f"{'layers':>18} {'ratio':>6} {'|W_l - W_m|/|W|':>16}")
    curves = {}
    for N in depths:
        problem = matrix_completion_problem(DeepLinearFixedRank(m, m, m, N), rows, cols,
                                            M[rows, cols])
        t0 = time.perf_counter()
        rm = riemannian_flow(problem, W0, t_end, t_eval=t_eval, trajectory=True, **tol)
        tm = time.perf_counter() - t0
        errs = np.array([np.linalg.norm((((p.u * p.s) @ p.vt) - M)[unobs]) for p in rm.trajectory])
        errs /= np.linalg.norm(M[unobs])
        curves[N] = (rm.t, errs, effective_rank(rm.singular_values), rm.singular_values)
        factors = balanced_factors(W0, (m,) * (N + 1), seed=N)
        t_layer = t_end if N <= 8 else t_short
        t0 = time.perf_counter()
        rl = factor_flow(problem, None, factors, t_layer, **tol)
        tl = time.perf_counter() - t0
        if t_layer < t_end:  # compare on the same interval
            t0 = time.perf_counter()
            rs = riemannian_flow(problem, W0, t_layer, **tol)
            tms = time.perf_counter() - t0
            diff = np.linalg.norm(rl.W - rs.W) / np.linalg.norm(rs.W)
            layer_txt = f"{tl:.2f} s (t<={t_layer:g})"
            ratio = tl / tms
        else:
            diff = np.linalg.norm(rl.W - rm.W) / np.linalg.norm(rm.W)
            layer_txt = f"{tl:.2f} s"
            ratio = tl / tm
        status = "" if rm.status == "completed" else f"  [{rm.status}: {rm.message}]"
        print(f"{N:>5} {errs[-1]:>12.3e} {curves[N][2][-1]:>9.2f} {rm.loss[-1]:>9.2e} "
              f"{tm:>8.2f}s {layer_txt:>18} {ratio:>6.2f} {diff:>16.2e}{status}")
    plot(curves, [N for N in (1, 2, 3, 8) if N in curves] or depths[:3], out, m, r)
    print(f"\nfigure: {out}")


def plot(curves, sv_depths, out: pathlib.Path, m: int, r: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # small multiples in a grid: recovery and effective rank on top, the singular values of
    # W(t) by depth below (at most three panels a row); legends outside the data
    ncol = max(2, min(3, len(sv_depths)))
    nsv = -(-len(sv_depths) // ncol)
    fig = plt.figure(figsize=(4.2 * ncol, 3.6 * (1 + nsv)), layout="constrained")
    grid = fig.add_gridspec(1 + nsv, ncol)
    top = fig.add_subfigure(grid[0, :])
    ax_err, ax_rank = top.subplots(1, 2)
    cmap = plt.get_cmap("viridis")
    for i, (N, (t, err, er, _)) in enumerate(curves.items()):
        c = cmap(i / max(len(curves) - 1, 1))
        ax_err.semilogx(t[1:], err[1:], color=c, label=f"N = {N}")
        ax_rank.semilogx(t[1:], er[1:], color=c)
    ax_err.set(xlabel="t", ylabel="error on unobserved entries (relative)", title="recovery")
    ax_rank.set(xlabel="t", ylabel="effective rank", title=f"effective rank (true rank {r})")
    top.legend(*ax_err.get_legend_handles_labels(), loc="outside right upper", fontsize=8,
               title="depth", title_fontsize=8, frameon=False)
    for j, N in enumerate(sv_depths):
        ax = fig.add_subplot(grid[1 + j // ncol, j % ncol])
        t, _, _, sv = curves[N]
        ax.loglog(t[1:], sv[1:, : min(6, m)])
        ax.set(xlabel="t", ylabel="singular values of W(t)", title=f"depth {N}")
        ax.set_ylim(1e-4, 3)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
