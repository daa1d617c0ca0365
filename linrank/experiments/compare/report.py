r"""report.md and the figures of ``linrank compare`` (see :mod:`linrank.experiments.compare`).

The report has, per problem and size, a summary table (median and range over seeds of the time,
iterations and evaluations to the target gap, and of the final gap), a figure of the relative
gap against wall time and against iterations (one line per solver and depth, the first seed),
and a section on the depth metric generated from the numbers: for each depth, the spread of the
metric's weights at the optimum and the condition number of the Riemannian Hessian there (which
the metric's rescaling of directions by powers of the singular values changes), next to how
the evaluations each solver needed changed against depth 1.
"""

from __future__ import annotations

import csv
import os
import platform
from collections import defaultdict

import numpy as np

__all__ = ["write_outputs", "summary_rows", "metric_analysis", "figure", "relative_gap",
           "write_csv", "write_history", "atomic_write"]


def atomic_write(path: str, write) -> None:
    """Write through ``write(tmp)`` to a hidden temporary file, then rename it to ``path``."""
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def relative_gap(cost: np.ndarray, f_ref: float, f0: float) -> np.ndarray:
    """(f - f_ref) / (f0 - f_ref): 1 at the start, 0 at the optimum."""
    return (np.asarray(cost, dtype=float) - f_ref) / max(f0 - f_ref, 1e-300)


CSV_FIELDS = ["problem", "size", "m", "n", "k", "solver", "depth", "seed", "status", "reason",
              "iterations", "wall_time", "cpu_time", "cost_evals", "grad_evals", "hvp",
              "initial_cost", "final_cost", "f_ref", "optimum", "gap", "rel_gap", "distance",
              "rel_distance", "target_gap", "time_to_target", "cpu_to_target", "iterations_to_target",
              "evals_to_target", "step", "step_search_time", "steps_tried", "cached"]


def write_csv(path: str, rows: list[dict]) -> None:
    """results.csv, atomically."""
    def write(tmp):
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
            w.writeheader()
            for r in rows:
                w.writerow({k: (repr(float(v)) if isinstance(v, float) else v) for k, v in r.items()})

    atomic_write(path, write)


def write_history(path: str, result) -> None:
    """history.csv: every recorded iterate of every run, with its relative gap."""
    def write(tmp):
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["problem", "size", "solver", "depth", "seed", "time", "cpu_time", "iteration",
                        "cost", "rel_gap", "distance", "evaluations"])
            for run, row in zip(result.runs, result.rows):
                h = run.result.history
                rel = relative_gap(h["cost"], row["f_ref"], row["initial_cost"])
                lead = [run.problem, run.size, run.solver, run.depth, run.seed]
                for i in range(len(h["time"])):
                    w.writerow(lead + [f"{h['time'][i]:.6g}", f"{h['cpu_time'][i]:.6g}",
                                       int(h["iteration"][i]),
                                       f"{h['cost'][i]:.16g}", f"{rel[i]:.6g}",
                                       f"{h['distance'][i]:.6g}", int(h["evaluations"][i])])

    atomic_write(path, write)


_DEPTH_SOLVERS = ("sd", "cg", "tr", "flow", "layer-gd")


def _fmt(x, p: int = 3) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)) or x == "":
        return "-"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return f"{x:.{p}g}"


def _med_range(vals: list, p: int = 3) -> str:
    v = np.array([x for x in vals if x != "" and x is not None and np.isfinite(float(x))],
                 dtype=float)
    if v.size == 0:
        return "-"
    if v.size == 1:
        return _fmt(float(v[0]), p)
    return f"{_fmt(float(np.median(v)), p)} [{_fmt(float(v.min()), p)}, {_fmt(float(v.max()), p)}]"


def _groups(rows: list[dict]) -> dict:
    g = defaultdict(list)
    for r in rows:
        g[(r["problem"], r["size"], r["solver"], r["depth"])].append(r)
    return g


