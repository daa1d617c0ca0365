"""Implicit regularization of depth and of small initialization in deep matrix completion.

A planted 80 x 80 matrix of rank 4 is observed on a grid of counts of entries (1000 to 3000 of
6400, chosen uniformly at random without repetition; nested, so a larger count observes every
entry of a smaller one; 624 degrees of freedom: at 700 observations the flows take minutes and
their errors exceed 1, so the grid starts at 1000).
Its singular values are (1, 0.8, 0.6, 0.4) * 80^2 / count, so that the top singular values of
the observed part, and with them the flow's time scale, are about (1, 0.8, 0.6, 0.4) for every
count. For each count the example trains

* full-width deep linear networks W = W_N ... W_1 (widths 80) of depth N = 1, 2, 3, 4 by the
  layer-wise gradient flow (``factor_flow``) from balanced starts W(0) = alpha Q (Q Haar
  orthogonal) at two init scales alpha, until the training loss is 1e-8 of its value at W = 0
  (``ftol``) or t = 3000;
* the rank-adaptive flow (``adaptive_rank_flow``, depths 2-4 at the smaller alpha): the
  small-initialization limit at the cost of rank k;
* the minimum nuclear norm completion (``linrank.baselines.nuclear_norm_completion``, cvxpy + SCS:
  ``pip install 'linrank[baselines]'``; skipped with a note if cvxpy is missing),

and prints the relative error on the unobserved entries and the effective rank of each result.
The figure (docs/implicit_regularization.png) shows the error on unobserved entries and the
effective rank against the number of observations, and, at one count, the error over time and
the singular values over time of the full-width flow and of the adaptive one at depth 3.

Run:  .venv/bin/python examples/implicit_regularization.py [--quick] [--out FILE]

``--quick`` (or LINRANK_EXAMPLES_QUICK=1, set by the test suite) runs a 20 x 20 rank-2 instance
with two counts and depths 1-3, and writes its figure to a temporary file unless --out is given.
The full run takes about 2 minutes of CPU time (docs/guide/flows.rst).
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
    adaptive_rank_flow,
    balanced_factors,
    effective_rank,
    factor_flow,
    matrix_completion_problem,
    product,
    unobserved_error,
)

ROOT = pathlib.Path(__file__).resolve().parent.parent
REL_FTOL = 1e-8  # stop when the training loss is this fraction of its value at W = 0


def instance(d: int, r: int, counts: list[int], seed: int = 0):
    """U, V (Haar, d x r), the base singular values and nested observed sets, one per count."""
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((d, r)))[0]
    V = np.linalg.qr(rng.standard_normal((d, r)))[0]
    base = np.linspace(1.0, 0.4, r)
    order = rng.permutation(d * d)
    sets = {c: np.divmod(np.sort(order[:c]), d) for c in counts}
    Q = np.linalg.qr(rng.standard_normal((d, d)))[0]
    return U, V, base, sets, Q


def full_width(make, d: int, N: int, alpha: float, Q: np.ndarray, f0: float, t_max: float,
               record: dict | None = None, t_eval: np.ndarray | None = None):
    """The layer-wise flow from alpha Q until the loss is REL_FTOL f0 (``ftol``) or t_max."""
    problem = make(DeepLinearFixedRank(d, d, d, N))
    factors = balanced_factors(alpha * Q, [d] * (N + 1), seed=N)
    return factor_flow(problem, None, factors, t_end=t_max, ftol=REL_FTOL * f0, record=record,
                       t_eval=t_eval)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small instance (used by the tests)")
    ap.add_argument("--out", help="where to write the figure")
    args = ap.parse_args()
    quick = args.quick or os.environ.get("LINRANK_EXAMPLES_QUICK") == "1"
    if quick:
        d, r, counts, depths, alphas, t_max = 20, 2, [120, 200], [1, 2, 3], (1e-2, 1e-4), 400.0
    else:
        d, r, counts, depths, alphas, t_max = (80, 4, [1000, 1400, 2000, 3000],
                                               [1, 2, 3, 4], (1e-2, 1e-5), 3000.0)
    focus = counts[1]  # the count whose time courses are plotted
    folder = pathlib.Path(tempfile.mkdtemp()) if quick else ROOT / "docs"  # quick: no repo file
    out = pathlib.Path(args.out) if args.out else folder / "implicit_regularization.png"
    U, V, base, sets, Q = instance(d, r, counts)
    dof = r * (2 * d - r)
    print(f"{d} x {d} matrix of rank {r} ({dof} degrees of freedom), observed counts {counts}; "
          f"full width {d}, W(0) = alpha Q, alpha in {alphas}; stop at loss <= {REL_FTOL:g} "
          f"f(0) or t = {t_max:g}\n")
    try:
        from linrank.baselines import nuclear_norm_completion
    except ImportError:  # pragma: no cover - the extra is missing
        nuclear_norm_completion = None
    rows_out, curves, nuclear = [], {}, {}
    t_eval = np.concatenate(([0.0], np.geomspace(1e-2, t_max, 150 if not quick else 40)))
    print(f"{'count':>5} {'model':>22} {'unobs. err':>10} {'eff. rank':>9} {'loss/f(0)':>9} "
          f"{'t':>7} {'seconds':>8}")
    for count in counts:
        rows, cols = sets[count]
        M = (U * (base * d * d / count)) @ V.T
        vals = M[rows, cols]
        f0 = 0.5 * float(vals @ vals)

        def make(man, rows=rows, cols=cols, vals=vals):
            return matrix_completion_problem(man, rows, cols, vals)

        def report(name, W, t, sec, reached=True, M=M, rows=rows, cols=cols, vals=vals,
                   count=count, f0=f0):
            err = unobserved_error(W, M, rows, cols)
            er = effective_rank(W)
            loss = 0.5 * float(np.sum((W[rows, cols] - vals) ** 2)) / f0
            rows_out.append((count, name, err, er))
            note = "" if reached else "  (loss threshold not reached by t_max)"
            print(f"{count:>5} {name:>22} {err:>10.3e} {er:>9.2f} {loss:>9.1e} {t:>7.4g} "
                  f"{sec:>8.2f}{note}", flush=True)

        def errors(t, W, M=M, rows=rows, cols=cols):  # W: factors or a point
            return unobserved_error(W if isinstance(W, tuple) else product(W), M, rows, cols)

        def svals(t, W):
            return np.linalg.svd(product(W), compute_uv=False)

        for alpha in alphas:
            for N in depths:
                focused = count == focus and alpha == alphas[-1]
                t0 = time.perf_counter()
                res = full_width(make, d, N, alpha, Q, f0, t_max,
                                 {"err": errors, "sv": svals} if focused else None,
                                 t_eval if focused else None)
                report(f"N={N} alpha={alpha:g}", res.W, res.t_final, time.perf_counter() - t0,
                       res.status == "converged")
                if focused:
                    curves[("full", N)] = (res.t, res.records["sv"], res.records["err"])
        for N in [n for n in depths if n >= 2]:
            t0 = time.perf_counter()
            ra = adaptive_rank_flow(make, shape=(d, d), depth=N, t_end=t_max,
                                    init_scale=alphas[-1], ftol=REL_FTOL * f0,
                                    record={"err": errors} if count == focus else None)
            sec = time.perf_counter() - t0
            report(f"adaptive N={N} k={ra.point.s.size}", ra.W, ra.t_final, sec,
                   ra.status == "converged")
            if count == focus:
                curves[("adaptive", N)] = (ra.t, ra.singular_values, ra.records["err"])
        if nuclear_norm_completion is not None:
            t0 = time.perf_counter()
            nn = nuclear_norm_completion((d, d), rows, cols, vals, eps=1e-6)
            report(f"nuclear norm ({nn.status})", nn.X, float("nan"), time.perf_counter() - t0)
            nuclear[count] = rows_out[-1][2:]
    if nuclear_norm_completion is None:
        print("\nnuclear-norm baseline skipped: cvxpy is not installed "
              "(pip install 'linrank[baselines]')")
    plot(rows_out, curves, counts, depths, alphas, focus, dof, r, out)
    print(f"\nfigure: {out}")


def plot(rows_out, curves, counts, depths, alphas, focus, dof, r, out: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(16.5, 4.6))
    cmap = plt.get_cmap("viridis")
    color = {N: cmap(i / max(len(depths) - 1, 1)) for i, N in enumerate(depths)}

    def series(name):
        pts = [(c, e, er) for c, n, e, er in rows_out if n == name or n.startswith(name + " ")]
        return np.array(pts).T if pts else None

    for ax, col, ylab in ((axes[0], 1, "error on unobserved entries (relative)"),
                          (axes[1], 2, "effective rank")):
        for alpha, ls in zip(alphas, ("--", "-")):
            for N in depths:
                s = series(f"N={N} alpha={alpha:g}")
                ax.plot(s[0], s[col], ls, color=color[N], marker=".",
                        label=f"N = {N}, alpha = {alpha:g}")
        for N in [n for n in depths if n >= 2]:
            pts = np.array([(c, e, er) for c, n, e, er in rows_out
                            if n.startswith(f"adaptive N={N} ")]).T
            ax.plot(pts[0], pts[col], "x", color=color[N], ms=7, label=f"adaptive N = {N}")
        s = series("nuclear norm")
        if s is not None:
            ax.plot(s[0], s[col], "k-s", ms=4, label="min nuclear norm")
        ax.axvline(dof, color="0.6", lw=0.8)
        ax.set(xlabel="observed entries", ylabel=ylab)
    axes[0].set_yscale("log")
    axes[0].set_title("recovery (grey: degrees of freedom)")
    axes[1].set_title(f"effective rank (true rank {r})")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=6, fontsize=7)
    for N in depths:
        if ("full", N) in curves:
            t, _, err = curves[("full", N)]
            axes[2].semilogx(t[1:], err[1:], color=color[N], label=f"full width N = {N}")
        if ("adaptive", N) in curves:
            t, _, err = curves[("adaptive", N)]
            axes[2].semilogx(t[1:], err[1:], ":", color=color[N], lw=2,
                             label=f"adaptive N = {N}")
    axes[2].set(xlabel="t", ylabel="error on unobserved entries",
                title=f"{focus} observed, alpha = {alphas[-1]:g}")
    axes[2].legend(fontsize=6)
    N3 = 3 if ("full", 3) in curves else depths[-1]
    t, sv, _ = curves[("full", N3)]
    axes[3].loglog(t[1:], sv[1:, : r + 2], color="C0", lw=1)
    if ("adaptive", N3) in curves:
        t, sv, _ = curves[("adaptive", N3)]
        svp = np.where(sv > 0, sv, np.nan)
        axes[3].loglog(t[1:], svp[1:], ":", color="C3", lw=2)
    axes[3].set(xlabel="t", ylabel="singular values of W(t)",
                title=f"N = {N3}: full width (blue), adaptive (red)")
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
