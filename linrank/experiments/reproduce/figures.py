"""Figures 1-5, drawn from :class:`linrank.experiments.reproduce.paper.RunRecord` lists (one seed).

Each function writes one PNG (matplotlib's Agg backend, 120 dpi) through ``out`` (an
:class:`linrank.experiments.shared.outputs.OutputDir`: atomic, owned files) and returns its name. Quantities
that decay are on logarithmic axes; the time axis ends shortly after the slowest run has reached
the plotted floor (the runs themselves go on to their stopping rule). Legends sit below their
panel, never over the curves (constrained layout makes room for them); panels of one quantity
by depth form a grid of at most three columns.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .limits import escape_rate_fit, special_norm_exact  # noqa: E402
from .paper import RunRecord  # noqa: E402

__all__ = ["figure1", "figure2", "figure3", "figure4", "figure5", "figure6", "all_figures"]

_DPI = 120
_FLOOR = 1e-9  # the x range ends where the curves reach this level (the stopping rule's)


def _tail(rec: RunRecord, y: np.ndarray, floor: float = _FLOOR) -> float:
    """The first time y(t) <= floor (or the last recorded time)."""
    hit = np.nonzero(y <= floor)[0]
    return float(rec.t[hit[0]] if hit.size else rec.t[-1])


def _xmax(pairs, floor: float = _FLOOR) -> float:
    return 1.1 * max(_tail(r, y, floor) for r, y in pairs)


def _legend_below(ax, ncol: int = 1, fontsize: float = 7.5, **kw) -> None:
    """The panel's legend under its x label, outside the data area."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=ncol, fontsize=fontsize,
                  frameon=False, **kw)


def _grid(n: int, width: float, height: float):
    """A figure with n panels in a grid of at most three columns (axes of shape (rows, cols))."""
    cols = min(3, max(1, n))
    rows = -(-max(1, n) // cols)
    return plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False,
                        layout="constrained")


def _positive(y: np.ndarray) -> np.ndarray:
    return np.where(y > 0, y, np.nan)


def _save(fig, out, name: str) -> str:
    try:
        out.write_with(name, lambda tmp: fig.savefig(tmp, dpi=_DPI, format="png"))
    finally:
        plt.close(fig)
    return name


def figure1(records: Sequence[RunRecord], out) -> str:
    """||W(t) - U_r U_r^T||_F for balanced starts, one panel per depth N, one curve per d."""
    recs = [r for r in records if r.spec.figure == 1]
    depths = sorted({r.spec.depth for r in recs})
    fig, axes = _grid(len(depths), 4.6, 4.6)
    for ax in axes.flat[len(depths):]:
        ax.set_axis_off()
    xmax = _xmax([(r, r.error) for r in recs])
    for ax, N in zip(axes.flat, depths):
        for r in sorted((r for r in recs if r.spec.depth == N), key=lambda r: r.spec.d):
            ax.semilogy(r.t, _positive(r.error), label=f"d={r.spec.d}, r={r.spec.rank}")
        ax.set_xlim(0, xmax)
        ax.set_ylim(bottom=1e-11)
        ax.set_title(f"N = {N}, balanced start")
        ax.set_xlabel("t")
        ax.set_ylabel(r"$\|W(t) - U_rU_r^T\|_F$")
        ax.grid(True, which="major", alpha=0.3)
        _legend_below(ax, ncol=2, fontsize=8)
    fig.suptitle("Figure 1: convergence to the global minimizer from the paper's balanced starts "
                 "(Theorem 31; most of these starts violate (47))")
    return _save(fig, out, "fig1.png")


