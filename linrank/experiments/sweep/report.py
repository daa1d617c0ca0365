r"""The report of a sweep: per-cell convergence with binomial confidence intervals, convergence
times against the spectral gap and the depth, saddle visits, every run that did not converge.

:func:`write_report` reads ``OUT/runs.csv`` (and the grid's size from ``OUT/sweep.json``) and
writes ``OUT/report.md``, ``OUT/cells.csv`` and ``OUT/figures/*.png``. An incomplete sweep is
reported as such, with the number of runs it holds, never as the full grid.

Confidence intervals: for k converged runs out of n, the two-sided 95% Wilson score interval
(``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``). Runs of one seed share their
data set (:meth:`~linrank.experiments.sweep.grid.RunSpec.data_key`), so they are not independent
samples: for a claim that held in every run, the one-sided 95% Clopper-Pearson bound is taken
over the n_c distinct data sets (clusters), a failure probability per data set below
:math:`1 - 0.05^{1/n_c}`, rounded up (outward) to two significant digits. All bounds are on the
grid's own sampling distribution of starts and data, nothing wider. Runs that end at their
budget are unresolved: a claim with unresolved runs is never reported as holding.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .app import MANIFEST, SweepError, read_rows
from .run import EXTEND

__all__ = ["ReportResult", "write_report", "wilson", "claims", "failure_bound", "data_set",
           "CELL_COLUMNS"]

CELL_COLUMNS = ["data", "d", "rank", "depth", "hidden", "start", "imbalance", "eps", "t_rank",
                "noise", "tol"]


@dataclass
class ReportResult:
    path: str
    n_runs: int
    n_cells: int
    complete: bool
    figures: list = field(default_factory=list)
    claims: list = field(default_factory=list)


def wilson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval for k successes in n trials (scipy.stats)."""
    from scipy.stats import binomtest

    if n == 0:
        return (math.nan, math.nan)
    ci = binomtest(k, n).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def _f(row: dict, key: str) -> float:
    try:
        return float(row[key])
    except (KeyError, ValueError):
        return math.nan


def _cell(row: dict) -> tuple:
    return tuple(row[k] for k in CELL_COLUMNS)


def _cell_label(row: dict) -> str:
    s = f"{row['data'][:4]} d={row['d']} r={row['rank']} N={row['depth']} {row['start']}"
    if row["hidden"] != row["rank"]:
        s += f" h={row['hidden']}"
    if row["start"] == "nonbalanced":
        s += f" imb={row['imbalance']}"
    if row["start"] == "near_boundary":
        s += f" eps={row['eps']}"
    if row["data"] == "regression":
        s += f" T-rank={row['t_rank']} noise={row['noise']}"
    return s


def _pct(k: int, n: int) -> str:
    """k/n with its 95% Wilson interval, the ends rounded outward to 0.1%."""
    if not n:
        return "-"
    lo, hi = wilson(k, n)
    lo_s = math.floor(1000 * lo + 1e-9) / 10
    hi_s = min(100.0, math.ceil(1000 * hi - 1e-9) / 10)
    return f"{k}/{n} = {100 * k / n:.1f}% [{lo_s:.1f}, {hi_s:.1f}]"