def summary_rows(rows: list[dict]) -> list[dict]:
    """One entry per (problem, size, solver, depth): statuses and medians over seeds."""
    out = []
    for (p, s, solver, depth), rs in _groups(rows).items():
        statuses = defaultdict(int)
        for r in rs:
            statuses[r["status"]] += 1
        out.append({
            "problem": p, "size": s, "solver": solver, "depth": depth, "runs": len(rs),
            "status": ", ".join(f"{n} {k}" for k, n in statuses.items()),
            "reason": "; ".join(sorted({r["reason"] for r in rs if r["status"] in
                                        ("failed", "not applicable", "diverged")}))[:160],
            "time": _med_range([r["time_to_target"] for r in rs]),
            "cpu": _med_range([r["cpu_to_target"] for r in rs]),
            "iterations": _med_range([r["iterations_to_target"] for r in rs], 4),
            "evals": _med_range([r["evals_to_target"] for r in rs], 4),
            "hvp": _med_range([r["hvp"] for r in rs if r["status"] == "reached"], 4),
            "gap": _med_range([r["rel_gap"] for r in rs], 2),
            "dist": _med_range([r["rel_distance"] for r in rs], 2),
            "step": _med_range([r["step"] for r in rs], 3),
            "median_evals": _median([r["evals_to_target"] for r in rs]),
            "reached": statuses.get("reached", 0),
        })
    return out


def _median(vals) -> float:
    v = [float(x) for x in vals if x != "" and x is not None and np.isfinite(float(x))]
    return float(np.median(v)) if v else float("nan")


def compact_table(summary: list[dict], size: str) -> list[str]:
    """Median evaluations (cost + gradient) to the target gap, problem and solver x depth, with
    the reached fraction where not all seeds reached it ("-": none did; "n/a": not
    applicable; "fail": failed)."""
    cells = {(r["problem"], r["solver"], r["depth"]): r for r in summary if r["size"] == size}
    if not cells:
        return []
    depths = sorted({d for (_, _, d) in cells})
    rows = list(dict.fromkeys((p, s) for (p, s, _) in cells))
    out = ["| problem | solver | " + " | ".join(f"N = {d}" if d else "direct" for d in depths)
           + " |", "|---|---|" + "---:|" * len(depths)]
    for p, solver in rows:
        vals = []
        for d in depths:
            r = cells.get((p, solver, d))
            if r is None:
                vals.append("")
            elif "not applicable" in r["status"]:
                vals.append("n/a")
            elif r["reached"] == 0:
                vals.append("fail" if "failed" in r["status"] else "-")
            else:
                v = f"{r['median_evals']:.0f}"
                vals.append(v if r["reached"] == r["runs"] else f"{v} ({r['reached']}/{r['runs']})")
        out.append(f"| {p} | {solver} | " + " | ".join(vals) + " |")
    return out


# ---------------------------------------------------------------------- metric analysis
def metric_analysis(result, max_dim: int = 1500) -> dict:
    """Per problem (sizes whose tangent space has dimension <= ``max_dim``) and depth: the
    spread max/min of the metric's weights (w, p) at the optimum and the eigenvalues' range of
    the Riemannian Hessian there (dense, :func:`linrank.diagnostics.hessian_spectrum`)."""
    from ...diagnostics import hessian_spectrum
    from ...manifold import DeepLinearFixedRank
    from .solvers import deep_problem

    depths = sorted({r["depth"] for r in result.rows if r["solver"] in _DEPTH_SOLVERS})
    out = {}
    for key, inst in result.instances.items():
        if inst.optimum is None or (inst.hessian is None and inst.make_problem is None):
            continue
        dim = (inst.m + inst.n - inst.k) * inst.k
        entry = {"dim": dim, "depths": {}}
        for N in depths:
            man = DeepLinearFixedRank(inst.m, inst.n, inst.k, N)
            w, p = man.weights(inst.optimum)
            allw = np.concatenate((np.ravel(w), np.ravel(p)))
            rec = {"weight_spread": float(allw.max() / allw.min())}
            if dim <= max_dim:
                ev = hessian_spectrum(man, deep_problem(inst, man), inst.optimum,
                                      which="all").eigenvalues
                rec.update(lam_min=float(ev[0]), lam_max=float(ev[-1]),
                           cond=float(ev[-1] / ev[0]) if ev[0] > 0 else float("inf"))
            entry["depths"][N] = rec
        out[key] = entry
    return out