def figure2(records: Sequence[RunRecord], out) -> str:
    """Top: ||W_2 - W_1^T|| (N = 2) and ||X - WX|| with the optimum (N > 2); bottom: the gaps."""
    recs = [r for r in records if r.spec.figure == 2]
    depths = sorted({r.spec.depth for r in recs})
    fig, axes = plt.subplots(2, len(depths), figsize=(4.6 * len(depths), 8.6), squeeze=False,
                             layout="constrained")
    gap = {id(r): np.abs(r.residual - r.optimum_residual) for r in recs}
    xmax = _xmax([(r, gap[id(r)]) for r in recs]
                 + [(r, r.w2_w1t) for r in recs if r.w2_w1t is not None])
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, N in enumerate(depths):
        top, bottom = axes[0, j], axes[1, j]
        rs = sorted((r for r in recs if r.spec.depth == N), key=lambda r: r.spec.d)
        for i, r in enumerate(rs):
            c = colors[i % len(colors)]
            lab = f"d={r.spec.d}, r={r.spec.rank}"
            if N == 2:
                top.semilogy(r.t, _positive(r.w2_w1t), color=c, label=lab)
            else:
                top.plot(r.t, r.residual, color=c, label=lab)
                top.axhline(r.optimum_residual, color=c, ls="--", lw=1)
            bottom.semilogy(r.t, _positive(gap[id(r)]), color=c, label=lab)
        if N == 2:
            top.set_ylabel(r"$\|W_2(t) - W_1(t)^T\|_F$")
            top.set_title("N = 2: balanced start")
            top.set_ylim(bottom=1e-11)
        else:
            top.set_ylabel(r"$\|X - W(t)X\|_F$  (dashed: $\sqrt{\sum_{i>r}\sigma_i^2}$)")
            top.set_title(f"N = {N}: residual against its optimum")
        bottom.set_ylabel(r"$\|X - WX\|_F - \sqrt{\sum_{i>r}\sigma_i^2}$")
        bottom.set_title(f"N = {N}: distance to the optimal residual")
        bottom.set_ylim(bottom=1e-12)
        for ax in (top, bottom):
            ax.set_xlim(0, xmax)
            ax.set_xlabel("t")
            ax.grid(True, alpha=0.3)
            _legend_below(ax, ncol=2, fontsize=8)
    fig.suptitle(f"Figure 2: balanced starts, rank r = {recs[0].spec.rank}" if recs else "")
    return _save(fig, out, "fig2.png")


def figure3(records: Sequence[RunRecord], out) -> str:
    """Non-balanced N = 2: ||W_2 - W_1^T|| with its closed-form limit (exact flow and Euler),
    ||W_2 - W_1^+||, and ||W - U_r U_r^T||."""
    recs = sorted((r for r in records if r.spec.figure == 3 and r.spec.method == "RK45"),
                  key=lambda r: r.spec.d)
    eul = sorted((r for r in records if r.spec.method == "Euler"),
                 key=lambda r: r.spec.step_fraction)
    fig, axes = plt.subplots(1, 3, figsize=(16.0, 5.6), layout="constrained")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    xmax = _xmax([(r, r.error) for r in recs])
    a, b, c_ax = axes
    for i, r in enumerate(recs):
        c = colors[i % len(colors)]
        lab = f"d={r.spec.d}, r={r.spec.rank}"
        a.semilogy(r.t, r.w2_w1t, color=c, label=r"$\|W_2 - W_1^T\|_F$, " + lab)
        a.axhline(r.extra["w2_w1t_limit"], color=c, ls="--", lw=1,
                  label="closed-form limit from D" if i == 0 else None)
        a.semilogy(r.t, _positive(r.more["w2_pinv"]), color=c, ls=":", lw=1.5,
                   label=r"$\|W_2 - W_1^+\|_F$" if i == 0 else None)
        b.semilogy(r.t, _positive(r.error), color=c, label=lab)
    for i, r in enumerate(eul):
        c = colors[i % len(colors)]
        c_ax.plot(r.t, r.w2_w1t, color=c,
                  label=f"Euler h = {r.spec.step_fraction:g} h_max (d={r.spec.d})")
        c_ax.axhline(r.extra["w2_w1t_limit_final_D"], color=c, ls=":", lw=1)
    if eul:
        c_ax.axhline(eul[0].extra["w2_w1t_limit"], color="k", ls="--", lw=1,
                     label="exact flow: closed form at D(0)")
        c_ax.set_xlim(0, _xmax([(r, r.error) for r in eul]))
    a.set_title(r"$W_2$ does not tend to $W_1^T$; it tends to $W_1^+$")
    a.set_ylabel("Frobenius norm")
    b.set_title(r"$W(t) \to U_rU_r^T$ all the same")
    b.set_ylabel(r"$\|W(t) - U_rU_r^T\|_F$")
    c_ax.set_title("Euler: the plateau moves with h\n(dotted: closed form at Euler's final D)",
                   fontsize=10)
    c_ax.set_ylabel(r"$\|W_2 - W_1^T\|_F$")
    for ax in (a, b):
        ax.set_xlim(0, xmax)
        ax.set_ylim(bottom=1e-11)
    for ax in axes:
        ax.set_xlabel("t")
        ax.grid(True, alpha=0.3)
        _legend_below(ax)
    fig.suptitle("Figure 3: non-balanced Gaussian start, N = 2")
    return _save(fig, out, "fig3.png")