@dataclass
class Claim:
    """A conjecture or statement with the runs inside its hypothesis, counted by outcome."""

    name: str
    hypothesis: str
    n: int
    converged: int
    budget: int  # unresolved: budget spent after every extension, neither certified nor proved
    other: int  # collapsed or error
    failures: list
    clusters: int = 0
    counterexamples: int = 0
    critical: int = 0  # certified approaching a critical point other than the minimizer

    @property
    def unresolved(self) -> int:
        return self.budget

    @property
    def verdict(self) -> str:
        if self.n == 0:
            return "no run inside its hypothesis"
        if self.counterexamples:
            return (f"refuted: {self.counterexamples} counterexamples (on the invariant set "
                    "{U_r M U_r^T} with det M < 0 along the whole run, distance to U_rU_r^T >= 1: "
                    "docs/theory.rst proves they cannot converge)")
        if self.converged == self.n:
            up = failure_bound(self.clusters)
            return (f"held in all {self.n} runs on {self.clusters} data sets (95% one-sided "
                    f"bound, clustered by data set: failure probability per data set < "
                    f"{_pct_up(up)}%, on this grid's distribution of starts only)")
        parts = [f"converged in {self.converged} of {self.n}"]
        if self.critical:
            parts.append(f"{self.critical} certified approaching a critical point other than "
                         "the minimizer at their end (where they are, not a proof of their limit)")
        if self.budget:
            parts.append(f"{self.budget} unresolved (budget spent after extension to "
                         f"{EXTEND} x; neither converged nor certified)")
        if self.other:
            parts.append(f"{self.other} collapsed or failed")
        return "; ".join(parts) + ": no verdict (these runs neither support nor refute it)"


def _pct_up(x: float) -> str:
    """100 x as a percentage with two significant digits, rounded up."""
    v = 100 * x
    if v <= 0:
        return "0"
    e = math.floor(math.log10(v)) - 1
    v = math.ceil(v / 10.0 ** e - 1e-9) * 10.0 ** e
    return f"{v:.{max(0, -e)}f}"


def failure_bound(n_clusters: int, level: float = 0.95) -> float:
    """1 - (1 - level)^(1/n), the one-sided Clopper-Pearson upper bound on a failure probability
    after n successes in n, rounded up to two significant digits (outward); 1 for n = 0."""
    if n_clusters <= 0:
        return 1.0
    x = 1.0 - (1.0 - level) ** (1.0 / n_clusters)
    e = math.floor(math.log10(x)) - 1
    return min(1.0, math.ceil(x / 10.0 ** e) * 10.0 ** e)


def data_set(row: dict) -> tuple:
    """The data set a run used: its seed and the grid's data key (runs of one seed share it)."""
    return (row["seed"], row["data"], row["d"], row["samples"], row["t_rank"], row["noise"])


def is_counterexample(row: dict) -> bool:
    """Outcome ``counterexample`` (:func:`~linrank.experiments.sweep.run.outcome`): the start
    lies on the invariant set {U_r M U_r^T} with det M < 0 and the run stayed on it with
    det(U_r^T W U_r) < 0 and ||W - U_rU_r^T||_F >= 1 at every chunk end (docs/theory.rst)."""
    return row.get("outcome") == "counterexample"


def _is(start: str | set) -> Callable[[dict], bool]:
    kinds = {start} if isinstance(start, str) else start
    return lambda r: r["start"] in kinds


#: kinds of start whose factors are balanced (whatever flow integrates them)
BALANCED_KINDS = frozenset({"paper", "balanced_inside", "balanced_outside", "near_boundary",
                            "family_a", "family_b", "amended"})


def _balanced(r: dict) -> bool:
    return r["start"] in BALANCED_KINDS or r["start"].startswith("search:")


def _in_span_boundary(r: dict) -> bool:
    """Near-boundary starts inside span U_r: W(0) = U_r(eps I + K)U_r^T cannot fail (the flow
    stays in span U_r, where the symmetric part eps I > 0 ...); reported apart."""
    return r["start"] == "near_boundary" and r.get("in_span") != "False"


def _auto_deep(r: dict) -> bool:
    return r["data"] == "autoencoder" and _balanced(r) and int(r["depth"]) > 2