def _verdict(ratio: float) -> str:
    if not np.isfinite(ratio):
        return "not comparable"
    if ratio < 0.8:
        return "preconditions"
    if ratio > 1.25:
        return "stiffens"
    return "no clear effect"


def metric_text(result, summary: list[dict], analysis: dict) -> list[str]:
    """Sentences on the depth metric, each computed from the runs and the analysis."""
    lines = []
    by = {(s["problem"], s["size"], s["solver"], s["depth"]): s for s in summary}
    for (p, size), entry in analysis.items():
        ds = entry["depths"]
        if not ds:
            continue
        lines.append(f"**{p} ({size})**, at the optimum W* (tangent dimension {entry['dim']}):")
        cells = []
        for N, rec in ds.items():
            c = f"N = {N}: weight spread {_fmt(rec['weight_spread'])}"
            if "cond" in rec:
                c += (f", Hessian eigenvalues [{_fmt(rec['lam_min'])}, {_fmt(rec['lam_max'])}], "
                      f"condition {_fmt(rec['cond'])}")
            cells.append(c)
        lines.append("; ".join(cells) + ".")
        for solver in _DEPTH_SOLVERS:
            ref_depth = 2 if solver == "layer-gd" else 1
            ref = by.get((p, size, solver, ref_depth))
            if ref is None:
                continue
            parts = []
            for N in ds:
                cur = by.get((p, size, solver, N))
                if cur is None or N == ref_depth or "not applicable" in cur["status"]:
                    continue
                ratio = cur["median_evals"] / ref["median_evals"]
                if not np.isfinite(ratio):
                    if ref["reached"] and not cur["reached"]:
                        parts.append(f"N = {N} stiffens (target not reached within the budget, "
                                     f"reached at N = {ref_depth})")
                    continue
                cond = ds[N].get("cond")
                base_cond = ds.get(ref_depth, {}).get("cond")
                why = ""
                if cond is not None and base_cond is not None:
                    cr = cond / base_cond
                    agree = (cr < 1) == (ratio < 1) or abs(np.log(ratio)) < np.log(1.25)
                    why = (f"; Hessian condition x{_fmt(cr, 2)}"
                           + ("" if agree else ", so not the conditioning at W* but the path "
                              "from the start decides"))
                parts.append(f"N = {N} {_verdict(ratio)} (evaluations x{_fmt(ratio, 2)}{why})")
            if parts:
                lines.append(f"- {solver} (against N = {ref_depth}, median evaluations to the "
                             f"target): " + "; ".join(parts) + ".")
        lines.append("")
    if lines:
        lines += [
            "How to read this: the metric of depth N multiplies the core direction (i, j) by "
            "w_ij = (s_i^2 - s_j^2)/(s_i^(2/N) - s_j^(2/N)) and the side directions by "
            "s_j^(2(N-1)/N). Where the Euclidean curvature is large along directions of small "
            "singular values and small along large ones, this evens the Hessian's spectrum "
            "(preconditioning); where the curvature is already even, the weights' spread "
            "becomes the Hessian's (stiffening: the condition number grows like the spread). "
            "The weight spread and condition numbers above are measured at W*; the verdicts "
            "compare medians over seeds (ratios between 0.8 and 1.25 count as no clear effect).",
            ""]
    return lines