def figure4(records: Sequence[RunRecord], out,
            perturbed: Sequence[RunRecord] = ()) -> str:
    """Special start W_1 = V_r^T, W_2 = -V_r: ||W(t)|| (with the exact invariant-set solution),
    ||W(t) - U_r U_r^T||, and the escape time against the perturbation size."""
    recs = sorted((r for r in records if r.spec.figure == 4 and r.spec.delta == 0
                   and r.spec.depth == 2),
                  key=lambda r: r.spec.d)
    fig, axes = plt.subplots(1, 3, figsize=(15.0, 5.6), layout="constrained")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    esc = [r.summary()["escape_time"] for r in list(recs) + list(perturbed)]
    esc = [e for e in esc if e is not None]
    xmax = 2.5 * max(esc) if esc else max(r.t[-1] for r in recs)
    a, b, c_ax = axes
    for i, r in enumerate(recs):
        c = colors[i % len(colors)]
        lab = f"d={r.spec.d}, r={r.spec.rank}"
        a.semilogy(r.t, r.norm, color=c, label=lab)
        b.semilogy(r.t, _positive(r.error), color=c, label=lab)
        te = r.summary()["escape_time"]
        if te is not None:
            a.axvline(te, color=c, ls=":", lw=1)
    if recs:
        r0 = recs[0]
        tt = r0.t[r0.t <= xmax]
        a.semilogy(tt, special_norm_exact(tt, r0.lam[: r0.spec.rank]), "k--", lw=1,
                   label=f"exact solution on the invariant set (d={r0.spec.d})")
    deltas = ", ".join(f"{r.spec.delta:g}" for r in perturbed)
    for j, r in enumerate(perturbed):
        a.semilogy(r.t, r.norm, color="0.55", lw=0.8, ls="-.",
                   label=f"perturbed starts, d={r.spec.d}, delta = {deltas}" if j == 0 else None)
    lows = [float(np.min(r.norm)) for r in list(recs) + list(perturbed)]
    if lows:
        a.set_ylim(bottom=max(min(lows) / 100, 1e-300))
    a.set_title(r"$\|W(t)\|_F$: dip, then escape (dotted: escape times)")
    a.set_ylabel(r"$\|W(t)\|_F$")
    b.set_title(r"$\|W(t) - U_rU_r^T\|_F$")
    b.set_ylabel(r"$\|W(t) - U_rU_r^T\|_F$")
    a.set_xlim(0, xmax)
    b.set_xlim(0, _xmax([(r, r.error) for r in recs]))
    for ax in (a, b):
        ax.set_xlabel("t")
        ax.grid(True, alpha=0.3)
    _legend_below(a)
    _legend_below(b)
    b.set_ylim(bottom=1e-11)
    fit = escape_rate_fit([(r.spec.delta, r.summary()["escape_time"], r.extra["lambda_1"])
                           for r in perturbed])
    if fit is not None:
        x = np.log10(np.array(fit["deltas"]))
        c_ax.plot(-x, fit["escape_times"], "o", label="measured (perturbed start)")
        xs = np.linspace(0, max(-x) + 4, 50)
        c_ax.plot(xs, fit["intercept"] + xs * np.log(10) / fit["lambda_1"], "k--", lw=1,
                  label=r"slope $\ln 10/\lambda_1$ (factor mode grows at $\lambda_1$)")
        for r in recs[:1]:
            te = r.summary()["escape_time"]
            if te is not None:
                c_ax.axhline(te, color=colors[0], ls=":",
                             label=f"unperturbed start, d={r.spec.d} (rounding only)")
        c_ax.set_xlabel(r"$\log_{10}(1/\delta)$, $\delta$ = size of the perturbation of $W_1$")
        c_ax.set_ylabel("escape time")
        c_ax.set_title("growth rate of the factor mode $W_1 + W_2^T$ (||W||: twice it):\n"
                       f"fitted {fit['rate']:.3f}, " + r"$\lambda_1$"
                       + f" = {fit['lambda_1']:.3f}", fontsize=9)
        c_ax.grid(True, alpha=0.3)
        _legend_below(c_ax)
    else:
        c_ax.set_axis_off()
    fig.suptitle(r"Figure 4: special start $W_1 = U_r^T$, $W_2 = -U_r$ (Remark 33), N = 2")
    return _save(fig, out, "fig4.png")


