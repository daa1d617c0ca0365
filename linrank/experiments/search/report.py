r"""report.md of ``linrank search``: what the worst starts share, against random starts.

Every number is read from the rows (worst.csv). "Worst starts" are the best candidate of each
restart (one per local search, so one lucky restart cannot fill the table); the baseline is the
``random-*`` units (random starts inside the same hypothesis, same scale). Structure looked at:

* invariant subspace: the weight of W(0) off :math:`\operatorname{span}U_r` on either side,
  ``off_subspace`` :math:`= \|B - B_{rr}\|_F / \|B\|_F` (B in the eigenbasis; 0 means
  :math:`W(0) = U_rMU_r^T`, the invariant set);
* the sign of :math:`\det(U_r^TW(0)U_r)`;
* the critical point :math:`W_J` the run approaches (Proposition 29) and its status.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from ..shared.hypotheses import HYPOTHESES

__all__ = ["report_text", "baseline_median", "worst_per_restart"]


def _f(v: str) -> float:
    return float(v) if v not in ("", None) else math.nan


def baseline_median(rows: list[dict]) -> tuple[float, int, int]:
    """(median time to converge of the random starts, converged count, count).

    Starts that did not converge count as slower than every converged one (median nan if half
    or more of them did not converge, or there are none)."""
    base = [r for r in rows if r["kind"] == "random" and r["inside"] == "True"]
    times = sorted(_f(r["t_converge"]) if r["status"] == "converged" else math.inf
                   for r in base)
    conv = sum(1 for r in base if r["status"] == "converged")
    if not times:
        return math.nan, 0, 0
    med = float(np.median(times)) if conv * 2 > len(times) else math.nan
    return med, conv, len(base)


def worst_per_restart(rows: list[dict]) -> list[dict]:
    """The highest-objective row inside the hypothesis of each restart, worst first."""
    best: dict[str, dict] = {}
    for r in rows:
        if r["kind"] != "search" or r["inside"] != "True":
            continue
        u = r["unit"]
        if u not in best or _f(r["objective"]) > _f(best[u]["objective"]):
            best[u] = r
    return sorted(best.values(), key=lambda r: (-_f(r["objective"]), r["unit"]))


def _g(v: str, fmt: str = ".3g") -> str:
    x = _f(v)
    return "-" if math.isnan(x) else format(x, fmt)


def _share(rows: list[dict]) -> dict:
    n = len(rows)
    det_neg = sum(1 for r in rows if _f(r["det_r"]) < 0)
    off = [_f(r["off_subspace"]) for r in rows]
    return dict(n=n, det_neg=det_neg, off_med=float(np.median(off)) if off else math.nan,
                off_max=max(off) if off else math.nan,
                status=Counter(r["status"] for r in rows),
                J=Counter(r["critical_J"] or "?" for r in rows if r["status"] == "approaching"))


def report_text(result: object) -> str:
    """The text of report.md for a :class:`~linrank.experiments.search.SearchResult`."""
    cfg = result.config
    rows = result.rows
    desc = HYPOTHESES[cfg.hypothesis][1]
    inside = [r for r in rows if r["inside"] == "True"]
    outside = len(rows) - len(inside)
    worst = worst_per_restart(rows)
    base = [r for r in inside if r["kind"] == "random"]
    med, conv, nbase = baseline_median(rows)
    L = [f"# linrank search: {cfg.hypothesis} at d = {cfg.d}, r = {cfg.rank}, N = {cfg.depth}",
         "",
         f"Hypothesis `{cfg.hypothesis}`: {desc}. Data: `gaussian_data({cfg.d}, seed="
         f"{cfg.seed})` (Section 7, Y = X). Starts: W(0) = E B E^T with ||W(0)||_F = "
         f"{cfg.start_scale:.4g}, balanced; manifold flow (31), RK45 rtol {cfg.rtol:g}, atol "
         f"{cfg.atol:g}, horizon T = {cfg.horizon:g}, converged when ||W - U_rU_r^T||_F <= "
         f"{cfg.tol:g} ||U_rU_r^T||_F. Objective: t_converge / T if converged, else "
         "1 + ||W(T) - U_rU_r^T||_F / ||U_rU_r^T||_F. "
         + (f"CMA-ES (fitness log10(t_converge / T), or log10 of the distance at T over "
            f"{cfg.tol:g}), mean started at the restart's random start"
            + (" with weight 1e-3 off span U_r" if cfg.rank < cfg.d else "")
            if cfg.optimizer == "cma" else "Nelder-Mead on the objective")
         + f", at most {cfg.evals} flows per restart.",
         "",
         f"Candidates: {len(rows)} ({len(inside)} inside the hypothesis, {outside} outside and "
         f"not run); {len(worst)} restarts; {nbase} random starts of the baseline.",
         "Status of the candidates inside: " + ", ".join(
             f"{v} {k}" for k, v in sorted(Counter(r["status"] for r in inside).items())) + ".",
         ""]
    L += ["## Against random starts", ""]
    if nbase:
        L.append(f"Random starts inside the hypothesis: {conv} of {nbase} converged by T; "
                 + (f"median time to converge {med:.4g}." if not math.isnan(med) else
                    "half or more did not converge (no median)."))
    else:
        L.append("No random starts were run (random = 0): no baseline.")
    top = worst[0] if worst else None
    if top is not None:
        if top["status"] == "converged":
            t = _f(top["t_converge"])
            ratio = f"{t / med:.3g}" if med and not math.isnan(med) else "-"
            L.append(f"Worst start found (unit {top['unit']}, row {top['index']}): converged at "
                     f"t = {t:.4g}, {ratio} x the median of random starts.")
        else:
            bound = (f" (>= {cfg.horizon / med:.3g} x the median of random starts)"
                     if med and not math.isnan(med) else "")
            near = ("approaching W_J with J = " if top["status"] == "approaching" else
                    "nearest critical point W_J (not within 0.05 of it) with J = ")
            L.append(f"Worst start found (unit {top['unit']}, row {top['index']}): did not "
                     f"converge by T = {cfg.horizon:g}{bound}; status {top['status']}, "
                     f"distance {_g(top['final_distance'])} at T, {near}"
                     f"{top['critical_J'] or '?'}"
                     + (f"; certificate: {top['certificate']}" if top["certificate"] else "")
                     + ".")
    n_cert = sum(1 for r in inside if r["certificate"])
    n_appr = sum(1 for r in inside if r["status"] == "approaching" and not r["certificate"])
    n_unres = sum(1 for r in inside if r["status"] == "unresolved" and not r["certificate"])
    L += ["", f"Counterexamples among the candidates inside: {n_cert} with a certificate "
          f"(a proof that the flow cannot converge). Not converged by T without one: "
          f"{n_appr} approaching a critical point other than the minimizer at T (slow "
          f"or non-converging: a start off the invariant set may still converge later) and "
          f"{n_unres} unresolved; neither is a verdict.", ""]
    L += ["## What the worst starts share", ""]
    if worst:
        w, b = _share(worst), _share(base)
        L.append("| | worst of each restart | random starts |")
        L.append("|---|---:|---:|")
        L.append(f"| starts | {w['n']} | {b['n']} |")
        L.append(f"| det(U_r^T W(0) U_r) < 0 | {w['det_neg']} | {b['det_neg']} |")
        L.append(f"| off span U_r (median) | {w['off_med']:.3g} | {b['off_med']:.3g} |")
        L.append(f"| off span U_r (max) | {w['off_max']:.3g} | {b['off_max']:.3g} |")
        for s in ("converged", "approaching", "unresolved"):
            L.append(f"| {s} | {w['status'][s]} | {b['status'][s]} |")
        L.append("")
        if w["J"]:
            L.append("Critical points approached (within 0.05) by the worst starts: "
                     + ", ".join(f"W_J, J = {j}: {c}" for j, c in w["J"].most_common()) + ".")
        frac = w["det_neg"] / w["n"]
        L.append(f"{w['det_neg']} of {w['n']} worst starts have det(U_r^T W(0) U_r) < 0 "
                 f"(random starts: {b['det_neg']} of {b['n']})"
                 + ("; the sign of this determinant is conserved on the invariant set "
                    "{U_r M U_r^T}, and at r = d for every start (docs/theory.rst)."
                    if frac >= 0.5 else "."))
        if cfg.rank < cfg.d:
            near = [r for r in worst if _f(r["off_subspace"]) <= 1e-3]
            nwd = sum(1 for r in near if _f(r["det_r"]) < 0)
            nb = sum(1 for r in base if _f(r["off_subspace"]) <= 1e-3)
            L.append(f"{len(near)} of {w['n']} worst starts have weight <= 1e-3 off span U_r "
                     f"(random starts: {nb} of {b['n']}), {nwd} of them with "
                     "det(U_r^T W(0) U_r) < 0: near the invariant set {U_r M U_r^T} with "
                     "det M < 0, where the flow cannot converge (docs/theory.rst), the time to "
                     "converge grows without bound as the weight off it goes to 0.")
    else:
        L.append("No restart has run yet.")
    L += ["", "## The worst starts", "",
          "| unit | row | objective | status | t_converge | distance at T | J approached | "
          "det(U_r^T W U_r) | min u_i^T W u_i | off span U_r | certificate |",
          "|---|---:|---:|---|---:|---:|---|---:|---:|---:|---|"]
    for r in worst[:15]:
        L.append(f"| {r['unit']} | {r['index']} | {_g(r['objective'], '.4g')} | {r['status']} "
                 f"| {_g(r['t_converge'], '.4g')} | {_g(r['final_distance'])} | "
                 f"{r['critical_J'] or '-'} | {_g(r['det_r'])} | {_g(r['margin_47'])} | "
                 f"{_g(r['off_subspace'])} | {r['certificate'] or '-'} |")
    if result.problems:
        L += ["", "## Rows recomputed on resume", ""] + [f"- {p}" for p in result.problems]
    L += ["", "Every row of worst.csv holds the start's parameters and its matrix B in the "
          "eigenbasis (W(0) = E B E^T); `linrank sweep` takes them as `start = \"search:DIR\"`."]
    return "\n".join(L) + "\n"
