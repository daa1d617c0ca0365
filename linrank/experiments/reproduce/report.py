"""The texts of summary.json, details.json and report.md (written atomically by the caller).

summary.json: ``{"runs": [...], "verdicts": [...], "seeds": [...], "quick": bool}``; each run has
the keys :data:`SUMMARY_KEYS` (issue 5's schema plus ``condition_47``, ``min_u_W0_u``,
``hidden_widths``, ``status``, ``id``, ``method``, ``t_final``), each verdict the ids of the runs
it rests on and its counts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict

import numpy as np

from .limits import escape_rate_fit
from .paper import CONVERGED, RunRecord, Settings
from .paper_flow import EXTEND
from .verdicts import DRIFT_MAX, LIMIT_RTOL, Verdict, fmt_number

__all__ = ["SUMMARY_KEYS", "summary_dict", "summary_text", "details_text", "report_text"]

SUMMARY_KEYS = ("figure", "depth", "d", "rank", "init", "final_error", "final_loss_gap",
                "initial_norm", "min_norm", "w2_minus_w1t", "imbalance_drift", "escape_time",
                "seed", "condition_47", "min_u_W0_u", "hidden_widths", "status", "id", "method",
                "t_final", "eta", "det_C0", "invariant_certificate", "critical_J", "converge_time")


def _json_default(x):
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serializable: {type(x).__name__}")


def summary_dict(records: Sequence[RunRecord], verdicts: Sequence[Verdict] = (),
                 seeds: Sequence[int] = (), quick: bool = False) -> dict:
    """The content of summary.json."""
    runs = []
    for r in records:
        s = r.summary()
        runs.append({k: s[k] for k in SUMMARY_KEYS})
    return {"runs": runs,
            "verdicts": [{k: v for k, v in asdict(x).items() if k != "evidence"}
                         for x in verdicts],
            "seeds": list(seeds), "quick": quick}


def summary_text(data: dict) -> str:
    return json.dumps(data, indent=1, default=_json_default, allow_nan=False)


def details_text(details: dict, verdicts: Sequence[Verdict], settings: Settings,
                 seeds: Sequence[int], records: Sequence[RunRecord],
                 perturbed: Sequence[RunRecord], timing: dict) -> str:
    det = dict(details)
    det["verdicts"] = [asdict(v) for v in verdicts]
    det["settings"] = asdict(settings)
    det["seeds"] = list(seeds)
    det["timing"] = timing
    det["perturbed_runs"] = [dict(r.summary(), delta=r.spec.delta) for r in perturbed]
    det["run_extras"] = [dict(id=r.run_id, **r.extra) for r in records]
    return json.dumps(det, indent=1, default=_json_default)


_SETUP = [
    "- Data: X is d x 3d with i.i.d. N(0, 1/d) entries (Section 7), Y = X; the data of "
    "dimension d come from `SeedSequence([seed, d])`. Loss L(W) = 1/2 ||X - WX||_F^2, minimum "
    "over rank <= r at U_rU_r^T (lambda_i: eigenvalues of XX^T, u_i their eigenvectors).",
    "- Factors W_1 (d_1 x d), ..., W_N (d x d_(N-1)); hidden widths d_i = r unless stated.",
    "- **The paper's balanced start (init `balanced`, Figures 1, 2), as in Section 7:** N = 2: "
    "W_1(0) = V_r^T (orthonormal rows, V Haar), W_2(0) = V~ V_r (V~ Haar): all singular values "
    "1. N > 2: the SVD of a full d x d Gaussian W (entries N(0, 1/d)) truncated to rank r, "
    "W_i(0) = V_i Sigma_r^(1/N) V_(i-1)^T with Haar V_1, ..., V_(N-1). (Before this version "
    "the N = 2 start was a Gaussian W_1 and the N > 2 start a rank-r product AB/d: both "
    "differed from the paper.)",
    "- Condition (47) of Conjecture 32 is u_i^T W(0) u_i > 0 for i = 1..r together with rank "
    "W(0)U_r = r; it is not balancedness. Each sign pattern of (u_i^T W(0) u_i)_i has "
    "probability 2^-r for the paper's start, so most paper starts violate (47). Every run "
    "records `condition_47` and `min_u_W0_u` in summary.json.",
    "- **Starts that are not in the paper** (figure 5 in summary.json): `inside47` / "
    "`outside47` = the paper's start conditioned on (47) holding / failing (exactly: the "
    "reflection W_1 -> W_1(I - 2 sum_(i in S) u_iu_i^T) flips the signs in S and preserves the "
    "start's distribution); `boundary` = balanced factors of W(0) = (U_r(eps I + K) + U_perp C)U_r^T "
    "with K skew and C Gaussian (u_i^T W(0) u_i = eps exactly; without the U_perp C part the "
    "flow would stay in the span of U_r); `special` for N >= 3 = balanced factors of "
    "-U_rU_r^T; hidden widths r + 2; `nonbalanced` for N > 2 = every factor N(0, 1/d); "
    "`perturbed` = the paper's start plus a perturbation of relative size `scale` per factor "
    "(its imbalance is in details.json, `initial_imbalance`).",
    "- Figure 3 (N = 2, non-balanced): W_1, W_2 with i.i.d. N(0, 1/d) entries. Figure 4: W_1 = "
    "U_r^T, W_2 = -U_r; the perturbed variants add delta E/||E||_F to W_1 (same E for every "
    "delta).",
]


def _setup(st: Settings) -> list[str]:
    L = list(_SETUP)
    L += [
        f"- Sizes (the paper's exact figure settings are not given; these are our choices "
        f"within its ranges): Figure 1 d in {list(st.fig1_dims)}, r = max(2, d // 5), N in "
        f"{list(st.depths)}; Figure 2 d in {list(st.fig2_dims)}, r = {st.small_rank}; Figures "
        f"3, 4 d in {list(st.fig3_dims)}, {list(st.fig4_dims)}; Conjecture 32 N in "
        f"{list(st.conj_depths)}, d in {list(st.conj_dims)}; near-boundary eps in "
        f"{list(st.boundary_eps)}; special start N in {list(st.special_depths)} (horizon "
        f"{st.special_horizon:g}); Euler steps {list(st.euler_fractions)} x h_max."
        + (" **--quick: a reduced set of sizes and seeds (for tests), not the full "
           "reproduction.**" if st.quick else ""),
        f"- Integration: the layer-wise flow (5) by `linrank.factor_flow`, Dormand-Prince 5(4) "
        f"with rtol = {st.rtol:g}, atol = {st.atol:g} (and the paper's Euler method in the "
        f"Figure 3 study). Stopping rule: the layer gradient norm <= {st.gtol:g}, or "
        f"||W - U_rU_r^T||_F <= {st.etol:g} (tested every {st.chunk:g} time units), or the "
        f"budget min({st.t_cap:g}, {st.t_base:g} + {st.decades:g} / rate) is spent (rate = "
        f"smallest Riemannian Hessian eigenvalue at U_rU_r^T); a run not converged then is "
        f"continued from its state, doubling the horizon up to {EXTEND} x the budget (not the "
        f"starts proved not to converge). Status `completed`, `critical` (budget spent, "
        f"certified approaching another critical point: docs/theory.rst) or `unfinished` "
        f"(neither: unresolved, never counted for or against a claim). The curves end where the "
        f"run stopped, i.e. at the gradient tolerance (errors ~1e-9 to 2e-8), not at an "
        f"integrator floor. A run counts as converged when completed with ||W(T) - "
        f"U_rU_r^T||_F <= {CONVERGED:g}.",
    ]
    return L


_FIG3 = [
    "### The limit of ||W_2 - W_1^T|| for non-balanced N = 2 starts", "",
    "If W_2W_1 -> U_rU_r^T (hidden width r), write the limit as W_1 = MU_r^T; then W_2 = "
    "U_rM^(-1) (the row space of W_2W_1 is that of W_1 and W_2 is injective). The conserved "
    "D = W_2^TW_2 - W_1W_1^T equals M^(-T)M^(-1) - MM^T = S^(-1) - S with S = MM^T > 0, so S is "
    "the function s(delta) = (sqrt(delta^2 + 4) - delta)/2 of D (the positive root of "
    "1/s - s = delta), and s + 1/s = sqrt(delta^2 + 4). Hence, whatever the orthogonal part of "
    "M, ||W_2 - W_1^T||_F^2 = ||M^(-1) - M^T||_F^2 = tr S^(-1) - 2r + tr S = sum_i "
    "(sqrt(delta_i^2 + 4) - 2) = sum_i delta_i^2 / (sqrt(delta_i^2 + 4) + 2), with delta_i the "
    "eigenvalues of D (`linrank.experiments.reproduce.limits.figure3_limit`). It vanishes only for D = 0 "
    "(balanced) and is about ||D||_F / 2 for small D; and W_2 -> W_1^+.", ""]


def _verdict_table(vs: Sequence[Verdict], per_seed: dict[int, list[Verdict]]) -> list[str]:
    seeds = sorted(per_seed)
    head = ("| claim | verdict | runs inside hypothesis | completed | converged | "
            "counterexamples | certified critical | unresolved | seeds | "
            + " | ".join(f"seed {s}" for s in seeds) + " |")
    L = [head, "|" + "---|" * (9 + len(seeds))]
    for v in vs:
        cells = []
        for s in seeds:
            match = [w for w in per_seed[s] if w.key == v.key]
            cells.append(match[0].status if match else "-")
        L.append(f"| {v.claim} | **{v.status}** | {v.n_runs} | {v.n_completed} | "
                 f"{v.n_converged} | {v.n_counterexamples} | {v.n_critical} | "
                 f"{v.n_unfinished} | "
                 f"{','.join(map(str, v.seeds))} | "
                 + " | ".join(cells) + " |")
    return L


def _runs_table(records: Sequence[RunRecord]) -> list[str]:
    rows = ["| id | status | T | final error | loss gap | (47) | min u^TW0u | ||W_2 - W_1^T|| | "
            "drift | min ||W|| | escape | rate meas. / pred. |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        s = r.summary()
        rate = "-"
        if r.extra.get("measured_rate") and r.extra.get("predicted_rate"):
            rate = f"{r.extra['measured_rate']:.4f} / {r.extra['predicted_rate']:.4f}"
        esc = "-" if s["escape_time"] is None else f"{s['escape_time']:.2f}"
        rows.append(
            f"| {s['id']} | {s['status']} | {s['t_final']:.0f} | {fmt_number(s['final_error'])} | "
            f"{fmt_number(s['final_loss_gap'])} | {'yes' if s['condition_47'] else 'no'} | "
            f"{s['min_u_W0_u']:+.3f} | {fmt_number(s['w2_minus_w1t'])} | "
            f"{fmt_number(s['imbalance_drift'])} | {fmt_number(s['min_norm'])} | {esc} | {rate} |")
    return rows


def _counterexample_section(records: Sequence[RunRecord]) -> list[str]:
    """Tables of the certified counterexamples and of the eta-scan (figure 6)."""
    from .verdicts import eta_scan_rows

    L = ["Starts W(0) = U_rMU_r^T with det M < 0 stay on the invariant set {U_r M U_r^T} and "
         "keep the sign of det(U_r^T W(t) U_r) (docs/theory.rst, 'Invariant sets and the sign "
         "of the determinant'), so ||W(t) - U_rU_r^T||_F >= 1 for all t.", "",
         "| id | (47) | det C(0) | det C(T) | sign kept | max off-set | min_t ||W - U_rU_r^T|| "
         "| approaches W_J, J = | loss vs L(W_J) | status |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in (r for r in records if r.spec.init in ("familyA", "negdet")):
        e = r.extra
        J = "{" + ", ".join(str(j + 1) for j in e["critical"]["J"]) + "}"
        L.append(f"| {r.run_id} | {'yes' if e['condition_47'] else 'no'} | {e['det_C0']:.3g} | "
                 f"{e['det_C_final']:.3g} | {e['det_sign_kept']} | "
                 f"{fmt_number(e['invariant_defect_max'])} | {e['min_error']:.6f} | {J} | "
                 f"{fmt_number(e['critical']['rel_loss_diff'])} | {r.status} |")
    fb = [r for r in records if r.spec.init == "familyB"]
    if fb:
        L += ["", "Family B (family A plus eta off the invariant set): T = first time with "
              "||W - U_rU_r^T||_F <= 1e-3; runs that end at their budget are unresolved and not "
              "fitted.", "", "| N | eta | T | fitted p (converged runs) | p between the two "
              "smallest converged eta | predicted p (asymptotic) |", "|---|---|---|---|---|---|"]
        for row in eta_scan_rows(fb):
            p, q = row["fit"]["exponent"], row["fit"]["local"]
            for e, t, tb in zip(row["etas"], row["times"], row["t_budget"]):
                L.append(f"| {row['depth']} | {e:.3g} | "
                         + (f"{t:.1f}" if t is not None else f"unresolved (budget {tb:.0f})")
                         + f" | {'-' if p is None else f'{p:.3f}'} | "
                         + f"{'-' if q is None else f'{q:.3f}'} | "
                         + ", ".join(f"{x:.3f}" for x in row["predicted"]) + " |")
    return L + [""]


def report_text(records: Sequence[RunRecord], perturbed: Sequence[RunRecord], details: dict,
                vs: Sequence[Verdict], per_seed: dict[int, list[Verdict]], settings: Settings,
                seeds: Sequence[int], figures: Sequence[str], timing: dict) -> str:
    """report.md."""
    st = settings
    L: list[str] = [
        "# Reproduction of Section 7 (Figures 1-4) and of the claims around it", "",
        "Bah, Rauhut, Terstiege, Westdickenberg (2019), *Learning deep linear neural networks: "
        "Riemannian gradient flows and convergence to global minimizers*. Generated by "
        f"`linrank reproduce` (seeds {', '.join(map(str, seeds))}"
        f"{', --quick (reduced set)' if st.quick else ''}): {len(records)} runs + "
        f"{len(perturbed)} perturbed special starts, {timing['wall_seconds']:.1f} s wall, "
        f"{timing['cpu_seconds']:.1f} s CPU (all processes, {timing['jobs']} workers; "
        f"{timing['tasks_from_cache']} of {timing['tasks_from_cache'] + timing['tasks_computed']}"
        " tasks were taken from the cache and cost nothing here). Machine-readable: "
        "`summary.json` (runs, verdicts with the runs they rest on), `details.json` "
        "(everything below).", "",
        "## Verdicts", "",
        "Each verdict rests on the runs inside the claim's hypothesis (their ids are in "
        "summary.json). Completed = stopped by the convergence rule; counterexamples = runs "
        "certified to approach a critical point W_J other than the minimizer (loss within "
        "1e-3 of L(W_J)'s closed form, gradient decaying) from a start on the invariant set "
        "{U_r M U_r^T} with det M < 0, where docs/theory.rst proves that the flow cannot reach "
        "U_rU_r^T; unresolved = budget spent without either (never counted for or against a "
        "claim; a verdict with unresolved runs and no counterexample is 'inconclusive', not "
        "'confirmed'). The seed columns give the verdict on that seed's runs alone.", ""]
    L += _verdict_table(vs, per_seed)
    L += [""]
    for v in vs:
        L += [f"- **{v.claim}** - {v.status}. Hypothesis: {v.hypothesis}. {v.evidence}", ""]
    L += ["## Set-up", "", *_setup(st), "", *_FIG3,
          "### What changes with the paper's Euler method", "",
          "The paper integrated with the explicit Euler method: gradient descent on the factors "
          "with a fixed step h. It does not conserve W_(j+1)^TW_(j+1) - W_jW_j^T (each step "
          "changes it by h^2 (G_(j+1)^TG_(j+1) - G_jG_j^T)), so balancedness and the "
          "Riemannian interpretation (Corollary 8) hold only to O(h), and the Figure 3 plateau "
          "depends on h (see the Figure 3 verdict: it equals the closed form at Euler's own "
          "final D). The limit W = U_rU_r^T does not change.", ""]
    names = {1: "Figure 1: convergence from the paper's balanced start, N = 2, 3, 4",
             2: "Figure 2: W_2 - W_1^T and the residual against its optimum",
             3: "Figure 3: non-balanced starts, N = 2 (exact flow and Euler)",
             4: "Figure 4: the special start W_1 = U_r^T, W_2 = -U_r",
             5: "Beyond the paper: Conjecture 32 inside (47), the special start for N >= 3",
             6: "Counterexamples: Conjecture 32 (family A), Theorem 31 at r = d; the eta-scan"}
    for i, fpath in enumerate(figures, start=1):
        L += [f"## {names[i]}", "", f"![Figure {i}]({fpath})", ""]
        if i == 3:
            L += ["| id | ||D||_F | drift of D | ||W_2(T) - W_1(T)^T||_F | closed form at D(0) | "
                  "at final D | ||W_2(T) - W_1(T)^+||_F | ||W(T) - U_rU_r^T||_F |",
                  "|---|---|---|---|---|---|---|---|"]
            for r in (r for r in records if r.spec.figure == 3):
                s = r.summary()
                L.append(f"| {r.run_id} | {r.extra['conserved_norm']:.4f} | "
                         f"{fmt_number(s['imbalance_drift'])} | {fmt_number(s['w2_minus_w1t'], 10)} | "
                         f"{fmt_number(r.extra['w2_w1t_limit'], 10)} | "
                         f"{fmt_number(r.extra['w2_w1t_limit_final_D'], 10)} | "
                         f"{fmt_number(r.extra['w2_minus_pinv_w1'])} | {fmt_number(s['final_error'])} |")
            L += ["", f"(The closed form is tested against these plateaus to {LIMIT_RTOL:g} "
                  f"relative; RK45 drift of D <= {DRIFT_MAX:g}.)", ""]
        if i == 4:
            L += ["| id | min ||W|| | at t | escape time | lambda_1 |", "|---|---|---|---|---|"]
            for r in [r for r in records if r.spec.figure == 4] + list(perturbed):
                s = r.summary()
                esc = "never" if s["escape_time"] is None else f"{s['escape_time']:.2f}"
                L.append(f"| {r.run_id} | {fmt_number(s['min_norm'])} | {r.extra['t_min_norm']:g} | "
                         f"{esc} | {r.extra['lambda_1']:.4f} |")
            for seed in seeds:
                fit = escape_rate_fit([(r.spec.delta, r.summary()["escape_time"],
                                        r.extra["lambda_1"]) for r in perturbed
                                       if r.seed == seed])
                if fit is not None:
                    L += ["", f"Seed {seed}: fit t_esc = a + ln(1/delta)/rho gives rho = "
                          f"{fit['rate']:.4f} (the growth rate of the factor mode W_1 + W_2^T; "
                          f"||W|| grows at twice it) against lambda_1 = {fit['lambda_1']:.4f}; "
                          f"a = {fit['intercept']:.3f}, max residual {fit['max_residual']:.3f}."]
            L += ["", "The escape time of the exact start is set by rounding errors: it depends "
                  "on the machine's floating-point arithmetic (BLAS kernels), not on chance.", ""]
        if i == 6:
            L += _counterexample_section(records)
    L += ["## Strict saddles (Proposition 30)", "",
          "`linrank.critical` at every critical point W_J = sum_(j in J) u_ju_j^T of the "
          f"autoencoder loss on M_k (d = {st.saddle_d}, k = {st.saddle_k}): the Riemannian "
          "Hessian spectrum from Hessian-vector products against the closed form.", "",
          "| seed | N | points | minimizers | strict saddles | with a negative eigenvalue | "
          "indices = closed form | max spectrum error | min eig. at minimizer | mildest saddle "
          "| worst saddle |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for rows in details.get("saddles") or []:
        for row in rows:
            L.append(f"| {row['seed']} | {row['depth']} | {row['points']} | {row['minimizers']} "
                     f"| {row['strict_saddles']} | {row['saddles_with_negative_eigenvalue']} | "
                     f"{row['index_agreement']} | {fmt_number(row['max_spectrum_error'])} | "
                     f"{row['min_eig_minimizer']:.4f} | {row['mildest_saddle_eig']:.4f} | "
                     f"{row['worst_saddle_eig']:.4f} |")
    L += ["", "## All runs", "",
          "final error = ||W(T) - U_rU_r^T||_F; loss gap = L(W(T)) - L* (rounding level, may be "
          "negative); (47) = condition (47) at the start; drift = max_t ||D(t) - D(0)||_F of "
          "the conserved W_(j+1)^TW_(j+1) - W_jW_j^T; rate = the fitted final decay rate of the "
          "error against the smallest Riemannian Hessian eigenvalue at U_rU_r^T (for "
          "non-balanced starts the flow is not the Riemannian one and the prediction is only a "
          "reference).", ""]
    L += _runs_table(records)
    return "\n".join(L) + "\n"