# ---------------------------------------------------------------------- figures
def figure(result, problem: str, size: str, path: str) -> str:
    """Relative gap against wall time and against iterations, first seed, one line per solver
    and depth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, axes = plt.subplots(1, 2, figsize=(13, 6), layout="constrained")
    solvers = list(dict.fromkeys(r.solver for r in result.runs))
    colors = {s: plt.cm.tab10(i % 10) for i, s in enumerate(solvers)}
    depths = sorted({r.depth for r in result.runs})
    styles = ["-", "--", "-.", ":", (0, (5, 1)), (0, (1, 3))]
    seed0 = min(r.seed for r in result.runs if (r.problem, r.size) == (problem, size))
    for run, row in zip(result.runs, result.rows):
        if (run.problem, run.size, run.seed) != (problem, size, seed0):
            continue
        h = run.result.history
        if len(h["time"]) == 0:
            continue
        rel = relative_gap(h["cost"], row["f_ref"], row["initial_cost"])
        y = np.maximum(rel, 1e-17)
        ls = styles[depths.index(run.depth) % len(styles)]
        marker = "o" if len(y) == 1 else None
        if run.result.status in ("failed", "diverged"):
            marker = "x"  # the last point of a failed or diverged run (named in the report)
        axes[0].plot(np.maximum(h["time"], 1e-5), y, ls=ls, color=colors[run.solver],
                     marker=marker, markevery=[-1] if marker == "x" else None, lw=1.2)
        axes[1].plot(np.maximum(h["iteration"], 0.5), y, ls=ls, color=colors[run.solver],
                     marker=marker, lw=1.2)
    tg = result.budgets[size].target_gap
    for ax, xl in zip(axes, ("wall time [s] (solver time, bookkeeping excluded)",
                             "iteration (pymanopt, layer-gd) / accepted step (flow)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.axhline(tg, color="grey", lw=0.8)
        ax.set_xlabel(xl)
        ax.set_ylabel("(f - f*) / (f(W0) - f*)")
        ax.grid(alpha=0.3)
    # two legends below the panels instead of one entry per (solver, depth): colour = solver,
    # line style = depth; "x" ends a failed or diverged run
    solver_handles = [Line2D([], [], color=colors[s], lw=2, label=s) for s in solvers]
    depth_handles = [Line2D([], [], color="k", lw=1.2, ls=styles[i % len(styles)], label=f"N = {N}")
                     for i, N in enumerate(depths)]
    depth_handles.append(Line2D([], [], color="k", marker="x", ls="", label="failed / diverged"))
    fig.legend(handles=solver_handles, loc="outside lower left", ncol=min(5, len(solvers)),
               fontsize=8, title="solver (colour)", title_fontsize=8, frameon=False)
    fig.legend(handles=depth_handles, loc="outside lower right", ncol=min(4, len(depth_handles)),
               fontsize=8, title="depth (line style)", title_fontsize=8, frameon=False)
    inst = result.instances[(problem, size)]
    fig.suptitle(f"{problem} ({size}: {inst.m} x {inst.n}, k = {inst.k}), seed {seed0}; "
                 f"grey line: target gap {tg:g}", fontsize=10)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=90, format="png"))
    plt.close(fig)
    return path


# ---------------------------------------------------------------------- report
def _machine() -> str:
    return (f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"numpy {np.__version__}, load average "
            f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} at the end")


def write_outputs(result) -> None:
    """results.csv, history.csv, the figures and report.md into ``result.out_dir``."""
    out = result.out_dir
    write_csv(os.path.join(out, "results.csv"), result.rows)
    write_history(os.path.join(out, "history.csv"), result)
    figs = []
    for (p, s) in result.instances:
        figs.append(figure(result, p, s, os.path.join(out, f"fig-{p}-{s}.png")))
    summary = summary_rows(result.rows)
    analysis = metric_analysis(result)
    result.analysis = analysis
    lines = ["# linrank compare", "",
             f"{len(result.runs)} runs ({sum(r.cached for r in result.runs)} from the cache) "
             f"in {result.elapsed:.0f} s wall, {result.cpu:.0f} s CPU of this process "
             f"(before the report). Machine: {_machine()}.", ""]
    lines += ["## Set-up", ""]
    for (p, s), inst in result.instances.items():
        ref, src = result.references[(p, s)]
        lines.append(f"* `{p}:{s}`: {inst.description}; minimum f* = {ref:.10g} ({src}).")
    for size, b in result.budgets.items():
        lines.append(f"* budget ({size}): stop at relative gap (f - f*)/(f(W0) - f*) <= "
                     f"{b.target_gap:g}, or after {b.max_time:g} s of CPU time or "
                     f"{b.max_iterations} iterations.")
    lines += [
        "* Every solver starts from the same point per seed: Haar u, v, s = s_1(W*) * "
        "linspace(1, 0.5, k). Times exclude the bookkeeping (recording cost and distance); "
        "CPU time includes BLAS threads. Evaluations = cost + gradient evaluations "
        "(a flow right-hand side counts as one of each).",
        "* layer-gd: the step is the largest of h0 2^(-j/2) whose trial run decreases the cost "
        "monotonically (h0 from a curvature estimate); a run that still diverges is restarted "
        "with half the step. Its search time is in results.csv (step_search_time), not in the "
        "run's time.",
        "* pymanopt-tr fails by design of pymanopt: FixedRankEmbedded has no Hessian and the "
        "numpy backend no automatic one; the row keeps pymanopt's error.", ""]
    lines += ["## Evaluations to the target gap", "",
              "Median over seeds of cost + gradient evaluations until the relative gap first "
              "reaches the target; (r/n): only r of n seeds reached it (median over those); -: "
              "no seed did within the budget; fail: the solver failed; n/a: not applicable. "
              "pymanopt-* run once, at N = 1 (their geometry). TrustRegions' Hessian-vector "
              "products are not in these counts (see the summary tables).", ""]
    for size in dict.fromkeys(s for (_, s) in result.instances):
        lines += [f"**{size}**", ""] + compact_table(summary, size) + [""]
    lines += ["## Summary", "",
              "Median [min, max] over seeds; wall time, CPU time, iterations and evaluations to "
              "the target gap "
              "(\"-\": not reached); gap and distance at the end, relative to the start's gap "
              "and to ||W*||. N is the depth of the metric (pymanopt's FixedRankEmbedded has the "
              "depth-1 geometry; N = 0 marks the depth-free direct answer).", ""]
    for (p, s) in result.instances:
        lines += [f"### {p} ({s})", "", f"![{p} {s}](fig-{p}-{s}.png)", "",
                  "| solver | N | runs | status | wall [s] | CPU [s] | iterations | evaluations "
                  "| Hessian-vector | final rel. gap | rel. distance | step |",
                  "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in summary:
            if (r["problem"], r["size"]) != (p, s):
                continue
            status = r["status"] + (f" ({r['reason']})" if r["reason"] else "")
            lines.append(f"| {r['solver']} | {r['depth']} | {r['runs']} | {status} | {r['time']} "
                         f"| {r['cpu']} | {r['iterations']} | {r['evals']} | {r['hvp']} | "
                         f"{r['gap']} | {r['dist']} | {r['step']} |")
        lines.append("")
    lines += ["## What the depth metric does", ""]
    lines += metric_text(result, summary, analysis) or [
        "No problem small enough for the Hessian analysis (or no depth-dependent solver ran).", ""]
    lines += ["## Files", "", "* `results.csv`: one row per run; `history.csv`: every recorded "
              "iterate; `fig-*.png`: the figures above; `.runs/`: the cache of finished runs.", ""]
    def write(tmp):
        with open(tmp, "w") as fh:
            fh.write("\n".join(lines))

    atomic_write(os.path.join(out, "report.md"), write)
    result.files = ["results.csv", "history.csv", "report.md"] + [os.path.basename(f)
                                                                  for f in figs]