CLAIMS: list[tuple[str, str, Callable[[dict], bool]]] = [
    ("Conjecture 32", "balanced (every balanced kind of start, search starts included), (47) "
     "holds, N > 2, Y = X; near-boundary starts within span U_r apart",
     lambda r: _auto_deep(r) and r["condition_47"] == "True" and not _in_span_boundary(r)),
    ("Amended hypothesis", "balanced, symmetric part of U_r^T W(0) U_r positive definite (every "
     "kind of start that satisfies it), N > 2, Y = X; near-boundary starts within span U_r apart",
     lambda r: _auto_deep(r) and r.get("amended") == "True" and not _in_span_boundary(r)),
    ("Near-boundary starts within span U_r", "W(0) = U_r(eps I + K)U_r^T, N > 2, Y = X: inside "
     "(47) and the amended hypothesis, and inside span U_r (cannot fail): reported apart",
     lambda r: _auto_deep(r) and _in_span_boundary(r)),
    ("Balanced, (47), N = 2", "balanced, (47) holds, N = 2, Y = X",
     lambda r: r["data"] == "autoencoder" and _balanced(r) and int(r["depth"]) == 2
     and r["condition_47"] == "True"),
    ("Balanced outside (47)", "balanced, (47) fails, Y = X (outside the conjecture)",
     lambda r: r["data"] == "autoencoder" and _balanced(r) and r["condition_47"] == "False"),
    ("Non-balanced starts", "layer-wise flow from Gaussian or perturbed factors, Y = X",
     lambda r: r["data"] == "autoencoder" and _is({"gaussian", "nonbalanced"})(r)),
    ("Family A", "W(0) = U_r M U_r^T, diag M > 0, det M < 0, Y = X: inside (47), cannot "
     "converge (docs/theory.rst); a run that converges here is a numerical error",
     lambda r: r["start"] == "family_a"),
    ("Family B", "family A plus eps off span U_r, Y = X", lambda r: r["start"] == "family_b"),
    ("Search starts", "the starts `linrank search` found (worst first), carried to each run's "
     "data, Y = X", lambda r: r["start"].startswith("search:")),
    ("Y != X", "regression data, every start",
     lambda r: r["data"] == "regression"),
    ("Special start", "W(0) = -U_r U_r^T (Remark 33), layer-wise flow in floating point",
     lambda r: r["start"] == "special"),
]


def _errfix(r: dict) -> dict:
    # a failed run has no (47) column: the kinds drawn inside (47) count as inside
    if r["status"] != "error":
        return r
    return {**r, "condition_47": str(r["start"] in ("balanced_inside", "near_boundary")),
            "amended": str(r["start"] == "amended")}


def claims(rows: list[dict]) -> list[Claim]:
    """The claims of :data:`CLAIMS` over the rows, counted by outcome."""
    out = []
    for name, hyp, pred in CLAIMS:
        sel = [r for r in rows if pred(_errfix(r))]
        oc = Counter(r.get("outcome") or ("converged" if r["status"] == "converged" else
                                          "unresolved") for r in sel)
        out.append(Claim(name, hyp, len(sel), oc["converged"], oc["unresolved"],
                         oc["collapsed"] + oc["error"],
                         [r for r in sel if r["status"] != "converged"],
                         len({data_set(r) for r in sel}), oc["counterexample"], oc["critical"]))
    return out