def figure5(records: Sequence[RunRecord], out) -> str:
    """Beyond the paper: ||W - U_rU_r^T|| inside (47) / near its boundary by depth, and ||W(t)||
    for the special start at N >= 3."""
    conj = [r for r in records if r.spec.figure == 5 and r.spec.init in ("inside47", "boundary")
            and r.spec.hidden is None]
    sp = sorted((r for r in records if r.spec.init == "special" and r.spec.depth >= 3),
                key=lambda r: r.spec.depth)
    fig, (a, b) = plt.subplots(1, 2, figsize=(11.0, 6.4), layout="constrained")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    depths = sorted({r.spec.depth for r in conj})
    for r in conj:
        c = colors[depths.index(r.spec.depth) % len(colors)]
        ls = "-" if r.spec.init == "inside47" else "--"
        lab = f"N={r.spec.depth}, d={r.spec.d}, {r.spec.init}"
        if r.spec.eps:
            lab += f" eps={r.spec.eps:g}"
        a.semilogy(r.t, _positive(r.error), color=c, ls=ls, lw=1, label=lab)
    if conj:
        a.set_xlim(0, _xmax([(r, r.error) for r in conj]))
    a.set_ylim(bottom=1e-11)
    a.set_title("Conjecture 32: starts satisfying (47) (dashed: near its boundary)")
    a.set_ylabel(r"$\|W(t) - U_rU_r^T\|_F$")
    for i, r in enumerate(sp):
        b.loglog(r.t[1:], r.norm[1:], color=colors[i % len(colors)],
                 label=f"N={r.spec.depth}, d={r.spec.d}")
    b.set_title(r"special start $W(0) = -U_rU_r^T$, N >= 3: no escape")
    b.set_ylabel(r"$\|W(t)\|_F$")
    for ax in (a, b):
        ax.set_xlabel("t")
        ax.grid(True, alpha=0.3)
    _legend_below(a, ncol=2, fontsize=7)
    _legend_below(b, ncol=2, fontsize=7)
    fig.suptitle("Beyond the paper's figures")
    return _save(fig, out, "fig5.png")


def figure6(records: Sequence[RunRecord], out) -> str:
    """The counterexamples: |det(U_r^T W(t) U_r)| (negative throughout) and ||W(t) - U_rU_r^T||
    for family A / negdet, and the eta-scan of family B (time to converge against eta)."""
    from .verdicts import eta_scan_rows

    cex = [r for r in records if r.spec.init in ("familyA", "negdet")]
    fb = [r for r in records if r.spec.init == "familyB"]
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(15.0, 4.3))
    for r in cex:
        det = r.more["det_C"]
        lab = f"N={r.spec.depth}, d={r.spec.d}, r={r.spec.rank}, {r.spec.init}"
        a.loglog(r.t[1:], -det[1:] if np.all(det < 0) else np.abs(det[1:]), lw=1,
                 label=lab + ("" if np.all(det < 0) else " (sign changed)"))
        b.plot(r.t, r.error, lw=1, label=lab)
    a.set_title(r"$-\det(U_r^TW(t)U_r)$: negative at every recorded t")
    b.axhline(1.0, color="k", lw=0.8, ls=":")
    b.set_ylim(0, None)
    b.set_title(r"$\|W(t) - U_rU_r^T\|_F \geq 1$ (invariant-set bound)")
    for row in eta_scan_rows(fb):
        pts = [(e, t) for e, t in zip(row["etas"], row["times"]) if t is not None]
        if pts:
            c.loglog([p[0] for p in pts], [p[1] for p in pts], "o-",
                     label=f"N={row['depth']}" + ("" if row["fit"]["exponent"] is None else
                                                  f", p={row['fit']['exponent']:.2f}"))
        for e, t, tb in zip(row["etas"], row["times"], row["t_budget"]):
            if t is None:
                c.loglog([e], [tb], "x", color="k")
    c.set_title(r"family B: time to $\|W - U_rU_r^T\| \leq 10^{-3}$ (x: unresolved at budget)")
    c.set_xlabel(r"$\eta$")
    c.set_ylabel("T")
    for ax in (a, b):
        ax.set_xlabel("t")
    for ax in (a, b, c):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6.5)
    fig.suptitle("Counterexamples: Conjecture 32 (family A), Theorem 31 at r = d, family B")
    fig.tight_layout()
    return _save(fig, out, "fig6.png")


def all_figures(records: Sequence[RunRecord], out, perturbed: Sequence[RunRecord] = ()
                ) -> list[str]:
    """Write fig1.png ... fig6.png through ``out``; returns their names."""
    return [figure1(records, out), figure2(records, out), figure3(records, out),
            figure4(records, out, perturbed), figure5(records, out), figure6(records, out)]