# ---------------------------------------------------------------------- figures
def _figures(rows: list[dict], fig_dir: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(fig_dir, exist_ok=True)
    names = []
    conv = [r for r in rows if r["status"] == "converged"]
    depths = sorted({int(r["depth"]) for r in rows})
    cmap = plt.get_cmap("viridis")
    colour = {N: cmap(i / max(1, len(depths) - 1)) for i, N in enumerate(depths)}

    from matplotlib.ticker import MaxNLocator

    def legend_below(ax, **kw):  # outside the data area (constrained layout makes room)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.17), frameon=False,
                      fontsize=7, **kw)

    fig, axes = plt.subplots(1, 2, figsize=(11, 5.2), layout="constrained")
    for ax, data in zip(axes, ("autoencoder", "regression")):
        for N in depths:
            sel = [r for r in conv if int(r["depth"]) == N and r["data"] == data]
            if sel:
                ax.scatter([_f(r, "spectral_gap") for r in sel],
                           [_f(r, "t_converge") for r in sel], s=6, alpha=0.5,
                           color=colour[N], label=f"N = {N}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(r"spectral gap $\sigma_k^2 - \sigma_{k+1}^2$")
        ax.set_ylabel("time to converge (flow time)")
        ax.set_title("Y = X" if data == "autoencoder" else "Y != X (regression)")
        legend_below(ax, markerscale=2, ncol=min(4, len(depths)))
    names.append("convergence_time_vs_gap.png")
    fig.savefig(os.path.join(fig_dir, names[-1]), dpi=110)
    plt.close(fig)

    # time x gap by depth and kind of start: how N changes the time beyond the gap
    kinds = sorted({r["start"] for r in conv})
    fig, ax = plt.subplots(figsize=(7.5, 5.0), layout="constrained")
    width = 0.8 / max(1, len(kinds))
    for i, kind in enumerate(kinds):
        med, lo, hi = [], [], []
        for N in depths:
            v = [_f(r, "t_converge") * _f(r, "spectral_gap") for r in conv
                 if r["start"] == kind and int(r["depth"]) == N]
            q = np.percentile(v, [25, 50, 75]) if v else [np.nan] * 3
            lo.append(q[1] - q[0])
            med.append(q[1])
            hi.append(q[2] - q[1])
        ax.bar(np.arange(len(depths)) + i * width, med, width, yerr=[lo, hi], label=kind,
               capsize=2)
    ax.set_xticks(np.arange(len(depths)) + 0.4 - width / 2)
    ax.set_xticklabels([f"N = {N}" for N in depths])
    ax.set_yscale("log")
    ax.set_ylabel("time to converge x spectral gap (median, IQR)")
    legend_below(ax, ncol=min(4, max(1, len(kinds))))
    names.append("scaled_time_by_depth.png")
    fig.savefig(os.path.join(fig_dir, names[-1]), dpi=110)
    plt.close(fig)

    # saddle visits: index of each saddle visited, by kind of start
    fig, ax = plt.subplots(figsize=(7.5, 5.0), layout="constrained")
    idx_by_kind = defaultdict(list)
    for r in rows:
        if r["saddle_indices"]:
            idx_by_kind[r["start"]] += [int(x) for x in r["saddle_indices"].split(";")]
    if idx_by_kind:
        top = max(max(v) for v in idx_by_kind.values())
        bins = np.arange(-1.5, top + 1.5)
        ax.hist(list(idx_by_kind.values()), bins=bins, label=list(idx_by_kind), stacked=True)
        if top <= 15:  # the index is an integer: one tick per value, or integer ticks
            ax.set_xticks(np.arange(-1, top + 1))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        legend_below(ax, ncol=min(4, len(idx_by_kind)))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts of visits
    ax.set_xlabel("Morse index of the saddle visited (-1: plateau not identified)")
    ax.set_ylabel("visits")
    names.append("saddle_indices.png")
    fig.savefig(os.path.join(fig_dir, names[-1]), dpi=110)
    plt.close(fig)
    return names


# ---------------------------------------------------------------------- report
def _median_iqr(v: list[float]) -> str:
    v = [x for x in v if np.isfinite(x)]
    if not v:
        return "-"
    q = np.percentile(v, [25, 50, 75])
    return f"{q[1]:.3g} [{q[0]:.3g}, {q[2]:.3g}]"


def _full_grid_cpu(out: str, rows: list[dict]) -> tuple[float, int] | None:
    """(estimated CPU seconds of the whole grid, cells without a finished run) or None."""
    from .grid import GridError, load_grid

    try:
        grid = load_grid(os.path.join(out, "grid.toml"))
    except (GridError, OSError):
        return None
    per_cell: dict[str, list[float]] = defaultdict(list)
    by_id = {s.run_id: s for s in grid.runs}
    for r in rows:
        spec = by_id.get(int(r["run_id"]))
        if spec is not None and np.isfinite(_f(r, "cpu_s")):
            per_cell[spec.cell()].append(_f(r, "cpu_s"))
    counts = Counter(s.cell() for s in grid.runs)
    total = sum(n * float(np.mean(per_cell[c])) for c, n in counts.items() if per_cell[c])
    return total, sum(1 for c in counts if not per_cell[c])


def write_report(out: str | os.PathLike) -> ReportResult:
    """Write OUT/report.md, OUT/cells.csv and OUT/figures/ from OUT/runs.csv.

    Raises
    ------
    SweepError
        OUT holds no sweep or no rows yet.
    """
    out = os.fspath(out)
    try:
        with open(os.path.join(out, MANIFEST)) as fh:
            man = json.load(fh)
    except (OSError, ValueError):
        raise SweepError(f"{out} holds no linrank sweep ({MANIFEST} missing or unreadable)") \
            from None
    rows = read_rows(out)
    if not rows:
        raise SweepError(f"{out}/runs.csv holds no finished run yet")
    total = int(man.get("runs", len(rows)))
    complete = len(rows) == total
    cells: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        cells[_cell(r)].append(r)
    fig_names = _figures(rows, os.path.join(out, "figures"))
    cl = claims(rows)

    # cells.csv
    cell_rows = []
    for key, rs in cells.items():
        n = len(rs)
        k = sum(r["status"] == "converged" for r in rs)
        lo, hi = wilson(k, n)
        c47 = [r for r in rs if r["condition_47"] in ("True", "False")]
        cell_rows.append({
            **dict(zip(CELL_COLUMNS, key)), "runs": n, "converged": k,
            "fraction": k / n, "ci_low": lo, "ci_high": hi,
            "budget": sum(r["status"] == "budget" for r in rs),
            "collapsed": sum(r["status"] == "collapsed" for r in rs),
            "error": sum(r["status"] == "error" for r in rs),
            "median_t_converge": float(np.nanmedian([_f(r, "t_converge") for r in rs]))
            if k else math.nan,
            "mean_saddles": float(np.mean([_f(r, "n_saddles") for r in rs
                                           if r["status"] != "error"] or [math.nan])),
            "max_saddle_index": max((int(r["max_saddle_index"]) for r in rs
                                     if r["max_saddle_index"] not in ("",)), default=0),
            "fraction_47": (sum(r["condition_47"] == "True" for r in c47) / len(c47)
                            if c47 else math.nan),
        })
    with open(os.path.join(out, "cells.csv"), "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(cell_rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(cell_rows)

    status = Counter(r["status"] for r in rows)
    L = ["# Sweep report", ""]
    if complete:
        L.append(f"All {total} runs of the grid are in `runs.csv`.")
    else:
        seeds = Counter(r["seed"] for r in rows)
        L.append(f"**Incomplete sweep: {len(rows)} of the grid's {total} runs** (runs are started "
                 f"seed by seed, so every cell holds its first seeds; seeds present: "
                 f"{len(seeds)}). Every number below is about these {len(rows)} runs only.")
    cpu = [_f(r, "cpu_s") for r in rows if np.isfinite(_f(r, "cpu_s"))]
    if cpu:
        L += ["", f"CPU time inside the runs: {sum(cpu):.0f} s in total, {np.mean(cpu):.3f} s "
                  f"per run (max {max(cpu):.1f} s): {sum(cpu) / 2 / 60:.1f} min on 2 cores if "
                  "nothing else runs."]
        est = _full_grid_cpu(out, rows)
        if not complete and est is not None:
            L.append(f"Estimate for the whole grid (mean CPU time of each cell times its number "
                     f"of runs; {est[1]} cells not started yet are left out): {est[0]:.0f} s, "
                     f"{est[0] / 2 / 60:.1f} min on 2 idle cores.")
    L += ["", "Status: " + ", ".join(f"{v} {k}" for k, v in sorted(status.items())) + ".",
          "Outcomes: " + ", ".join(f"{v} {k}" for k, v in sorted(Counter(
              r.get("outcome", "") for r in rows).items())) + ".",
          "A run *converged* when ||W - W*||_F <= tol ||W*||_F (W* the global minimizer on rank "
          "<= r). A run that reaches its budget (t_max, max_steps) is continued from its state "
          f"with both budgets doubled, up to {EXTEND} x them; what is still not converged then is "
          "a *counterexample* (start on the invariant set {U_r M U_r^T} with det M < 0, and "
          "det(U_r^T W U_r) < 0, W in span U_r (defect <= 1e-8) and ||W - U_rU_r^T||_F >= 1 at "
          "every chunk end: docs/theory.rst proves it cannot converge; such runs are not "
          "continued), *critical* (certified approaching a critical point W_J other than the "
          "minimizer at its end: J read off the state, |L - L(W_J)| <= 1e-3 (L(W_J) - L*) with "
          "L(W_J) in closed form, the gradient norm and |L - L(W_J)| non-increasing at 9 "
          "equally spaced times of [T/2, T] and g(T) <= 0.9 g(T/2); where the run is, not a "
          "proof of its limit) or *unresolved* (neither: no verdict either way); *collapsed*: a "
          "singular value left M_r; *error*: the run raised.",
          "*certified*: the final loss is below the lowest non-optimal critical value "
          "L* + (sigma_r^2 - sigma_{r+1}^2)/2, which forces convergence to W*.", "",
          "## Claims", "",
          "| claim | runs inside its hypothesis | data sets | converged (95% Wilson CI) | "
          "counterexamples | certified critical | unresolved | other | verdict |",
          "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for c in cl:
        L.append(f"| {c.name} | {c.hypothesis}: {c.n} | {c.clusters} | "
                 f"{_pct(c.converged, c.n)} | {c.counterexamples} | {c.critical} | {c.budget} | "
                 f"{c.other} | "
                 f"{c.verdict} |")
    L += ["", "Per depth:", "", "| claim | " + " | ".join(
        f"N = {N}" for N in sorted({int(r['depth']) for r in rows})) + " |",
          "| --- |" + " --- |" * len({r["depth"] for r in rows})]
    depths = sorted({int(r["depth"]) for r in rows})
    for name, _hyp, pred in CLAIMS:
        cells_txt = []
        for N in depths:
            sel = [r for r in rows if int(r["depth"]) == N and r["status"] != "error" and pred(r)]
            k = sum(r["status"] == "converged" for r in sel)
            cells_txt.append(f"{k}/{len(sel)}" if sel else "-")
        L.append(f"| {name} | " + " | ".join(cells_txt) + " |")

    L += ["", "## Convergence time against the spectral gap and N", "",
          "![time vs gap](figures/convergence_time_vs_gap.png)", "",
          "![scaled time](figures/scaled_time_by_depth.png)", "",
          "Median [IQR] of the time to converge times the spectral gap (a rate-free time), by "
          "depth and start:", "", "| start | " + " | ".join(f"N = {N}" for N in depths) + " |",
          "| --- |" + " --- |" * len(depths)]
    for kind in sorted({r["start"] for r in rows}):
        vals = []
        for N in depths:
            vals.append(_median_iqr([_f(r, "t_converge") * _f(r, "spectral_gap") for r in rows
                                     if r["start"] == kind and int(r["depth"]) == N
                                     and r["status"] == "converged"]))
        L.append(f"| {kind} | " + " | ".join(vals) + " |")

    L += ["", "## Saddle visits", "", "![saddle indices](figures/saddle_indices.png)", "",
          "A saddle visit is a plateau of the run (gradient norm below plateau * sigma_1^2 "
          "||W*||) identified with a critical point W_J of Proposition 29 (J read off the "
          "state, its loss compared with the closed form 1/2(||Y||^2 - sum_J sigma_j^2)); the "
          "index is the Morse index of W_J on M_|J|; {} is W = 0.", "",
          "A W_J with |J| < r (rank-deficient, {} included) is a critical point of the loss "
          "of the factors only: among rank-r matrices the loss decreases to first order away "
          "from it, so its index on M_|J| (often 0) understates how unstable it is; such "
          "visits are counted separately.", "",
          "| start | runs | with a saddle visit | visits per run | rank-deficient visits | "
          "max index (J of size r) | time near saddles (median of visitors) | largest loss "
          "mismatch |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for kind in sorted({r["start"] for r in rows}):
        rs = [r for r in rows if r["start"] == kind and r["status"] != "error"]
        vis = [r for r in rs if int(r["n_saddles"] or 0) > 0]
        full, deficient = [], 0
        for r in vis:
            for J, i in zip(r["saddle_sets"].split(";"), r["saddle_indices"].split(";")):
                size = 0 if J in ("{}", "?") else J.count(",") + 1
                if J != "?" and size < int(r["rank"]):
                    deficient += 1
                elif J != "?":
                    full.append(int(i))
        L.append(f"| {kind} | {len(rs)} | {len(vis)} | "
                 f"{np.mean([int(r['n_saddles']) for r in rs]) if rs else 0:.2f} | "
                 f"{deficient} | {max(full, default='-')} | "
                 f"{_median_iqr([_f(r, 'saddle_time_total') for r in vis])} | "
                 f"{max((_f(r, 'saddle_loss_err') for r in rs), default=0):.2e} |")

    L += ["", "## Cells", "", "Fraction converged per cell with its 95% Wilson interval "
          "(all columns in `cells.csv`).", "",
          "| cell | runs | converged | budget | collapsed | error | median t | (47) holds |",
          "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for key, rs in cells.items():
        c = next(x for x in cell_rows if tuple(x[k] for k in CELL_COLUMNS) == key)
        f47 = "-" if math.isnan(c["fraction_47"]) else f"{100 * c['fraction_47']:.0f}%"
        L.append(f"| {_cell_label(rs[0])} | {c['runs']} | {_pct(c['converged'], c['runs'])} | "
                 f"{c['budget']} | {c['collapsed']} | {c['error']} | "
                 f"{c['median_t_converge']:.3g} | {f47} |")

    bad = [r for r in rows if r["status"] != "converged"]
    L += ["", f"## Runs that did not converge ({len(bad)})", "",
          "Each can be rerun alone: `linrank sweep --rerun DIR RUN_ID`.", ""]
    if bad:
        L += ["| run_id | seed | cell | outcome | t_final | distance | loss gap / cert gap | "
              "W_J at the end (certificate) | last saddle | error |", "| --- | --- | --- | --- | "
              "--- | --- | --- | --- | --- | --- |"]
        for r in bad[:2000]:
            ratio = _f(r, "final_loss_gap") / _f(r, "cert_gap") if r["cert_gap"] else math.nan
            last = r["saddle_sets"].split(";")[-1] if r["saddle_sets"] else ""
            crit = (f"{r.get('crit_J', '')} ({r.get('crit_reason', '')})"
                    if r.get("crit_reason") else "")
            L.append(f"| {r['run_id']} | {r['seed']} | {_cell_label(r)} | "
                     f"{r.get('outcome', r['status'])} | {_f(r, 't_final'):.4g} | "
                     f"{_f(r, 'final_distance'):.3g} | {ratio:.3g} | {crit} | {last} | "
                     f"{r['error'][:80]} |")
        if len(bad) > 2000:
            L.append(f"| ... {len(bad) - 2000} more in runs.csv | | | | | | | | | |")
    else:
        L.append("None.")
    path = os.path.join(out, "report.md")
    with open(path, "w") as fh:
        fh.write("\n".join(L) + "\n")
    return ReportResult(path=path, n_runs=len(rows), n_cells=len(cells), complete=complete,
                        figures=fig_names, claims=cl)
